//! Pending acquires (`Locker::start_acquire`): a ticket drawn in one round
//! trip, its wait stepped by the locker's notifier thread, its outcome
//! shown by a file descriptor.

use crate::support;

use std::time::Duration;

use support::{Redis, queued, readable};
use turn::{Acquire, ErrorKind, Locker, Wait};

#[test]
fn a_free_resource_is_granted_by_the_draw_and_the_fd_is_readable_at_once() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let p = l.start_acquire("free", &Acquire::label("x")).unwrap();
    assert!(readable(p.fd(), 0));
    let lock = p.finish().unwrap().expect("held");
    assert_eq!(lock.serial(), 1);
    let again = p.finish().unwrap_err();
    assert_eq!(again.kind(), ErrorKind::InvalidArgument);
    lock.release().unwrap();
}

#[test]
fn a_pending_waits_behind_the_holder_with_its_position_and_is_called_on_release() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let holder = l.lock("q", "holder").unwrap();
    let first = l.start_acquire("q", &Acquire::label("first")).unwrap();
    let second = l.start_acquire("q", &Acquire::label("second")).unwrap();
    let third = l.start_acquire("q", &Acquire::label("third")).unwrap();
    assert_eq!(third.ahead(), 3, "the holder and two waiters");
    assert_eq!(first.ahead(), 1);
    assert_eq!((first.serial(), third.serial()), (Some(2), Some(4)));
    assert!(!readable(first.fd(), 200));
    assert!(first.finish().unwrap().is_none());
    holder.release().unwrap();
    assert!(readable(first.fd(), 30_000));
    let lock = first.finish().unwrap().expect("held");
    assert_eq!(lock.serial(), 2);
    assert_eq!(first.serial(), None, "ended");
    assert!(!readable(second.fd(), 100), "one hand-off, one turn");
    lock.release().unwrap();
    assert!(readable(second.fd(), 30_000));
    second.finish().unwrap().unwrap().release().unwrap();
    assert!(readable(third.fd(), 30_000));
    assert_eq!(third.finish().unwrap().unwrap().serial(), 4);
}

#[test]
fn a_canceled_or_dropped_pending_leaves_no_ticket_and_stalls_nobody() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let holder = l.lock("q", "holder").unwrap();
    let canceled = l.start_acquire("q", &Acquire::label("canceled")).unwrap();
    let dropped = l.start_acquire("q", &Acquire::label("dropped")).unwrap();
    let last = l.start_acquire("q", &Acquire::label("last")).unwrap();
    assert!(queued(&l, "q", 4));
    canceled.cancel().unwrap();
    drop(dropped);
    assert!(queued(&l, "q", 2));
    holder.release().unwrap();
    assert!(readable(last.fd(), 30_000));
    assert_eq!(last.finish().unwrap().unwrap().serial(), 4);
}

#[test]
fn a_pending_times_out_and_a_closed_locker_ends_pendings_canceled() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let other = Locker::new(Some(&r.url())).unwrap();
    let holder = other.lock("q", "holder").unwrap();
    let late = l
        .start_acquire(
            "q",
            &Acquire::label("late").wait(Wait::For(Duration::from_millis(200))),
        )
        .unwrap();
    assert!(readable(late.fd(), 30_000));
    assert_eq!(late.finish().unwrap_err().kind(), ErrorKind::Timeout);
    let waiting = l.start_acquire("q", &Acquire::label("waiting")).unwrap();
    l.close();
    assert!(readable(waiting.fd(), 30_000));
    assert_eq!(waiting.finish().unwrap_err().kind(), ErrorKind::Canceled);
    assert!(queued(&other, "q", 1), "only the holder is left");
    holder.release().unwrap();
}

#[test]
fn a_try_lock_is_not_a_pending_acquire() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    for wait in [Wait::TryOnce, Wait::For(Duration::ZERO)] {
        let e = l
            .start_acquire("q", &Acquire::label("x").wait(wait))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
    assert_eq!(l.status("q").unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn a_pending_whose_ticket_vanished_draws_anew_and_is_granted() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let other = Locker::new(Some(&r.url())).unwrap();
    let holder = other.lock("q", "holder").unwrap();
    let p = l.start_acquire("q", &Acquire::label("p")).unwrap();
    let _: () = redis::cmd("FLUSHDB").query(&mut r.conn()).unwrap();
    // Its heartbeat finds the ticket gone; it draws again in the new queue,
    // where nobody holds.
    assert!(readable(p.fd(), 30_000));
    let lock = p.finish().unwrap().expect("held in the new queue");
    assert!(lock.check().is_ok());
    assert!(holder.check().is_err() || holder.release().is_err());
}
