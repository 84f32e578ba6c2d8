//! End-to-end tests of execguard: the shim and the supervisor under a real containerd and
//! runc, started by `scripts/test` in a private folder. The sample events in `data/` are
//! shared with the CLI tests and the demo.
//!
//! The shell scripts in `e2e/` drive containerd with ctr; `cri_e2e` (the `cri-e2e` binary,
//! run by `e2e/cri.sh`) drives it through the CRI API as a kubelet does, with the pieces it
//! is made of: a CRI client (`cri`), readers of the shim's alert file (`alerts`) and of
//! containerd's task bundles (`bundle`), and the checks' output (`report`).

pub mod alerts;
pub mod bundle;
pub mod cri;
pub mod cri_e2e;
pub mod report;
