//! One stalled master of a cluster must not cost the locks kept on the
//! other, healthy masters: the heartbeat reads each master's pipeline for
//! a third of the shortest lease at most, and any side request (a
//! connection readied, the slot table read) for a slice of that.

use crate::support;

use std::time::{Duration, Instant};

use support::cluster::Cluster;
use turn::{Acquire, Locker};

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
