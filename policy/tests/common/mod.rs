//! Builders for exec events in tests: one line per case reads like the command it is.

#![allow(dead_code)] // each test binary uses a different part

use execguard_policy::event::{Ancestor, Container, Image, Orchestrator, Parent, Resource};
use execguard_policy::ExecEvent;

pub fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

/// `exec("/usr/bin/nc.openbsd", "nc -lp 4444")`: the executable and the full argv.
pub fn exec(executable: &str, argv: &str) -> ExecEvent {
    ExecEvent::new(executable, words(argv))
}

/// argv given word by word, for arguments with spaces.
pub fn exec_argv(executable: &str, argv: &[&str]) -> ExecEvent {
    ExecEvent::new(executable, argv.iter().map(|w| w.to_string()).collect())
}

pub trait EventExt {
    fn parent(self, executable: &str, argv: &[&str]) -> Self;
    fn parent_in(self, executable: &str, argv: &[&str], cwd: &str) -> Self;
    fn ancestor(self, executable: &str, argv: &[&str]) -> Self;
    fn interactive(self) -> Self;
    fn identity(self, tool: &str) -> Self;
    fn writable_location(self) -> Self;
    fn not_in_image(self) -> Self;
    fn fileless(self) -> Self;
    fn container(self, name: &str, image: &str) -> Self;
    fn pod(self, namespace: &str, pod: &str) -> Self;
}

fn owned(argv: &[&str]) -> Vec<String> {
    argv.iter().map(|w| w.to_string()).collect()
}

impl EventExt for ExecEvent {
    fn parent(self, executable: &str, argv: &[&str]) -> Self {
        self.parent_in(executable, argv, "")
    }
    fn parent_in(mut self, executable: &str, argv: &[&str], cwd: &str) -> Self {
        self.process.parent = Some(Parent {
            executable: Some(executable.into()),
            args: owned(argv),
            working_directory: (!cwd.is_empty()).then(|| cwd.into()),
            ..Parent::default()
        });
        self
    }
    fn ancestor(mut self, executable: &str, argv: &[&str]) -> Self {
        self.execguard.ancestors.push(Ancestor {
            executable: Some(executable.into()),
            args: owned(argv),
            ..Ancestor::default()
        });
        self
    }
    fn interactive(mut self) -> Self {
        self.process.interactive = Some(true);
        self
    }
    fn identity(mut self, tool: &str) -> Self {
        self.execguard.file.identity = Some(tool.into());
        self
    }
    fn writable_location(mut self) -> Self {
        self.execguard.file.writable_location = Some(true);
        self
    }
    fn not_in_image(mut self) -> Self {
        self.execguard.file.in_image = Some(false);
        self
    }
    fn fileless(mut self) -> Self {
        self.execguard.file.fileless = Some(true);
        self
    }
    fn container(mut self, name: &str, image: &str) -> Self {
        self.container = Some(Container {
            id: Some("0123456789ab".into()),
            name: Some(name.into()),
            image: Some(Image { name: Some(image.into()) }),
        });
        self
    }
    fn pod(mut self, namespace: &str, pod: &str) -> Self {
        self.orchestrator = Some(Orchestrator {
            namespace: Some(namespace.into()),
            resource: Some(Resource { name: Some(pod.into()), kind: Some("pod".into()) }),
        });
        self
    }
}
