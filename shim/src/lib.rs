//! execguard's runtime side: the supervisor that answers seccomp notifications for every
//! exec, the containerd shim around it, and the commands of the `execguard` CLI.
//!
//! `main` files only parse arguments; the work lives here.

pub mod alerts;
pub mod containerd;
pub mod eval;
pub mod install;
pub mod run;
pub mod supervisor;
