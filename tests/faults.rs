//! Faults: killed and paused holders and waiters, Redis restarts with and
//! without persistence, an unreachable Redis. Processes are `turn lock`
//! tool processes, which hold a lock like any client of the library.

use crate::support;

use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{Lines, Redis, eventually, info_number, queued, signal};
use turn::{Acquire, Cancel, ErrorKind, Locker, Options, Wait};

/// A `turn lock` process holding (or waiting for) `resource`.
fn holder(r: &Redis, resource: &str, expire: &str) -> (Child, Lines) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_turn"))
        .env_remove("TURN_REDIS_URL")
        .args(["--url", &r.url(), "lock", "--expire", expire, resource])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::new(child.stdout.take().unwrap());
    (child, lines)
}

/// Patience far beyond the test's wait: only the lease can let it in.
fn impatient_free(label: &str) -> Acquire {
    Acquire::label(label)
        .patience(Duration::from_secs(3600))
        .wait(Wait::For(Duration::from_secs(30)))
}

#[test]
fn a_killed_holder_is_passed_within_its_lease_whatever_the_patience() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let (mut child, mut lines) = holder(&r, "res", "2");
    assert!(lines.wait_for("res: locked", Duration::from_secs(30)));
    let l2 = l.clone();
    let waiter = thread::spawn(move || {
        l2.acquire("res", &impatient_free("next"))
            .map(|x| x.serial())
    });
    assert!(queued(&l, "res", 2));
    signal(child.id(), "KILL");
    let _ = child.wait();
    assert_eq!(waiter.join().unwrap().unwrap(), 2);
}

#[test]
fn a_killed_holder_is_passed_within_its_lease_with_many_waiting_lockers() {
    // Sixteen lockers (each with its own notifier and channel, as processes
    // have) wait behind a holder that is killed: only the waiter right
    // behind it watches it, and the lease, not a patience, lets it in; the
    // others follow in ticket order.
    let r = Redis::start();
    let watcher = Locker::new(Some(&r.url())).unwrap();
    let (mut child, mut lines) = holder(&r, "many", "2");
    assert!(lines.wait_for("many: locked", Duration::from_secs(30)));
    let waiters: Vec<_> = (0..16)
        .map(|i| {
            let l = Locker::new(Some(&r.url())).unwrap();
            let waiter = thread::spawn(move || {
                let lock = l.acquire("many", &impatient_free(&format!("w{i}")))?;
                let serial = lock.serial();
                lock.release()?;
                Ok::<u64, turn::Error>(serial)
            });
            assert!(queued(&watcher, "many", i + 2));
            waiter
        })
        .collect();
    signal(child.id(), "KILL");
    let _ = child.wait();
    let serials: Vec<u64> = waiters
        .into_iter()
        .map(|w| w.join().unwrap().unwrap())
        .collect();
    assert_eq!(serials, (2..18).collect::<Vec<u64>>());
}

#[test]
fn a_killed_waiter_in_the_middle_is_skipped() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let held = l.lock("res", "holder").unwrap();
    let (mut child, _lines) = holder(&r, "res", "2");
    assert!(queued(&l, "res", 2));
    let l2 = l.clone();
    let waiter = thread::spawn(move || {
        l2.acquire("res", &impatient_free("third"))
            .map(|x| x.serial())
    });
    assert!(queued(&l, "res", 3));
    signal(child.id(), "KILL");
    let _ = child.wait();
    held.release().unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), 3);
}

#[test]
fn a_holder_paused_past_its_lease_loses_the_lock_and_cannot_move_the_queue() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let (mut child, mut lines) = holder(&r, "res", "1");
    assert!(lines.wait_for("res: locked", Duration::from_secs(30)));
    signal(child.id(), "STOP");
    let next = l.acquire("res", &impatient_free("next")).unwrap();
    assert_eq!(
        next.serial(),
        2,
        "the queue moved on; the fencing token grew"
    );
    signal(child.id(), "CONT");
    signal(child.id(), "INT");
    let status = child.wait().unwrap();
    assert!(!status.success(), "its release reported the loss");
    assert!(
        lines.wait_for("res: lost", Duration::from_secs(10)),
        "{:?}",
        lines.seen
    );
    let s = l.status("res").unwrap();
    assert_eq!(
        s.indicator, 2,
        "the late release did not move the indicator"
    );
    assert!(next.check().is_ok());
    next.release().unwrap();
}

#[test]
fn redis_restart_without_persistence_reports_lost_locks_and_tokens_keep_growing() {
    let mut r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let held = l
        .acquire(
            "res",
            &Acquire::label("h").expire(Duration::from_millis(600)),
        )
        .unwrap();
    let before = held.token();
    let l2 = l.clone();
    let waiter = thread::spawn(move || {
        l2.acquire(
            "res",
            // A lease longer than the restart: the wait rides it out.
            &Acquire::label("w")
                .expire(Duration::from_secs(5))
                .wait(Wait::For(Duration::from_secs(60))),
        )
        .map(|x| x.token())
    });
    assert!(queued(&l, "res", 2));
    // The draw is in Redis; let its reply reach the waiter before the
    // restart (a draw cut off mid-reply fails with a connection error).
    thread::sleep(Duration::from_millis(300));
    r.restart();
    assert!(
        eventually(Duration::from_secs(30), || held.is_lost()),
        "never silently held"
    );
    assert_eq!(held.release().unwrap_err().kind(), ErrorKind::Lost);
    let after = waiter.join().unwrap().unwrap();
    assert!(
        after > before,
        "fencing tokens keep growing across the restart (default options): {after} > {before}"
    );
    let again = l.lock("res", "new").unwrap();
    assert!(again.token() > after);
}

#[test]
fn clock_serials_keep_serials_growing_across_a_restart() {
    // This one tests the clock_serials option itself, so it sets it.
    let mut r = Redis::start();
    let options = Options {
        clock_serials: true,
        ..Options::default()
    };
    let l = Locker::with_options(Some(&r.url()), options).unwrap();
    let before = l.lock("res", "h").unwrap();
    let serial = before.serial();
    drop(before);
    r.restart();
    let after = l.lock("res", "after").unwrap();
    assert!(
        after.serial() > serial,
        "a new queue starts at the server's clock: {} > {serial}",
        after.serial()
    );
}

#[test]
fn redis_restart_with_persistence_keeps_held_locks() {
    let mut r = Redis::start_persistent();
    let l = Locker::new(Some(&r.url())).unwrap();
    let held = l
        .acquire("res", &Acquire::label("h").expire(Duration::from_secs(5)))
        .unwrap();
    r.restart();
    // Several beats after the restart, the lock is still held.
    thread::sleep(Duration::from_secs(4));
    assert!(held.check().is_ok());
    held.release().unwrap();
    assert_eq!(l.lock("res", "next").unwrap().serial(), 2);
}

#[test]
fn an_unreachable_redis_fails_calls_within_the_timeouts() {
    let r = Redis::start();
    let options = Options {
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(500),
        ..Options::default()
    };
    let l = Locker::with_options(Some(&r.url()), options).unwrap();
    let held = l.lock("res", "h").unwrap();
    let pid = r.pid().unwrap();
    signal(pid, "STOP");
    let e = l.lock("other", "x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    let e = held.release().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    drop(l); // returns: the threads give up within the timeouts
    signal(pid, "CONT");
}

/// Makes the server refuse writes: a master short of replicas answers
/// NOREPLICAS, which an acquire rides out by drawing again after a pause
/// growing up to a second.
fn refuse_writes(c: &mut redis::Connection) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("min-replicas-to-write")
        .arg("1")
        .query(c)
        .unwrap();
}

/// Lets an acquire that draws meet refusals for 1.7 s (its pauses are a
/// second long by then), and returns right after a draw was refused: a
/// pause of about a second has just begun.
fn until_a_long_pause_begins(c: &mut redis::Connection) {
    let refused = |c: &mut redis::Connection| {
        info_number(c, "errorstats", "errorstat_NOREPLICAS", Some("count")).unwrap_or(0)
    };
    thread::sleep(Duration::from_millis(1700));
    let before = refused(c);
    assert!(
        eventually(Duration::from_secs(10), || refused(c) > before),
        "no draw was refused"
    );
}

/// An acquire waiting for a server that refuses its draws (no ticket: it
/// sleeps between draws); its cancel token fired in a pause of a second
/// ends it long before that pause would have.
#[test]
fn a_cancel_during_a_pause_between_draws_ends_the_acquire_at_once() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let mut c = r.conn();
    refuse_writes(&mut c);
    let cancel = Cancel::new();
    let (l2, c2) = (l.clone(), cancel.clone());
    let waiter = thread::spawn(move || {
        let request = Acquire::label("w")
            .cancel(&c2)
            .wait(Wait::For(Duration::from_secs(60)));
        l2.acquire("r", &request).map(|lock| lock.serial())
    });
    until_a_long_pause_begins(&mut c);
    let start = Instant::now();
    cancel.cancel();
    let e = waiter.join().unwrap().unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind(), ErrorKind::Canceled, "{e}");
    assert!(
        took < Duration::from_millis(500),
        "the cancel was seen after {took:?}: at the end of the pause?"
    );
}

/// The same wait ended by closing the locker.
#[test]
fn closing_during_a_pause_between_draws_ends_the_acquire_at_once() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let mut c = r.conn();
    refuse_writes(&mut c);
    let l2 = l.clone();
    let waiter = thread::spawn(move || {
        let request = Acquire::label("w").wait(Wait::For(Duration::from_secs(60)));
        l2.acquire("r", &request).map(|lock| lock.serial())
    });
    until_a_long_pause_begins(&mut c);
    let start = Instant::now();
    l.close();
    let e = waiter.join().unwrap().unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind(), ErrorKind::Canceled, "{e}");
    assert!(
        took < Duration::from_millis(500),
        "closing was seen after {took:?}: at the end of the pause?"
    );
}

/// Closing while Redis is paused (SIGSTOP) with a lock held: closing's own
/// round trips and its wait for the background threads are bounded, so
/// that freeing the locker takes far less than the command timeout (5 s);
/// the lock is reported lost (its lease runs out on the server).
#[test]
fn closing_while_redis_is_paused_is_quick() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    assert_eq!(l.options().command_timeout, Duration::from_secs(5));
    let held = l.lock("r", "h").unwrap();
    let waiting = {
        let l = l.clone();
        thread::spawn(move || l.lock("r", "w").map(|lock| lock.serial()))
    };
    assert!(queued(&l, "r", 2));
    let pid = r.pid().unwrap();
    signal(pid, "STOP");
    let start = Instant::now();
    l.close();
    drop(l);
    let took = start.elapsed();
    let e = waiting.join().unwrap().unwrap_err();
    signal(pid, "CONT");
    assert_eq!(e.kind(), ErrorKind::Canceled, "{e}");
    assert_eq!(held.check().unwrap_err().kind(), ErrorKind::Lost);
    assert!(
        took < Duration::from_millis(2500),
        "closing took {took:?} (the command timeout is 5 s)"
    );
}

/// Giving a wait up while Redis is stalled (SIGSTOP: it accepts but does
/// not answer): a cancel and a timeout return within a fraction of the
/// command timeout (5 s), since the withdrawal's round trip is made in the
/// background; once Redis answers again, the tickets are withdrawn (the
/// queue holds the holder alone, long before the waiters' leases lapse).
#[test]
fn giving_a_wait_up_while_redis_is_stalled_is_quick_and_withdraws_later() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    assert_eq!(l.options().command_timeout, Duration::from_secs(5));
    let _held = l.lock("r", "h").unwrap();
    // A round trip in flight on the waiter's own thread is not cut short
    // (it ends within the command timeout): the waiters are let settle
    // into their wait (their draw's reply read, the notifier subscribed)
    // before Redis stalls.
    let cancel = Cancel::new();
    let canceled = {
        let l = l.clone();
        let request = impatient_free("canceled").cancel(&cancel);
        thread::spawn(move || l.acquire("r", &request).map(|lock| lock.serial()))
    };
    let timed_out = {
        let l = l.clone();
        let request = impatient_free("timed-out").wait(Wait::For(Duration::from_millis(1500)));
        thread::spawn(move || {
            let result = l.acquire("r", &request).map(|lock| lock.serial());
            (result, Instant::now())
        })
    };
    assert!(queued(&l, "r", 3));
    thread::sleep(Duration::from_millis(300));
    let pid = r.pid().unwrap();
    signal(pid, "STOP");
    let start = Instant::now();
    cancel.cancel();
    let e = canceled.join().unwrap().unwrap_err();
    let took_cancel = start.elapsed();
    let (result, ended) = timed_out.join().unwrap();
    let took_timeout = ended - start;
    signal(pid, "CONT");
    println!("cancel returned after {took_cancel:?}; the timeout (1.5 s) after {took_timeout:?}");
    assert_eq!(e.kind(), ErrorKind::Canceled, "{e}");
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Timeout);
    assert!(
        took_cancel < Duration::from_millis(2500),
        "the cancel returned after {took_cancel:?} (the command timeout is 5 s)"
    );
    assert!(
        took_timeout < Duration::from_millis(4000),
        "the timeout returned after {took_timeout:?} (1.5 s, and the command timeout is 5 s)"
    );
    // Withdrawn in the background once Redis answers: well before the
    // waiters' presence keys (the default lease, 10 s, renewed up to the
    // stall) would expire.
    assert!(
        eventually(Duration::from_secs(2), || l
            .status("r")
            .is_ok_and(|s| s.tickets.len() == 1)),
        "the given-up tickets were withdrawn once Redis answered"
    );
}

/// Closing after the pool's connections have been idle long enough to be
/// checked before use (5 s), while Redis is stalled: the check is not made
/// on closing's path, whose first round trip is bounded as a whole.
#[test]
fn closing_with_idle_connections_while_redis_is_stalled_is_quick() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    drop(l.lock("r", "h").unwrap());
    thread::sleep(Duration::from_millis(5500));
    let pid = r.pid().unwrap();
    signal(pid, "STOP");
    let start = Instant::now();
    l.close();
    drop(l);
    let took = start.elapsed();
    signal(pid, "CONT");
    println!("closing took {took:?}");
    assert!(
        took < Duration::from_millis(2500),
        "closing took {took:?} (the command timeout is 5 s)"
    );
}

/// Many waits given up during a stall longer than the command timeout: the
/// withdrawals that fail meanwhile are tried again, so that once Redis
/// answers every ticket leaves the queue (long before the waiters' leases,
/// 30 s here, would let the queue pass them). A call made during the
/// stall fails after the command timeout with an error naming the server.
#[test]
fn withdrawals_that_fail_during_a_long_stall_are_tried_again() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let _held = l.lock("r", "h").unwrap();
    let cancel = Cancel::new();
    let waiters: Vec<_> = (0..6)
        .map(|i| {
            let l = l.clone();
            let request = impatient_free(&format!("w{i}"))
                .expire(Duration::from_secs(30))
                .cancel(&cancel);
            thread::spawn(move || l.acquire("r", &request).map(|lock| lock.serial()))
        })
        .collect();
    assert!(queued(&l, "r", 7));
    thread::sleep(Duration::from_millis(300)); // settled into their wait
    let pid = r.pid().unwrap();
    signal(pid, "STOP");
    cancel.cancel();
    for w in waiters {
        assert_eq!(w.join().unwrap().unwrap_err().kind(), ErrorKind::Canceled);
    }
    let e = l
        .acquire("other", &Acquire::label("t").wait(Wait::TryOnce))
        .unwrap_err();
    thread::sleep(Duration::from_millis(1500));
    signal(pid, "CONT");
    println!("a try-lock during the stall: {e}");
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert!(
        e.message().contains(&format!(
            "redis at 127.0.0.1:{} did not answer within 5000 ms",
            r.port
        )),
        "{e}"
    );
    assert!(
        eventually(Duration::from_secs(5), || l
            .status("r")
            .is_ok_and(|s| s.tickets.len() == 1)),
        "every given-up ticket was withdrawn once Redis answered"
    );
}

/// Closing with many locks held while Redis stalls during its releases:
/// each round trip of a closing locker is bounded, and closing stops at
/// the first one unanswered.
#[test]
fn closing_with_many_locks_held_while_redis_stalls_midway_is_quick() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let locks: Vec<_> = (0..2000)
        .map(|i| l.lock(&format!("many{i}"), "h").unwrap())
        .collect();
    let pid = r.pid().unwrap();
    let stopper = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        signal(pid, "STOP");
    });
    let start = Instant::now();
    l.close();
    drop(l);
    let took = start.elapsed();
    stopper.join().unwrap();
    signal(pid, "CONT");
    println!("closing with {} locks held took {took:?}", locks.len());
    assert!(
        took < Duration::from_millis(2500),
        "closing took {took:?} (the command timeout is 5 s)"
    );
}

/// Closing with many locks held on a server that answers, but slowly (it
/// is stopped 100 ms out of every 101): closing's releases all together
/// stop after a second, and its wait for the threads is short; the locks
/// not released are left to their leases.
#[test]
fn closing_with_many_locks_held_on_a_slow_server_is_bounded() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let locks: Vec<_> = (0..1000)
        .map(|i| l.lock(&format!("slow{i}"), "h").unwrap())
        .collect();
    let pid = r.pid().unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow = {
        let done = done.clone();
        thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                signal(pid, "STOP");
                thread::sleep(Duration::from_millis(100));
                signal(pid, "CONT");
                thread::sleep(Duration::from_millis(1));
            }
        })
    };
    thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    l.close();
    drop(l);
    let took = start.elapsed();
    done.store(true, std::sync::atomic::Ordering::Release);
    slow.join().unwrap();
    println!(
        "closing with {} locks held on a slow server took {took:?}",
        locks.len()
    );
    assert!(
        took < Duration::from_millis(2500),
        "closing took {took:?} (its releases stop after 1 s)"
    );
}

/// A draw sent to a stalled server and never answered (the acquire gives
/// up after the command timeout), the stall lasting longer than the lease
/// (10 s): once Redis answers again and carries the draw out (its lease
/// starts then), the ticket it made is found by its nonce and withdrawn,
/// so that the resource is free at once rather than after that lease.
#[test]
fn a_draw_never_answered_leaves_no_ticket_behind() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    drop(l.lock("warm", "x").unwrap());
    let pid = r.pid().unwrap();
    signal(pid, "STOP");
    let gave_up = {
        let l = l.clone();
        thread::spawn(move || {
            l.acquire(
                "orphan",
                &Acquire::label("gone").wait(Wait::For(Duration::from_millis(300))),
            )
            .map(|lock| lock.serial())
        })
    };
    let e = gave_up.join().unwrap().unwrap_err();
    thread::sleep(Duration::from_secs(6));
    signal(pid, "CONT");
    let resumed = Instant::now();
    println!("the acquire gave up: {e}");
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    let other = Locker::new(Some(&r.url())).unwrap();
    let mut free = false;
    while resumed.elapsed() < Duration::from_secs(3) {
        match other.acquire("orphan", &Acquire::label("next").wait(Wait::TryOnce)) {
            Ok(lock) => {
                lock.release().unwrap();
                free = true;
                break;
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}"),
        }
        thread::sleep(Duration::from_millis(50));
    }
    println!("free {:?} after Redis answered again", resumed.elapsed());
    assert!(
        free,
        "the draw's ticket still held the resource 3 s after Redis answered (its lease is 10 s)"
    );
}
