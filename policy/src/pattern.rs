//! String patterns: the one way every string condition of a policy is written.
//!
//! - `re:EXPR` is a regular expression (Rust `regex` syntax), unanchored: write `^...$`
//!   to match the whole string.
//! - a text with `*`, `?` or `[` is a glob over the whole string: `*` is any run of
//!   characters (including `/`, so `/tmp/*` covers everything below /tmp), `?` one
//!   character, `[a-z]` / `[!0-9]` a class; `\` makes the next character literal.
//! - anything else must be equal.
//!
//! Matching never allocates: decisions on the allow path run without touching the heap.

use regex::Regex;

/// Where a pattern came from, to explain a match ("\"nc.*\" from list netcat").
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub text: Box<str>,
    pub list: Option<Box<str>>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.list {
            Some(list) => write!(f, "{:?} (list {list})", self.text),
            None => write!(f, "{:?}", self.text),
        }
    }
}

#[derive(Debug, Clone)]
enum Matcher {
    Literal(Box<str>),
    Glob(Glob),
    Regex(Regex),
}

impl Matcher {
    fn parse(text: &str) -> Result<Matcher, String> {
        if let Some(expr) = text.strip_prefix("re:") {
            return Regex::new(expr).map(Matcher::Regex).map_err(|e| format!("invalid regular expression: {e}"));
        }
        if text.contains(['*', '?', '[', '\\']) {
            return Glob::parse(text).map(Matcher::Glob);
        }
        Ok(Matcher::Literal(text.into()))
    }

    fn is_match(&self, subject: &str) -> bool {
        match self {
            Matcher::Literal(text) => **text == *subject,
            Matcher::Glob(glob) => glob.is_match(subject.as_bytes()),
            Matcher::Regex(regex) => regex.is_match(subject),
        }
    }
}

/// One pattern, kept with its origin.
#[derive(Debug, Clone)]
pub struct Pattern {
    matcher: Matcher,
    pub origin: Origin,
}

impl Pattern {
    /// Compiles `text`; `list` names the list it was taken from, if any.
    pub fn parse(text: &str, list: Option<&str>) -> Result<Pattern, String> {
        Ok(Pattern { matcher: Matcher::parse(text)?, origin: Origin { text: text.into(), list: list.map(Into::into) } })
    }

    pub fn is_match(&self, subject: &str) -> bool {
        self.matcher.is_match(subject)
    }

    /// The text when this pattern is a plain equality test.
    pub fn literal(&self) -> Option<&str> {
        match &self.matcher {
            Matcher::Literal(text) => Some(text),
            _ => None,
        }
    }
}

/// Patterns that match a string when any one of them does. Equality tests, the common
/// case (tool names), are a binary search; globs and regexes are tried after.
#[derive(Debug, Clone, Default)]
pub struct PatternSet {
    /// Sorted by text, for binary search.
    literals: Vec<Pattern>,
    others: Vec<Pattern>,
}

impl PatternSet {
    pub fn new(patterns: Vec<Pattern>) -> PatternSet {
        let (mut literals, others): (Vec<_>, Vec<_>) =
            patterns.into_iter().partition(|p| matches!(p.matcher, Matcher::Literal(_)));
        literals.sort_by(|a, b| a.origin.text.cmp(&b.origin.text));
        literals.dedup_by(|a, b| a.origin.text == b.origin.text);
        let mut others_seen = Vec::new();
        let others = others
            .into_iter()
            .filter(|p| {
                let first = !others_seen.contains(&p.origin.text);
                others_seen.push(p.origin.text.clone());
                first
            })
            .collect();
        PatternSet { literals, others }
    }

    /// The first pattern that matches `subject`.
    pub fn find(&self, subject: &str) -> Option<&Origin> {
        if let Ok(at) = self.literals.binary_search_by(|p| (*p.origin.text).cmp(subject)) {
            return self.literals.get(at).map(|p| &p.origin);
        }
        self.others.iter().find(|p| p.is_match(subject)).map(|p| &p.origin)
    }

    pub fn is_match(&self, subject: &str) -> bool {
        self.find(subject).is_some()
    }

    pub fn patterns(&self) -> impl Iterator<Item = &Pattern> {
        self.literals.iter().chain(&self.others)
    }
}

/// A compiled glob. Works on bytes: `?` and classes match one byte, which is one character
/// in the ASCII that paths and flags are made of.
#[derive(Debug, Clone)]
struct Glob {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Byte(u8),
    AnyByte,
    Star,
    Class { negated: bool, ranges: Vec<(u8, u8)> },
}

impl Token {
    fn matches(&self, byte: u8) -> bool {
        match self {
            Token::Byte(b) => *b == byte,
            Token::AnyByte => true,
            Token::Star => false,
            Token::Class { negated, ranges } => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&byte)) != *negated,
        }
    }
}

impl Glob {
    fn parse(text: &str) -> Result<Glob, String> {
        let bytes = text.as_bytes();
        let mut tokens = Vec::with_capacity(bytes.len());
        let mut at = 0;
        while let Some(&byte) = bytes.get(at) {
            at += 1;
            let token = match byte {
                b'*' => Token::Star,
                b'?' => Token::AnyByte,
                b'\\' => match bytes.get(at) {
                    Some(&escaped) => {
                        at += 1;
                        Token::Byte(escaped)
                    }
                    None => return Err("a glob cannot end with a lone '\\'".into()),
                },
                b'[' => {
                    let (token, next) = parse_class(bytes, at)?;
                    at = next;
                    token
                }
                _ => Token::Byte(byte),
            };
            // `**` means the same as `*`; keep one so matching stays linear.
            if !(token == Token::Star && tokens.last() == Some(&Token::Star)) {
                tokens.push(token);
            }
        }
        Ok(Glob { tokens })
    }

    /// Wildcard matching with single-star backtracking: linear in practice, and it never
    /// allocates.
    fn is_match(&self, text: &[u8]) -> bool {
        let (mut t, mut s) = (0, 0);
        let mut resume: Option<(usize, usize)> = None;
        while s < text.len() {
            match self.tokens.get(t) {
                Some(Token::Star) => {
                    resume = Some((t + 1, s));
                    t += 1;
                    continue;
                }
                Some(token) if text.get(s).is_some_and(|&b| token.matches(b)) => {
                    t += 1;
                    s += 1;
                    continue;
                }
                _ => {}
            }
            match resume {
                Some((after_star, from)) => {
                    t = after_star;
                    s = from + 1;
                    resume = Some((after_star, from + 1));
                }
                None => return false,
            }
        }
        self.tokens.get(t..).is_some_and(|rest| rest.iter().all(|tok| *tok == Token::Star))
    }
}

/// Parses a `[...]` class whose body starts at `at`; returns the token and the index after `]`.
fn parse_class(bytes: &[u8], mut at: usize) -> Result<(Token, usize), String> {
    let negated = matches!(bytes.get(at), Some(b'!') | Some(b'^'));
    if negated {
        at += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let lo = match bytes.get(at) {
            None => {
                return Err("unclosed '[' in glob: close the class with ']' or write '\\[' for a literal '['".into())
            }
            Some(b']') if !first => return Ok((Token::Class { negated, ranges }, at + 1)),
            Some(&b) => b,
        };
        first = false;
        at += 1;
        match (bytes.get(at), bytes.get(at + 1)) {
            (Some(b'-'), Some(&hi)) if hi != b']' => {
                if hi < lo {
                    return Err(format!("empty range '{}-{}' in glob class", lo as char, hi as char));
                }
                ranges.push((lo, hi));
                at += 2;
            }
            _ => ranges.push((lo, lo)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, subject: &str) -> bool {
        Pattern::parse(pattern, None).map(|p| p.is_match(subject)).unwrap_or(false)
    }

    #[test]
    fn literals_globs_and_regexes() {
        assert!(matches("nc", "nc"));
        assert!(!matches("nc", "ncat"));
        assert!(matches("nc.*", "nc.openbsd"));
        assert!(!matches("nc.*", "ncal"));
        assert!(matches("*localhost*", "http://localhost:8080/healthz"));
        assert!(matches("-*z*", "-vz"));
        assert!(!matches("-*z*", "zz"));
        assert!(matches("/tmp/*", "/tmp/a/b/c"));
        assert!(matches("/tmp/**", "/tmp/x"));
        assert!(!matches("/tmp/*", "/tmpfoo"));
        assert!(matches("a?c", "abc"));
        assert!(matches("[a-c]x", "bx"));
        assert!(!matches("[!a-c]x", "bx"));
        assert!(matches("\\*", "*"));
        assert!(!matches("\\*", "a"));
        assert!(matches("re:^-[a-z]*e", "-le"));
        assert!(matches("*a*a*a*b", "aaaaaaaaaaaaaaaab"));
        assert!(!matches("*a*a*a*b", "aaaaaaaaaaaaaaaaa"));
        assert!(matches("*", ""));
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(Pattern::parse("[abc", None).is_err());
        assert!(Pattern::parse("x\\", None).is_err());
        assert!(Pattern::parse("re:(", None).is_err());
        assert!(Pattern::parse("[z-a]", None).is_err());
    }

    #[test]
    fn set_finds_literals_and_globs() {
        let set = PatternSet::new(
            ["nc", "socat", "netcat*"]
                .iter()
                .map(|t| Pattern::parse(t, Some("tools")))
                .collect::<Result<_, _>>()
                .unwrap_or_default(),
        );
        assert_eq!(set.find("socat").map(|o| &*o.text), Some("socat"));
        assert_eq!(set.find("netcat.openbsd").map(|o| &*o.text), Some("netcat*"));
        assert!(set.find("ls").is_none());
    }
}
