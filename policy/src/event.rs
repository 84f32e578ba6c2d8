//! The exec event: what the supervisor knows about one execve, and what the engine reads.
//!
//! Field names follow the Elastic Common Schema (`process.*`, `container.*`,
//! `orchestrator.*`) so that an alert, which is this event plus a decision, goes into a log
//! pipeline as it is and can be replayed through `execguard policy eval`. Facts that ECS has
//! no name for live under `execguard.*`.
//!
//! Only `process.executable` and `process.args` are required. Every other field is
//! optional, and a condition that needs a missing field does not match: the engine never
//! guesses. Unknown fields are ignored, so that a full ECS document (with `@timestamp`,
//! `host.*`, an earlier decision ...) reads as an event.

use serde::{Deserialize, Serialize};

/// One exec, as the supervisor saw it when the kernel stopped the calling thread.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecEvent {
    pub process: Process,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator: Option<Orchestrator>,
    #[serde(default, skip_serializing_if = "Facts::is_empty")]
    pub execguard: Facts,
}

/// The process that is about to exec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Process {
    /// The file being executed, as resolved inside the container (symlinks followed).
    pub executable: String,
    /// The tool name: see [`crate::name::tool_name`]. Informative only: the engine derives
    /// the name itself so that a lying `name` cannot steer a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The full argv, argv[0] included (as in ECS).
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Whether the process has a controlling terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Parent>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// A uid, written as a string as ECS does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The process that called exec's parent (ECS `process.parent`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Parent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
}

/// A process further up the tree: the grandparent first, then its parent, and so on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ancestor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Container {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Image {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Orchestrator {
    /// The pod's Kubernetes namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// The pod's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Always "pod" when set by execguard.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// What execguard adds that ECS has no field for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// From the grandparent up to the container's init, or to the supervisor's depth limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ancestors: Vec<Ancestor>,
    #[serde(default, skip_serializing_if = "FileFacts::is_empty")]
    pub file: FileFacts,
    /// Set when argv was longer than the supervisor reads: `process.args` is a prefix.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub args_truncated: bool,
    /// The scripts the kernel hands to their interpreters within this execve (an
    /// interpreter line, a binfmt_misc handler), outermost first: `process.executable` is
    /// the program that runs them, `process.args` the argv it gets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<String>,
    /// Set when a process of this one's lineage (itself before this exec, its parent, and
    /// up to the container's init, at any depth) ran a program or script from a writable
    /// location: which, and which process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writable_lineage: Option<String>,
    /// Set when the socket gate found the process running something else than what its
    /// exec was approved for (an exec race), or an exec that was never approved: what was
    /// checked. The event then describes what runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_race: Option<String>,
    /// The applet a multi-call binary will run, when the supervisor had to follow argv[0]'s
    /// symlinks to know it (toybox runs the target's name when argv[0]'s is no applet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applet: Option<String>,
    /// The dynamic loader was asked to list the program's libraries (`ldd`:
    /// LD_TRACE_LOADED_OBJECTS, or musl's loader called as ldd), not to run it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub loader_lists_only: bool,
}

/// What the supervisor found out about the executed files: the program that runs, and
/// the scripts it is handed (`execguard.scripts`). `identity` is the program's; the others
/// hold for the exec when they hold for any of its files (a dropped script is dropped
/// even when /bin/sh runs it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileFacts {
    /// The canonical tool name when the file's inode or content is known to be that tool
    /// (a renamed copy of nc is still "nc").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The file lives in /tmp, /var/tmp, /dev/shm, /run/user, a home directory, or any
    /// writable mount other than the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writable_location: Option<bool>,
    /// False when the file was added to the container after it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_image: Option<bool>,
    /// The file is a memfd or has been deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fileless: Option<bool>,
}

impl Facts {
    fn is_empty(&self) -> bool {
        self.ancestors.is_empty()
            && self.file.is_empty()
            && !self.args_truncated
            && self.scripts.is_empty()
            && self.writable_lineage.is_none()
            && self.applet.is_none()
            && self.exec_race.is_none()
            && !self.loader_lists_only
    }
}

impl FileFacts {
    fn is_empty(&self) -> bool {
        *self == FileFacts::default()
    }
}

impl ExecEvent {
    /// An event with just the two required fields.
    pub fn new(executable: impl Into<String>, args: Vec<String>) -> Self {
        ExecEvent {
            process: Process { executable: executable.into(), args, ..Process::default() },
            ..ExecEvent::default()
        }
    }
}
