//! Which tool a process is, and which of its arguments are the tool's own.
//!
//! The name comes from the executed file, never from argv[0]: `exec -a foo /usr/bin/nc`
//! is still nc. The one exception is a multi-call binary (busybox, toybox), where argv[0]
//! *is* how the binary picks its applet: `/bin/ls -> busybox` runs the applet `ls`, and
//! `busybox nc -l` runs `nc` (argv[0] names the binary itself, so the applet is argv[1]).

/// Binaries that pick their behaviour from argv[0].
const MULTI_CALL_BINARIES: [&str; 2] = ["busybox", "toybox"];

/// Options of the dynamic loader that inspect a program without running it (`ldd` is
/// `ld.so --list`).
const LOADER_OPTIONS_THAT_DO_NOT_RUN: [&str; 6] =
    ["--list", "--verify", "--help", "--version", "--list-tunables", "--list-diagnostics"];

/// Options of the dynamic loader (ld.so(8)) that take a value.
const LOADER_OPTIONS_WITH_VALUE: [&str; 7] = [
    "--library-path",
    "--inhibit-rpath",
    "--audit",
    "--preload",
    "--argv0",
    "--glibc-hwcaps-prepend",
    "--glibc-hwcaps-mask",
];

/// The last component of a path ("" for a path that ends in '/').
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn is_multi_call(name: &str) -> bool {
    MULTI_CALL_BINARIES.contains(&name)
}

/// Whether a file name is the dynamic loader (`ld-linux-x86-64.so.2`, `ld-musl-x86_64.so.1`,
/// `ld.so`), which runs the program named by its first argument: `ld.so /usr/bin/nc`
/// execs ld.so, but nc is what runs.
fn is_dynamic_loader(name: &str) -> bool {
    name == "ld.so" || ((name.starts_with("ld-linux") || name.starts_with("ld-musl")) && name.contains(".so"))
}

/// For an exec of the dynamic loader, the index in argv of the program it is asked to run.
pub fn loaded_program(executable: &str, argv: &[String]) -> Option<usize> {
    if !is_dynamic_loader(basename(executable)) {
        return None;
    }
    let mut index = 1;
    while let Some(arg) = argv.get(index) {
        if !arg.starts_with("--") {
            return Some(index);
        }
        if LOADER_OPTIONS_THAT_DO_NOT_RUN.contains(&arg.as_str()) {
            return None;
        }
        index += if LOADER_OPTIONS_WITH_VALUE.contains(&arg.as_str()) { 2 } else { 1 };
    }
    None
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
    if identity.is_none() {
        if let Some(program) = loaded_program(executable, argv) {
            // `ld.so PROGRAM ARGS`: the program is the tool (the supervisor gives the
            // program's file identity, which then wins like any identity).
            let path = argv.get(program).map_or("", String::as_str);
            return invocation(path, None, argv.get(program..).unwrap_or(&[]));
        }
    }
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
    fn the_dynamic_loader_runs_its_first_argument() {
        let args = argv(&["/lib64/ld-linux-x86-64.so.2", "--argv0", "ls", "/usr/bin/nc", "-lp", "4444"]);
        let inv = invocation("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", None, &args);
        assert_eq!((inv.name, inv.args), ("nc", &args[4..]));
        assert_eq!(loaded_program("/lib/ld-musl-x86_64.so.1", &argv(&["ld", "/bin/busybox", "nc"])), Some(1));
        assert_eq!(tool_name("/lib/ld-musl-x86_64.so.1", None, &argv(&["ld", "/bin/busybox", "nc", "-l"])), "nc");
        assert_eq!(tool_name("/lib64/ld-linux-x86-64.so.2", None, &argv(&["ld", "--list"])), "ld-linux-x86-64.so.2");
        assert_eq!(loaded_program("/usr/bin/ldd", &argv(&["ldd", "/bin/ls"])), None);
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
