//! One stalled master of a cluster must not cost the locks kept on the
//! other, healthy masters: the heartbeat reads each master's pipeline for
//! a third of the shortest lease at most, and any side request (a
//! connection readied, the slot table read) for a slice of that. And the
//! shared modes under load (a semaphore, a read-write lock, acquires of all
//! across the slots of three masters) break no guarantee while masters
//! stall in turn (tests/support/history.rs checks the history).

use crate::support;

use std::thread::sleep;
use std::time::{Duration, Instant};

use support::Rng;
use support::cluster::Cluster;
use support::history::{Rules, Sink};
use support::load::{ALL_OF, Load, lockers};
use turn::{Acquire, Locker, Wait};

fn slot_of(c: &Cluster, key: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(&mut c.nodes[0].conn())
        .unwrap()
}

#[test]
fn a_stalled_master_does_not_lose_locks_on_healthy_masters() {
    let cluster = Cluster::start(3);
    // One resource per master.
    let mut names: Vec<Option<String>> = vec![None; 3];
    for i in 0.. {
        let name = format!("res{i}");
        let owner = cluster.owner(slot_of(&cluster, &format!("turn:{{{name}}}:indicator")));
        if names[owner].is_none() {
            names[owner] = Some(name);
        }
        if names.iter().all(Option::is_some) {
            break;
        }
    }
    let names: Vec<String> = names.into_iter().map(Option::unwrap).collect();
    for stalled in 0..3 {
        // Fresh locks each time (the stalled master's lock is lost, as it
        // must be: its lease lapses); a lease short enough to lapse within
        // the test, which is what a stall must not cost the others.
        let l = Locker::new(Some(&cluster.url())).unwrap();
        let locks: Vec<_> = names
            .iter()
            .map(|n| {
                l.acquire(n, &Acquire::label("x").expire(Duration::from_secs(4)))
                    .unwrap()
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        assert!(locks.iter().all(|k| !k.is_lost()));
        cluster.proxies[stalled].stall();
        let t = Instant::now();
        let mut lost_healthy = vec![];
        while t.elapsed() < Duration::from_secs(10) {
            for (i, k) in locks.iter().enumerate() {
                if i != stalled && k.is_lost() && !lost_healthy.contains(&i) {
                    lost_healthy.push(i);
                    println!(
                        "stalled master {stalled}: lock on healthy master {i} lost after {:?}",
                        t.elapsed()
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        cluster.proxies[stalled].resume();
        println!(
            "health: {:?}; last beat {:?}",
            l.health().map_err(|e| e.to_string()),
            l.last_beat()
        );
        assert!(
            lost_healthy.is_empty(),
            "stalled {stalled}: locks on healthy masters lost: {lost_healthy:?}"
        );
        l.close();
    }
}

#[test]
fn masters_stalling_in_turn_break_no_guarantee_of_the_shared_modes_across_slots() {
    let cluster = Cluster::start(3);
    // The premise: the resources of the acquires of all are on three
    // masters.
    let mut owners: Vec<usize> = ALL_OF
        .iter()
        .map(|r| cluster.owner(slot_of(&cluster, &format!("turn:{{{r}}}:indicator"))))
        .collect();
    owners.sort();
    assert_eq!(owners, [0, 1, 2], "{ALL_OF:?} on three masters");
    let mut load = Load::new();
    let ls = lockers(&cluster.url(), 3);
    let request = Acquire::default()
        .expire(Duration::from_secs(2))
        .wait(Wait::For(Duration::from_secs(10)));
    load.shared_modes(&ls, &request, Duration::from_millis(5), Duration::ZERO);
    let mut rng = Rng::seeded("stalls under the shared modes");
    sleep(Duration::from_secs(1));
    // Each master stalls once, some past the lease.
    for master in 0..3 {
        load.history.fault_start("stall");
        cluster.proxies[master].stall();
        sleep(rng.between(Duration::from_millis(500), Duration::from_millis(2500)));
        cluster.proxies[master].resume();
        load.history.fault_end("stall");
        sleep(Duration::from_millis(700));
    }
    sleep(Duration::from_secs(1));
    load.stop(Duration::from_secs(60));
    load.history
        .check(&Rules::default())
        .assert_sound("masters stalling under the shared modes", 50);
}
