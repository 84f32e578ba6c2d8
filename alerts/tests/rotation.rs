//! The alert file shared by many writers (one per shim, each with its own open file, as
//! separate processes have) while it is rotated: by rename (logrotate's default), by
//! copytruncate (a rotator that takes the writers' flock), and by the sink's own size
//! rotation. No line may be lost, duplicated or torn.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use execguard_alerts::{FileRotation, FileSink, Sink};
use nix::fcntl::{Flock, FlockArg};
use serde_json::{json, Value};

const WRITERS: usize = 4;
const RECORDS: usize = 1500;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("execguard-rotation-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes WRITERS x RECORDS records from WRITERS threads while `rotate` runs every few
/// milliseconds on another, then checks every file in `dir`.
fn write_while_rotating(dir: &Path, rotation: FileRotation, rotate: impl Fn(usize) + Send + 'static) {
    let path = dir.join("alerts.jsonl");
    let done = Arc::new(AtomicBool::new(false));
    let rotator = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(3));
                n += 1;
                rotate(n);
            }
            n
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut sink = FileSink::new(&path, rotation).unwrap();
                // Records of a realistic size, so that a torn write would show.
                let padding = "x".repeat(600);
                for seq in 0..RECORDS {
                    sink.write(&json!({"writer": writer, "seq": seq, "padding": padding})).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let rotations = rotator.join().unwrap();
    let mut seen = HashSet::new();
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        files += 1;
        for line in text.lines() {
            let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("a torn line ({e}): {line:.80}"));
            let key = (record["writer"].as_u64().unwrap(), record["seq"].as_u64().unwrap());
            assert!(seen.insert(key), "{key:?} written twice");
        }
    }
    assert!(rotations > 5 && files > 2, "the test rotated ({rotations} rotations, {files} files)");
    assert_eq!(seen.len(), WRITERS * RECORDS, "lines lost");
}

const NO_SIZE_LIMIT: FileRotation = FileRotation { max_bytes: 0, keep: 1 };

#[test]
fn rotation_by_rename_loses_no_line() {
    let dir = scratch("rename");
    let (path, into) = (dir.join("alerts.jsonl"), dir.clone());
    write_while_rotating(&dir, NO_SIZE_LIMIT, move |n| {
        // logrotate's `create`: rename, and the writers make a new file.
        let _ = std::fs::rename(&path, into.join(format!("rotated-{n}")));
    });
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn copytruncate_under_the_writers_lock_loses_no_line() {
    let dir = scratch("copytruncate");
    let (path, into) = (dir.join("alerts.jsonl"), dir.clone());
    write_while_rotating(&dir, NO_SIZE_LIMIT, move |n| {
        let Ok(file) = File::options().read(true).write(true).open(&path) else { return };
        let mut locked = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| e).unwrap();
        let mut text = Vec::new();
        locked.read_to_end(&mut text).unwrap();
        File::create(into.join(format!("copied-{n}"))).unwrap().write_all(&text).unwrap();
        locked.set_len(0).unwrap();
    });
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn size_rotation_by_many_writers_loses_no_line() {
    let dir = scratch("size");
    // Files of about 60 records; enough kept that none is deleted during the test.
    let rotation = FileRotation { max_bytes: 40_000, keep: 1000 };
    write_while_rotating(&dir, rotation, |_| {});
    std::fs::remove_dir_all(dir).unwrap();
}
