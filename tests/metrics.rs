//! What a locker counts of its own work (`Locker::metrics`,
//! `turn_locker_metrics`): each counter moved by the event it counts, and
//! the text in the Prometheus format.

use crate::support;

use std::time::Duration;

use redis::Commands;
use support::{Redis, eventually, queued};
use turn::{Acquire, Cancel, ErrorKind, Locker, Wait};

#[test]
fn each_counter_moves_with_the_event_it_counts() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let other = Locker::new(Some(&r.url())).unwrap();
    assert_eq!(l.metrics().acquired_at_once, 0);

    // At once, then after waiting (called by the release: a hand-off).
    let held = l.lock("printer", "first").unwrap();
    let waiter = {
        let l = l.clone();
        std::thread::spawn(move || l.lock("printer", "second"))
    };
    assert!(queued(&other, "printer", 2));
    // A try-lock and a timeout meanwhile.
    let e = l
        .acquire("printer", &Acquire::label("try").wait(Wait::TryOnce))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    let e = l
        .acquire(
            "printer",
            &Acquire::label("late").wait(Wait::For(Duration::from_millis(50))),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    // A cancel.
    let cancel = Cancel::new();
    cancel.cancel();
    let e = l
        .acquire("printer", &Acquire::label("canceled").cancel(&cancel))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Canceled);
    held.release().unwrap();
    let second = waiter.join().unwrap().unwrap();

    // A lost lock: its presence key is gone; the heartbeat finds out.
    let _: () = r
        .conn()
        .del(format!("turn:printer:serial:{}", second.serial()))
        .unwrap();
    assert!(eventually(Duration::from_secs(15), || second.is_lost()));

    let m = l.metrics();
    assert_eq!(m.acquired_at_once, 1, "{m:?}");
    assert_eq!(m.acquired_after_waiting, 1, "{m:?}");
    assert_eq!(m.handoffs, 1, "{m:?}");
    assert_eq!(m.would_block, 1, "{m:?}");
    assert_eq!(m.timeouts, 1, "{m:?}");
    assert_eq!(m.cancels, 1, "{m:?}");
    assert_eq!(m.lost, 1, "{m:?}");
    assert_eq!(m.wait.count, 2, "{m:?}");
    assert_eq!(m.hold.count, 1, "the first lock's hold: {m:?}");
    assert!(m.beats >= 1, "{m:?}");
    drop(second);
    assert_eq!(
        other.metrics().acquired_at_once,
        0,
        "each locker counts its own"
    );

    let text = l.metrics().text();
    for line in [
        "turn_acquires_total{granted=\"at_once\"} 1",
        "turn_acquires_total{granted=\"after_waiting\"} 1",
        "turn_acquire_failures_total{reason=\"timeout\"} 1",
        "turn_locks_lost_total 1",
        "turn_handoffs_total 1",
        "turn_wait_seconds_count 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[test]
fn closing_with_locks_held_counts_no_loss() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let lock = l.lock("printer", "held at close").unwrap();
    l.close();
    assert!(lock.is_lost());
    assert_eq!(l.metrics().lost, 0);
}
