//! Pending acquires and lost fds under faults and misuse: a granted
//! pending taken after its lock was lost, timeouts and `finish` while Redis
//! is stalled, cancels racing the turn, many pendings on one thread, fds
//! not leaking, a restart under pendings.

use crate::support;

use std::time::{Duration, Instant};

use support::{Redis, queued, readable, signal};
use turn::{Acquire, Cancel, ErrorKind, Locker, Wait};

/// The error of a `finish` that must not answer a held lock (`when` says
/// why); a held lock or a wait still going fails the test.
fn not_granted(out: turn::Result<Option<turn::Lock>>, when: &str) -> turn::Error {
    match out {
        Ok(Some(lock)) => panic!(
            "finish answered a held lock {when} (serial {}, is_lost {}, check {:?})",
            lock.serial(),
            lock.is_lost(),
            lock.check().map_err(|e| e.kind())
        ),
        Ok(None) => panic!("finish {when}: still waiting?"),
        Err(e) => e,
    }
}

/// A pending granted but not finished yet; the locker is closed; finish
/// must not answer a held lock.
#[test]
fn finish_after_close_of_a_granted_pending_is_not_ok() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let p = l.start_acquire("q", &Acquire::label("x")).unwrap();
    assert!(readable(p.fd(), 0), "granted by the draw");
    l.close();
    let e = not_granted(p.finish(), "after the locker closed");
    assert_eq!(e.kind(), ErrorKind::Canceled, "{e}");
}

/// A pending granted after a wait, its ticket's presence key deleted
/// before finish (the heartbeat marks it lost): finish must not answer OK.
#[test]
fn finish_of_a_granted_pending_whose_ticket_was_lost_is_not_ok() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let p = l
        .start_acquire("q", &Acquire::label("x").expire(Duration::from_millis(300)))
        .unwrap();
    assert!(readable(p.fd(), 0));
    let mut c = r.conn();
    let _: () = redis::cmd("DEL")
        .arg("turn:q:serial:1")
        .query(&mut c)
        .unwrap();
    std::thread::sleep(Duration::from_millis(600)); // two beats at least
    let e = not_granted(p.finish(), "for a lost ticket");
    eprintln!("finish: {e}");
}

/// A pending granted; Redis stalls (SIGSTOP) past the lease; finish must
/// not answer OK for a lapsed lease.
#[test]
fn finish_of_a_granted_pending_after_the_lease_lapsed_is_not_ok() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let p = l
        .start_acquire("q", &Acquire::label("x").expire(Duration::from_millis(300)))
        .unwrap();
    assert!(readable(p.fd(), 0));
    let pid = r.pid().unwrap();
    signal(pid, "STOP");
    std::thread::sleep(Duration::from_millis(900));
    let out = p.finish();
    signal(pid, "CONT");
    let e = not_granted(out, "for a lapsed lease");
    eprintln!("finish: {e}");
}

/// Timeouts fire while Redis is stalled: several pendings with 300 ms
/// timeouts; Redis SIGSTOPped; each fd should turn readable soon after.
#[test]
fn timeouts_fire_while_redis_is_stalled() {
    let r = Redis::start();
    let holder_l = Locker::new(Some(&r.url())).unwrap();
    let _holder = holder_l.lock("q", "holder").unwrap();
    let l = Locker::new(Some(&r.url())).unwrap();
    let n = 5;
    let ps: Vec<_> = (0..n)
        .map(|i| {
            l.start_acquire(
                "q",
                &Acquire::label(format!("p{i}")).wait(Wait::For(Duration::from_millis(300))),
            )
            .unwrap()
        })
        .collect();
    let start = Instant::now();
    let pid = r.pid().unwrap();
    signal(pid, "STOP");
    // Within a command timeout (5 s), which a withdrawal stuck on the
    // stalled server would take.
    let mut times = vec![];
    for p in &ps {
        assert!(readable(p.fd(), 4_000), "a 300 ms timeout did not fire");
        times.push(start.elapsed());
    }
    let kinds: Vec<_> = ps
        .iter()
        .map(|p| p.finish().map(|_| ()).map_err(|e| e.kind()))
        .collect();
    signal(pid, "CONT");
    println!("readable after: {times:?}");
    assert!(
        kinds.iter().all(|k| *k == Err(ErrorKind::Timeout)),
        "{kinds:?}"
    );
}

/// Redis stalled (SIGSTOP) past the lease of a held lock: its lost fd
/// should be readable at once when the local lease lapses.
#[test]
fn lost_fd_is_readable_when_the_local_lease_lapses() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let lock = l
        .acquire("q", &Acquire::label("x").expire(Duration::from_millis(500)))
        .unwrap();
    let fd = lock.lost_fd().unwrap();
    assert!(!readable(fd, 100));
    let pid = r.pid().unwrap();
    let start = Instant::now();
    signal(pid, "STOP");
    let ok = readable(fd, 10_000);
    let took = start.elapsed();
    signal(pid, "CONT");
    println!(
        "lost fd readable={ok} after {took:?}; is_lost {}",
        lock.is_lost()
    );
    assert!(ok && lock.is_lost());
}

/// The turn comes just before the cancel: it is handed on at once.
#[test]
fn cancel_right_after_the_turn_came_hands_on_at_once() {
    let r = Redis::start();
    let a = Locker::new(Some(&r.url())).unwrap();
    let b = Locker::new(Some(&r.url())).unwrap();
    for round in 0..30 {
        let res = format!("q{round}");
        let holder = a.lock(&res, "holder").unwrap();
        let p = a.start_acquire(&res, &Acquire::label("p")).unwrap();
        let next = b.start_acquire(&res, &Acquire::label("next")).unwrap();
        assert!(queued(&b, &res, 3));
        holder.release().unwrap();
        if round % 2 == 1 {
            std::thread::sleep(Duration::from_millis(round as u64));
        }
        p.cancel().unwrap();
        // At once, not after the canceled ticket's lease (10 s).
        assert!(readable(next.fd(), 5_000), "round {round}");
        let l = next.finish().unwrap().unwrap();
        l.release().unwrap();
    }
}

/// Many pendings on one locker, some canceled at random: grants in ticket
/// order, one at a time.
#[test]
fn many_pendings_are_granted_in_ticket_order() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let other = Locker::new(Some(&r.url())).unwrap();
    let holder = other.lock("q", "holder").unwrap();
    let mut ps: Vec<Option<turn::Pending>> = (0..40)
        .map(|i| {
            Some(
                l.start_acquire("q", &Acquire::label(format!("p{i}")))
                    .unwrap(),
            )
        })
        .collect();
    for i in (0..40).step_by(3) {
        ps[i].take().unwrap().cancel().unwrap();
    }
    holder.release().unwrap();
    let mut last = 0;
    let mut granted = 0;
    while ps.iter().any(|p| p.is_some()) {
        let mut got = None;
        let t = Instant::now();
        while got.is_none() && t.elapsed() < Duration::from_secs(20) {
            for (i, slot) in ps.iter_mut().enumerate() {
                if let Some(p) = slot
                    && readable(p.fd(), 0)
                {
                    let lock = p.finish().unwrap().unwrap();
                    *slot = None;
                    assert!(got.is_none(), "two holders at once");
                    got = Some((i, lock));
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let (i, lock) = got.expect("a grant");
        assert!(
            lock.serial() > last,
            "order: {} after {last}",
            lock.serial()
        );
        last = lock.serial();
        granted += 1;
        // No other pending readable while this one holds.
        std::thread::sleep(Duration::from_millis(20));
        for p in ps.iter().flatten() {
            assert!(!readable(p.fd(), 0), "readable while {i} holds");
        }
        lock.release().unwrap();
    }
    assert_eq!(granted, 26);
}

/// finish and ahead are event-loop calls: they must not block on Redis
/// while the notifier steps the same pending against a stalled server.
#[test]
fn finish_does_not_block_while_redis_is_stalled() {
    let r = Redis::start();
    let holder_l = Locker::new(Some(&r.url())).unwrap();
    let _holder = holder_l.lock("q", "holder").unwrap();
    let l = Locker::new(Some(&r.url())).unwrap();
    let p = l
        .start_acquire(
            "q",
            &Acquire::label("p").wait(Wait::For(Duration::from_millis(300))),
        )
        .unwrap();
    let pid = r.pid().unwrap();
    signal(pid, "STOP");
    std::thread::sleep(Duration::from_millis(500)); // the deadline's step is under way
    let t = Instant::now();
    let out = p.finish();
    let took_finish = t.elapsed();
    let t = Instant::now();
    let _ = p.ahead();
    let took_ahead = t.elapsed();
    signal(pid, "CONT");
    println!("finish took {took_finish:?}; ahead took {took_ahead:?}");
    // Past its deadline, answered at once: not a connection error after a
    // command timeout spent waiting on the notifier's round trip.
    assert_eq!(
        out.map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::Timeout)
    );
}

/// The lost fd turns readable within about one beat after the indicator
/// moved on / the presence key vanished.
#[test]
fn lost_fd_within_one_beat_after_tampering() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let mut c = r.conn();
    for (i, how) in ["indicator", "presence"].iter().enumerate() {
        let res = format!("q{i}");
        let lock = l
            .acquire(
                &res,
                &Acquire::label("x").expire(Duration::from_millis(3000)),
            )
            .unwrap();
        let fd = lock.lost_fd().unwrap();
        assert!(!readable(fd, 50));
        let t = Instant::now();
        if *how == "indicator" {
            let _: () = redis::cmd("SET")
                .arg(format!("turn:{res}:indicator"))
                .arg(99)
                .query(&mut c)
                .unwrap();
        } else {
            let _: () = redis::cmd("DEL")
                .arg(format!("turn:{res}:serial:1"))
                .query(&mut c)
                .unwrap();
        }
        // A beat is a third of the lease (1 s): readable before the lease
        // (3 s) would lapse by the local clock.
        let ok = readable(fd, 2_500);
        println!("{how}: readable={ok} after {:?}", t.elapsed());
        assert!(ok, "{how}: the loss was not found within the lease");
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// No fd leaks over many start / cancel / finish / timeout cycles.
#[test]
fn pending_cycles_and_timeouts_keep_working_hundreds_of_times() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let other = Locker::new(Some(&r.url())).unwrap();
    for i in 0..50 {
        let p = l.start_acquire("w", &Acquire::label("p")).unwrap();
        p.finish().unwrap().unwrap().release().unwrap();
        let _ = i;
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = open_fds();
    let holder = other.lock("q", "holder").unwrap();
    for i in 0..500 {
        let p = l.start_acquire("w", &Acquire::label("p")).unwrap();
        assert!(readable(p.fd(), 1000));
        p.finish().unwrap().unwrap().release().unwrap();
        let q = l.start_acquire("q", &Acquire::label("q")).unwrap();
        if i % 2 == 0 {
            q.cancel().unwrap();
        } else {
            drop(q);
        }
    }
    for _ in 0..20 {
        let t = l
            .start_acquire(
                "q",
                &Acquire::label("t").wait(Wait::For(Duration::from_millis(30))),
            )
            .unwrap();
        assert!(readable(t.fd(), 5000));
        assert_eq!(t.finish().unwrap_err().kind(), ErrorKind::Timeout);
    }
    holder.release().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Other tests of this binary open descriptors meanwhile: the exact
    // count is `tests/c/pending.c`'s (a process of its own).
    println!("open fds {before} -> {}", open_fds());
}

/// Redis restarted without persistence while pendings wait behind another
/// locker's holder: they draw anew and are granted, one at a time.
#[test]
fn pendings_ride_out_a_restart() {
    let mut r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let other = Locker::new(Some(&r.url())).unwrap();
    let holder = other.lock("q", "holder").unwrap();
    let ps: Vec<_> = (0..5)
        .map(|i| {
            l.start_acquire(
                "q",
                &Acquire::label(format!("p{i}")).expire(Duration::from_secs(3)),
            )
            .unwrap()
        })
        .collect();
    r.restart();
    let mut left: Vec<_> = ps.into_iter().map(Some).collect();
    let mut tokens = vec![];
    let t = Instant::now();
    while left.iter().any(Option::is_some) && t.elapsed() < Duration::from_secs(30) {
        for i in 0..left.len() {
            if left[i].as_ref().is_some_and(|p| readable(p.fd(), 0)) {
                let p = left[i].take().unwrap();
                let lock = p.finish().unwrap().expect("held");
                assert!(lock.check().is_ok());
                tokens.push(lock.token());
                for q in left.iter().flatten() {
                    assert!(!readable(q.fd(), 0), "two at once");
                }
                lock.release().unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "tokens {tokens:?}; holder {:?}",
        holder.check().map_err(|e| e.kind())
    );
    assert_eq!(tokens.len(), 5);
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
}

/// While Redis is away the notifier thread pauses between connections (up
/// to a second): the pending acquires it steps are stepped meanwhile, so a
/// cancel token fired then ends one at once, not at the end of that pause
/// (fired one after another, 300 ms apart, one of them would meet a long
/// part of it).
#[test]
fn a_cancel_token_ends_a_pending_at_once_while_redis_is_away() {
    let mut r = Redis::start();
    let holder = Locker::new(Some(&r.url())).unwrap();
    let _held = holder.lock("q", "holder").unwrap();
    let l = Locker::new(Some(&r.url())).unwrap();
    let pendings: Vec<_> = (0..3)
        .map(|i| {
            let cancel = Cancel::new();
            let request = Acquire::label(format!("p{i}"))
                .expire(Duration::from_secs(60))
                .cancel(&cancel);
            (l.start_acquire("q", &request).unwrap(), cancel)
        })
        .collect();
    assert!(queued(&l, "q", 4));
    r.kill();
    // The pause between connections grows to a second by then.
    std::thread::sleep(Duration::from_millis(2500));
    for (i, (p, cancel)) in pendings.iter().enumerate() {
        assert!(!readable(p.fd(), 0), "pending {i} ended before its cancel");
        let start = Instant::now();
        cancel.cancel();
        assert!(
            readable(p.fd(), 500),
            "pending {i}: the cancel was not seen within 500 ms"
        );
        let took = start.elapsed();
        let e = not_granted(p.finish(), "after its cancel");
        assert_eq!(e.kind(), ErrorKind::Canceled, "pending {i}: {e} ({took:?})");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A pending still waiting when its locker is freed while Redis is
/// stalled (the notifier held up in a round trip with it): finishing it
/// answers Canceled, not "still waiting" nor a connection error.
#[test]
fn finish_after_closing_while_redis_is_stalled_answers_canceled() {
    let r = Redis::start();
    let holder_l = Locker::new(Some(&r.url())).unwrap();
    let _holder = holder_l.lock("q", "holder").unwrap();
    let l = Locker::new(Some(&r.url())).unwrap();
    let waiting = l.start_acquire("q", &Acquire::label("p")).unwrap();
    let stepped = l
        .start_acquire(
            "q",
            &Acquire::label("s").wait(Wait::For(Duration::from_millis(300))),
        )
        .unwrap();
    let pid = r.pid().unwrap();
    signal(pid, "STOP");
    std::thread::sleep(Duration::from_millis(500)); // the deadline's step is under way
    l.close();
    let outcomes =
        [waiting.finish(), stepped.finish()].map(|o| o.map(|_| ()).map_err(|e| e.kind()));
    signal(pid, "CONT");
    println!("finish after closing: {outcomes:?}");
    assert_eq!(
        outcomes,
        [Err(ErrorKind::Canceled), Err(ErrorKind::Canceled)]
    );
}
