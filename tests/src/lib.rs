//! End-to-end tests of execguard: the shim and the supervisor under a real containerd and
//! runc, started by `scripts/test` in a private folder. The sample events in `data/` are
//! shared with the CLI tests and the demo.
