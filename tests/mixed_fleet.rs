//! Mixed fleets: turn 1.0 (Python) clients and ours on one queue, and each
//! side's tools reading the other's queues.

use crate::support;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use support::{Lines, Redis, eventually, python_with_turn_1_0, queued, root, signal, subscribers};
use turn::{Acquire, Locker, Wait};

/// A turn 1.0 worker; `timing` is (expire s, patience s, hold s).
fn python_worker(
    r: &Redis,
    resource: &str,
    label: &str,
    rounds: u32,
    log: &Path,
    timing: (u32, u32, f64),
) -> Child {
    let (expire, patience, hold) = timing;
    Command::new(python_with_turn_1_0())
        .arg(root().join("tests/python/worker.py"))
        .args([&r.port.to_string(), resource, label, &rounds.to_string()])
        .arg(log)
        .args([
            &expire.to_string(),
            &patience.to_string(),
            &hold.to_string(),
        ])
        .env("PYTHONUNBUFFERED", "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("python runs")
}

/// The Python `turn` console script of the virtualenv.
fn python_turn(r: &Redis, args: &[&str]) -> Command {
    let python = python_with_turn_1_0();
    let mut c = Command::new(python.with_file_name("turn"));
    c.args(["--host", "127.0.0.1", "--port", &r.port.to_string()])
        .args(args);
    c.env("PYTHONUNBUFFERED", "1");
    c
}

fn our_turn(r: &Redis, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_turn"));
    c.env_remove("TURN_REDIS_URL")
        .arg("--url")
        .arg(r.url())
        .args(args);
    c
}

fn text(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// Checks a log of enter/leave lines: no overlap, tickets increasing.
fn check_log(log: &Path, expected_turns: usize) -> Vec<String> {
    let content = std::fs::read_to_string(log).unwrap();
    let mut inside: Option<u64> = None;
    let mut last = 0;
    let mut labels = Vec::new();
    for line in content.lines() {
        let parts: Vec<&str> = line.splitn(3, ' ').collect();
        let serial: u64 = parts[1].parse().unwrap();
        match parts[0] {
            "enter" => {
                assert_eq!(
                    inside, None,
                    "overlap: {serial} entered while {inside:?} held\n{content}"
                );
                assert!(
                    serial > last,
                    "ticket {serial} after {last}: not FIFO\n{content}"
                );
                inside = Some(serial);
                last = serial;
                labels.push(parts[2].to_string());
            }
            _ => {
                assert_eq!(inside, Some(serial), "stray leave\n{content}");
                inside = None;
            }
        }
    }
    assert_eq!(labels.len(), expected_turns, "{content}");
    labels
}

#[test]
fn python_and_our_clients_share_one_queue_fairly() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("turns.log");
    std::fs::write(&log, "").unwrap();
    let mut pythons: Vec<Child> = (0..3)
        .map(|i| python_worker(&r, "mixed", &format!("py{i}"), 8, &log, (10, 30, 0.005)))
        .collect();
    let locker = Locker::new(Some(&r.url())).unwrap();
    let ours: Vec<_> = (0..3)
        .map(|i| {
            let (locker, log) = (locker.clone(), log.clone());
            thread::spawn(move || {
                for _ in 0..8 {
                    let lock = locker
                        .acquire(
                            "mixed",
                            &Acquire::label(format!("rs{i}"))
                                .wait(Wait::For(Duration::from_secs(120))),
                        )
                        .unwrap();
                    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
                    f.write_all(format!("enter {} rs{i}\n", lock.serial()).as_bytes())
                        .unwrap();
                    thread::sleep(Duration::from_millis(5));
                    f.write_all(format!("leave {} rs{i}\n", lock.serial()).as_bytes())
                        .unwrap();
                    lock.release().unwrap();
                }
            })
        })
        .collect();
    for t in ours {
        t.join().unwrap();
    }
    for p in &mut pythons {
        assert!(p.wait().unwrap().success(), "a python worker failed");
    }
    let labels = check_log(&log, 48);
    assert!(
        labels.iter().any(|l| l.starts_with("py")) && labels.iter().any(|l| l.starts_with("rs"))
    );
}

#[test]
fn status_matches_python_tools_both_ways() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // A queue driven by Python clients: a holder and a waiter.
    let mut holder = python_worker(&r, "py_queue", "python holder", 1, &log, (10, 60, 30.0));
    let mut lines = Lines::new(holder.stdout.take().unwrap());
    assert!(lines.wait_for("held", Duration::from_secs(30)));
    let mut waiter = python_worker(&r, "py_queue", "python waiter", 1, &log, (10, 60, 0.0));
    let locker = Locker::new(Some(&r.url())).unwrap();
    assert!(queued(&locker, "py_queue", 2));
    // A queue driven by ours.
    let held = locker.lock("rs_queue", "our holder").unwrap();
    let l2 = locker.clone();
    let ours = thread::spawn(move || l2.lock("rs_queue", "our waiter").map(|l| l.serial()));
    assert!(queued(&locker, "rs_queue", 2));
    for args in [
        &["status", "py_queue"][..],
        &["status", "rs_queue"],
        &["status", "py_queue", "rs_queue"],
    ] {
        let mine = text(our_turn(&r, args).output().unwrap());
        let theirs = text(python_turn(&r, args).output().unwrap());
        assert_eq!(mine, theirs, "turn {args:?}");
        assert!(mine.contains("waiter"));
    }
    // The summary: equal sizes, so order by name as turn 1.0 does.
    let mine = text(our_turn(&r, &["status"]).output().unwrap());
    let theirs = text(python_turn(&r, &["status"]).output().unwrap());
    assert_eq!(mine, theirs);
    held.release().unwrap();
    assert_eq!(ours.join().unwrap().unwrap(), 2);
    signal(holder.id(), "KILL");
    let _ = holder.wait();
    let _ = waiter.kill();
    let _ = waiter.wait();
}

#[test]
fn follow_matches_python_follow() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut mine = our_turn(&r, &["follow", "shared"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut theirs = python_turn(&r, &["follow", "shared"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut my_lines = Lines::new(mine.stdout.take().unwrap());
    let mut their_lines = Lines::new(theirs.stdout.take().unwrap());
    assert!(eventually(Duration::from_secs(30), || subscribers(
        &r,
        "turn:shared:external"
    ) == 2));
    let mut py = python_worker(&r, "shared", "from python", 1, &log, (10, 60, 0.0));
    assert!(py.wait().unwrap().success());
    let locker = Locker::new(Some(&r.url())).unwrap();
    locker
        .lock("shared", "from rust")
        .unwrap()
        .release()
        .unwrap();
    assert!(my_lines.wait_for("3 granted", Duration::from_secs(10)));
    assert!(their_lines.wait_for("3 granted", Duration::from_secs(10)));
    signal(mine.id(), "INT");
    signal(theirs.id(), "INT");
    assert!(mine.wait().unwrap().success());
    let _ = theirs.wait();
    let mine = my_lines.rest(Duration::from_secs(2));
    let theirs = their_lines.rest(Duration::from_secs(2));
    assert_eq!(mine, theirs);
    assert_eq!(
        mine,
        [
            "shared: 1 assigned to \"from python\"",
            "shared: 1 started",
            "shared: 1 completed by \"from python\"",
            "shared: 2 granted",
            "shared: 2 assigned to \"from rust\"",
            "shared: 2 started",
            "shared: 2 completed by \"from rust\"",
            "shared: 3 granted",
        ]
    );
}

#[test]
fn a_killed_python_holder_is_passed_within_its_lease() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // Lease 2 s, patience 60 s: our waiter must not need the patience.
    let mut holder = python_worker(&r, "crash", "python", 1, &log, (2, 60, 600.0));
    let mut lines = Lines::new(holder.stdout.take().unwrap());
    assert!(lines.wait_for("held", Duration::from_secs(30)));
    let locker = Locker::new(Some(&r.url())).unwrap();
    let l2 = locker.clone();
    let waiter = thread::spawn(move || {
        l2.acquire(
            "crash",
            &Acquire::label("ours")
                .patience(Duration::from_secs(3600))
                .wait(Wait::For(Duration::from_secs(30))),
        )
        .map(|l| l.serial())
    });
    assert!(queued(&locker, "crash", 2));
    signal(holder.id(), "KILL");
    let _ = holder.wait();
    assert_eq!(waiter.join().unwrap().unwrap(), 2);
}

#[test]
fn a_killed_holder_of_ours_is_passed_by_a_python_waiter() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut ours = our_turn(&r, &["lock", "--expire", "2", "crash"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut our_lines = Lines::new(ours.stdout.take().unwrap());
    assert!(our_lines.wait_for("crash: locked", Duration::from_secs(30)));
    // turn 1.0 passes a dead holder only after its patience (3 s here).
    let mut py = python_worker(&r, "crash", "python", 1, &log, (10, 3, 0.0));
    let mut py_lines = Lines::new(py.stdout.take().unwrap());
    let locker = Locker::new(Some(&r.url())).unwrap();
    assert!(queued(&locker, "crash", 2));
    signal(ours.id(), "KILL");
    let _ = ours.wait();
    assert!(py_lines.wait_for("held 2", Duration::from_secs(60)));
    assert!(py.wait().unwrap().success());
}

#[test]
fn a_python_release_calls_our_waiter_at_once() {
    // Our waiter stands behind a turn 1.0 holder whose lease is 60 s, with
    // a patience of an hour: only turn 1.0's `internal` message can bring
    // its turn within the 20 s it waits.
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut holder = python_worker(&r, "handoff", "python", 1, &log, (60, 60, 2.0));
    let mut lines = Lines::new(holder.stdout.take().unwrap());
    assert!(lines.wait_for("held 1", Duration::from_secs(30)));
    let held_at = std::time::Instant::now();
    let locker = Locker::new(Some(&r.url())).unwrap();
    let lock = locker
        .acquire(
            "handoff",
            &Acquire::label("ours")
                .patience(Duration::from_secs(3600))
                .wait(Wait::For(Duration::from_secs(20))),
        )
        .expect("called by the turn 1.0 release");
    assert_eq!(lock.serial(), 2);
    println!(
        "granted {:?} after the turn 1.0 holder took its turn (it holds 2 s)",
        held_at.elapsed()
    );
    assert!(holder.wait().unwrap().success());
    lock.release().unwrap();
}

/// A turn 1.0 client on a semaphore queue: it takes no part in the
/// semaphore, and its ticket is admitted alone, as if it asked for every
/// permit; so our holders' exclusion holds whatever it does (its bumps
/// after a short patience included).
#[test]
fn a_turn_1_0_client_on_a_semaphore_queue_holds_only_alone() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let sem = |w| {
        Acquire::label("ours").mode(turn::Mode::Semaphore {
            permits: 3,
            weight: w,
        })
    };
    let a = l.acquire("pool", &sem(1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut py = python_worker(&r, "pool", "py", 1, &log, (5, 1, 1.5));
    let mut lines = Lines::new(py.stdout.take().unwrap());
    assert!(queued(&l, "pool", 2), "the turn 1.0 ticket queues");
    // Past its patience (it bumps): still not its turn while ours holds.
    assert!(!lines.wait_for("held", Duration::from_millis(2500)));
    let e = l.acquire("pool", &sem(1).wait(Wait::TryOnce)).unwrap_err();
    assert_eq!(
        e.kind(),
        turn::ErrorKind::WouldBlock,
        "no barging past it: {e}"
    );
    a.release().unwrap();
    assert!(
        lines.wait_for("held", Duration::from_secs(10)),
        "its turn came"
    );
    let e = l.acquire("pool", &sem(1).wait(Wait::TryOnce)).unwrap_err();
    assert_eq!(e.kind(), turn::ErrorKind::WouldBlock, "it holds alone: {e}");
    assert!(py.wait().unwrap().success());
    let after = l
        .acquire("pool", &sem(3).wait(Wait::For(Duration::from_secs(10))))
        .expect("every permit back once it left");
    after.release().unwrap();
}
