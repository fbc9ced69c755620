//! The Rust API against real redis-server instances: the protocol's keys
//! and messages, mutual exclusion, FIFO order, waiting, dead tickets,
//! status, bump and reset.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use redis::Commands;
use support::{Redis, eventually, queued};
use turn::{Acquire, ErrorKind, Locker, Options, ResetOutcome, Wait};

fn locker(r: &Redis) -> Locker {
    Locker::new(Some(&r.url())).expect("locker connects")
}

fn get(r: &Redis, key: &str) -> Option<String> {
    r.conn().get(key).unwrap()
}

#[test]
fn uncontended_lock_writes_turn_1_0_keys() {
    let r = Redis::start();
    let l = locker(&r);
    let lock = l.acquire("printer", &Acquire::label("job one")).unwrap();
    assert_eq!(lock.serial(), 1);
    assert_eq!(get(&r, "turn:printer:dispenser").as_deref(), Some("1"));
    assert_eq!(get(&r, "turn:printer:indicator").as_deref(), Some("1"));
    assert_eq!(get(&r, "turn:printer:serial:1").as_deref(), Some("job one"));
    let ttl: i64 = r.conn().pttl("turn:printer:serial:1").unwrap();
    assert!(
        ttl > 0 && ttl <= 10_000,
        "presence key has the lease as expiry: {ttl}"
    );
    lock.release().unwrap();
    assert_eq!(get(&r, "turn:printer:indicator").as_deref(), Some("2"));
    assert_eq!(get(&r, "turn:printer:serial:1"), None);
    let again = l.lock("printer", "job two").unwrap();
    assert_eq!(again.serial(), 2, "serials increase within a queue");
}

#[test]
fn external_messages_are_those_of_turn_1_0() {
    let r = Redis::start();
    let l = locker(&r);
    let mut sub = r.conn();
    let mut pubsub = sub.as_pubsub();
    pubsub.subscribe("turn:res:external").unwrap();
    pubsub.subscribe("turn:res:internal").unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    l.lock("res", "lbl").unwrap().release().unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        let m = pubsub.get_message().unwrap();
        got.push(format!(
            "{} {}",
            m.get_channel_name(),
            m.get_payload::<String>().unwrap()
        ));
    }
    assert_eq!(
        got,
        [
            "turn:res:external res: 1 assigned to \"lbl\"",
            "turn:res:external res: 1 started",
            "turn:res:external res: 1 completed by \"lbl\"",
            "turn:res:internal turn:res:serial:2",
            "turn:res:external res: 2 granted",
        ]
    );
}

#[test]
fn threads_exclude_each_other_in_fifo_order() {
    let r = Redis::start();
    let l = locker(&r);
    let inside = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let grants = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (l, inside, overlaps, grants) =
                (l.clone(), inside.clone(), overlaps.clone(), grants.clone());
            thread::spawn(move || {
                for _ in 0..15 {
                    let lock = l.lock("shared", &format!("thread {i}")).unwrap();
                    if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    grants.lock().unwrap().push(lock.serial());
                    thread::sleep(Duration::from_micros(200));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    lock.release().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two holders at once");
    let grants = grants.lock().unwrap();
    assert_eq!(grants.len(), 120);
    assert!(
        grants.windows(2).all(|w| w[0] < w[1]),
        "turns in serial order: {grants:?}"
    );
}

#[test]
fn try_lock_would_block_and_leaves_no_trace() {
    let r = Redis::start();
    let l = locker(&r);
    let held = l.lock("r", "holder").unwrap();
    let e = l
        .acquire("r", &Acquire::label("try").wait(Wait::TryOnce))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert_eq!(
        get(&r, "turn:r:serial:2"),
        None,
        "withdrawn ticket has no presence"
    );
    held.release().unwrap();
    // The withdrawn ticket 2 is skipped; the next one gets in.
    let next = l
        .acquire(
            "r",
            &Acquire::label("next").wait(Wait::For(Duration::from_secs(20))),
        )
        .unwrap();
    assert_eq!(next.serial(), 3);
}

#[test]
fn a_withdrawn_entry_from_before_a_turn_1_0_reset_passes_nobody_drawn_later() {
    let r = Redis::start();
    let l = locker(&r);
    // turn 1.0's reset deletes the dispenser and the indicator only: our
    // record that a ticket 2 was withdrawn outlives the queue it was for.
    let mut c = r.conn();
    let _: () = c.sadd("turn:r:withdrawn", 2).unwrap();
    let first = l.lock("r", "first").unwrap();
    assert_eq!(first.serial(), 1);
    first.release().unwrap();
    // Ticket 2 of the new queue is somebody's: its turn comes at once.
    let second = l
        .acquire("r", &Acquire::label("second").wait(Wait::TryOnce))
        .unwrap();
    assert_eq!(second.serial(), 2);
    assert_eq!(get(&r, "turn:r:indicator").as_deref(), Some("2"));
}

#[test]
fn timeout_withdraws_the_ticket_and_the_queue_moves_on() {
    let r = Redis::start();
    let l = locker(&r);
    let held = l.lock("r", "holder").unwrap();
    let e = l
        .acquire(
            "r",
            &Acquire::label("w").wait(Wait::For(Duration::from_millis(300))),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(get(&r, "turn:r:serial:2"), None);
    let l2 = l.clone();
    let waiter = thread::spawn(move || {
        l2.acquire(
            "r",
            &Acquire::label("third").patience(Duration::from_secs(60)),
        )
        .map(|lock| lock.serial())
    });
    thread::sleep(Duration::from_millis(100));
    held.release().unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), 3);
    let s = l.status("r").unwrap();
    assert!(s.tickets.is_empty(), "no trace left: {s:?}");
}

#[test]
fn check_reports_a_lock_whose_presence_key_was_deleted() {
    let r = Redis::start();
    let l = locker(&r);
    let lock = l
        .acquire("r", &Acquire::label("x").expire(Duration::from_millis(300)))
        .unwrap();
    assert!(lock.check().is_ok());
    let _: i64 = r.conn().del("turn:r:serial:1").unwrap();
    assert!(eventually(Duration::from_secs(10), || lock.is_lost()));
    assert_eq!(lock.check().unwrap_err().kind(), ErrorKind::Lost);
    assert_eq!(lock.release().unwrap_err().kind(), ErrorKind::Lost);
}

#[test]
fn heartbeat_keeps_waiting_and_held_tickets_alive() {
    let r = Redis::start();
    let l = locker(&r);
    let held = l
        .acquire(
            "r",
            &Acquire::label("h").expire(Duration::from_millis(1500)),
        )
        .unwrap();
    let l2 = l.clone();
    let waiter = thread::spawn(move || {
        l2.acquire(
            "r",
            &Acquire::label("w").expire(Duration::from_millis(1500)),
        )
        .map(|lock| lock.serial())
    });
    thread::sleep(Duration::from_millis(4500));
    assert!(held.check().is_ok(), "held past several leases");
    let s = l.status("r").unwrap();
    let serials: Vec<u64> = s.tickets.iter().map(|t| t.serial).collect();
    assert_eq!(serials, [1, 2], "the waiter's presence is kept alive too");
    held.release().unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), 2);
}

#[test]
fn a_dead_holder_is_passed_when_its_lease_lapses_not_after_patience() {
    let r = Redis::start();
    let l = locker(&r);
    // A holder that crashed: ticket 1 with a presence key nobody renews.
    let mut c = r.conn();
    let _: () = redis::cmd("MSET")
        .arg(&["turn:r:dispenser", "1", "turn:r:indicator", "1"])
        .query(&mut c)
        .unwrap();
    let _: () = c.pset_ex("turn:r:serial:1", "crashed", 800).unwrap();
    let lock = l
        .acquire(
            "r",
            &Acquire::label("next")
                .patience(Duration::from_secs(3600))
                .wait(Wait::For(Duration::from_secs(60))),
        )
        .unwrap();
    assert_eq!(lock.serial(), 2);
}

#[test]
fn dead_waiters_in_the_middle_are_skipped() {
    let r = Redis::start();
    let l = locker(&r);
    let held = l.lock("r", "holder").unwrap();
    // Tickets 2 and 3 drawn and abandoned without a trace (crashed).
    let mut c = r.conn();
    let _: i64 = c.incr("turn:r:dispenser", 2).unwrap();
    let l2 = l.clone();
    let waiter = thread::spawn(move || {
        l2.acquire(
            "r",
            &Acquire::label("w").patience(Duration::from_secs(3600)),
        )
        .map(|lock| lock.serial())
    });
    thread::sleep(Duration::from_millis(200));
    held.release().unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), 4);
}

#[test]
fn status_lists_live_tickets_in_order() {
    let r = Redis::start();
    let l = locker(&r);
    assert_eq!(l.status("r").unwrap_err().kind(), ErrorKind::NotFound);
    let held = l.lock("r", "first").unwrap();
    let l2 = l.clone();
    let waiter = thread::spawn(move || l2.lock("r", "second").map(|x| x.serial()));
    assert!(queued(&l, "r", 2));
    let s = l.status("r").unwrap();
    assert_eq!((s.indicator, s.dispenser, s.size()), (1, 2, 2));
    assert_eq!(s.tickets[0].label, "first");
    assert_eq!(s.tickets[1].serial, 2);
    assert_eq!(s.tickets[1].label, "second");
    held.release().unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), 2);
}

#[test]
fn bump_passes_dead_tickets_only() {
    let r = Redis::start();
    let l = locker(&r);
    assert_eq!(l.bump("none").unwrap_err().kind(), ErrorKind::NotFound);
    let held = l.lock("r", "alive").unwrap();
    assert_eq!(l.bump("r").unwrap(), 1, "a live holder is never bumped");
    held.release().unwrap();
    let mut c = r.conn();
    let _: i64 = c.incr("turn:r:dispenser", 3).unwrap();
    assert_eq!(l.bump("r").unwrap(), 5, "past dead 2..4 to the next draw");
}

#[test]
fn reset_refuses_a_busy_queue_and_removes_an_idle_one() {
    let r = Redis::start();
    let l = locker(&r);
    assert_eq!(l.reset("r").unwrap_err().kind(), ErrorKind::NotFound);
    let held = l.lock("r", "x").unwrap();
    assert_eq!(l.reset("r").unwrap_err().kind(), ErrorKind::Busy);
    assert_eq!(l.reset_queue("r", None).unwrap(), ResetOutcome::Busy(1));
    held.release().unwrap();
    assert_eq!(l.reset_queue("r", Some(7)).unwrap(), ResetOutcome::Activity);
    l.reset("r").unwrap();
    assert_eq!(get(&r, "turn:r:dispenser"), None);
    assert_eq!(get(&r, "turn:r:indicator"), None);
    assert_eq!(l.resources().unwrap(), Vec::<String>::new());
}

#[test]
fn resources_are_found_exactly() {
    let r = Redis::start();
    let l = locker(&r);
    for name in ["a*", "a:b", "plain", "[x]"] {
        l.lock(name, "").unwrap().release().unwrap();
    }
    let _: () = r.conn().set("turn:junk", "1").unwrap();
    assert_eq!(l.resources().unwrap(), ["[x]", "a*", "a:b", "plain"]);
    assert_eq!(l.status("a*").unwrap().resource, "a*");
}

#[test]
fn bad_input_is_an_error() {
    let r = Redis::start();
    let l = locker(&r);
    for bad in [
        "",
        "new\nline",
        "tab\there",
        &"x".repeat(turn::MAX_RESOURCE_LEN + 1),
    ] {
        let e = l.lock(bad, "").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        assert!(!e.message().is_empty());
    }
    let e = l
        .lock("r", &"l".repeat(turn::MAX_LABEL_LEN + 1))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = l
        .acquire("r", &Acquire::label("").expire(Duration::from_millis(1)))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = Locker::new(Some("http://nope")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = Locker::new(Some("redis://user:sekret@127.0.0.1:notaport/0")).unwrap_err();
    assert!(!e.message().contains("sekret"), "{}", e.message());
}

#[test]
fn unreachable_redis_is_a_connection_error() {
    let mut r = Redis::start();
    let url = r.url();
    let l = locker(&r);
    r.kill();
    let e = l.lock("r", "x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    let e = Locker::new(Some(&url)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
}

#[test]
fn data_of_the_wrong_shape_is_a_protocol_error() {
    let r = Redis::start();
    let l = locker(&r);
    let mut c = r.conn();
    let _: () = c.set("turn:r:indicator", "abc").unwrap();
    let _: () = c.set("turn:r:dispenser", "1").unwrap();
    assert_eq!(l.lock("r", "x").unwrap_err().kind(), ErrorKind::Protocol);
    assert_eq!(l.status("r").unwrap_err().kind(), ErrorKind::Protocol);
    assert_eq!(l.bump("r").unwrap_err().kind(), ErrorKind::Protocol);
    let _: () = c.set("turn:q:indicator", "1").unwrap();
    let _: () = c.set("turn:q:dispenser", "1").unwrap();
    let _: () = c.hset("turn:q:serial:1", "f", "v").unwrap();
    assert_eq!(l.status("q").unwrap_err().kind(), ErrorKind::Protocol);
}

#[test]
fn prefix_option_separates_fleets() {
    let r = Redis::start();
    let options = turn::Options {
        prefix: "other".into(),
        ..turn::Options::default()
    };
    let l = Locker::with_options(Some(&r.url()), options).unwrap();
    l.lock("r", "x").unwrap().release().unwrap();
    assert_eq!(get(&r, "other:r:indicator").as_deref(), Some("2"));
    assert_eq!(get(&r, "turn:r:indicator"), None);
}

#[test]
fn closing_the_locker_releases_held_locks() {
    let r = Redis::start();
    let l = locker(&r);
    let lock = l.lock("r", "x").unwrap();
    l.close();
    drop(l);
    assert_eq!(get(&r, "turn:r:indicator").as_deref(), Some("2"));
    assert_eq!(lock.check().unwrap_err().kind(), ErrorKind::Lost);
    assert_eq!(lock.release().unwrap_err().kind(), ErrorKind::Lost);
}

#[test]
fn cancel_withdraws_a_waiting_ticket() {
    let r = Redis::start();
    let l = locker(&r);
    let held = l.lock("r", "holder").unwrap();
    let cancel = turn::Cancel::new();
    let (l2, c2) = (l.clone(), cancel.clone());
    let waiter = thread::spawn(move || {
        l2.acquire("r", &Acquire::label("w").cancel(&c2))
            .map(|lock| lock.serial())
    });
    assert!(queued(&l, "r", 2));
    cancel.cancel();
    assert_eq!(
        waiter.join().unwrap().unwrap_err().kind(),
        ErrorKind::Canceled
    );
    assert_eq!(get(&r, "turn:r:serial:2"), None);
    held.release().unwrap();
}

#[test]
fn a_grant_no_replica_confirms_is_never_ok_and_ends_as_a_connection_error() {
    // A server without replicas, and a locker asking for one (the option
    // under test): every grant waits in vain.
    let r = Redis::start();
    let options = Options {
        min_replicas: Some(turn::MinReplicas::new(1, Duration::from_millis(100))),
        ..Options::default()
    };
    let l = Locker::with_options(Some(&r.url()), options).unwrap();
    for request in [
        Acquire::label("short lease")
            .expire(Duration::from_millis(300))
            .wait(Wait::For(Duration::from_secs(2))),
        Acquire::label("default lease").wait(Wait::For(Duration::from_secs(1))),
        Acquire::label("try").wait(Wait::TryOnce),
    ] {
        match l.acquire("unconfirmed", &request) {
            Ok(lock) => panic!("{}: granted, token {}", request.label, lock.token()),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Connection, "{}: {e}", request.label);
                assert!(e.message().contains("replica"), "{}: {e}", request.label);
            }
        }
    }
}

/// A lock keeps its locker running: `Locker::new(..)?.lock(..)?` (the
/// locker a temporary) holds the lock, renewed by the heartbeat past its
/// lease, until it is released.
#[test]
fn a_lock_outliving_its_locker_stays_held_until_released() {
    let r = Redis::start();
    let lock = Locker::new(Some(&r.url()))
        .unwrap()
        .acquire(
            "kept",
            &Acquire::label("x").expire(Duration::from_millis(1500)),
        )
        .unwrap();
    thread::sleep(Duration::from_millis(2500));
    lock.check().expect("held past its lease: renewed");
    let other = locker(&r);
    let e = other
        .acquire("kept", &Acquire::label("y").wait(Wait::TryOnce))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
    assert_eq!(get(&r, "turn:kept:indicator").as_deref(), Some("1"));
    lock.release().expect("released as held");
    assert_eq!(get(&r, "turn:kept:indicator").as_deref(), Some("3"));
    // Dropping the last locker now closes it: nothing is held.
    let again = other.lock("kept", "z").unwrap();
    drop(other);
    again.release().unwrap();
    assert_eq!(get(&r, "turn:kept:indicator").as_deref(), Some("4"));
}

/// The last `Locker` dropped while a lock is held: the lock stays held
/// (the heartbeat goes on) and its drop releases it.
#[test]
fn dropping_the_last_locker_leaves_a_held_lock_held() {
    let r = Redis::start();
    let l = locker(&r);
    let lock = l
        .acquire(
            "r",
            &Acquire::label("x").expire(Duration::from_millis(1500)),
        )
        .unwrap();
    drop(l);
    thread::sleep(Duration::from_millis(2500));
    lock.check().expect("still held");
    assert_eq!(get(&r, "turn:r:indicator").as_deref(), Some("1"));
    drop(lock);
    assert_eq!(get(&r, "turn:r:indicator").as_deref(), Some("2"));
}

/// A pending acquire keeps its locker running too: started on a temporary
/// locker, it is served when the holder leaves.
#[test]
fn a_pending_outliving_its_locker_is_served() {
    let r = Redis::start();
    let holder_locker = locker(&r);
    let holder = holder_locker.lock("p", "holder").unwrap();
    let pending = Locker::new(Some(&r.url()))
        .unwrap()
        .start_acquire("p", &Acquire::label("w"))
        .unwrap();
    assert!(queued(&holder_locker, "p", 2));
    holder.release().unwrap();
    assert!(support::readable(pending.fd(), 10_000), "served");
    let lock = pending.finish().unwrap().expect("the outcome is known");
    assert_eq!(lock.serial(), 2);
    lock.check().unwrap();
    lock.release().unwrap();
    assert_eq!(get(&r, "turn:p:indicator").as_deref(), Some("3"));
}

/// `Wait::For(Duration::ZERO)` and timeouts under a millisecond try once:
/// a free resource is taken; a taken one answers `WouldBlock` at once, its
/// ticket withdrawn. A timeout of a millisecond or more draws too.
#[test]
fn a_zero_or_tiny_timeout_tries_once() {
    let r = Redis::start();
    let l = locker(&r);
    for wait in [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_micros(500),
        Duration::from_millis(1),
    ] {
        let lock = l
            .acquire("t", &Acquire::label("free").wait(Wait::For(wait)))
            .unwrap_or_else(|e| panic!("{wait:?} on a free resource: {e}"));
        lock.release().unwrap();
    }
    let held = l.lock("t", "holder").unwrap();
    for wait in [Duration::ZERO, Duration::from_micros(500)] {
        let e = l
            .acquire("t", &Acquire::label("taken").wait(Wait::For(wait)))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "{wait:?}: {e}");
    }
    let e = l
        .acquire(
            "t",
            &Acquire::label("taken").wait(Wait::For(Duration::from_millis(1))),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(l.status("t").unwrap().tickets.len(), 1, "only the holder");
    held.release().unwrap();
    // A pending acquire with a timeout under a millisecond draws too.
    let pending = l
        .start_acquire(
            "t",
            &Acquire::label("pending").wait(Wait::For(Duration::from_micros(100))),
        )
        .unwrap();
    pending
        .finish()
        .unwrap()
        .expect("tried at once: free")
        .release()
        .unwrap();
}

/// A holder that died (its key gone, granted longer than the grace ago)
/// is passed by a try-lock and by a short wait at once: no waiter older
/// than the grace is needed.
#[test]
fn a_dead_holder_is_passed_by_a_try_lock_and_a_short_wait() {
    let r = Redis::start();
    let l = locker(&r);
    for (resource, wait) in [
        ("tried", Wait::TryOnce),
        ("waited", Wait::For(Duration::from_millis(200))),
    ] {
        let dead = l.lock(resource, "dies").unwrap();
        let key = format!("turn:{resource}:serial:{}", dead.serial());
        std::mem::forget(dead);
        // An early try, refused: its withdrawn ticket stands between the
        // holder and the later acquires.
        let e = l
            .acquire(resource, &Acquire::label("early").wait(Wait::TryOnce))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        std::thread::sleep(Duration::from_millis(700));
        // Its process died: its keys lapse (here, at once).
        let _: () = r
            .conn()
            .del(&[key.clone(), format!("turn:{resource}:ticket:1")])
            .unwrap();
        let lock = l
            .acquire(resource, &Acquire::label("next").wait(wait))
            .unwrap_or_else(|e| panic!("{resource}: {e}"));
        lock.release().unwrap();
    }
}
