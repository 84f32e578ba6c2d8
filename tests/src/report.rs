//! What a test prints: one line per check ("ok   NAME", or "FAIL NAME" and what the test
//! saw instead), then "N passed, M failed", like tests/e2e/shim.sh.

use std::fmt::Display;

#[derive(Default)]
pub struct Report {
    passed: usize,
    failed: usize,
}

impl Report {
    /// A heading for the checks that follow.
    pub fn section(&self, title: &str) {
        println!("== {title}");
    }

    /// Counts one check; when it failed, prints SAW under it.
    pub fn check(&mut self, name: &str, passed: bool, saw: impl Display) {
        if passed {
            self.passed += 1;
            println!("ok   {name}");
        } else {
            self.failed += 1;
            println!("FAIL {name}");
            println!("     saw: {saw}");
        }
    }

    /// Counts a check that could not be made.
    pub fn fail(&mut self, name: &str, why: impl Display) {
        self.check(name, false, why);
    }

    /// Prints the totals; true when every check passed.
    pub fn finish(&self) -> bool {
        println!("{} passed, {} failed", self.passed, self.failed);
        self.failed == 0
    }
}
