//! The allow path of `decide` (and of `first_look`, as the supervisor asks) must not touch
//! the heap: every exec in every container goes through it. A counting global allocator
//! (per thread, so that the test harness's other threads do not interfere) checks that.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::{exec, exec_argv, EventExt};
use execguard_policy::{Action, Policy};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was allocated by System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn allowed_execs_decide_without_allocating() {
    let policy = Policy::embedded().unwrap();
    let events = [
        exec("/bin/ls", "ls -la /"),
        exec("/usr/bin/python3.11", "python3 -m http.server")
            .parent("/bin/sh", &["sh", "-c", "python3 -m http.server"]),
        exec("/bin/busybox", "busybox grep -r x /etc").ancestor("/sbin/tini", &["tini", "--"]),
        exec("/usr/bin/curl", "curl -fsS http://localhost:8080/healthz").interactive(),
        exec("/usr/bin/nc.openbsd", "nc -z localhost 80"),
        exec_argv("/bin/dash", &["sh", "-c", "exec nginx -g 'daemon off;'"]).container("web", "nginx:1.27"),
        exec("/usr/bin/which", "which nc"),
    ];
    for event in &events {
        let _ = policy.decide(event); // warm up any lazily built state (regex caches)
        let before = allocations();
        let decision = policy.decide(event);
        let after = allocations();
        assert_eq!(decision.action, Action::Allow, "{event:?}");
        assert_eq!(after - before, 0, "decide allocated for {:?}", event.process.args);
        let before = allocations();
        let _ = std::hint::black_box(policy.first_look(event));
        assert_eq!(allocations() - before, 0, "first_look allocated for {:?}", event.process.args);
    }
}

#[test]
fn the_counter_sees_allocations() {
    let before = allocations();
    let boxed = std::hint::black_box(Box::new(7));
    assert!(allocations() > before, "the counting allocator is not installed");
    drop(boxed);
}
