//! A worker process of the fault tests (tests/chaos.rs,
//! tests/fault_scenarios.rs):
//! THREADS threads sharing one locker (default options) take the lock on
//! RESOURCE, CYCLES times each, offer their fencing token to a store that
//! rejects a token not greater than the last it accepted (FENCE_DIR), hold
//! for HOLD_MS, check and release.
//!
//!   chaos_worker URL RESOURCE THREADS CYCLES LOG FENCE_DIR [LEASE_MS [HOLD_MS]]
//!
//! Every step is appended to LOG as a history line (tests/support/history.rs,
//! CLOCK_MONOTONIC times); the acquire's label is its id in the history.
//! Prints "done" at the end.

use std::path::PathBuf;
use std::time::Duration;

use turn::{Acquire, Locker, Options, Wait};

#[path = "../tests/support/mod.rs"]
mod support;

use support::history::{FileFence, FileLog, Outcome, Worker};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 6 {
        eprintln!(
            "usage: chaos_worker URL RESOURCE THREADS CYCLES LOG FENCE_DIR [LEASE_MS [HOLD_MS]]"
        );
        std::process::exit(2);
    }
    let (url, resource, threads, cycles) = (
        a[0].clone(),
        a[1].clone(),
        a[2].parse::<usize>().unwrap(),
        a[3].parse::<usize>().unwrap(),
    );
    let log = FileLog(PathBuf::from(&a[4]));
    let fence = FileFence(PathBuf::from(&a[5]));
    let lease = Duration::from_millis(a.get(6).map_or(500, |s| s.parse().unwrap()));
    let hold = Duration::from_millis(a.get(7).map_or(3, |s| s.parse().unwrap()));
    let locker = loop {
        match Locker::with_options(Some(&url), Options::default()) {
            Ok(l) => break l,
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let request = Acquire::default()
        .expire(lease)
        .wait(Wait::For(Duration::from_secs(20)));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut worker = Worker::new("chaos", &log, &fence);
                let mut done = 0;
                while done < cycles {
                    match worker.cycle(&locker, &resource, &request, hold) {
                        Outcome::Held { .. } => done += 1,
                        Outcome::Failed(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            });
        }
    });
    println!("done");
}
