//! Stale tickets and stale replies never get the turn: a call that waited
//! in a paused process's socket while the queue vanished, a waiter whose
//! queue was deleted under it, a draw answered after its lease lapsed, two
//! local tickets with one serial, and data written into the keys by hand.
//! Default options throughout.

use crate::support;

use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use redis::Commands;
use support::proxy::{Direction, Proxy};
use support::{Lines, Redis, eventually, info_number, queued, signal};
use turn::{Acquire, ErrorKind, Locker, Wait};

fn locker(url: &str) -> Locker {
    Locker::new(Some(url)).expect("locker connects")
}

/// The waiter process of the in-flight tests: this test binary again.
#[test]
fn waiter_process() {
    let Ok(url) = std::env::var("TURN_TEST_WAITER_URL") else {
        return;
    };
    let l = locker(&url);
    println!("drawing");
    match l.acquire(
        "r",
        &Acquire::label("paused waiter").wait(Wait::For(Duration::from_secs(30))),
    ) {
        Ok(lock) => println!("granted token={}", lock.token()),
        Err(e) => println!("failed {:?}", e.kind()),
    }
}

/// A waiter process is stopped while the holder releases to it (its call
/// sits in its socket); then the queue vanishes and a new holder takes the
/// new queue's first serial; then the waiter resumes, well within its
/// lease. It must not take the turn of its vanished ticket.
fn call_in_flight_across(vanish: impl FnOnce(&mut Redis)) {
    let mut r = Redis::start();
    let a = locker(&r.url());
    let held = a.lock("r", "holder").unwrap();
    // This test binary again, running that test alone (by its full name:
    // the binary holds every module's tests).
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "stale_tickets::waiter_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TURN_TEST_WAITER_URL", r.url())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::new(child.stdout.take().unwrap());
    assert!(lines.wait_for("drawing", Duration::from_secs(30)));
    assert!(queued(&a, "r", 2));
    // Settled: subscribed and read the queue (its first beat is seconds
    // away with the default lease).
    thread::sleep(Duration::from_millis(1000));
    signal(child.id(), "STOP");
    held.release().unwrap();
    thread::sleep(Duration::from_millis(100));
    vanish(&mut r);
    let b = locker(&r.url());
    let new = b.lock("r", "new queue").unwrap();
    signal(child.id(), "CONT");
    // The waiter draws again in the new queue and waits behind `new`.
    assert!(
        eventually(Duration::from_secs(20), || b
            .status("r")
            .is_ok_and(|s| s.tickets.len() == 2)),
        "the resumed waiter queues behind the new holder: {:?}",
        lines.seen
    );
    assert!(
        !lines.arrived().iter().any(|l| l.starts_with("granted")),
        "the waiter took the turn of its vanished ticket: {:?}",
        lines.seen
    );
    assert!(new.check().is_ok());
    let token = new.token();
    new.release().unwrap();
    assert!(lines.wait_for("granted", Duration::from_secs(20)));
    let line = lines
        .seen
        .iter()
        .find(|l| l.starts_with("granted"))
        .unwrap();
    let got: u64 = line.trim_start_matches("granted token=").parse().unwrap();
    assert!(got > token, "tokens grow: {got} > {token}");
    let _ = child.wait();
}

#[test]
fn a_call_in_flight_across_flushdb_does_not_grant_the_vanished_ticket() {
    call_in_flight_across(|r| {
        let _: () = redis::cmd("FLUSHDB").query(&mut r.conn()).unwrap();
    });
}

#[test]
fn a_call_in_flight_across_a_restart_does_not_grant_the_vanished_ticket() {
    call_in_flight_across(|r| r.restart());
}

#[test]
fn a_waiter_is_not_granted_by_a_queue_made_anew_under_it() {
    // What turn 1.0's reset would do to a busy queue: delete the dispenser
    // and the indicator; the waiter's identity key survives.
    let r = Redis::start();
    let a = locker(&r.url());
    let w = locker(&r.url());
    let c = locker(&r.url());
    let held = a.lock("r", "old holder").unwrap();
    let w2 = w.clone();
    let waiter = thread::spawn(move || {
        let lock = w2
            .acquire(
                "r",
                &Acquire::label("old waiter").wait(Wait::For(Duration::from_secs(30))),
            )
            .unwrap();
        thread::sleep(Duration::from_millis(200));
        (
            lock.serial(),
            lock.token(),
            lock.check().is_ok() && lock.release().is_ok(),
        )
    });
    assert!(queued(&a, "r", 2));
    thread::sleep(Duration::from_millis(1000));
    let _: () = r
        .conn()
        .del(&["turn:r:dispenser", "turn:r:indicator"])
        .unwrap();
    let one = c.lock("r", "new 1").unwrap();
    assert_eq!(one.serial(), 1);
    let first = one.token();
    // Releasing moves the new queue's indicator to 2: the old waiter's
    // serial, whose identity key is still there.
    one.release().unwrap();
    let two = c
        .acquire(
            "r",
            &Acquire::label("new 2").wait(Wait::For(Duration::from_secs(20))),
        )
        .unwrap();
    let two_token = two.token();
    thread::sleep(Duration::from_millis(200));
    assert!(two.check().is_ok());
    two.release().unwrap();
    let (serial, token, clean) = waiter.join().unwrap();
    assert!(clean, "the old waiter, granted anew, held alone");
    assert!(serial > 2, "the old waiter drew again: {serial}");
    assert!(token > two_token && two_token > first);
    drop(held);
}

#[test]
fn a_draw_answered_after_its_lease_lapsed_is_not_granted() {
    let r = Redis::start();
    let proxy = Proxy::start(r.port);
    let a = locker(&proxy.url());
    let b = locker(&r.url());
    // A's replies come 2.5 s late; its lease is 1 s.
    proxy.latency_one_way(Direction::Down, Duration::from_millis(2500), Duration::ZERO);
    let late = thread::spawn(move || {
        a.acquire(
            "r",
            &Acquire::label("late")
                .expire(Duration::from_secs(1))
                .wait(Wait::TryOnce),
        )
        .map(|l| l.token())
        .map_err(|e| e.kind())
    });
    // B passes A's lapsed ticket and holds while A's reply is on its way.
    let held = b
        .acquire(
            "r",
            &Acquire::label("b").wait(Wait::For(Duration::from_secs(20))),
        )
        .unwrap();
    let outcome = late.join().unwrap();
    assert!(held.check().is_ok());
    assert_eq!(
        outcome,
        Err(ErrorKind::WouldBlock),
        "A's late reply is not a grant"
    );
    held.release().unwrap();
}

#[test]
fn two_local_tickets_with_one_serial_both_watch_a_dead_holder() {
    // After FLUSHDB one locker has a ticket of the old queue and one of the
    // new queue with the same serial; when the old one leaves, the new one
    // still watches the holder's lease.
    let r = Redis::start();
    let l = locker(&r.url());
    let m = locker(&r.url());
    let held = m.lock("r", "old holder").unwrap();
    let l1 = l.clone();
    let old = thread::spawn(move || {
        l1.acquire(
            "r",
            &Acquire::label("old").wait(Wait::For(Duration::from_secs(4))),
        )
        .map(|x| x.serial())
    });
    assert!(queued(&l, "r", 2));
    let _: () = redis::cmd("FLUSHDB").query(&mut r.conn()).unwrap();
    drop(held);
    // The new queue's serial 1: a `turn lock` process with a 2 s lease.
    let mut child = Command::new(env!("CARGO_BIN_EXE_turn"))
        .env_remove("TURN_REDIS_URL")
        .args(["--url", &r.url(), "lock", "--expire", "2", "r"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::new(child.stdout.take().unwrap());
    assert!(lines.wait_for("r: locked", Duration::from_secs(10)));
    let l2 = l.clone();
    // Default patience (60 s): only watching the lease gets it in time.
    let new = thread::spawn(move || {
        l2.acquire(
            "r",
            &Acquire::label("new").wait(Wait::For(Duration::from_secs(15))),
        )
        .map(|x| x.serial())
        .map_err(|e| e.kind())
    });
    assert!(eventually(Duration::from_secs(10), || l
        .status("r")
        .is_ok_and(|s| s.tickets.iter().any(|t| t.label == "new"))));
    let _ = old.join().unwrap();
    signal(child.id(), "KILL");
    let _ = child.wait();
    assert!(
        new.join().unwrap().is_ok(),
        "the dead holder was passed within its lease, not after patience"
    );
}

#[test]
fn a_dispenser_past_2_pow_53_is_a_protocol_error() {
    let r = Redis::start();
    let _: () = r
        .conn()
        .set("turn:r:dispenser", "9007199254740994")
        .unwrap();
    let _: () = r
        .conn()
        .set("turn:r:indicator", "9007199254740994")
        .unwrap();
    let l = locker(&r.url());
    let e = l.lock("r", "x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
}

#[test]
fn indicators_that_are_not_serials_are_protocol_errors() {
    for bad in ["inf", "1e400", "18446744073709551615", "-3", "2.5", "abc"] {
        let r = Redis::start();
        let _: () = r.conn().set("turn:r:dispenser", "3").unwrap();
        let _: () = r.conn().set("turn:r:indicator", bad).unwrap();
        let l = locker(&r.url());
        let e = l
            .acquire(
                "r",
                &Acquire::label("x").wait(Wait::For(Duration::from_secs(5))),
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{bad}: {e}");
    }
}

#[test]
fn an_indicator_past_the_dispenser_is_taken_by_the_next_draw() {
    // A turn 1.0 release into a queue made anew, or a hand-written value:
    // the serials up to the indicator were never drawn.
    let r = Redis::start();
    let _: () = r.conn().set("turn:r:dispenser", "3").unwrap();
    let _: () = r
        .conn()
        .set("turn:r:indicator", "1000000000000000")
        .unwrap();
    let l = locker(&r.url());
    let lock = l.lock("r", "x").unwrap();
    assert_eq!(lock.serial(), 1_000_000_000_000_000);
    lock.release().unwrap();
    assert_eq!(l.lock("r", "y").unwrap().serial(), 1_000_000_000_000_001);
}

#[test]
fn a_hand_written_gap_is_passed_without_blocking_redis() {
    // Indicator 1, dispenser 3,000,000: every ticket between is dead. The
    // bump walks it in bounded steps, so other clients are served meanwhile.
    let r = Redis::start();
    let other = locker(&r.url());
    let bystander = other
        .acquire(
            "other",
            &Acquire::label("bystander").expire(Duration::from_secs(5)),
        )
        .unwrap();
    let scripts_before = script_calls(&r);
    let _: () = r.conn().set("turn:r:dispenser", "3000000").unwrap();
    let _: () = r.conn().set("turn:r:indicator", "1").unwrap();
    let l = locker(&r.url());
    let lock = l
        .acquire(
            "r",
            &Acquire::label("x").wait(Wait::For(Duration::from_secs(120))),
        )
        .unwrap();
    assert_eq!(lock.serial(), 3_000_001);
    assert!(
        bystander.check().is_ok(),
        "the bystander's heartbeat was served"
    );
    // 10,000 tickets a script call at most: Redis served others between.
    let calls = script_calls(&r) - scripts_before;
    println!("a gap of 3,000,000 dead tickets passed in {calls} script calls");
    assert!(calls >= 300, "{calls} script calls");
}

/// Script calls the server ran so far (EVAL and EVALSHA).
fn script_calls(r: &Redis) -> u64 {
    let mut c = r.conn();
    ["cmdstat_eval", "cmdstat_evalsha"]
        .into_iter()
        .filter_map(|field| info_number(&mut c, "commandstats", field, Some("calls")))
        .sum()
}

#[test]
fn tokens_keep_growing_after_a_serial_jumped_to_the_indicator_and_a_reset() {
    // A turn 1.0 holder of a long queue's serial 30,000,000 releases after
    // FLUSHDB into the new queue (its release sets the indicator blindly);
    // our next draw takes the indicator's serial; our reset then starts a
    // new incarnation from the server clock.
    let r = Redis::start();
    let l = locker(&r.url());
    let mut tokens = Vec::new();
    let a = l.lock("r", "a").unwrap();
    tokens.push(a.token());
    a.release().unwrap();
    let _: () = r.conn().set("turn:r:indicator", "30000001").unwrap();
    let b = l.lock("r", "b").unwrap();
    assert_eq!(b.serial(), 30_000_001);
    tokens.push(b.token());
    b.release().unwrap();
    l.reset("r").unwrap();
    let c = l.lock("r", "c").unwrap();
    tokens.push(c.token());
    c.release().unwrap();
    assert!(
        tokens.windows(2).all(|w| w[1] > w[0]),
        "tokens of successive holds: {tokens:?}"
    );
}

#[test]
fn a_queue_made_anew_forgets_the_withdrawn_tickets_of_the_old_one() {
    let r = Redis::start();
    let l = locker(&r.url());
    let held = l.lock("r", "holder").unwrap();
    // Serial 2 gives up: it is noted as withdrawn.
    let e = l
        .acquire(
            "r",
            &Acquire::label("impatient").wait(Wait::For(Duration::from_millis(200))),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    held.release().unwrap();
    // turn 1.0's reset: only the dispenser and the indicator go.
    let _: () = r
        .conn()
        .del(&["turn:r:dispenser", "turn:r:indicator"])
        .unwrap();
    let one = l.lock("r", "new 1").unwrap();
    assert_eq!(one.serial(), 1);
    // A turn 1.0 client draws 2 and has not set its presence key yet.
    let two: u64 = r.conn().incr("turn:r:dispenser", 1).unwrap();
    assert_eq!(two, 2);
    one.release().unwrap();
    let indicator: String = r.conn().get("turn:r:indicator").unwrap();
    assert_eq!(indicator, "2", "the turn 1.0 ticket is not passed over");
}
