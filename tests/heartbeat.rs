//! The heartbeat keeps every healthy lock through what happens to others:
//! a server that forgot its scripts, and a damaged key in another queue.

mod support;

use std::thread::sleep;
use std::time::Duration;

use support::Redis;
use turn::{Acquire, Locker};

#[test]
fn a_script_flush_loses_no_lock_even_with_the_shortest_leases() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    // 150 ms: a beat every 50 ms, so a renewal cannot wait for a
    // reconnection after the server forgot the script.
    let lease = Duration::from_millis(150);
    let mut lost = 0;
    for _ in 0..5 {
        let lock = l.acquire("x", &Acquire::label("a").expire(lease)).unwrap();
        sleep(lease / 2);
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut r.conn())
            .unwrap();
        sleep(Duration::from_millis(1000));
        if lock.check().is_err() {
            lost += 1;
        }
        let _ = lock.release();
    }
    assert_eq!(lost, 0, "{lost} of 5 locks lost to a SCRIPT FLUSH");
}

#[test]
fn a_damaged_key_of_one_queue_loses_no_lock_of_another() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let lease = Acquire::label("a").expire(Duration::from_secs(1));
    let good = l.acquire("good", &lease).unwrap();
    let bad = l.acquire("bad", &lease).unwrap();
    // The identity key of "bad" becomes a list.
    let key = format!("turn:bad:ticket:{}", bad.serial());
    let mut c = r.conn();
    let _: () = redis::cmd("DEL").arg(&key).query(&mut c).unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(&key)
        .arg("x")
        .query(&mut c)
        .unwrap();
    sleep(Duration::from_secs(3));
    assert!(bad.check().is_err(), "the damaged lock is reported lost");
    assert!(good.check().is_ok(), "the healthy lock was lost with it");
    good.release().unwrap();
}

#[test]
fn a_beat_slower_than_a_third_of_the_shortest_lease_is_reported_by_health() {
    let r = Redis::start();
    let proxy = support::proxy::Proxy::start(r.port);
    let l = Locker::new(Some(&proxy.url())).unwrap();
    assert!(l.health().is_ok());
    // A lease of 1.2 s: a beat every 400 ms, which a round trip of 500 ms
    // (250 ms each way) cannot keep.
    let lock = l
        .acquire(
            "slow",
            &Acquire::label("a").expire(Duration::from_millis(1200)),
        )
        .unwrap();
    proxy.latency(Duration::from_millis(250), Duration::ZERO);
    assert!(
        support::eventually(Duration::from_secs(5), || l.health().is_err()),
        "a slow beat is reported"
    );
    let e = l.health().unwrap_err();
    assert_eq!(e.kind(), turn::ErrorKind::Connection);
    assert!(e.message().contains("too slow"), "{}", e.message());
    let beat = l.last_beat().unwrap();
    assert!(beat.slow_beats >= 1);
    println!("{e}; last beat {beat:?}");
    proxy.latency(Duration::ZERO, Duration::ZERO);
    drop(lock);
}
