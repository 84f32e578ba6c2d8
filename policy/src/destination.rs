//! Where a network tool will connect: the hosts its own command line names, parsed the
//! way the tool parses it.
//!
//! The self-probe exemptions (`nc -z localhost 8080`, `curl http://127.0.0.1/healthz`)
//! must hold only when the tool really contacts the container itself. Text elsewhere in
//! argv (a header, a query string, a proxy user, a source address) says nothing about
//! that, and an option's value is not an operand. So each family's options are read as
//! its getopt reads them: the options that take a value (the union over the variants a
//! container may ship: OpenBSD and traditional netcat, ncat, busybox; curl, wget) skip
//! it, and what is left are the operands: netcat's host, the URLs of curl and wget. A
//! proxy is a destination too: the tool connects to it, not to the URL's host.
//!
//! Taking the union errs one way only: a letter that takes a value in some variant may
//! swallow a host that another variant would connect to, which leaves that host out of
//! the operands; but a destination list is "loopback" only when it names at least one
//! host and every host is loopback, so a misparse can only cost an exemption, never
//! grant one.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The tool families whose destinations are parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Netcat,
    Http,
    /// dig, host, nslookup: the name server they are told to ask, when they are told.
    Dns,
}

fn family(name: &str) -> Option<Family> {
    match name {
        "nc" | "netcat" | "ncat" => Some(Family::Netcat),
        _ if name.starts_with("nc.") || name.starts_with("netcat.") => Some(Family::Netcat),
        "curl" | "wget" | "lwp-download" => Some(Family::Http),
        "dig" | "host" | "nslookup" => Some(Family::Dns),
        _ => None,
    }
}

/// Short options that take a value in some netcat: OpenBSD's
/// `46CDdFhI:i:klM:m:NnO:P:p:q:rSs:T:tUuV:vW:w:X:x:Zz`, traditional netcat's `c: e: g: G:
/// i: o: p: q: s: w:`, ncat's `c: d: e: g: G: i: m: o: p: s: w: x:`, busybox's `e: f: i:
/// p: w:`.
const NETCAT_VALUE_LETTERS: &[u8] = b"cdefgGiIMmoOpPqsTVwWxX";
/// Of them, the ones whose value is a proxy the tool connects to (OpenBSD's -x).
const NETCAT_PROXY_LETTERS: &[u8] = b"x";
/// ncat's long options that take no value; every other long option takes one (ncat(1)).
const NCAT_LONG_WITHOUT_VALUE: &[&str] = &[
    "4",
    "6",
    "unixsock",
    "vsock",
    "crlf",
    "nodns",
    "udp",
    "sctp",
    "verbose",
    "zero-io",
    "listen",
    "keep-open",
    "recv-only",
    "send-only",
    "no-shutdown",
    "broker",
    "chat",
    "telnet",
    "ssl",
    "ssl-verify",
    "version",
    "help",
    "append-output",
    "allow-all",
];
const NCAT_PROXY_LONG: &[&str] = &["proxy"];

/// curl's short options that take no value (curl --help all); every other letter takes one.
const CURL_LETTERS_WITHOUT_VALUE: &[u8] = b"#0123456aBfgGhiIjJklLMnNOpqRsSvVZ";
/// wget's short options that take no value (wget --help); every other letter takes one.
const WGET_LETTERS_WITHOUT_VALUE: &[u8] = b"46bcdEFhHkKLmNpqrsSvVx";
/// Long options of curl and wget that take a value. An unknown long option is taken to
/// have none, so that what follows it stays a candidate destination.
const HTTP_LONG_WITH_VALUE: &[&str] = &[
    // curl
    "abstract-unix-socket",
    "alt-svc",
    "aws-sigv4",
    "cacert",
    "capath",
    "cert",
    "cert-type",
    "ciphers",
    "config",
    "connect-timeout",
    "continue-at",
    "cookie",
    "cookie-jar",
    "create-file-mode",
    "crlfile",
    "data",
    "data-ascii",
    "data-binary",
    "data-raw",
    "data-urlencode",
    "dns-interface",
    "dns-ipv4-addr",
    "dns-ipv6-addr",
    "dns-servers",
    "doh-url",
    "dump-header",
    "ech",
    "egd-file",
    "engine",
    "etag-compare",
    "etag-save",
    "expect100-timeout",
    "form",
    "form-string",
    "ftp-account",
    "ftp-alternative-to-user",
    "ftp-method",
    "ftp-port",
    "ftp-ssl-ccc-mode",
    "happy-eyeballs-timeout-ms",
    "haproxy-clientip",
    "header",
    "hostpubmd5",
    "hostpubsha256",
    "hsts",
    "interface",
    "ip-tos",
    "json",
    "keepalive-time",
    "key",
    "key-type",
    "krb",
    "libcurl",
    "limit-rate",
    "local-port",
    "login-options",
    "mail-auth",
    "mail-from",
    "mail-rcpt",
    "max-filesize",
    "max-redirs",
    "max-time",
    "netrc-file",
    "oauth2-bearer",
    "output",
    "output-dir",
    "parallel-max",
    "pass",
    "pinnedpubkey",
    "proto",
    "proto-default",
    "proto-redir",
    "proxy-cacert",
    "proxy-capath",
    "proxy-cert",
    "proxy-cert-type",
    "proxy-ciphers",
    "proxy-crlfile",
    "proxy-header",
    "proxy-key",
    "proxy-key-type",
    "proxy-pass",
    "proxy-pinnedpubkey",
    "proxy-service-name",
    "proxy-tls13-ciphers",
    "proxy-tlsauthtype",
    "proxy-tlspassword",
    "proxy-tlsuser",
    "proxy-user",
    "pubkey",
    "quote",
    "random-file",
    "range",
    "rate",
    "referer",
    "request",
    "request-target",
    "retry",
    "retry-delay",
    "retry-max-time",
    "sasl-authzid",
    "service-name",
    "socks5-gssapi-service",
    "speed-limit",
    "speed-time",
    "ssl-sessions",
    "stderr",
    "telnet-option",
    "tftp-blksize",
    "time-cond",
    "tls-max",
    "tls13-ciphers",
    "tlsauthtype",
    "tlspassword",
    "tlsuser",
    "trace",
    "trace-ascii",
    "trace-config",
    "unix-socket",
    "upload-file",
    "url-query",
    "user",
    "user-agent",
    "variable",
    "vlan-priority",
    "write-out",
    "expand-url",
    // wget
    "output-file",
    "append-output",
    "execute",
    "input-file",
    "base",
    "config",
    "bind-address",
    "tries",
    "output-document",
    "timeout",
    "dns-timeout",
    "read-timeout",
    "wait",
    "waitretry",
    "quota",
    "limit-rate",
    "directory-prefix",
    "cut-dirs",
    "http-user",
    "http-password",
    "ftp-user",
    "ftp-password",
    "post-data",
    "post-file",
    "body-data",
    "body-file",
    "method",
    "certificate",
    "private-key",
    "ca-certificate",
    "ca-directory",
    "level",
    "accept",
    "reject",
    "domains",
    "exclude-domains",
    "include-directories",
    "exclude-directories",
    "restrict-file-names",
    "load-cookies",
    "save-cookies",
    "default-page",
    "progress",
    "local-encoding",
    "remote-encoding",
    "user-agent",
    "password",
    "secure-protocol",
    "header",
];
/// Options whose value is a host the tool connects to instead of, or before, the URL's.
const HTTP_PROXY_LONG: &[&str] = &["proxy", "preproxy", "socks4", "socks4a", "socks5", "socks5-hostname", "url"];
const CURL_PROXY_LETTERS: &[u8] = b"x";
/// Options after which no host of the command line is the one contacted: curl's
/// --resolve and --connect-to send a name to another address.
const HTTP_REDIRECTING_LONG: &[&str] = &["resolve", "connect-to"];
/// host(1)'s options that take a value (dig's and nslookup's are written `-x=V`, `+x`).
const HOST_VALUE_LETTERS: &[u8] = b"cmNRtW";

/// The hosts a process of this name and arguments (argv without argv[0]) will contact,
/// or None when the tool is not one whose destinations are parsed. An empty list: it
/// contacts no host it names (a listener, `nc -h`).
pub fn destinations<'a>(name: &str, args: &'a [String]) -> Option<Vec<Destination<'a>>> {
    let mut found = Vec::new();
    for_each(name, args, |destination| found.push(destination))?;
    Some(found)
}

/// What the destination conditions see: Some(true) when the tool names at least one
/// destination and every one is loopback, Some(false) when at least one is not, None when
/// it names none or is not a tool whose destinations are parsed. Allocates nothing.
pub fn all_loopback(name: &str, args: &[String]) -> Option<bool> {
    let (mut any, mut all) = (false, true);
    for_each(name, args, |destination| {
        any = true;
        all &= destination.is_loopback();
    })?;
    any.then_some(all)
}

/// Whether the tool names at least one destination and every one is a host for which
/// `accept` holds. Allocates nothing.
pub fn all_hosts(name: &str, args: &[String], accept: impl Fn(&str) -> bool) -> bool {
    let (mut any, mut all) = (false, true);
    let parsed = for_each(name, args, |destination| {
        any = true;
        all &= destination.host().is_some_and(&accept);
    });
    parsed.is_some() && any && all
}

/// Calls `visit` with each destination, in order; None when the tool is not one whose
/// destinations are parsed.
fn for_each<'a>(name: &str, args: &'a [String], mut visit: impl FnMut(Destination<'a>)) -> Option<()> {
    let family = family(name)?;
    let mut operands = 0;
    let (mut first_operand, mut second_operand) = (None, None);
    let mut listens = false;
    let mut options_end = false;
    let mut index = 0;
    while let Some(arg) = args.get(index) {
        index += 1;
        if options_end || arg == "-" || !arg.starts_with('-') {
            match (family, operands) {
                (Family::Http, _) => visit(Destination::parse(arg)),
                (Family::Dns, _) if name == "dig" => {
                    if let Some(server) = arg.strip_prefix('@') {
                        visit(Destination::Host(server));
                    }
                }
                (_, 0) => first_operand = Some(arg.as_str()),
                (_, 1) => second_operand = Some(arg.as_str()),
                _ => {}
            }
            operands += 1;
            continue;
        }
        if arg == "--" {
            options_end = true;
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (option, inline) = match long.split_once('=') {
                Some((option, value)) => (option, Some(value)),
                None => (long, None),
            };
            let takes_value = match family {
                Family::Dns => false,
                Family::Netcat => !NCAT_LONG_WITHOUT_VALUE.contains(&option),
                Family::Http => {
                    HTTP_LONG_WITH_VALUE.contains(&option)
                        || HTTP_PROXY_LONG.contains(&option)
                        || HTTP_REDIRECTING_LONG.contains(&option)
                }
            };
            let value = if takes_value || inline.is_some() { option_value(inline, args, &mut index) } else { None };
            listens |= family == Family::Netcat && option == "listen";
            let proxy = match family {
                Family::Netcat => NCAT_PROXY_LONG.contains(&option),
                Family::Http => HTTP_PROXY_LONG.contains(&option),
                Family::Dns => false,
            };
            if let (true, Some(value)) = (proxy, value) {
                visit(Destination::parse(value));
            }
            if family == Family::Http && HTTP_REDIRECTING_LONG.contains(&option) {
                visit(Destination::Unknown);
            }
            continue;
        }
        // A cluster of short options: letters until one that takes a value, which takes
        // the rest of the argument or, when nothing is left, the next one.
        let letters = arg.as_bytes().get(1..).unwrap_or_default();
        for (at, letter) in letters.iter().enumerate() {
            listens |= family == Family::Netcat && *letter == b'l';
            let takes_value = match family {
                Family::Dns => name == "host" && HOST_VALUE_LETTERS.contains(letter),
                Family::Netcat => NETCAT_VALUE_LETTERS.contains(letter),
                Family::Http if name == "wget" => !WGET_LETTERS_WITHOUT_VALUE.contains(letter),
                Family::Http => !CURL_LETTERS_WITHOUT_VALUE.contains(letter),
            };
            if !takes_value {
                continue;
            }
            let rest = arg.get(at + 2..).filter(|rest| !rest.is_empty());
            let value = option_value(rest, args, &mut index);
            let proxy = match family {
                Family::Netcat => NETCAT_PROXY_LETTERS.contains(letter),
                Family::Http => name != "wget" && CURL_PROXY_LETTERS.contains(letter),
                Family::Dns => false,
            };
            if let (true, Some(value)) = (proxy, value) {
                visit(Destination::parse(value));
            }
            break;
        }
    }
    match family {
        // A listener's operands are where it binds: it contacts nothing itself.
        Family::Netcat if listens => {}
        // netcat connects to its first operand; the rest are ports.
        Family::Netcat => first_operand.into_iter().for_each(|host| visit(Destination::parse(host))),
        // dig asks `@SERVER` (visited above); host and nslookup their second operand.
        // Without one they ask the resolver of /etc/resolv.conf, which argv does not name.
        Family::Dns if name != "dig" => second_operand.into_iter().for_each(|server| visit(Destination::Host(server))),
        Family::Dns | Family::Http => {}
    }
    Some(())
}

/// The value of an option that takes one: written in its argument (`--opt=V`, `-oV`), or
/// else the next argument, which `index` then moves past.
fn option_value<'a>(inline: Option<&'a str>, args: &'a [String], index: &mut usize) -> Option<&'a str> {
    inline.or_else(|| {
        let value = args.get(*index).map(String::as_str);
        *index += 1;
        value
    })
}

/// One place a tool will connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination<'a> {
    /// A host, as written (a name, an IPv4 or IPv6 address without brackets).
    Host(&'a str),
    /// Not a host of the command line (curl --resolve sends names elsewhere).
    Unknown,
}

impl<'a> Destination<'a> {
    /// The host of a netcat host operand, a URL (`scheme://user@host:port/path`,
    /// `[::1]:8080`), or a `host:port` proxy.
    fn parse(text: &'a str) -> Destination<'a> {
        let after_scheme = text.split_once("://").map_or(text, |(_, rest)| rest);
        let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let host = if let Some(bracketed) = host_port.strip_prefix('[') {
            bracketed.split(']').next().unwrap_or("")
        } else if host_port.matches(':').count() > 1 {
            // A bare IPv6 address (netcat's operand).
            host_port
        } else {
            host_port.split(':').next().unwrap_or("")
        };
        Destination::Host(host)
    }

    pub fn host(&self) -> Option<&'a str> {
        match self {
            Destination::Host(host) => Some(host),
            Destination::Unknown => None,
        }
    }

    /// Whether this is the container itself: `localhost`, 127.0.0.0/8 or ::1 (also as an
    /// IPv4-mapped address).
    pub fn is_loopback(&self) -> bool {
        let Some(host) = self.host() else { return false };
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        if let Ok(v4) = host.parse::<Ipv4Addr>() {
            return v4.is_loopback();
        }
        host.parse::<Ipv6Addr>()
            .is_ok_and(|v6| v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(name: &str, line: &str) -> Option<Vec<String>> {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        destinations(name, &args).map(|found| found.iter().map(|d| d.host().unwrap_or("?").to_string()).collect())
    }

    fn loopback(name: &str, line: &str) -> bool {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        all_loopback(name, &args) == Some(true)
    }

    #[test]
    fn netcat_connects_to_its_first_operand_not_to_option_values() {
        assert_eq!(hosts("nc", "-znv 127.0.0.1 8080"), Some(vec!["127.0.0.1".into()]));
        assert_eq!(hosts("nc", "-w 1 -s 127.0.0.1 10.0.0.5 80"), Some(vec!["10.0.0.5".into()]));
        assert_eq!(hosts("nc", "-s127.0.0.1 10.0.0.5 80"), Some(vec!["10.0.0.5".into()]));
        assert_eq!(
            hosts("ncat", "--proxy-auth localhost:x --source localhost evil.example 443"),
            Some(vec!["evil.example".into()])
        );
        assert_eq!(hosts("nc", "-x 10.9.9.9:1080 localhost 22"), Some(vec!["10.9.9.9".into(), "localhost".into()]));
        assert_eq!(
            hosts("ncat", "--proxy=10.9.9.9:3128 localhost 22"),
            Some(vec!["10.9.9.9".into(), "localhost".into()])
        );
        assert_eq!(hosts("nc", "-lp 4444"), Some(vec![]));
        assert_eq!(hosts("nc", "-lk localhost 4444"), Some(vec![]), "a listener binds, it contacts nothing");
        assert_eq!(hosts("ncat", "--listen localhost 4444"), Some(vec![]));
        assert_eq!(hosts("nc", "-- -z 80"), Some(vec!["-z".into()]));
        assert_eq!(hosts("nc", "::1 80"), Some(vec!["::1".into()]));
        assert_eq!(hosts("ls", "localhost"), None);
    }

    #[test]
    fn curl_and_wget_connect_to_the_hosts_of_their_urls_and_proxies() {
        assert_eq!(
            hosts("curl", "-s -o /dev/null -w %{http_code} http://localhost:8080/healthz"),
            Some(vec!["localhost".into()])
        );
        assert_eq!(
            hosts("curl", "-H Host:localhost https://evil.example/?q=localhost"),
            Some(vec!["evil.example".into()])
        );
        assert_eq!(hosts("curl", "http://[::1]:8080/healthz"), Some(vec!["::1".into()]));
        assert_eq!(hosts("curl", "-fsSL http://user:pw@127.0.0.1/x"), Some(vec!["127.0.0.1".into()]));
        assert_eq!(
            hosts("curl", "-x evil.example:3128 http://localhost/"),
            Some(vec!["evil.example".into(), "localhost".into()])
        );
        assert_eq!(
            hosts("curl", "--url http://10.0.0.1/ localhost"),
            Some(vec!["10.0.0.1".into(), "localhost".into()])
        );
        assert_eq!(hosts("wget", "-q -O - http://localhost.example/"), Some(vec!["localhost.example".into()]));
        assert_eq!(hosts("wget", "-qO- --header=X-Host:localhost http://10.0.0.1/"), Some(vec!["10.0.0.1".into()]));
        assert_eq!(
            hosts("curl", "--resolve localhost:80:10.0.0.1 http://localhost/"),
            Some(vec!["?".into(), "localhost".into()])
        );
    }

    #[test]
    fn loopback_is_localhost_127_slash_8_and_colon_colon_1_only() {
        for (name, line) in [
            ("nc", "-z localhost 80"),
            ("nc", "-zv 127.0.0.1 80"),
            ("nc", "-z 127.3.2.1 80"),
            ("nc", "-z LOCALHOST. 80"),
            ("curl", "http://[::1]:8080/healthz"),
            ("curl", "http://[::ffff:127.0.0.1]/"),
            ("wget", "-q -O- http://127.0.0.1:8080/ready"),
        ] {
            assert!(loopback(name, line), "{name} {line}");
        }
        for (name, line) in [
            ("nc", "-z 10.0.0.5 80"),
            ("nc", "-lp 4444"),
            ("nc", "-z localhost.example 80"),
            ("nc", "-s 127.0.0.1 -z 10.0.0.5 80"),
            ("curl", "-H Host:localhost https://evil.example/"),
            ("curl", "-x evil.example:3128 http://localhost/"),
            ("curl", "--resolve localhost:80:10.0.0.1 http://localhost/"),
            ("curl", "http://localhost/ http://10.0.0.1/"),
            ("curl", "-s"),
        ] {
            assert!(!loopback(name, line), "{name} {line}");
        }
    }
}
