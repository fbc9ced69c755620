//! What a status tells of each ticket: who holds and since when, its lease
//! left and token, each waiter's place and wait, turn 1.0 tickets as such.

use crate::support;

use std::time::Duration;

use redis::Commands;
use support::{Redis, queued};
use turn::{Acquire, Locker};

#[test]
fn status_tells_holders_and_waiters_apart_with_their_ages_leases_and_tokens() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let held = l
        .acquire(
            "printer",
            &Acquire::label("holder").expire(Duration::from_secs(8)),
        )
        .unwrap();
    let waiters: Vec<_> = (0..2)
        .map(|i| {
            let l = l.clone();
            // Each releases its own lock: the threads may draw in any order.
            std::thread::spawn(move || l.lock("printer", &format!("waiter {i}"))?.release())
        })
        .collect();
    assert!(queued(&l, "printer", 3));
    // A ticket of turn 1.0's kind: a presence key without our identity.
    let mut c = r.conn();
    let serial: u64 = c.incr("turn:printer:dispenser", 1).unwrap();
    let _: () = c
        .set_ex(format!("turn:printer:serial:{serial}"), "python", 30)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let s = l.status("printer").unwrap();
    assert_eq!(s.tickets.len(), 4);
    let h = &s.tickets[0];
    assert!(h.held && h.ours && h.position.is_none());
    assert_eq!(h.token, Some(held.token()));
    assert!(
        h.held_for.is_some_and(|d| d >= Duration::from_millis(300)),
        "{h:?}"
    );
    assert!(h.waited_for.is_none());
    assert!(
        h.lease_left
            .is_some_and(|d| d > Duration::ZERO && d <= Duration::from_secs(8)),
        "{h:?}"
    );
    for (i, w) in s.tickets[1..3].iter().enumerate() {
        assert!(!w.held && w.ours, "{w:?}");
        assert_eq!(w.position, Some(i as u64 + 1));
        assert!(
            w.waited_for
                .is_some_and(|d| d >= Duration::from_millis(300)),
            "{w:?}"
        );
        assert!(w.token.is_some_and(|t| t > held.token()));
    }
    let py = &s.tickets[3];
    assert!(
        !py.ours && py.token.is_none() && py.waited_for.is_none(),
        "{py:?}"
    );
    assert_eq!(py.position, Some(3));
    let _: () = c.del(format!("turn:printer:serial:{serial}")).unwrap();

    held.release().unwrap();
    for w in waiters {
        w.join().unwrap().unwrap();
    }
}
