//! The chaos soak: worker processes (examples/chaos_worker.rs, two threads
//! each, default options) take the lock in a loop while a chaos thread kills
//! holders and waiters, pauses some past their lease and restarts Redis
//! (with persistence); and the same under the shared modes (a semaphore, a
//! read-write lock, acquires of all, seven threads a process). The history checker (tests/support/history.rs) then
//! finds no overlap of holders whose check and release answered Ok, no
//! fencing token going back, no fencing rejection of such a holder, no
//! waiter stranded past the lease; every surviving process finishes.
//! `make soak` runs it for longer (TURN_SOAK_SECS).

use crate::support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::history::{History, Rules, Sink, What, parse};
use support::{Redis, Rng, chaos_worker, signal};

/// A worker process doing `jobs` (see examples/chaos_worker.rs) in
/// `threads` threads, `cycles` holds each.
fn spawn(r: &Redis, dir: &Path, n: usize, jobs: &str, threads: usize, cycles: usize) -> Child {
    Command::new(chaos_worker())
        .arg(r.url())
        .arg(jobs)
        .arg(threads.to_string())
        .arg(cycles.to_string())
        .arg(dir.join(format!("log.{n}")))
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn chaos_soak() {
    chaos("chaos", "chaos", 2, Duration::from_secs(12), 6);
}

/// Each process's threads: a semaphore of 3 permits taken with weight 1
/// and with weight 2, a read-write lock taken shared and exclusive, an
/// acquire of all of a and b, one of b and c, a plain lock on c.
const SHARED_MODES: &str = "sem@sem:3:1;sem@sem:3:2;rw@shared;rw@exclusive;b+a;b+c;c";

#[test]
fn chaos_soak_under_the_shared_modes() {
    chaos(
        "chaos, shared modes",
        SHARED_MODES,
        7,
        Duration::from_secs(8),
        3,
    );
}

/// Worker processes doing `jobs` in `threads` threads each, `per_sec`
/// holds a thread for each second of the run (default `default`), while
/// holders and waiters are killed and paused and Redis restarts.
fn chaos(name: &str, jobs: &str, threads: usize, default: Duration, per_sec: usize) {
    let secs = support::soak_duration(default).as_secs();
    let cycles = (secs as usize) * per_sec;
    let mut rng = Rng::seeded(name);
    println!("{name}: {secs} s");
    let mut r = Redis::start_persistent();
    let dir = tempfile::tempdir().unwrap();
    let history = History::new();
    let mut next = 0;
    let mut live: Vec<(usize, Child)> = Vec::new();
    for _ in 0..3 {
        live.push((next, spawn(&r, dir.path(), next, jobs, threads, cycles)));
        next += 1;
    }
    let (mut kills, mut pauses, mut restarts) = (0, 0, 0);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        thread::sleep(Duration::from_millis(300 + rng.below(500)));
        match rng.below(3) {
            0 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let (_, mut child) = live.remove(i);
                signal(child.id(), "KILL");
                history.process_event(child.id(), What::Died);
                let _ = child.wait();
                kills += 1;
                live.push((next, spawn(&r, dir.path(), next, jobs, threads, cycles / 2)));
                next += 1;
            }
            1 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let pid = live[i].1.id();
                signal(pid, "STOP");
                history.process_event(pid, What::Paused);
                thread::sleep(Duration::from_millis(800));
                signal(pid, "CONT");
                history.process_event(pid, What::Resumed);
                pauses += 1;
            }
            _ => {
                history.fault_start("restart");
                r.restart();
                history.fault_end("restart");
                restarts += 1;
            }
        }
    }
    // Every surviving process finishes.
    let mut finished = 0;
    for (n, child) in live {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("done"),
            "worker {n} did not finish: {:?}",
            out.status
        );
        finished += 1;
    }
    for n in 0..next {
        let text = std::fs::read_to_string(dir.path().join(format!("log.{n}"))).unwrap_or_default();
        history.extend(parse(&text));
    }
    let report = history.check(&Rules::default());
    println!(
        "{name}: {kills} kills, {pauses} pauses, {restarts} redis restarts, {finished} processes finished"
    );
    report.assert_sound(name, 10);
}
