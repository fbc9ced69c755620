//! The shared modes against a real redis-server: a FIFO semaphore, a
//! read-write lock, all or none over several resources, and the kind a
//! queue keeps.

use crate::support;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use redis::Commands;
use support::{Redis, queued, turn_1_0};
use turn::{Acquire, ErrorKind, Kind, Locker, Mode, Wait};

fn locker(r: &Redis) -> Locker {
    Locker::new(Some(&r.url())).expect("locker connects")
}

fn sem(permits: u32, weight: u32) -> Acquire {
    Acquire::label("sem").mode(Mode::Semaphore { permits, weight })
}

fn rw(exclusive: bool) -> Acquire {
    Acquire::label(if exclusive { "writer" } else { "reader" }).mode(Mode::ReadWrite { exclusive })
}

fn try_once(a: Acquire) -> Acquire {
    a.wait(Wait::TryOnce)
}

/// An acquire's serial, or its error's kind, to compare.
fn outcome(r: &turn::Result<turn::Lock>) -> std::result::Result<u64, ErrorKind> {
    r.as_ref().map(|l| l.serial()).map_err(|e| e.kind())
}

/// Starts an acquire in a thread; its lock (or error) comes on the channel.
fn waiting(
    l: &Locker,
    resource: &str,
    request: Acquire,
) -> mpsc::Receiver<turn::Result<turn::Lock>> {
    let (tx, rx) = mpsc::channel();
    let l = l.clone();
    let resource = resource.to_string();
    thread::spawn(move || {
        let _ = tx.send(l.acquire(&resource, &request));
    });
    rx
}

const LONG: Duration = Duration::from_secs(10);

/// The call of waiting ticket `serial` of `resource`, as an admission
/// makes it: (its nonce, its locker's channel), read from its identity
/// key, once its locker listens on that channel.
fn call_of(c: &mut redis::Connection, resource: &str, serial: u64) -> (String, String) {
    let identity: String = c.get(format!("turn:{resource}:ticket:{serial}")).unwrap();
    let parts: Vec<&str> = identity.split(' ').collect();
    let [nonce, _base, channel] = parts[..] else {
        panic!("an identity of three parts: {identity:?}")
    };
    let listening = support::eventually(LONG, || {
        let (_, n): (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query(c)
            .unwrap();
        n > 0
    });
    assert!(
        listening,
        "the premise: the waiter's locker listens on {channel}"
    );
    (nonce.to_string(), channel.to_string())
}

#[test]
fn a_semaphore_holds_up_to_its_permits_and_no_more() {
    let r = Redis::start();
    let l = locker(&r);
    let a = l.acquire("pool", &sem(3, 1)).unwrap();
    let b = l.acquire("pool", &sem(3, 2)).unwrap();
    assert!(b.token() > a.token());
    let e = l.acquire("pool", &try_once(sem(3, 1))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
    let c = waiting(&l, "pool", sem(3, 1));
    assert!(
        c.recv_timeout(Duration::from_millis(300)).is_err(),
        "no permit is free"
    );
    let b_token = b.token();
    b.release().unwrap();
    let c = c.recv_timeout(LONG).unwrap().unwrap();
    assert!(c.token() > b_token, "tokens increase in grant order");
    // 1 + 1 of 3 held: one more of weight 1 fits at once.
    let d = l.acquire("pool", &try_once(sem(3, 1))).unwrap();
    for lock in [a, c, d] {
        lock.check().unwrap();
        lock.release().unwrap();
    }
    assert_eq!(
        r.conn().hlen::<_, i64>("turn:pool:holders").unwrap(),
        0,
        "every holder left"
    );
}

#[test]
fn a_semaphore_admits_in_draw_order_without_barging() {
    let r = Redis::start();
    let l = locker(&r);
    let a = l.acquire("pool", &sem(2, 1)).unwrap();
    // Weight 2 does not fit beside a: it waits, and holds back a later
    // weight 1 that would fit.
    let big = waiting(&l, "pool", sem(2, 2));
    assert!(queued(&l, "pool", 2));
    let e = l.acquire("pool", &try_once(sem(2, 1))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "no barging: {e}");
    let small = waiting(&l, "pool", sem(2, 1));
    assert!(queued(&l, "pool", 3));
    assert!(small.recv_timeout(Duration::from_millis(300)).is_err());
    a.release().unwrap();
    let big = big.recv_timeout(LONG).unwrap().unwrap();
    assert!(small.recv_timeout(Duration::from_millis(300)).is_err());
    let big_token = big.token();
    big.release().unwrap();
    let small = small.recv_timeout(LONG).unwrap().unwrap();
    assert!(small.token() > big_token, "tokens increase in grant order");
    small.release().unwrap();
}

#[test]
fn a_read_write_lock_holds_readers_together_and_a_writer_alone() {
    let r = Redis::start();
    let l = locker(&r);
    let r1 = l.acquire("doc", &rw(false)).unwrap();
    let r2 = l.acquire("doc", &try_once(rw(false))).unwrap();
    let e = l.acquire("doc", &try_once(rw(true))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
    let writer = waiting(&l, "doc", rw(true));
    assert!(queued(&l, "doc", 3));
    // A reader drawn after a waiting writer waits for it.
    let e = l.acquire("doc", &try_once(rw(false))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "readers never barge: {e}");
    let late_reader = waiting(&l, "doc", rw(false));
    assert!(queued(&l, "doc", 4));
    r1.release().unwrap();
    assert!(writer.recv_timeout(Duration::from_millis(300)).is_err());
    r2.release().unwrap();
    let w = writer.recv_timeout(LONG).unwrap().unwrap();
    assert!(
        late_reader
            .recv_timeout(Duration::from_millis(300))
            .is_err()
    );
    w.release().unwrap();
    late_reader
        .recv_timeout(LONG)
        .unwrap()
        .unwrap()
        .release()
        .unwrap();
}

#[test]
fn a_queue_keeps_its_kind_until_it_is_reset() {
    let r = Redis::start();
    let l = locker(&r);
    l.acquire("plain", &Acquire::label("x"))
        .unwrap()
        .release()
        .unwrap();
    let e = l.acquire("plain", &sem(2, 1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongKind, "{e}");
    assert!(e.message().contains("a plain lock"), "{e}");
    let e = l.acquire("plain", &rw(false)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongKind, "{e}");

    l.acquire("sem", &sem(4, 1)).unwrap().release().unwrap();
    for (request, what) in [
        (sem(5, 1), "other permits"),
        (rw(true), "a read-write lock"),
        (Acquire::label("plain"), "a plain lock"),
    ] {
        let e = l.acquire("sem", &request).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WrongKind, "{what}: {e}");
        assert!(e.message().contains("semaphore of 4 permits"), "{e}");
    }
    let e = l.acquire("rw", &rw(true)).map(drop);
    e.unwrap();
    let e = l.acquire("rw", &sem(1, 1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongKind, "{e}");
    // Nothing was drawn by the refused acquires.
    let disp: String = r.conn().get("turn:sem:dispenser").unwrap();
    assert_eq!(disp, "1");

    // Reset when idle: the queue is made anew, of another kind.
    l.reset("sem").unwrap();
    l.acquire("sem", &Acquire::label("now plain"))
        .unwrap()
        .release()
        .unwrap();
    assert_eq!(l.status("sem").unwrap().kind, Kind::Plain);
}

#[test]
fn bad_permits_and_weights_are_refused_before_any_round_trip() {
    let r = Redis::start();
    let l = locker(&r);
    for (permits, weight) in [(0, 0), (0, 1), (3, 0), (3, 4)] {
        let e = l.acquire("pool", &sem(permits, weight)).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::InvalidArgument,
            "{permits}/{weight}: {e}"
        );
    }
    let keys: Vec<String> = r.conn().keys("*").unwrap();
    assert!(keys.is_empty(), "nothing written: {keys:?}");
}

#[test]
fn a_dead_holders_permits_come_back_within_its_lease() {
    let r = Redis::start();
    let holder = locker(&r);
    let l = locker(&r);
    let lease = Duration::from_millis(1500);
    let a = holder.acquire("pool", &sem(1, 1).expire(lease)).unwrap();
    let next = waiting(&l, "pool", sem(1, 1));
    assert!(queued(&l, "pool", 2));
    // The holder's process dies: its presence key is gone, and nobody
    // releases.
    std::mem::forget(a);
    holder.close();
    let _: () = r.conn().del(format!("turn:pool:serial:{}", 1)).unwrap();
    let started = Instant::now();
    let next = next
        .recv_timeout(lease + Duration::from_secs(5))
        .unwrap()
        .unwrap();
    eprintln!("admitted {:?} after the holder died", started.elapsed());
    next.check().unwrap();
    next.release().unwrap();
}

#[test]
fn a_pending_semaphore_acquire_ends_when_a_permit_comes_back() {
    let r = Redis::start();
    let l = locker(&r);
    let a = l.acquire("pool", &sem(1, 1)).unwrap();
    let pending = l.start_acquire("pool", &sem(1, 1)).unwrap();
    assert!(pending.finish().unwrap().is_none());
    a.release().unwrap();
    assert!(support::readable(pending.fd(), 5000));
    let lock = pending.finish().unwrap().expect("held once readable");
    lock.release().unwrap();
}

#[test]
fn acquire_all_takes_every_resource_and_returns_them_in_order() {
    let r = Redis::start();
    let l = locker(&r);
    let locks = l
        .acquire_all(&["c", "a", "b"], &Acquire::label("all"))
        .unwrap();
    let names: Vec<&str> = locks.iter().map(|l| l.resource()).collect();
    assert_eq!(names, ["c", "a", "b"]);
    // A second, overlapping, gives up at its timeout and keeps nothing.
    let e = l
        .acquire_all(
            &["x", "b"],
            &Acquire::label("late").wait(Wait::For(Duration::from_millis(200))),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    l.acquire("x", &try_once(Acquire::label("x free")))
        .expect("the lock taken before the timeout was released")
        .release()
        .unwrap();
    for lock in locks {
        lock.release().unwrap();
    }
    let e = l
        .acquire_all(&["a", "a"], &Acquire::label("twice"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn acquire_all_in_opposite_orders_never_deadlocks() {
    let r = Redis::start();
    let l = locker(&r);
    let mut threads = Vec::new();
    for i in 0..4 {
        let l = l.clone();
        threads.push(thread::spawn(move || {
            let names: [&str; 3] = if i % 2 == 0 {
                ["p", "q", "r"]
            } else {
                ["r", "q", "p"]
            };
            for _ in 0..20 {
                let locks = l
                    .acquire_all(&names, &Acquire::label("t").wait(Wait::For(LONG)))
                    .unwrap();
                for lock in locks {
                    lock.release().unwrap();
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn status_shows_each_holder_and_waiter_with_its_weight_or_share() {
    let r = Redis::start();
    let l = locker(&r);
    let a = l.acquire("pool", &sem(3, 2)).unwrap();
    let waiter = waiting(&l, "pool", sem(3, 2));
    assert!(queued(&l, "pool", 2));
    let s = l.status("pool").unwrap();
    assert_eq!(s.kind, Kind::Semaphore { permits: 3 });
    let seen: Vec<(u64, bool, Mode)> = s
        .tickets
        .iter()
        .map(|t| (t.serial, t.held, t.mode))
        .collect();
    assert_eq!(
        seen,
        [
            (
                1,
                true,
                Mode::Semaphore {
                    permits: 3,
                    weight: 2
                }
            ),
            (
                2,
                false,
                Mode::Semaphore {
                    permits: 3,
                    weight: 2
                }
            )
        ]
    );
    a.release().unwrap();
    waiter
        .recv_timeout(LONG)
        .unwrap()
        .unwrap()
        .release()
        .unwrap();

    let r1 = l.acquire("doc", &rw(false)).unwrap();
    let r2 = l.acquire("doc", &rw(false)).unwrap();
    let w = waiting(&l, "doc", rw(true));
    assert!(queued(&l, "doc", 3));
    let s = l.status("doc").unwrap();
    assert_eq!(s.kind, Kind::ReadWrite);
    let seen: Vec<(bool, Mode)> = s.tickets.iter().map(|t| (t.held, t.mode)).collect();
    assert_eq!(
        seen,
        [
            (true, Mode::ReadWrite { exclusive: false }),
            (true, Mode::ReadWrite { exclusive: false }),
            (false, Mode::ReadWrite { exclusive: true })
        ]
    );
    r1.release().unwrap();
    r2.release().unwrap();
    w.recv_timeout(LONG).unwrap().unwrap().release().unwrap();
}

#[test]
fn on_a_redis_cluster_the_modes_and_acquire_all_work_whatever_the_slots() {
    let cluster = support::cluster::Cluster::start(3);
    let l = Locker::new(Some(&cluster.url())).unwrap();
    let a = l.acquire("pool", &sem(2, 1)).unwrap();
    let b = l.acquire("pool", &sem(2, 1)).unwrap();
    let e = l.acquire("pool", &try_once(sem(2, 1))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
    let c = waiting(&l, "pool", sem(2, 1));
    a.release().unwrap();
    c.recv_timeout(LONG).unwrap().unwrap().release().unwrap();
    b.release().unwrap();
    let r1 = l.acquire("doc", &rw(false)).unwrap();
    let e = l.acquire("doc", &try_once(rw(true))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
    r1.release().unwrap();
    // Names in many slots (and on several masters).
    let names: Vec<String> = (0..12).map(|i| format!("account:{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let locks = l.acquire_all(&names, &Acquire::label("all")).unwrap();
    assert_eq!(locks.len(), names.len());
    for lock in &locks {
        lock.check().unwrap();
    }
    for lock in locks {
        lock.release().unwrap();
    }
}

/// Lockers in threads take a semaphore of 3 permits with weights 1 and 2,
/// and a read-write lock, over and over: the weight held never passes the
/// permits, and no reader holds beside a writer.
#[test]
fn contending_holders_never_pass_the_permits_nor_a_writer() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    let r = Redis::start();
    let held = Arc::new(AtomicI64::new(0));
    let readers = Arc::new(AtomicI64::new(0));
    let writers = Arc::new(AtomicI64::new(0));
    let mut threads = Vec::new();
    for i in 0..8u32 {
        let l = locker(&r);
        let (held, readers, writers) = (held.clone(), readers.clone(), writers.clone());
        threads.push(thread::spawn(move || {
            let weight = 1 + i % 2;
            for round in 0..15 {
                let lock = l
                    .acquire("pool", &sem(3, weight).wait(Wait::For(LONG)))
                    .unwrap();
                let now = held.fetch_add(weight.into(), Ordering::SeqCst) + i64::from(weight);
                assert!(now <= 3, "{now} weight held of 3 permits");
                thread::sleep(Duration::from_millis(2));
                held.fetch_sub(weight.into(), Ordering::SeqCst);
                lock.check().unwrap();
                lock.release().unwrap();

                let exclusive = (i + round) % 4 == 0;
                let lock = l
                    .acquire("doc", &rw(exclusive).wait(Wait::For(LONG)))
                    .unwrap();
                if exclusive {
                    assert_eq!(writers.fetch_add(1, Ordering::SeqCst), 0, "two writers");
                    assert_eq!(
                        readers.load(Ordering::SeqCst),
                        0,
                        "a reader beside a writer"
                    );
                } else {
                    readers.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(
                        writers.load(Ordering::SeqCst),
                        0,
                        "a writer beside a reader"
                    );
                }
                thread::sleep(Duration::from_millis(2));
                if exclusive {
                    writers.fetch_sub(1, Ordering::SeqCst);
                } else {
                    readers.fetch_sub(1, Ordering::SeqCst);
                }
                lock.check().unwrap();
                lock.release().unwrap();
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let mut c = r.conn();
    assert_eq!(c.hlen::<_, i64>("turn:pool:holders").unwrap(), 0);
    assert_eq!(c.hlen::<_, i64>("turn:doc:holders").unwrap(), 0);
}

/// A turn 1.0 client sets its presence key a moment after its draw, later
/// on a slow link: its ticket is not passed before it was seen missing for
/// a lease, so it cannot hold beside ours once its key comes.
#[test]
fn a_turn_1_0_ticket_slow_to_set_its_key_is_not_passed_before_a_lease() {
    let r = Redis::start();
    let l = locker(&r);
    let lease = Duration::from_secs(3);
    let a = l.acquire("pool", &sem(2, 1).expire(lease)).unwrap();
    // Its draw: the dispenser only, its key comes 1.5 s later.
    let mut c = r.conn();
    let foreign: u64 = c.incr("turn:pool:dispenser", 1).unwrap();
    // A ticket with a short lease does not shorten the wait for it.
    let y = waiting(&l, "pool", sem(2, 1).expire(Duration::from_millis(200)));
    assert!(
        y.recv_timeout(Duration::from_millis(1500)).is_err(),
        "not admitted past the ticket missing its key"
    );
    turn_1_0::present(&mut c, "pool", foreign, 30);
    a.release().unwrap();
    // Now it holds alone (the indicator shows it), and ours waits.
    assert!(support::eventually(Duration::from_secs(5), || {
        c.get::<_, String>("turn:pool:indicator").ok() == Some(foreign.to_string())
    }));
    assert!(
        y.recv_timeout(Duration::from_millis(500)).is_err(),
        "not beside it"
    );
    // It leaves as turn 1.0 does.
    turn_1_0::release(&mut c, "pool", foreign);
    y.recv_timeout(LONG).unwrap().unwrap().release().unwrap();
}

/// One that never sets its key (its client died right after the draw)
/// holds the queue back for a lease of the ticket behind it (10 s at
/// least), no longer.
#[test]
fn a_turn_1_0_ticket_that_never_sets_its_key_is_passed_after_a_lease() {
    let r = Redis::start();
    let l = locker(&r);
    let lease = Duration::from_secs(1);
    l.acquire("pool", &sem(2, 1)).unwrap().release().unwrap();
    let _: u64 = r.conn().incr("turn:pool:dispenser", 1).unwrap();
    let started = Instant::now();
    let lock = l
        .acquire("pool", &sem(2, 1).expire(lease).wait(Wait::For(3 * LONG)))
        .unwrap();
    eprintln!("passed after {:?}", started.elapsed());
    lock.release().unwrap();
}

/// turn 1.0's reset deletes the dispenser and indicator alone: a plain
/// queue its clients make anew there is not taken for the semaphore that
/// was.
#[test]
fn a_queue_made_anew_by_turn_1_0_clients_is_plain_again() {
    let r = Redis::start();
    let l = locker(&r);
    for _ in 0..3 {
        l.acquire("pool", &sem(3, 1)).unwrap().release().unwrap();
    }
    let mut c = r.conn();
    let _: () = c
        .del(&["turn:pool:dispenser", "turn:pool:indicator"])
        .unwrap();
    turn_1_0::draw(&mut c, "pool");
    let _: () = c.del("turn:pool:indicator").unwrap();
    let _: () = c.set("turn:pool:indicator", 2).unwrap();
    let lock = l
        .acquire("pool", &Acquire::label("plain now"))
        .expect("a plain queue again");
    assert_eq!(l.status("pool").unwrap().kind, Kind::Plain);
    lock.release().unwrap();
}

/// A waiter's call is its nonce on its locker's channel; a call that comes
/// while it is not admitted (a forged one here, as a stale one from a
/// vanished queue would) must not grant it: its confirmation reads the
/// queue (one MGET on a single server, with default options) and goes on
/// waiting, and is granted when a permit comes back.
#[test]
fn a_call_that_does_not_admit_a_shared_waiter_does_not_grant_it() {
    let r = Redis::start();
    let l = locker(&r);
    let holder = l.acquire("pool", &sem(1, 1)).unwrap();
    let w = waiting(&l, "pool", sem(1, 1));
    assert!(queued(&l, "pool", 2));
    let s = holder.serial() + 1;
    let mut c = r.conn();
    let (nonce, channel) = call_of(&mut c, "pool", s);
    for _ in 0..3 {
        let _: () = c.publish(&channel, &nonce).unwrap();
    }
    assert!(
        w.recv_timeout(Duration::from_millis(500)).is_err(),
        "a forged call granted a waiter that does not fit"
    );
    assert!(holder.check().is_ok(), "the holder still holds");
    let holder_token = holder.token();
    holder.release().unwrap();
    let next = w
        .recv_timeout(LONG)
        .expect("the waiter is admitted")
        .unwrap();
    assert_eq!(next.serial(), s);
    assert!(next.token() > holder_token);
    assert!(next.check().is_ok());
}

/// A turn 1.0 client's release is unconditional: drawn before the queue
/// was made anew (FLUSHDB here) and released after, it sets the indicator
/// past our live waiter W. No later ticket may pass W (FIFO), a call of W
/// while it does not fit must not grant it, and W is admitted in its turn.
#[test]
fn a_stale_turn_1_0_release_lets_no_ticket_pass_a_live_waiter() {
    let r = Redis::start();
    let l = locker(&r);
    let mut c = r.conn();
    for _ in 0..3 {
        l.acquire("pool", &sem(2, 1)).unwrap().release().unwrap();
    }
    let old = turn_1_0::draw(&mut c, "pool");
    turn_1_0::present(&mut c, "pool", old, 60);
    let _: () = redis::cmd("FLUSHDB").query(&mut c).unwrap();
    let a = l.acquire("pool", &sem(2, 1)).unwrap();
    let w = waiting(&l, "pool", sem(2, 2));
    assert!(queued(&l, "pool", 2));
    let w_serial = a.serial() + 1;
    assert!(old > w_serial, "the premise: the stale serial is past W's");
    // The turn 1.0 client's release, stale.
    turn_1_0::release(&mut c, "pool", old);
    assert_eq!(
        outcome(&l.acquire("pool", &try_once(sem(2, 1)))),
        Err(ErrorKind::WouldBlock),
        "a later ticket passed the live waiter {w_serial}"
    );
    // A call of W (its nonce) while it does not fit grants nothing.
    let (nonce, channel) = call_of(&mut c, "pool", w_serial);
    let _: () = c.publish(channel, nonce).unwrap();
    assert!(
        w.recv_timeout(Duration::from_millis(500)).is_err(),
        "W answered while A holds 1 of 2 permits and W weighs 2"
    );
    let a_token = a.token();
    a.release().unwrap();
    let w = w.recv_timeout(LONG).expect("W is admitted").unwrap();
    assert_eq!(w.serial(), w_serial);
    assert!(w.token() > a_token);
    let holders: std::collections::HashMap<String, u64> = c.hgetall("turn:pool:holders").unwrap();
    assert_eq!(holders.values().sum::<u64>(), 2, "W alone: {holders:?}");
}

/// A called waiter confirms that it is a holder in one atomic read, even
/// when a slow link cuts the read in two. W's confirmation is split before
/// its MGET; meanwhile a stale turn 1.0 release deletes W's presence key,
/// our B's draw drops W from the holders and takes the only permit, and a
/// stale turn 1.0 keeper sets W's presence key again. W must not answer Ok
/// beside B.
#[test]
fn a_called_waiters_confirmation_split_by_a_slow_link_grants_no_dropped_ticket() {
    let r = Redis::start();
    let proxy = support::proxy::Proxy::start(r.port);
    let la = locker(&r);
    let lw = Locker::new(Some(&proxy.url())).unwrap();
    let mut c = r.conn();
    let mut holder = la.acquire("q", &sem(1, 1)).unwrap();
    // A waiter reading the queue at the moment of the release is granted by
    // its own check, not called: then it holds, and the next one tries.
    for _ in 0..5 {
        let w = waiting(&lw, "q", sem(1, 1).wait(Wait::For(Duration::from_secs(30))));
        let w_serial = holder.serial() + 1;
        assert!(support::eventually(LONG, || c
            .hexists::<_, _, bool>("turn:q:weights", w_serial)
            .unwrap()));
        call_of(&mut c, "q", w_serial);
        // The confirmation's MGET (three keys) and what follows are held.
        proxy.split_before(b"*4\r\n$4\r\nMGET\r\n");
        holder.release().unwrap();
        if !support::eventually(Duration::from_secs(3), || proxy.split_happened()) {
            proxy.release_split();
            holder = w.recv_timeout(LONG).expect("W is granted").unwrap();
            continue;
        }
        let _: () = c.del(format!("turn:q:serial:{w_serial}")).unwrap();
        let _: () = c.set("turn:q:indicator", w_serial + 1).unwrap();
        let b = la.acquire("q", &try_once(sem(1, 1))).unwrap();
        turn_1_0::present(&mut c, "q", w_serial, 60);
        proxy.release_split();
        let holders: std::collections::HashMap<String, u64> = c.hgetall("turn:q:holders").unwrap();
        assert_eq!(
            holders.keys().collect::<Vec<_>>(),
            [&b.serial().to_string()]
        );
        if let Ok(Ok(lock)) = w.recv_timeout(Duration::from_secs(2)) {
            panic!(
                "W answered Ok (serial {}) while B (serial {}) holds the only permit: {holders:?}",
                lock.serial(),
                b.serial()
            );
        }
        assert!(b.check().is_ok());
        return;
    }
    panic!("the premise: a called waiter's confirmation went through the split");
}

/// The same stale release from a queue that had drawn far more tickets
/// (serial 5000): the indicator lands far past the dispenser. No later
/// ticket passes the waiter, no draw takes the indicator's serial (which
/// would make a new token base and lose every ticket of the queue), and
/// holder and waiter keep their tickets.
#[test]
fn a_far_stale_turn_1_0_release_lets_no_ticket_pass_and_loses_no_ticket() {
    let r = Redis::start();
    let l = locker(&r);
    let mut c = r.conn();
    let a = l.acquire("pool", &sem(2, 1)).unwrap();
    let w = waiting(&l, "pool", sem(2, 2));
    assert!(queued(&l, "pool", 2));
    let w_serial = a.serial() + 1;
    turn_1_0::release(&mut c, "pool", 5000);
    assert_eq!(
        outcome(&l.acquire("pool", &try_once(sem(2, 1)))),
        Err(ErrorKind::WouldBlock),
        "a later ticket passed the live waiter {w_serial}"
    );
    let dispenser: u64 = c.get("turn:pool:dispenser").unwrap();
    assert_eq!(
        dispenser,
        w_serial + 1,
        "the draw kept the dispenser's count"
    );
    assert!(a.check().is_ok(), "the holder keeps its lock");
    let a_token = a.token();
    a.release().unwrap();
    let w = w.recv_timeout(LONG).expect("W is admitted").unwrap();
    assert_eq!(w.serial(), w_serial, "W kept its place");
    assert!(w.token() > a_token);
    let indicator: u64 = c.get("turn:pool:indicator").unwrap();
    assert_eq!(indicator, w_serial, "the indicator shows the lowest holder");
}

/// After turn 1.0's reset (the dispenser and indicator deleted) our draw
/// makes the queue anew behind a turn 1.0 ticket whose key is not set
/// yet, so nothing is admitted; then a stale turn 1.0 release moves the
/// indicator past our waiter. A later ticket still must not pass it.
#[test]
fn a_stale_release_after_a_turn_1_0_reset_lets_no_ticket_pass_a_live_waiter() {
    let r = Redis::start();
    let l = locker(&r);
    let mut c = r.conn();
    for _ in 0..3 {
        l.acquire("pool", &sem(2, 1)).unwrap().release().unwrap();
    }
    turn_1_0::present(&mut c, "pool", 7, 60);
    let _: () = c
        .del(&["turn:pool:dispenser", "turn:pool:indicator"])
        .unwrap();
    let one = turn_1_0::draw(&mut c, "pool");
    assert_eq!(one, 1, "the premise: a turn 1.0 ticket 1, its key not set");
    let _a = waiting(&l, "pool", sem(2, 2).wait(Wait::For(LONG)));
    assert!(support::eventually(LONG, || c
        .hexists::<_, _, bool>("turn:pool:weights", 2)
        .unwrap()));
    turn_1_0::release(&mut c, "pool", 7);
    assert_eq!(
        outcome(&l.acquire("pool", &try_once(sem(2, 1)))),
        Err(ErrorKind::WouldBlock),
        "a later ticket passed the turn 1.0 ticket and the live waiter"
    );
    let admitted: u64 = c.get("turn:pool:admitted").unwrap();
    assert_eq!(admitted, 0, "nothing admitted past the turn 1.0 ticket");
}

/// turn 1.0 tickets whose clients died before setting their keys, in a
/// row behind our holder: each may be passed once seen missing for 10 s
/// (the default lease), and they are seen together, not one after
/// another. Our waiter behind them is admitted as soon as the holder
/// leaves, once they have been missing that long (with one 10 s wait
/// each, it would wait 20 s more).
#[test]
fn dead_turn_1_0_tickets_without_their_keys_cost_one_wait_together() {
    let r = Redis::start();
    let l = locker(&r);
    let mut c = r.conn();
    let h = l.acquire("pool", &sem(1, 1)).unwrap();
    for _ in 0..3 {
        let _: u64 = c.incr("turn:pool:dispenser", 1).unwrap();
    }
    let w = waiting(
        &l,
        "pool",
        sem(1, 1).wait(Wait::For(Duration::from_secs(120))),
    );
    let w_serial = h.serial() + 4;
    assert!(support::eventually(LONG, || c
        .hexists::<_, _, bool>("turn:pool:weights", w_serial)
        .unwrap()));
    thread::sleep(Duration::from_secs(11));
    h.release().unwrap();
    let w = w
        .recv_timeout(Duration::from_secs(8))
        .expect("the waiter is admitted once the holder leaves")
        .unwrap();
    assert_eq!(w.serial(), w_serial);
}

/// FLUSHDB, then a stale turn 1.0 release writes an indicator alone: that
/// is no plain queue, and a semaphore takes the resource.
#[test]
fn an_indicator_alone_after_flushdb_is_no_queue_of_any_kind() {
    let r = Redis::start();
    let l = locker(&r);
    let mut c = r.conn();
    l.acquire("pool", &sem(2, 1)).unwrap().release().unwrap();
    let _: () = redis::cmd("FLUSHDB").query(&mut c).unwrap();
    let _: () = c.set("turn:pool:indicator", 8).unwrap();
    let lock = l.acquire("pool", &sem(2, 1).wait(Wait::For(LONG))).unwrap();
    assert!(lock.check().is_ok());
    let kind: String = c.get("turn:pool:kind").unwrap();
    assert_eq!(kind, "semaphore 2");
}
