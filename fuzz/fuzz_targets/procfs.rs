//! The /proc parsers of the supervisor: `parse_stat`, `parse_cmdline` and
//! `parse_namespace_ids` on arbitrary bytes.
//!
//! A process writes its own comm (prctl(PR_SET_NAME)) and its own argv (setproctitle), so
//! the supervisor reads attacker-chosen bytes in the path of every exec it decides.
#![no_main]

use execguard_supervisor::procfs::{parse_cmdline, parse_namespace_ids, parse_stat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_stat(data);
    let _ = parse_namespace_ids(data);
    let args = parse_cmdline(data);
    // Only a NUL separates arguments: joined again, they are the text without its last NUL.
    let joined = args.join(&0u8);
    assert_eq!(joined.as_slice(), data.strip_suffix(&[0]).unwrap_or(data), "cmdline arguments lost bytes");
});
