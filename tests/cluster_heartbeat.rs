//! The heartbeat on a Redis Cluster: a pipeline per master per beat, routed
//! by slot, so that 10,000 locks over a slow link keep their leases; and
//! redirects followed while a queue's slot moves between masters, without
//! a live lock ever reported lost.

mod support;

use std::sync::{Arc, Mutex};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use support::cluster::Cluster;
use support::eventually;
use turn::{Acquire, Lock, Locker, Options};

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
