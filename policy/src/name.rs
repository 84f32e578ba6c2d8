//! Which tool a process is, and which of its arguments are the tool's own.
//!
//! The name comes from the executed file, never from argv[0]: `exec -a foo /usr/bin/nc`
//! is still nc. The one exception is a multi-call binary (busybox, toybox), where argv[0]
//! *is* how the binary picks its applet. Each is decided exactly as its own dispatcher
//! decides, read from its source (busybox: libbb/appletlib.c, `main`,
//! `run_applet_and_exit`, `busybox_main`; toybox: main.c, `main`, `toybox_main`,
//! `toy_find`), so that the name the policy sees is the applet that will run.

/// The multi-call binaries whose dispatchers this module follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MultiCall {
    Busybox,
    Toybox,
}

impl MultiCall {
    fn of(name: &str) -> Option<MultiCall> {
        match name {
            "busybox" => Some(MultiCall::Busybox),
            "toybox" => Some(MultiCall::Toybox),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            MultiCall::Busybox => "busybox",
            MultiCall::Toybox => "toybox",
        }
    }
}

/// Whether a name is one of the multi-call binaries whose dispatchers are followed here
/// (the supervisor gives a file this identity when it is one of them).
pub fn is_multi_call(name: &str) -> bool {
    MultiCall::of(name).is_some()
}

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

/// Whether a file name (or identity) is the dynamic loader (`ld-linux-x86-64.so.2`,
/// `ld-musl-x86_64.so.1`, `ld.so`: the supervisor's identity for a copy or link of the
/// image's loader), which runs the program named by its first argument: `ld.so
/// /usr/bin/nc` execs ld.so, but nc is what runs.
pub fn is_dynamic_loader(name: &str) -> bool {
    name == "ld.so" || ((name.starts_with("ld-linux") || name.starts_with("ld-musl")) && name.contains(".so"))
}

/// For an exec of the dynamic loader (`loader` is the file's identity or name), the index
/// in argv of the program it is asked to run; None when it is asked only to list or verify.
pub fn loaded_program(loader: &str, argv: &[String]) -> Option<usize> {
    if !is_dynamic_loader(loader) {
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
    let file_name = identity.unwrap_or_else(|| basename(executable));
    if let Some(program) = loaded_program(file_name, argv) {
        // `ld.so PROGRAM ARGS`: the program is the tool. (For a loader it recognised, the
        // supervisor gives the program's identity instead, which then wins like any.)
        let path = argv.get(program).map_or("", String::as_str);
        return invocation(path, None, argv.get(program..).unwrap_or(&[]));
    }
    match MultiCall::of(file_name) {
        Some(MultiCall::Busybox) => busybox_applet(argv),
        Some(MultiCall::Toybox) => toybox_applet(argv),
        None => Invocation { name: file_name, args: argv.get(1..).unwrap_or(&[]) },
    }
}

/// The multi-call binary itself runs (its help, its list of applets, `--install`): no
/// applet.
fn itself(binary: MultiCall, argv: &[String]) -> Invocation<'_> {
    Invocation { name: binary.name(), args: argv.get(1..).unwrap_or(&[]) }
}

/// busybox's `main`: argv[0] without one leading '-' (a login shell), its last component,
/// then `run_applet_and_exit`.
fn busybox_applet(argv: &[String]) -> Invocation<'_> {
    let arg0 = argv.first().map_or("", String::as_str);
    busybox_run(basename(arg0.strip_prefix('-').unwrap_or(arg0)), argv)
}

/// busybox's `run_applet_and_exit`: any name that starts with "busybox" (busybox-x86_64,
/// busybox.static, busyboxX) is the binary itself (`busybox_main`); any other is the
/// applet of that name, argv[0] included in its argv. `busybox_main` runs nothing for no
/// argument, `--list*`, `--install`, `--help [APPLET]` and `--show`; otherwise it drops
/// argv[0] and dispatches again on the last component of the new argv[0] (`busybox
/// /bin/nc`, `busybox busybox nc`).
fn busybox_run<'e>(name: &'e str, argv: &'e [String]) -> Invocation<'e> {
    if !name.starts_with("busybox") {
        return Invocation { name, args: argv.get(1..).unwrap_or(&[]) };
    }
    match argv.get(1).map(String::as_str) {
        None => itself(MultiCall::Busybox, argv),
        Some(option) if option.starts_with("--list") || ["--install", "--help", "--show"].contains(&option) => {
            itself(MultiCall::Busybox, argv)
        }
        Some(applet) => busybox_run(last_component_nostrip(applet), argv.get(1..).unwrap_or(&[])),
    }
}

/// busybox's bb_get_last_path_component_nostrip: "a/b" -> "b", "a/b/" -> "", "/" -> "/".
fn last_component_nostrip(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) if path.len() == 1 => path,
        Some(slash) => path.get(slash + 1..).unwrap_or(""),
        None => path,
    }
}

/// toybox's `main` and `toybox_main`: the POSIX basename of argv[0] names the applet,
/// unless it starts with "toybox" (the multiplexer); then argv[1] names it, once: a
/// second "toybox" is no applet. With no argv[1] (or `--long`) toybox lists its applets.
fn toybox_applet(argv: &[String]) -> Invocation<'_> {
    let first = posix_basename(argv.first().map_or("", String::as_str));
    if !first.starts_with("toybox") {
        return Invocation { name: first, args: argv.get(1..).unwrap_or(&[]) };
    }
    match argv.get(1).map(String::as_str) {
        None | Some("--long") => itself(MultiCall::Toybox, argv),
        Some(applet) => Invocation { name: posix_basename(applet), args: argv.get(2..).unwrap_or(&[]) },
    }
}

/// POSIX basename(3), which toybox uses: trailing slashes do not count ("a/b/" -> "b").
fn posix_basename(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return if path.is_empty() { "" } else { "/" };
    }
    basename(trimmed)
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

    /// (argv, the applet busybox's dispatcher runs, the index in argv where its
    /// arguments start).
    #[test]
    fn busybox_picks_the_applet_as_its_dispatcher_does() {
        let cases: &[(&[&str], &str, usize)] = &[
            (&["ls", "-l"], "ls", 1),
            (&["/bin/sleep", "1"], "sleep", 1),
            (&["-sh"], "sh", 1),
            (&["busybox", "nc", "-lp", "4444"], "nc", 2),
            // Any name that starts with "busybox" is the binary itself.
            (&["busybox-x86_64", "nc", "-l"], "nc", 2),
            (&["/tmp/busyboxX", "nc", "-l"], "nc", 2),
            (&["-busybox", "nc"], "nc", 2),
            (&["busybox", "/usr/bin/nc", "-l"], "nc", 2),
            (&["busybox", "busybox.static", "nc", "-e", "/bin/sh"], "nc", 3),
            (&["busybox", "busybox", "busybox", "telnet", "h"], "telnet", 4),
            // Nothing runs: help, lists, install, usage of an applet.
            (&["busybox"], "busybox", 1),
            (&["busybox", "--help", "nc"], "busybox", 1),
            (&["busybox", "--list-full"], "busybox", 1),
            (&["busybox", "--install", "-s", "/bin"], "busybox", 1),
            // "applet not found": the names match no rule.
            (&["busybox", "/bin/"], "", 2),
            (&["busybox", "-x", "nc"], "-x", 2),
            // Another argv[0] is the applet, whatever argv[1] says.
            (&["sh", "busybox", "nc"], "sh", 1),
        ];
        for &(words, applet, args_from) in cases {
            let args = argv(words);
            let inv = invocation("/bin/busybox", None, &args);
            assert_eq!((inv.name, inv.args), (applet, &args[args_from..]), "{words:?}");
            // A file that the supervisor identified as busybox, under any name.
            assert_eq!(tool_name("/usr/lib/x", Some("busybox"), &args), applet, "{words:?}");
        }
        // No argv: busybox finds no applet called "" and runs nothing.
        assert_eq!(tool_name("/bin/busybox", None, &[]), "");
    }

    #[test]
    fn toybox_picks_the_applet_as_its_dispatcher_does() {
        let cases: &[(&[&str], &str, usize)] = &[
            (&["ls", "-l"], "ls", 1),
            (&["/bin/nc/", "-l"], "nc", 1),
            (&["toybox", "nc", "-l"], "nc", 2),
            (&["toybox-x86_64", "/usr/bin/nc", "-l"], "nc", 2),
            (&["toybox"], "toybox", 1),
            (&["toybox", "--long"], "toybox", 1),
            // Only one level: the second "toybox" is no applet.
            (&["toybox", "toybox", "nc"], "toybox", 2),
        ];
        for &(words, applet, args_from) in cases {
            let args = argv(words);
            let inv = invocation("/usr/bin/toybox", None, &args);
            assert_eq!((inv.name, inv.args), (applet, &args[args_from..]), "{words:?}");
        }
    }

    #[test]
    fn the_dynamic_loader_runs_its_first_argument() {
        let args = argv(&["/lib64/ld-linux-x86-64.so.2", "--argv0", "ls", "/usr/bin/nc", "-lp", "4444"]);
        let inv = invocation("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", None, &args);
        assert_eq!((inv.name, inv.args), ("nc", &args[4..]));
        assert_eq!(loaded_program("ld-musl-x86_64.so.1", &argv(&["ld", "/bin/busybox", "nc"])), Some(1));
        // A copy under another name that the supervisor recognised as the loader.
        assert_eq!(tool_name("/tmp/x", Some("ld.so"), &argv(&["x", "/usr/bin/nc", "-l"])), "nc");
        assert_eq!(tool_name("/lib/ld-musl-x86_64.so.1", None, &argv(&["ld", "/bin/busybox", "nc", "-l"])), "nc");
        assert_eq!(tool_name("/lib64/ld-linux-x86-64.so.2", None, &argv(&["ld", "--list"])), "ld-linux-x86-64.so.2");
        assert_eq!(loaded_program("ldd", &argv(&["ldd", "/bin/ls"])), None);
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
