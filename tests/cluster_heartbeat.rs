//! The heartbeat on a Redis Cluster: a pipeline per master per beat, routed
//! by slot, so that 10,000 locks over a slow link keep their leases;
//! redirects followed while a queue's slot moves between masters, without
//! a live lock ever reported lost; and replica confirmation when asked for
//! (a `WAIT` ending each master's pipeline).

use crate::support;

use std::sync::{Arc, Mutex};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use support::cluster::Cluster;
use support::{eventually, signal};
use turn::{Acquire, ErrorKind, Lock, Locker, MinReplicas, Options, Wait};

/// Takes `n` locks on distinct resources from `threads` threads.
fn take(l: &Locker, n: usize, threads: usize, request: &Acquire) -> Vec<Lock> {
    let locks = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (l, locks, request) = (l.clone(), locks.clone(), request.clone());
            thread::spawn(move || {
                for i in (t..n).step_by(threads) {
                    let lock = l.acquire(&format!("held-{i}"), &request).unwrap();
                    locks.lock().unwrap().push(lock);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    Arc::try_unwrap(locks).ok().unwrap().into_inner().unwrap()
}

/// Releases every lock from `threads` threads; each release must answer
/// Ok (Redis agrees the lock was still held).
fn release_all(locks: Vec<Lock>, threads: usize) {
    let locks = Arc::new(Mutex::new(locks));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let locks = locks.clone();
            thread::spawn(move || {
                loop {
                    let Some(lock) = locks.lock().unwrap().pop() else {
                        return;
                    };
                    let name = lock.resource().to_string();
                    if let Err(e) = lock.release() {
                        panic!("release of {name}: {e}");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn ten_thousand_locks_on_a_three_master_cluster_over_a_slow_link_survive_three_beats() {
    let cluster = Cluster::start(3);
    cluster.latency(Duration::from_millis(1));
    let l = Locker::new(Some(&cluster.url())).unwrap();
    let start = Instant::now();
    // The default lease (10 s): a beat every 3.3 s.
    let locks = take(&l, 10_000, 16, &Acquire::label("held"));
    println!(
        "10,000 locks taken in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let beats_before = l.last_beat().map_or(0, |b| b.beats);
    // Three beats of every ticket: three thirds of the lease.
    let lease = turn::DEFAULT_EXPIRE;
    sleep(lease + lease / 6);
    let beat = l.last_beat().expect("the heartbeat beat");
    println!(
        "last beat: {} tickets in {} ms, {} round trips (shortest lease {} ms); {} beats in the window, {} slow since the start",
        beat.tickets,
        beat.duration.as_millis(),
        beat.round_trips,
        beat.shortest_lease.as_millis(),
        beat.beats - beats_before,
        beat.slow_beats
    );
    let lost = locks.iter().filter(|lock| lock.check().is_err()).count();
    assert_eq!(lost, 0, "{lost} of 10,000 locks lost");
    assert!(beat.beats - beats_before >= 3, "three beats or more");
    // Steady state: one pipeline per master, nothing else.
    assert!(
        beat.round_trips <= 3,
        "{} round trips in a beat over 3 masters",
        beat.round_trips
    );
    release_all(locks, 16);
}

/// Moves `slot` from node `from` to node `to` as `redis-cli --cluster
/// reshard` does, a key at a time, pausing `pause` in each state so that
/// beats see it half moved.
fn move_slot(cluster: &Cluster, slot: u16, from: usize, to: usize, pause: Duration) {
    let (from_id, to_id) = (cluster.id(from), cluster.id(to));
    let mut src = cluster.nodes[from].conn();
    let mut dst = cluster.nodes[to].conn();
    let setslot = |c: &mut redis::Connection, state: &str, id: &str| {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(id)
            .query(c)
            .unwrap();
    };
    setslot(&mut dst, "IMPORTING", &from_id);
    setslot(&mut src, "MIGRATING", &to_id);
    sleep(pause);
    let keys: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(1000)
        .query(&mut src)
        .unwrap();
    for key in keys {
        let _: () = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(cluster.nodes[to].port)
            .arg(&key)
            .arg(0)
            .arg(5000)
            .query(&mut src)
            .unwrap();
        sleep(pause);
    }
    setslot(&mut dst, "NODE", &to_id);
    setslot(&mut src, "NODE", &to_id);
    for n in &cluster.nodes {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("NODE")
            .arg(&to_id)
            .query(&mut n.conn())
            .unwrap_or(());
    }
}

#[test]
fn locks_whose_slots_move_between_masters_mid_beat_are_kept_and_a_gone_one_is_lost() {
    let cluster = Cluster::start(3);
    let l = Locker::with_options(Some(&cluster.url()), Options::default()).unwrap();
    // A beat every second; a slot spends 150 ms in each half-moved state
    // (while its keys are split, a renewal meets TRYAGAIN and waits for the
    // next beat: the lease leaves room for a few of those).
    let lease = Duration::from_secs(3);
    let locks = take(&l, 60, 4, &Acquire::label("held").expire(lease));
    let slot_of = |lock: &Lock| {
        let key = format!("turn:{{{}}}:indicator", lock.resource());
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query::<u16>(&mut cluster.nodes[0].conn())
            .unwrap()
    };
    // Move the slots of the first 6 locks to the next master, one by one:
    // the beats meet ASK, TRYAGAIN (keys half moved), then MOVED.
    for lock in &locks[..6] {
        let slot = slot_of(lock);
        let from = cluster.owner(slot);
        move_slot(
            &cluster,
            slot,
            from,
            (from + 1) % 3,
            Duration::from_millis(150),
        );
    }
    // The moved slots' old owners now answer MOVED until the table is
    // read again; give the heartbeat a few beats.
    sleep(lease * 2);
    let lost: Vec<&str> = locks
        .iter()
        .filter(|lock| lock.check().is_err())
        .map(|lock| lock.resource())
        .collect();
    assert!(lost.is_empty(), "live locks reported lost: {lost:?}");
    let beat = l.last_beat().unwrap();
    println!(
        "last beat: {} tickets, {} round trips, {} ms",
        beat.tickets,
        beat.round_trips,
        beat.duration.as_millis()
    );
    // A lock whose presence key is deleted on its (new) master is found
    // lost: the beat reached the right node.
    let gone = &locks[0];
    let slot = slot_of(gone);
    let owner = cluster.owner(slot);
    let _: () = redis::cmd("DEL")
        .arg(format!(
            "turn:{{{}}}:serial:{}",
            gone.resource(),
            gone.serial()
        ))
        .query(&mut cluster.nodes[owner].conn())
        .unwrap();
    assert!(
        eventually(lease, || gone.check().is_err()),
        "a lock whose key is gone is reported lost within a beat"
    );
    let mut locks = locks;
    let gone = locks.remove(0);
    assert!(gone.release().is_err(), "its release answers Lost");
    release_all(locks, 4);
}

/// The index of the master that holds `resource`'s queue.
fn master_of(cluster: &Cluster, resource: &str) -> usize {
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(format!("turn:{{{resource}}}:indicator"))
        .query(&mut cluster.nodes[0].conn())
        .unwrap();
    cluster.owner(slot)
}

#[test]
fn replica_confirmation_on_a_cluster_grants_renews_and_hands_off_only_what_replicas_have() {
    let cluster = Cluster::start_with_replicas(3, 1);
    // The option under test: one replica within 300 ms (a Cluster's
    // default is none).
    let options = || Options {
        min_replicas: Some(MinReplicas::new(1, Duration::from_millis(300))),
        ..Options::default()
    };
    let a = Locker::with_options(Some(&cluster.url()), options()).unwrap();
    let b = Locker::with_options(Some(&cluster.url()), options()).unwrap();
    assert_eq!(a.min_replicas().replicas, 1);
    let lease = Acquire::label("held").expire(Duration::from_millis(1500));
    // Grants and renewals confirmed: locks on every master kept for two
    // leases, and a hand-off from one locker to the other.
    let locks: Vec<Lock> = (0..12)
        .map(|i| a.acquire(&format!("r{i}"), &lease).unwrap())
        .collect();
    let waiter = {
        let b = b.clone();
        thread::spawn(move || {
            b.acquire(
                "r0",
                &Acquire::label("next").wait(Wait::For(Duration::from_secs(20))),
            )
        })
    };
    assert!(support::queued(&a, "r0", 2), "the waiter queued");
    sleep(Duration::from_secs(3));
    for lock in &locks {
        assert!(lock.check().is_ok(), "{} lost", lock.resource());
    }
    let mut locks = locks.into_iter();
    let first = locks.next().unwrap();
    let token = first.token();
    first.release().unwrap();
    let next = waiter.join().unwrap().expect("the hand-off");
    assert!(next.token() > token);
    next.release().unwrap();
    // The replica of the master holding "r1" stops: its renewals are not
    // confirmed any more, so the lock is reported lost by the local clock
    // (its lease on the replica can lapse no later), and a new grant
    // there is not Ok but a Connection error; locks on the other masters
    // are kept.
    let master = master_of(&cluster, "r1");
    let replicas = cluster.replicas_of(master);
    assert_eq!(replicas.len(), 1, "one replica of node {master}");
    let replica = &cluster.nodes[replicas[0]];
    let pid = replica.pid().unwrap();
    signal(pid, "STOP");
    let held: Vec<Lock> = locks.collect();
    let r1 = held.iter().find(|l| l.resource() == "r1").unwrap();
    assert!(
        eventually(Duration::from_secs(5), || r1.check().is_err()),
        "a lock whose renewals no replica confirms is reported lost"
    );
    // Long enough for the lost ticket's key to lapse on the master (it
    // was renewed there, unconfirmed, until the loss): then the grant
    // comes, and no replica confirms it.
    let refused = a.acquire(
        "r1",
        &Acquire::label("again").wait(Wait::For(Duration::from_secs(5))),
    );
    let try_once = a.acquire("r1", &Acquire::label("try").wait(Wait::TryOnce));
    signal(pid, "CONT");
    match refused {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Connection, "{e}"),
        Ok(lock) => panic!("granted without a replica: token {}", lock.token()),
    }
    match try_once {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Connection, "{e}"),
        Ok(lock) => panic!("granted without a replica: token {}", lock.token()),
    }
    for lock in held {
        let other_master = master_of(&cluster, lock.resource()) != master;
        if other_master {
            assert!(lock.check().is_ok(), "{} lost", lock.resource());
            lock.release().unwrap();
        }
    }
}
