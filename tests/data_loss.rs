//! Fault scenarios where Redis loses the queue under the lockers' feet
//! (under the plain lock, and under the shared modes: a semaphore, a
//! read-write lock, acquires of all): a restart without persistence,
//! FLUSHDB, `reset` (Locker::reset, reset_queue and the `turn reset` tool),
//! a Sentinel failover. Default options throughout. Each scenario records a
//! history (tests/support/history.rs) and asserts that the checker finds no
//! violation and that work was done; the exact cases also assert what the
//! old holder's check and release answer and that the new queue is left
//! alone.
//!
//! Load scenarios run a random fault schedule (seed printed) for a few
//! seconds, or TURN_SOAK_SECS under `make soak`.

use crate::support;

use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use redis::Commands;
use support::history::{Fence, History, Rules, Sink, What, Worker};
use support::load::{Load, lockers};
use support::proxy::Proxy;
use support::sentinel::{Sentinels, has_replica_online};
use support::{Redis, Rng, eventually, soak_duration};
use turn::{Acquire, Locker, ResetOutcome, Wait};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A bounded acquire with this lease.
fn request(lease: Duration) -> Acquire {
    Acquire::default()
        .expire(lease)
        .wait(Wait::For(Duration::from_secs(10)))
}

/// Two threads per locker cycling on `resource`.
fn cycle_on(load: &mut Load, lockers: &[Locker], resource: &str, lease: Duration) {
    load.cycle_on(lockers, resource, &request(lease), ms(5), ms(0));
}

/// Runs `fault` at random times (0.7 to 1.5 s apart) for the scenario's
/// duration; returns how many ran.
fn schedule(name: &str, default: Duration, mut fault: impl FnMut()) -> usize {
    let mut rng = Rng::seeded(name);
    let run = soak_duration(default);
    let start = Instant::now();
    let mut n = 0;
    loop {
        sleep(rng.between(ms(700), ms(1500)));
        if start.elapsed() >= run {
            return n;
        }
        fault();
        n += 1;
    }
}

fn get(r: &Redis, key: &str) -> Option<String> {
    r.conn().get(key).unwrap()
}

/// Releases A's lock of the vanished queue, recording it: the release must
/// answer Lost and leave B's ticket 1 of the new queue alone.
fn release_touches_nothing(
    r: &Redis,
    a: &mut Worker,
    a_id: &str,
    a_lock: turn::Lock,
    failures: &mut Vec<String>,
) {
    a.record(a_id, "res", What::ReleaseCalled);
    let released = a_lock.release();
    a.record(
        a_id,
        "res",
        What::Released {
            ok: released.is_ok(),
        },
    );
    match &released {
        Err(e) if e.kind() == turn::ErrorKind::Lost => {}
        other => failures.push(format!("A's release answered {other:?}, not Lost")),
    }
    if get(r, "turn:res:serial:1").is_none() {
        failures.push("A's release deleted B's presence key turn:res:serial:1".into());
    }
    let indicator = get(r, "turn:res:indicator");
    if indicator.as_deref() != Some("1") {
        failures.push(format!(
            "A's release moved B's queue: indicator {indicator:?}, not 1"
        ));
    }
}

#[test]
fn a_redis_restart_without_persistence_under_load_breaks_no_guarantee() {
    let mut r = Redis::start();
    let mut load = Load::new();
    let ls = lockers(&r.url(), 3);
    cycle_on(&mut load, &ls, "res", ms(2000));
    let history = load.history.clone();
    let restarts = schedule("restart under load", Duration::from_secs(6), || {
        history.fault_start("restart");
        r.restart();
        history.fault_end("restart");
    });
    sleep(ms(1000));
    load.stop(Duration::from_secs(30));
    assert!(restarts >= 1);
    load.history
        .check(&Rules::default())
        .assert_sound("restart under load", 20);
}

#[test]
fn a_redis_restart_without_persistence_under_the_shared_modes_breaks_no_guarantee() {
    let mut r = Redis::start();
    let mut load = Load::new();
    let ls = lockers(&r.url(), 3);
    load.shared_modes(&ls, &request(ms(2000)), ms(5), ms(0));
    let history = load.history.clone();
    let restarts = schedule(
        "restart under the shared modes",
        Duration::from_secs(5),
        || {
            history.fault_start("restart");
            r.restart();
            history.fault_end("restart");
        },
    );
    sleep(ms(1000));
    load.stop(Duration::from_secs(30));
    assert!(restarts >= 1);
    load.history
        .check(&Rules::default())
        .assert_sound("restart under the shared modes", 60);
}

#[test]
fn a_holder_from_before_a_restart_cannot_touch_the_new_queue_that_reuses_its_serial() {
    serial_reused_after("restart", |r| r.restart());
}

#[test]
fn a_holder_from_before_a_flushdb_cannot_touch_the_new_queue_that_reuses_its_serial() {
    serial_reused_after("flushdb", |r| {
        let _: () = redis::cmd("FLUSHDB").query(&mut r.conn()).unwrap();
    });
}

/// A holds serial 1; Redis loses its data (`fault`); B draws serial 1 of
/// the new queue and is granted. A's check must answer Lost within a beat,
/// its release Lost, leaving B's presence key and indicator alone; B's
/// token must be greater than A's.
fn serial_reused_after(name: &str, fault: impl FnOnce(&mut Redis)) {
    let mut r = Redis::start();
    // A reaches Redis through a proxy, stalled while Redis loses its data
    // and B takes serial 1 of the new queue: A's next beats come after.
    let proxy = Proxy::start(r.port);
    let history = History::new();
    let fence = Fence::default();
    let lease = Duration::from_secs(6);
    let a_locker = Locker::new(Some(&proxy.url())).unwrap();
    let mut a = Worker::new("a", &history, &fence);
    let (a_id, a_lock) = a.acquire(&a_locker, "res", &request(lease));
    let a_lock = a_lock.unwrap();
    assert_eq!(a_lock.serial(), 1);
    proxy.stall();
    history.fault_start(name);
    fault(&mut r);
    history.fault_end(name);
    let b_locker = Locker::new(Some(&r.url())).unwrap();
    let mut b = Worker::new("b", &history, &fence);
    let (b_id, b_lock) = b.acquire(&b_locker, "res", &request(lease));
    let b_lock = b_lock.unwrap();
    assert_eq!(
        b_lock.serial(),
        1,
        "the premise: the new queue hands serial 1 out again"
    );
    proxy.resume();

    let mut failures = Vec::new();
    // Within a beat (a third of the lease), with a generous margin.
    let beat = lease / 3;
    if !eventually(beat + Duration::from_secs(3), || a_lock.check().is_err()) {
        failures.push(format!(
            "A's check still answers Ok {:?} after B took serial 1 of the new queue",
            beat + Duration::from_secs(3)
        ));
    }
    a.record(
        &a_id,
        "res",
        What::Check {
            ok: a_lock.check().is_ok(),
            at_grant: false,
        },
    );
    release_touches_nothing(&r, &mut a, &a_id, a_lock, &mut failures);
    let b_token = b_lock.token();
    let a_token = a_lock_token(&history, &a_id);
    if b_token <= a_token {
        failures.push(format!(
            "B's token {b_token} is not greater than A's {a_token}"
        ));
    }
    b.finish(&b_id, b_lock, Duration::ZERO);
    let report = history.check(&Rules::default());
    println!("{name}, serial reused: {report}");
    assert!(
        failures.is_empty() && report.violations.is_empty(),
        "failures: {failures:#?}\nchecker: {report}"
    );
}

/// The token a hold was granted with, from the history.
fn a_lock_token(history: &History, id: &str) -> u64 {
    history
        .events()
        .iter()
        .find_map(|e| match e.what {
            What::Granted { token, .. } if e.id == id => Some(token),
            _ => None,
        })
        .unwrap()
}

#[test]
fn flushdb_under_load_breaks_no_guarantee() {
    let r = Redis::start();
    let mut load = Load::new();
    let ls = lockers(&r.url(), 3);
    cycle_on(&mut load, &ls, "res", ms(2000));
    let history = load.history.clone();
    let mut admin = r.conn();
    let flushes = schedule("FLUSHDB under load", Duration::from_secs(6), || {
        history.fault_start("flushdb");
        let _: () = redis::cmd("FLUSHDB").query(&mut admin).unwrap();
        history.fault_end("flushdb");
    });
    sleep(ms(1000));
    load.stop(Duration::from_secs(30));
    assert!(flushes >= 1);
    load.history
        .check(&Rules::default())
        .assert_sound("FLUSHDB under load", 20);
}

#[test]
fn flushdb_under_the_shared_modes_breaks_no_guarantee() {
    let r = Redis::start();
    let mut load = Load::new();
    let ls = lockers(&r.url(), 3);
    load.shared_modes(&ls, &request(ms(2000)), ms(5), ms(0));
    let history = load.history.clone();
    let mut admin = r.conn();
    let flushes = schedule(
        "FLUSHDB under the shared modes",
        Duration::from_secs(5),
        || {
            history.fault_start("flushdb");
            let _: () = redis::cmd("FLUSHDB").query(&mut admin).unwrap();
            history.fault_end("flushdb");
        },
    );
    sleep(ms(1000));
    load.stop(Duration::from_secs(30));
    assert!(flushes >= 1);
    load.history
        .check(&Rules::default())
        .assert_sound("FLUSHDB under the shared modes", 60);
}

/// X's acquire of all of a and b takes a, then waits for b (held by H);
/// FLUSHDB empties Redis and Y takes a in the new queue. X must not answer
/// Ok with its lock on a of the vanished queue while Y holds a; once Y has
/// released, an Ok of X holds a lock on a newer than Y's.
#[test]
fn an_acquire_of_all_answers_no_lock_whose_queue_vanished_while_it_waited() {
    let r = Redis::start();
    let history = History::new();
    let fence = Fence::default();
    let lease = Duration::from_secs(3);
    let h_locker = Locker::new(Some(&r.url())).unwrap();
    let mut h = Worker::new("h", &history, &fence);
    let (h_id, h_lock) = h.acquire(&h_locker, "b", &request(lease));
    let h_lock = h_lock.unwrap();
    let x_locker = Locker::new(Some(&r.url())).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let x_thread = {
        let (history, x_locker) = (history.clone(), x_locker.clone());
        std::thread::spawn(move || {
            let fence = Fence::default();
            let mut x = Worker::new("x", &history, &fence);
            let (id, locks) = x.acquire_all(
                &x_locker,
                &["a", "b"],
                &Acquire::default()
                    .expire(lease)
                    .wait(Wait::For(Duration::from_secs(30))),
            );
            let answer = locks
                .as_ref()
                .map(|l| l.iter().map(|l| l.token()).collect::<Vec<u64>>())
                .map_err(|e| e.kind());
            tx.send(answer).unwrap();
            if let Ok(locks) = locks {
                x.finish_all(&id, locks, Duration::ZERO);
            }
        })
    };
    assert!(support::queued(&h_locker, "b", 2), "X never queued for b");
    history.fault_start("flushdb");
    let _: () = redis::cmd("FLUSHDB").query(&mut r.conn()).unwrap();
    history.fault_end("flushdb");
    let y_locker = Locker::new(Some(&r.url())).unwrap();
    let mut y = Worker::new("y", &history, &fence);
    let (y_id, y_lock) = y.acquire(&y_locker, "a", &request(lease));
    let y_lock = y_lock.unwrap();
    let y_token = y_lock.token();
    let mut failures = Vec::new();
    // While Y holds a (for longer than the lease), X answers no Ok.
    match rx.recv_timeout(lease + Duration::from_secs(1)) {
        Ok(Ok(tokens)) => failures.push(format!(
            "X's acquire of all answered Ok (tokens {tokens:?}) while Y holds a (token {y_token})"
        )),
        Ok(Err(kind)) => println!("X's acquire of all answered {kind:?} while Y held a"),
        Err(_) => println!("X's acquire of all still waits while Y holds a"),
    }
    y.finish(&y_id, y_lock, Duration::ZERO);
    h.finish(&h_id, h_lock, Duration::ZERO);
    if let Ok(Ok(tokens)) = rx.recv_timeout(Duration::from_secs(30))
        && tokens[0] <= y_token
    {
        failures.push(format!(
            "X's acquire of all answered Ok with a lock on a (token {}) not newer than Y's ({y_token})",
            tokens[0]
        ));
    }
    x_thread.join().unwrap();
    let report = history.check(&Rules::default());
    println!("acquire of all across FLUSHDB: {report}");
    assert!(
        failures.is_empty() && report.violations.is_empty(),
        "failures: {failures:#?}\nchecker: {report}"
    );
}

#[test]
fn resets_racing_hand_offs_break_no_guarantee() {
    let r = Redis::start();
    let mut load = Load::new();
    let ls = lockers(&r.url(), 2);
    // One thread per locker, resting up to 30 ms between holds: the queue
    // is empty now and then, and a reset can succeed.
    for (i, l) in ls.iter().enumerate() {
        load.spawn(
            &format!("l{i}"),
            l,
            "res",
            &request(ms(2000)),
            ms(2),
            ms(30),
        );
    }
    let admin = Locker::new(Some(&r.url())).unwrap();
    let mut rng = Rng::seeded("resets racing hand-offs");
    let run = soak_duration(Duration::from_secs(5));
    let start = Instant::now();
    let (mut tries, mut resets) = (0, 0);
    while start.elapsed() < run {
        tries += 1;
        let done = match rng.below(10) {
            0 => {
                // The `turn reset` tool: prints nothing when it reset.
                let out = Command::new(env!("CARGO_BIN_EXE_turn"))
                    .env_remove("TURN_REDIS_URL")
                    .args(["--url", &r.url(), "reset", "res"])
                    .output()
                    .unwrap();
                out.status.success() && out.stdout.is_empty()
            }
            1..=4 => admin.reset("res").is_ok(),
            _ => match admin.status("res") {
                Ok(s) => matches!(
                    admin.reset_queue("res", Some(s.dispenser)),
                    Ok(ResetOutcome::Reset)
                ),
                Err(_) => false,
            },
        };
        if done {
            resets += 1;
        }
        sleep(rng.between(ms(0), ms(5)));
    }
    load.stop(Duration::from_secs(30));
    println!("resets racing hand-offs: {resets} of {tries} resets succeeded");
    assert!(resets >= 1, "no reset ever found the queue empty");
    load.history
        .check(&Rules::default())
        .assert_sound("resets racing hand-offs", 20);
}

#[test]
fn a_holder_passed_by_a_reset_cannot_touch_the_new_queue() {
    let r = Redis::start();
    let proxy = Proxy::start(r.port);
    let history = History::new();
    let fence = Fence::default();
    let a_locker = Locker::new(Some(&proxy.url())).unwrap();
    let mut a = Worker::new("a", &history, &fence);
    let (a_id, a_lock) = a.acquire(&a_locker, "res", &request(ms(1000)));
    let a_lock = a_lock.unwrap();
    // A's heartbeat is cut off: its presence key lapses, and the `turn
    // reset` tool then finds an empty queue and removes it.
    history.fault_start("stall");
    proxy.stall();
    assert!(eventually(Duration::from_secs(10), || get(
        &r,
        "turn:res:serial:1"
    )
    .is_none()));
    let out = Command::new(env!("CARGO_BIN_EXE_turn"))
        .env_remove("TURN_REDIS_URL")
        .args(["--url", &r.url(), "reset", "res"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        get(&r, "turn:res:dispenser"),
        None,
        "the premise: the reset removed the queue ({})",
        String::from_utf8_lossy(&out.stdout)
    );
    let b_locker = Locker::new(Some(&r.url())).unwrap();
    let mut b = Worker::new("b", &history, &fence);
    let (b_id, b_lock) = b.acquire(&b_locker, "res", &request(ms(5000)));
    let b_lock = b_lock.unwrap();
    assert_eq!(b_lock.serial(), 1, "the premise: serial 1 again");
    proxy.resume();
    history.fault_end("stall");

    let mut failures = Vec::new();
    a.record(
        &a_id,
        "res",
        What::Check {
            ok: a_lock.check().is_ok(),
            at_grant: false,
        },
    );
    if a_lock.check().is_ok() {
        failures.push("A's check answers Ok after its lease lapsed".to_string());
    }
    release_touches_nothing(&r, &mut a, &a_id, a_lock, &mut failures);
    b.finish(&b_id, b_lock, Duration::ZERO);
    let report = history.check(&Rules::default());
    println!("reset, serial reused: {report}");
    assert!(
        failures.is_empty() && report.violations.is_empty(),
        "failures: {failures:#?}\nchecker: {report}"
    );
}

#[test]
fn a_sentinel_failover_under_load_breaks_no_guarantee() {
    sentinel_failover("Sentinel failover under load", 20, |load, ls| {
        cycle_on(load, ls, "res", ms(2000))
    });
}

#[test]
fn a_sentinel_failover_under_the_shared_modes_breaks_no_guarantee() {
    sentinel_failover(
        "Sentinel failover under the shared modes",
        40,
        |load, ls| load.shared_modes(ls, &request(ms(2000)), ms(5), ms(0)),
    );
}

/// The master of a Sentinel set is killed under the load `start` makes on
/// two lockers, the replica promoted, the old master restarted empty and
/// demoted; the history keeps every guarantee (at least `min_granted`
/// grants).
fn sentinel_failover(name: &str, min_granted: usize, start: impl FnOnce(&mut Load, &[Locker])) {
    let mut set = Sentinels::start();
    let mut load = Load::new();
    // A failover Sentinel makes on its own (a loaded machine) is a fault
    // too: recovery is measured from the end of the last one.
    let mut unrest = set.record_unrest(&load.history, true);
    let ls = lockers(&set.url(), 2);
    start(&mut load, &ls);
    sleep(ms(2000));
    set.sync_at_once();
    load.history.fault_start("failover");
    assert!(set.fail_over(Duration::from_secs(60)), "no failover");
    // Grants wait for a replica by default on Sentinel: the outage lasts
    // until the old master is back as the new master's replica.
    set.master.restart();
    // As an operator would, at once (Sentinel does it too, in its time).
    set.demote_old_master();
    assert!(
        eventually(Duration::from_secs(60), || has_replica_online(&set.replica)),
        "the old master never came back as a replica"
    );
    load.history.fault_end("failover");
    assert!(
        unrest.wait_calm(Duration::from_secs(60)).is_some(),
        "the Sentinel set never settled after the failover"
    );
    sleep(soak_duration(Duration::from_secs(3)));
    load.stop(Duration::from_secs(60));
    unrest.stop();
    load.history
        .check(&Rules::default())
        .assert_sound(name, min_granted);
}
