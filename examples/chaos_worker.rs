//! A worker process of the fault tests (tests/chaos.rs,
//! tests/fault_scenarios.rs):
//! THREADS threads sharing one locker (default options) take their lock
//! CYCLES times each, offer their fencing token to a store that rejects a
//! token not greater than the last it accepted (FENCE_DIR), hold for
//! HOLD_MS, check and release.
//!
//!   chaos_worker URL JOBS THREADS CYCLES LOG FENCE_DIR [LEASE_MS [HOLD_MS]]
//!
//! JOBS is `JOB[;JOB...]`, thread i doing job i modulo their number; a JOB
//! is `RESOURCE[+RESOURCE...][@MODE]`: the lock on one resource, or all of
//! several (an acquire of all), in MODE (`plain`, the default,
//! `sem:PERMITS:WEIGHT`, `shared` or `exclusive`, as history lines write
//! modes). A plain lock on one resource is its name alone.
//!
//! Every step is appended to LOG as a history line (tests/support/history.rs,
//! CLOCK_MONOTONIC times); the acquire's label is its id in the history.
//! Prints "done" at the end.

use std::path::PathBuf;
use std::time::Duration;

use turn::{Acquire, Locker, Options, Wait};

#[path = "../tests/support/mod.rs"]
mod support;

use support::history::{FileFence, FileLog, Outcome, Worker, parse_mode};

/// One thread's job: its resources (an acquire of all when several) and
/// its request.
struct Job {
    resources: Vec<String>,
    request: Acquire,
}

fn job(text: &str, request: &Acquire) -> Job {
    let (names, mode) = match text.split_once('@') {
        Some((names, word)) => (
            names,
            parse_mode(word).unwrap_or_else(|| panic!("not a mode: {word}")),
        ),
        None => (text, turn::Mode::Plain),
    };
    Job {
        resources: names.split('+').map(str::to_string).collect(),
        request: request.clone().mode(mode),
    }
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 6 {
        eprintln!("usage: chaos_worker URL JOBS THREADS CYCLES LOG FENCE_DIR [LEASE_MS [HOLD_MS]]");
        std::process::exit(2);
    }
    let (url, jobs, threads, cycles) = (
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
    let jobs: Vec<Job> = jobs.split(';').map(|j| job(j, &request)).collect();
    std::thread::scope(|s| {
        for i in 0..threads {
            let (job, locker, log, fence) = (&jobs[i % jobs.len()], &locker, &log, &fence);
            s.spawn(move || {
                let mut worker = Worker::new("chaos", log, fence);
                let names: Vec<&str> = job.resources.iter().map(String::as_str).collect();
                let mut done = 0;
                while done < cycles {
                    let outcome = match &names[..] {
                        [one] => worker.cycle(locker, one, &job.request, hold),
                        all => worker.cycle_all(locker, all, &job.request, hold),
                    };
                    match outcome {
                        Outcome::Held { .. } => done += 1,
                        Outcome::Failed(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            });
        }
    });
    println!("done");
}
