//! Which tool a process is, and which of its arguments are the tool's own.
//!
//! The name comes from the executed file, never from argv[0]: `exec -a foo /usr/bin/nc`
//! is still nc. The one exception is a multi-call binary (busybox, toybox), where argv[0]
//! *is* how the binary picks its applet: `/bin/ls -> busybox` runs the applet `ls`, and
//! `busybox nc -l` runs `nc` (argv[0] names the binary itself, so the applet is argv[1]).

/// Binaries that pick their behaviour from argv[0].
const MULTI_CALL_BINARIES: [&str; 2] = ["busybox", "toybox"];

/// The last component of a path ("" for a path that ends in '/').
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn is_multi_call(name: &str) -> bool {
    MULTI_CALL_BINARIES.contains(&name)
}

/// How a process looks to the engine: its tool name and the arguments that belong to that
/// tool (argv without argv[0], and without the applet name for `busybox APPLET ...`).
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'e> {
    pub name: &'e str,
    pub args: &'e [String],
}

/// Derives the tool name of a process from its executable (or the identity the supervisor
/// established for the file, which wins: a renamed nc is nc) and its argv.
pub fn invocation<'e>(executable: &'e str, identity: Option<&'e str>, argv: &'e [String]) -> Invocation<'e> {
    let file_name = identity.unwrap_or_else(|| basename(executable));
    let tool_args = argv.get(1..).unwrap_or(&[]);
    if !is_multi_call(file_name) {
        return Invocation { name: file_name, args: tool_args };
    }
    let applet = argv.first().map(|arg0| basename(arg0)).unwrap_or("");
    if !applet.is_empty() && !is_multi_call(applet) {
        return Invocation { name: applet, args: tool_args };
    }
    // `busybox nc -l`: argv[0] is the multi-call binary, argv[1] names the applet.
    match argv.get(1) {
        Some(applet) if !applet.starts_with('-') => {
            Invocation { name: basename(applet), args: argv.get(2..).unwrap_or(&[]) }
        }
        _ => Invocation { name: file_name, args: tool_args },
    }
}

/// The tool name alone; the supervisor writes it into `process.name`.
pub fn tool_name<'e>(executable: &'e str, identity: Option<&'e str>, argv: &'e [String]) -> &'e str {
    invocation(executable, identity, argv).name
}

/// The script an interpreter runs: its first argument that is not an option (`sh
/// /tmp/x.sh`, `bash -ex ./run.sh`, `python3 /tmp/a.py`). `None` when the code comes inline
/// (`sh -c '...'`, `python3 -c '...'`) or there is no such argument. `-e` is not taken as
/// inline code: for shells it means errexit, and the code that perl or node get with it
/// does not look like a path anyway.
pub fn script(args: &[String]) -> Option<&str> {
    for arg in args {
        if arg == "--" {
            continue;
        }
        if let Some(cluster) = arg.strip_prefix('-') {
            if !cluster.starts_with('-') && cluster.contains('c') {
                return None;
            }
            continue;
        }
        return Some(arg);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn name_comes_from_the_file_not_argv0() {
        let args = argv(&["foo", "-l"]);
        assert_eq!(tool_name("/usr/bin/nc", None, &args), "nc");
    }

    #[test]
    fn identity_wins_over_the_file_name() {
        let args = argv(&["/tmp/x", "10.0.0.1"]);
        assert_eq!(tool_name("/tmp/x", Some("nc"), &args), "nc");
    }

    #[test]
    fn multi_call_applet_from_argv0_or_argv1() {
        let ls = argv(&["ls", "-l"]);
        assert_eq!(tool_name("/bin/busybox", None, &ls), "ls");
        let nc = argv(&["busybox", "nc", "-lp", "4444"]);
        let inv = invocation("/bin/busybox", None, &nc);
        assert_eq!((inv.name, inv.args), ("nc", &nc[2..]));
        let full_path = argv(&["/usr/bin/toybox", "/bin/nc"]);
        assert_eq!(tool_name("/usr/bin/toybox", None, &full_path), "nc");
        let bare = argv(&["busybox", "--help"]);
        assert_eq!(tool_name("/bin/busybox", None, &bare), "busybox");
        assert_eq!(tool_name("/bin/busybox", None, &[]), "busybox");
    }

    #[test]
    fn script_skips_options_and_stops_at_inline_code() {
        assert_eq!(script(&argv(&["-x", "/tmp/a.sh", "arg"])), Some("/tmp/a.sh"));
        assert_eq!(script(&argv(&["-c", "nc -l"])), None);
        assert_eq!(script(&argv(&["-ec", "nc -l"])), None);
        assert_eq!(script(&argv(&["-e", "/tmp/a.sh"])), Some("/tmp/a.sh"));
        assert_eq!(script(&argv(&[])), None);
    }
}
