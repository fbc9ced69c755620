//! A ticket is more than its serial: a queue that vanished and hands the
//! same numbers out again cannot fool the steps of an older ticket, and
//! fencing tokens keep growing whatever happened to the dispenser. Default
//! options throughout.

use crate::support;

use std::thread;
use std::time::Duration;

use redis::Commands;
use support::{Redis, eventually, queued};
use turn::{Acquire, ErrorKind, Locker, Wait};

fn locker(r: &Redis) -> Locker {
    Locker::new(Some(&r.url())).expect("locker connects")
}

fn get(r: &Redis, key: &str) -> Option<String> {
    r.conn().get(key).unwrap()
}

/// A beat is a third of the lease; a generous bound for "within a beat".
const BEAT_BOUND: Duration = Duration::from_secs(10);

#[test]
fn an_old_holder_is_lost_when_a_new_queue_grants_its_serial_after_a_restart() {
    let mut r = Redis::start();
    let a = locker(&r);
    let held = a.lock("r", "a").unwrap();
    assert_eq!(held.serial(), 1);
    let old_token = held.token();
    r.restart();
    let b = locker(&r);
    let new = b.lock("r", "b").unwrap();
    assert_eq!(new.serial(), 1, "the new queue hands serial 1 out again");
    assert!(
        new.token() > old_token,
        "tokens keep growing across the restart: {} > {old_token}",
        new.token()
    );
    assert!(
        eventually(BEAT_BOUND, || held.is_lost()),
        "the old holder of serial 1 is told it lost the lock"
    );
    assert_eq!(held.release().unwrap_err().kind(), ErrorKind::Lost);
    assert_eq!(
        get(&r, "turn:r:serial:1").as_deref(),
        Some("b"),
        "the old holder's release leaves the new ticket's presence key alone"
    );
    assert_eq!(get(&r, "turn:r:indicator").as_deref(), Some("1"));
    assert!(new.check().is_ok());
    new.release().unwrap();
}

#[test]
fn an_old_holder_is_lost_after_flushdb_and_a_redraw() {
    let r = Redis::start();
    let a = locker(&r);
    let held = a.lock("r", "a").unwrap();
    let _: () = redis::cmd("FLUSHDB").query(&mut r.conn()).unwrap();
    let b = locker(&r);
    let new = b.lock("r", "b").unwrap();
    assert_eq!(new.serial(), held.serial());
    assert!(new.token() > held.token());
    assert!(eventually(BEAT_BOUND, || held.is_lost()));
    // The old holder's heartbeat did not keep the new ticket alive, nor
    // read the new ticket as its own: the new holder's key has its own
    // lease, refreshed by its own locker only.
    assert!(new.check().is_ok());
    new.release().unwrap();
    assert_eq!(held.release().unwrap_err().kind(), ErrorKind::Lost);
}

/// Takes the lock, holds it a moment, releases it: the serial, the token
/// and whether check and release both answered Ok (then the hold overlapped
/// no other hold).
fn cycle(l: &Locker, label: &str, request: Acquire) -> (u64, u64, bool) {
    let request = Acquire {
        label: label.to_string(),
        ..request
    };
    let lock = l.acquire("r", &request).unwrap();
    let (serial, token) = (lock.serial(), lock.token());
    thread::sleep(Duration::from_millis(200));
    let checked = lock.check().is_ok();
    (serial, token, checked && lock.release().is_ok())
}

#[test]
fn an_old_waiter_is_not_granted_by_a_new_queue_with_its_serial() {
    let mut r = Redis::start();
    let a = locker(&r);
    let holder = a
        .acquire("r", &Acquire::label("h").expire(Duration::from_millis(600)))
        .unwrap();
    let a2 = a.clone();
    // A long lease: the waiter may still believe in its ticket (serial 2
    // of the old queue) when the new queue calls serial 2.
    let waiter = thread::spawn(move || {
        cycle(
            &a2,
            "w",
            Acquire::default()
                .expire(Duration::from_secs(30))
                .wait(Wait::For(Duration::from_secs(60))),
        )
    });
    assert!(queued(&a, "r", 2));
    // The draw is in Redis; let its reply reach the waiter before the
    // restart (a draw cut off mid-reply fails with a connection error).
    thread::sleep(Duration::from_millis(300));
    r.restart();
    let b = locker(&r);
    let one = b.lock("r", "b1").unwrap();
    let b2 = b.clone();
    let two = thread::spawn(move || cycle(&b2, "b2", Acquire::default()));
    assert!(eventually(Duration::from_secs(10), || b
        .status("r")
        .is_ok_and(|s| s.dispenser >= 2)));
    one.release().unwrap();
    let two = two.join().unwrap();
    let w = waiter.join().unwrap();
    assert!(two.2 && w.2, "each held alone: {two:?} {w:?}");
    assert_ne!(two.0, w.0, "two holds of one serial: {two:?} {w:?}");
    assert_ne!(two.1, w.1);
    assert!(eventually(BEAT_BOUND, || holder.is_lost()));
}

#[test]
fn tokens_keep_growing_when_the_dispenser_goes_back() {
    // What turn 1.0's reset tool does: delete the dispenser and the
    // indicator, so that the next draw starts at 1 again.
    let r = Redis::start();
    let l = locker(&r);
    let mut last = 0;
    for _ in 0..3 {
        let lock = l.lock("r", "x").unwrap();
        assert!(lock.token() > last);
        last = lock.token();
        lock.release().unwrap();
    }
    let _: () = r
        .conn()
        .del(&["turn:r:dispenser", "turn:r:indicator"])
        .unwrap();
    let lock = l.lock("r", "x").unwrap();
    assert_eq!(lock.serial(), 1);
    assert!(
        lock.token() > last,
        "{} > {last} after the dispenser went back",
        lock.token()
    );
    lock.release().unwrap();
}

#[test]
fn a_restart_without_persistence_keeps_tokens_growing_with_default_options() {
    let mut r = Redis::start();
    let l = locker(&r);
    let before = l.lock("r", "x").unwrap();
    let token = before.token();
    drop(before);
    r.restart();
    let after = l.lock("r", "x").unwrap();
    assert_eq!(after.serial(), 1, "turn 1.0's numbering: the queue is new");
    assert!(after.token() > token, "{} > {token}", after.token());
}

#[test]
fn a_background_thread_that_fails_is_restarted_and_the_failure_is_visible() {
    let r = Redis::start();
    let l = locker(&r);
    assert!(l.health().is_ok());
    let lock = l
        .acquire("r", &Acquire::label("h").expire(Duration::from_secs(3)))
        .unwrap();
    l.inject_background_panic(true, true);
    assert!(
        eventually(BEAT_BOUND, || l.health().is_err()),
        "the failure is reported"
    );
    let e = l.health().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panic);
    // The heartbeat runs again: the lock outlives two leases.
    thread::sleep(Duration::from_secs(7));
    assert!(lock.check().is_ok(), "the restarted heartbeat keeps it");
    // The notifier runs again: a waiter is called by message.
    let l2 = l.clone();
    let waiter = thread::spawn(move || l2.lock("r", "w").map(|x| x.serial()));
    assert!(queued(&l, "r", 2));
    let serial = lock.serial();
    lock.release().unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), serial + 1);
}

#[test]
fn closing_a_locker_ends_a_wait_in_progress_without_granting() {
    let r = Redis::start();
    let l = locker(&r);
    let other = locker(&r);
    let held = other.lock("r", "holder").unwrap();
    let l2 = l.clone();
    let waiter = thread::spawn(move || l2.lock("r", "waiter"));
    assert!(queued(&other, "r", 2));
    l.close();
    let e = waiter.join().unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Canceled, "{e}");
    held.release().unwrap();
    // The withdrawn ticket stalls nobody: a try-lock gets the turn.
    let next = other
        .acquire("r", &Acquire::label("n").wait(Wait::TryOnce))
        .unwrap();
    next.release().unwrap();
    assert_eq!(
        l.lock("r", "after").unwrap_err().kind(),
        ErrorKind::Connection
    );
}
