//! The chaos soak: worker processes (examples/chaos_worker.rs, two threads
//! each) take the lock in a loop while a chaos thread kills holders and
//! waiters, pauses some past their lease and restarts Redis (with
//! persistence). Checks: no two holders that still held their lock when
//! they left overlap; the fencing storage never rejected such a holder;
//! every surviving process finishes. `make soak` runs it for longer
//! (TURN_SOAK_SECS).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{Redis, signal, target_dir};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn worker_binary() -> PathBuf {
    let path = target_dir().join("examples/chaos_worker");
    assert!(
        path.exists(),
        "build the examples first (make test does: cargo build --examples)"
    );
    path
}

fn spawn(r: &Redis, dir: &Path, n: usize, cycles: usize) -> Child {
    Command::new(worker_binary())
        .arg(r.url())
        .arg("chaos")
        .arg("2")
        .arg(cycles.to_string())
        .arg(dir.join(format!("log.{n}")))
        .arg(dir.join("storage"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn chaos_soak() {
    let secs: u64 = std::env::var("TURN_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let cycles = (secs as usize) * 6;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("chaos seed {seed}, {secs} s");
    let mut rng = Rng(seed);
    let mut r = Redis::start_persistent();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("storage"), "0").unwrap();
    let mut next = 0;
    let mut live: Vec<(usize, Child)> = Vec::new();
    for _ in 0..3 {
        std::fs::write(dir.path().join(format!("log.{next}")), "").unwrap();
        live.push((next, spawn(&r, dir.path(), next, cycles)));
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
                let _ = child.wait();
                kills += 1;
                std::fs::write(dir.path().join(format!("log.{next}")), "").unwrap();
                live.push((next, spawn(&r, dir.path(), next, cycles / 2)));
                next += 1;
            }
            1 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let pid = live[i].1.id();
                signal(pid, "STOP");
                thread::sleep(Duration::from_millis(800));
                signal(pid, "CONT");
                pauses += 1;
            }
            _ => {
                r.restart();
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
    // No overlap between holders that still held the lock when they left,
    // and the storage never turned such a holder away.
    let mut turns = Vec::new();
    for n in 0..next {
        let text = std::fs::read_to_string(dir.path().join(format!("log.{n}"))).unwrap();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() != 6 {
                continue; // cut short by a kill
            }
            let (serial, enter, leave): (u64, u64, u64) = (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            );
            turns.push((
                enter,
                leave,
                serial,
                f[3] == "ok",
                f[4] == "true" && f[5] == "true",
            ));
        }
    }
    turns.sort();
    let held: Vec<_> = turns.iter().filter(|t| t.3).collect();
    for w in held.windows(2) {
        assert!(
            w[1].0 >= w[0].1,
            "holders {} and {} overlapped",
            w[0].2,
            w[1].2
        );
    }
    for t in &held {
        assert!(
            t.4,
            "the storage rejected serial {}, whose holder still held the lock",
            t.2
        );
    }
    let lost = turns.len() - held.len();
    println!(
        "chaos: {} turns ({lost} reported lost), {kills} kills, {pauses} pauses, {restarts} redis restarts, {finished} processes finished",
        turns.len()
    );
    assert!(held.len() > 10, "too little progress: {} turns", held.len());
}
