//! The wait's unit tests: the machine stepped over the fake queue and
//! clock of `fake.rs`, no Redis.

use std::sync::Arc;
use std::time::Duration;

use super::env::Budget;
use super::fake::{Fake, Other};
use super::machine::{Acquiring, Step};
use crate::error::{Error, ErrorKind, Result};
use crate::keys::Keys;
use crate::options::{Acquire, Cancel, Wait};
use crate::ticket::Ticket;

const LEASE: Duration = Duration::from_secs(60);
const PATIENCE: Duration = Duration::from_secs(20);
const GRACE: Duration = Duration::from_secs(3);

fn request() -> Acquire {
    Acquire::label("test").expire(LEASE).patience(PATIENCE)
}

fn start(fake: &Fake, request: &Acquire) -> Acquiring<Fake> {
    let keys = Arc::new(Keys::new("turn", "r"));
    Acquiring::with_env(fake.clone(), "r", keys, request, LEASE)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn outage() -> Error {
    Error::connection("connection refused")
}

/// The sleep a step asked for; panics when the acquire ended.
fn sleep(step: Step) -> Duration {
    match step {
        Step::Sleep(d) => d,
        Step::Done(Ok(t)) => panic!("granted ticket {} instead of a sleep", t.serial),
        Step::Done(Err(e)) => panic!("ended with {e} instead of a sleep"),
    }
}

/// The outcome of a step that ended the acquire; panics on a sleep.
fn done(step: Step) -> Result<Arc<Ticket>> {
    match step {
        Step::Done(outcome) => outcome,
        Step::Sleep(d) => panic!("asked to sleep {d:?} instead of ending"),
    }
}

/// The error of an acquire that ended; panics when it was granted.
fn failed(outcome: Result<Arc<Ticket>>) -> Error {
    match outcome {
        Ok(t) => panic!("granted ticket {} instead of failing", t.serial),
        Err(e) => e,
    }
}

/// Steps `a`, moving the fake clock on by each sleep, until it ends.
fn run(a: &mut Acquiring<Fake>, fake: &Fake) -> Result<Arc<Ticket>> {
    for _ in 0..1000 {
        match a.step(Budget::ANY) {
            Step::Done(outcome) => return outcome,
            Step::Sleep(d) => fake.advance(d.max(ms(1))),
        }
    }
    panic!("the acquire never ended");
}

#[test]
fn an_empty_queue_grants_at_the_draw_in_one_round_trip() {
    let fake = Fake::new();
    let mut a = start(&fake, &request());
    let t = done(a.step(Budget::ANY)).expect("granted");
    assert_eq!(t.serial, 1);
    assert!(t.is_held());
    assert_eq!(fake.round_trips(), 1);
    assert_eq!(fake.log(), ["draw 1", "forget nonce1"]);
    assert_eq!(fake.w().admitted, [1]);
    assert!(fake.w().registered.is_empty());
    // Ended: a further step says so, and nothing is withdrawn.
    let e = failed(done(a.step(Budget::ANY)));
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    drop(a);
    assert!(fake.withdrawals().is_empty());
}

#[test]
fn behind_a_live_holder_it_sleeps_until_its_lease_and_takes_the_call_with_one_read() {
    let fake = Fake::new();
    fake.queue(&[Other::Live(5000)]);
    let mut a = start(&fake, &request());
    // The draw's reading holds: no check, a sleep until the holder's
    // lease would lapse (and the margin).
    assert_eq!(sleep(a.step(Budget::ANY)), ms(5002));
    assert_eq!(fake.round_trips(), 1);
    assert_eq!(a.serial(), Some(2));
    assert_eq!(a.ahead(), Some(1));
    assert!(a.quiet());
    assert!(fake.w().registered.contains_key(&2));
    // The holder releases: the call wakes the ticket; one confirm grants.
    fake.release();
    assert!(!a.quiet());
    let t = done(a.step(Budget::ANY)).expect("granted");
    assert_eq!(t.serial, 2);
    assert!(t.is_held());
    assert_eq!(fake.round_trips(), 2);
    assert_eq!(fake.log().last().map(String::as_str), Some("forget nonce1"));
    assert!(fake.log().contains(&"confirm 2".to_string()));
    assert!(fake.w().registered.is_empty());
    assert!(fake.withdrawals().is_empty());
}

#[test]
fn a_stale_call_is_followed_by_a_check() {
    let fake = Fake::new();
    fake.queue(&[Other::Live(5000)]);
    let mut a = start(&fake, &request());
    sleep(a.step(Budget::ANY));
    // A call whose confirm finds the indicator elsewhere: a check reads on.
    fake.ticket(2).call();
    assert_eq!(sleep(a.step(Budget::ANY)), ms(5002));
    assert_eq!(fake.log(), ["draw 2", "confirm 2", "check 2"]);
    assert_eq!(a.serial(), Some(2));
}

#[test]
fn a_dead_ticket_at_the_indicator_is_bumped_once_past_the_grace() {
    let fake = Fake::new();
    fake.w().internal = Some(0);
    fake.queue(&[Other::Dead]);
    let mut a = start(&fake, &request());
    // Missing ahead: maybe a turn 1.0 ticket whose key is not set yet.
    assert_eq!(sleep(a.step(Budget::ANY)), GRACE);
    assert_eq!(fake.w().indicator, 1);
    fake.advance(GRACE);
    let t = done(a.step(Budget::ANY)).expect("granted by the bump");
    assert_eq!(t.serial, 2);
    assert!(t.is_held());
    assert_eq!(fake.w().indicator, 2);
    let log = fake.log();
    assert!(log.contains(&"check 2 record".to_string()), "{log:?}");
    assert!(log.contains(&"bump 2 past grace".to_string()), "{log:?}");
}

#[test]
fn a_dead_ticket_further_on_is_recorded_withdrawn_and_passed_by_the_release() {
    let fake = Fake::new();
    fake.w().internal = Some(0);
    fake.queue(&[Other::Live(60_000), Other::Dead]);
    let mut a = start(&fake, &request());
    assert_eq!(sleep(a.step(Budget::ANY)), GRACE);
    assert!(fake.w().withdrawn.is_empty());
    fake.advance(GRACE);
    // Past the grace, the check records the dead ticket and watches the
    // live holder: no bump (the holder is alive).
    assert_eq!(sleep(a.step(Budget::ANY)), PATIENCE);
    assert!(fake.w().withdrawn.contains(&2));
    assert!(!fake.log().iter().any(|l| l.starts_with("bump")));
    assert_eq!(fake.w().indicator, 1);
    assert_eq!(a.ahead(), Some(2));
    // The holder's release passes the recorded ticket and calls ours.
    fake.release();
    assert_eq!(fake.w().indicator, 3);
    let t = done(a.step(Budget::ANY)).expect("granted");
    assert_eq!(t.serial, 3);
    assert_eq!(fake.log().iter().filter(|l| *l == "confirm 3").count(), 1);
}

#[test]
fn a_withdrawn_gap_is_seen_through_before_the_grace() {
    let fake = Fake::new();
    fake.w().internal = Some(0);
    fake.queue(&[Other::Live(60_000), Other::Withdrawn]);
    let mut a = start(&fake, &request());
    assert_eq!(sleep(a.step(Budget::ANY)), GRACE);
    // A message wakes it: the check sees the gap is withdrawn and watches
    // the live holder, ours, without waiting for the grace.
    fake.ticket(3).signal();
    // (It still records the gap once past the grace.)
    assert_eq!(sleep(a.step(Budget::ANY)), GRACE);
    assert_eq!(fake.log().last().map(String::as_str), Some("check 3"));
    assert_eq!(a.ahead(), Some(2));
    fake.release();
    let t = done(a.step(Budget::ANY)).expect("granted");
    assert_eq!(t.serial, 3);
    assert!(!fake.log().iter().any(|l| l.starts_with("bump")));
}

#[test]
fn a_withdrawn_ticket_at_the_indicator_is_bumped_before_the_grace() {
    let fake = Fake::new();
    fake.w().internal = Some(0);
    fake.queue(&[Other::Withdrawn]);
    let mut a = start(&fake, &request());
    // The draw read the ticket at the indicator missing: the bump tries
    // it at once, and passes it (recorded withdrawn) without a grace.
    let t = done(a.step(Budget::ANY)).expect("granted by the bump");
    assert_eq!(t.serial, 2);
    let log = fake.log();
    assert!(log.contains(&"bump 2".to_string()), "{log:?}");
}

#[test]
fn a_turn1_ticket_ahead_makes_it_listen_on_internal() {
    let fake = Fake::new();
    fake.queue(&[Other::Turn1(5000)]);
    let mut a = start(&fake, &request());
    // Not subscribed yet: the notifier is kicked, and the waiter gives the
    // subscription a second before reading again.
    assert_eq!(sleep(a.step(Budget::ANY)), Duration::from_secs(1));
    assert_eq!(fake.w().listening, [2]);
    assert!(fake.log().contains(&"kick".to_string()));
    fake.w().internal = Some(0);
    fake.advance(Duration::from_secs(1));
    // Read again: the turn 1.0 holder is watched until its lease lapses.
    assert_eq!(sleep(a.step(Budget::ANY)), ms(4002));
    assert_eq!(fake.log().last().map(String::as_str), Some("check 2"));
    assert_eq!(fake.w().listening, [2], "it listens once");
    // Turn 1.0's release: no call, a message on `internal` wakes it.
    {
        let mut w = fake.w();
        w.presence.remove(&1);
        w.indicator = 2;
    }
    fake.ticket(2).signal();
    let t = done(a.step(Budget::ANY)).expect("granted by the check");
    assert_eq!(t.serial, 2);
    assert!(!fake.log().iter().any(|l| l.starts_with("confirm")));
}

#[test]
fn a_dead_head_before_a_live_turn1_ticket_is_passed_by_the_waiter_behind() {
    let fake = Fake::new();
    fake.w().internal = Some(0);
    fake.queue(&[Other::Live(1000), Other::Turn1(60_000)]);
    let mut a = start(&fake, &request());
    // It watches the turn 1.0 ticket and the holder at the indicator: the
    // bump finds the holder alive, and it sleeps until its lease lapses.
    assert_eq!(sleep(a.step(Budget::ANY)), ms(1002));
    assert!(fake.log().contains(&"bump 3".to_string()));
    fake.advance(ms(1002));
    // The holder died: missing, it may be a turn 1.0 ticket whose key is
    // not set yet, so it is kept until this ticket is past the grace.
    assert_eq!(sleep(a.step(Budget::ANY)), GRACE - ms(1002));
    assert_eq!(fake.w().indicator, 1);
    fake.advance(GRACE - ms(1002));
    // Then the bump passes it, to the turn 1.0 ticket.
    sleep(a.step(Budget::ANY));
    assert_eq!(fake.w().indicator, 2);
    assert!(fake.log().contains(&"bump 3 past grace".to_string()));
    assert_eq!(a.serial(), Some(3));
}

#[test]
fn an_outage_while_waiting_is_ridden_out_with_growing_pauses() {
    let fake = Fake::new();
    fake.queue(&[Other::Live(5000)]);
    let mut a = start(&fake, &request());
    assert_eq!(sleep(a.step(Budget::ANY)), ms(5002));
    fake.fail_next(outage());
    fake.fail_next(outage());
    fake.advance(ms(5002));
    assert_eq!(sleep(a.step(Budget::ANY)), ms(50));
    fake.advance(ms(50));
    assert_eq!(sleep(a.step(Budget::ANY)), ms(100));
    fake.advance(ms(100));
    // Redis is back: the holder's lease lapsed meanwhile, it is bumped
    // once this ticket is past the grace.
    let t = run(&mut a, &fake).expect("granted");
    assert_eq!(t.serial, 2);
    assert!(fake.withdrawals().is_empty(), "the same ticket waited on");
}

#[test]
fn a_ticket_lost_in_an_outage_is_drawn_anew_once_redis_is_back() {
    let fake = Fake::new();
    fake.queue(&[Other::Live(120_000)]);
    let mut a = start(&fake, &request());
    sleep(a.step(Budget::ANY));
    // Redis goes away for longer than the lease.
    for _ in 0..200 {
        fake.fail_next(outage());
    }
    let mut paused_without_ticket = false;
    for _ in 0..200 {
        let d = sleep(a.step(Budget::ANY));
        if a.serial().is_none() {
            // Lost: withdrawn, and the new draw is paused by the outage.
            assert!(d > Duration::ZERO && d <= Duration::from_secs(1));
            paused_without_ticket = true;
            break;
        }
        fake.advance(d);
    }
    assert!(paused_without_ticket);
    assert!(fake.w().ms > LEASE.as_millis() as u64);
    assert_eq!(fake.withdrawals(), [2]);
    // Redis is back: the next draw takes a new ticket.
    fake.w().faults.clear();
    let d = sleep(a.step(Budget::ANY));
    fake.advance(d);
    sleep(a.step(Budget::ANY));
    assert_eq!(a.serial(), Some(3));
    assert!(fake.log().contains(&"draw 3".to_string()));
}

#[test]
fn a_ticket_whose_lease_lapsed_while_waiting_is_withdrawn_and_drawn_anew() {
    let fake = Fake::new();
    fake.w().internal = Some(0);
    fake.queue(&[Other::Live(600_000)]);
    let mut a = start(&fake, &request());
    sleep(a.step(Budget::ANY));
    // This process was paused past the lease (no renewal confirmed,
    // though the key stayed): the call that comes then is too late to
    // grant it.
    fake.w().presence.insert(2, None);
    fake.advance(LEASE + ms(1));
    fake.release();
    sleep(a.step(Budget::ANY));
    assert!(!fake.ticket(3).is_held());
    assert_eq!(fake.withdrawals(), [2]);
    assert_eq!(a.serial(), Some(3));
    let log = fake.log();
    assert!(log.contains(&"confirm 2".to_string()), "{log:?}");
    assert!(!log.contains(&"check 2".to_string()), "{log:?}");
    assert!(log.contains(&"draw 3".to_string()), "{log:?}");
}

#[test]
fn a_ticket_marked_lost_is_withdrawn_and_drawn_anew() {
    let fake = Fake::new();
    fake.queue(&[Other::Live(60_000)]);
    let mut a = start(&fake, &request());
    sleep(a.step(Budget::ANY));
    fake.ticket(2).mark_lost();
    assert!(!a.quiet());
    sleep(a.step(Budget::ANY));
    assert_eq!(fake.withdrawals(), [2]);
    assert_eq!(a.serial(), Some(3));
}

#[test]
fn an_unconfirmed_grant_at_the_draw_waits_and_checks_again() {
    let fake = Fake::new();
    {
        let mut w = fake.w();
        w.min_replicas = true;
        w.unconfirmed = 1;
    }
    let mut a = start(&fake, &request());
    assert_eq!(sleep(a.step(Budget::ANY)), ms(50));
    assert_eq!(a.serial(), Some(1));
    assert_eq!(a.ahead(), Some(0));
    fake.advance(ms(50));
    let t = done(a.step(Budget::ANY)).expect("granted once confirmed");
    assert_eq!(t.serial, 1);
    assert_eq!(fake.log()[0], "draw 1");
    assert!(fake.log().contains(&"check 1".to_string()));
    assert_eq!(fake.round_trips(), 2);
}

#[test]
fn an_unconfirmed_grant_past_the_deadline_is_a_connection_error() {
    let fake = Fake::new();
    {
        let mut w = fake.w();
        w.min_replicas = true;
        w.unconfirmed = 100;
    }
    let mut a = start(&fake, &request().wait(Wait::For(ms(500))));
    let e = failed(run(&mut a, &fake));
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert_eq!(
        e.message(),
        "\"r\" was not granted in time: the grant of ticket 1 on \"r\" was not confirmed by 1 replica(s) within 100 ms (ticket 1 withdrawn)"
    );
    assert_eq!(fake.withdrawals(), [1]);
}

#[test]
fn a_try_lock_behind_a_holder_would_block_and_withdraws() {
    let fake = Fake::new();
    fake.queue(&[Other::Live(5000)]);
    let mut a = start(&fake, &request().wait(Wait::TryOnce));
    let e = failed(done(a.step(Budget::ANY)));
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert_eq!(e.message(), "\"r\" is taken (turn 1, ticket 2 withdrawn)");
    assert_eq!(fake.withdrawals(), [2]);
    assert_eq!(fake.round_trips(), 1);
}

#[test]
fn a_timeout_withdraws_with_the_turn_in_its_message() {
    let fake = Fake::new();
    fake.queue(&[Other::Live(60_000)]);
    let mut a = start(&fake, &request().wait(Wait::For(Duration::from_secs(2))));
    assert_eq!(sleep(a.step(Budget::ANY)), Duration::from_secs(2));
    fake.advance(Duration::from_secs(2));
    let e = failed(done(a.step(Budget::ANY)));
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(
        e.message(),
        "\"r\" was not granted in time (turn 1, ticket 2 withdrawn)"
    );
    assert_eq!(fake.withdrawals(), [2]);
    assert!(fake.w().registered.is_empty());
}

#[test]
fn a_timeout_in_an_outage_reports_the_outage() {
    let fake = Fake::new();
    fake.queue(&[Other::Live(5000)]);
    let mut a = start(&fake, &request().wait(Wait::For(Duration::from_secs(10))));
    sleep(a.step(Budget::ANY));
    for _ in 0..100 {
        fake.fail_next(outage());
    }
    let e = failed(run(&mut a, &fake));
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert_eq!(
        e.message(),
        "\"r\" was not granted in time: connection refused (ticket 2 withdrawn)"
    );
    assert_eq!(fake.withdrawals(), [2]);
}

#[test]
fn a_cancel_withdraws_the_waiting_ticket() {
    let fake = Fake::new();
    fake.queue(&[Other::Live(60_000)]);
    let cancel = Cancel::new();
    let mut a = start(&fake, &request().cancel(&cancel));
    sleep(a.step(Budget::ANY));
    assert!(a.quiet());
    cancel.cancel();
    assert!(!a.quiet());
    assert!(fake.ticket(2).is_signaled(), "the token wakes its ticket");
    let e = failed(done(a.step(Budget::ANY)));
    assert_eq!(e.kind(), ErrorKind::Canceled);
    assert_eq!(
        e.message(),
        "waiting for \"r\" was canceled (ticket 2 withdrawn)"
    );
    assert_eq!(fake.withdrawals(), [2]);
    assert!(fake.w().registered.is_empty());
}

#[test]
fn a_cancel_during_a_failing_round_trip_ends_the_wait_without_another() {
    let fake = Fake::new();
    fake.queue(&[Other::Live(5000)]);
    let cancel = Cancel::new();
    let mut a = start(&fake, &request().cancel(&cancel));
    assert_eq!(sleep(a.step(Budget::ANY)), ms(5002));
    // The holder's lease would lapse: the check that reads the queue
    // again fails (Redis stalled), and the cancel comes meanwhile.
    fake.advance(ms(5002));
    let fired = cancel.clone();
    fake.during_next(move || fired.cancel());
    fake.fail_next(outage());
    fake.fail_next(outage());
    let before = fake.round_trips();
    let e = failed(run(&mut a, &fake));
    assert_eq!(e.kind(), ErrorKind::Canceled, "{e}");
    assert_eq!(
        fake.round_trips(),
        before + 1,
        "no round trip after the cancel: {:?}",
        fake.log()
    );
    assert_eq!(fake.withdrawals(), [2]);
}

#[test]
fn a_round_trip_failing_while_canceled_ends_as_canceled() {
    let fake = Fake::new();
    let cancel = Cancel::new();
    let mut a = start(&fake, &request().cancel(&cancel));
    let fired = cancel.clone();
    fake.during_next(move || fired.cancel());
    fake.fail_next(outage());
    let e = failed(done(a.step(Budget::ANY)));
    assert_eq!(e.kind(), ErrorKind::Canceled, "{e}");
    assert_eq!(
        e.message(),
        "acquiring \"r\" was canceled (meanwhile: connection refused)"
    );
}

#[test]
fn a_cancel_before_the_draw_draws_nothing() {
    let fake = Fake::new();
    let cancel = Cancel::new();
    cancel.cancel();
    let mut a = start(&fake, &request().cancel(&cancel));
    let e = failed(done(a.step(Budget::ANY)));
    assert_eq!(e.kind(), ErrorKind::Canceled);
    assert_eq!(e.message(), "acquiring \"r\" was canceled");
    assert_eq!(fake.round_trips(), 0);
}

#[test]
fn closing_ends_the_wait_and_withdraws() {
    let fake = Fake::new();
    fake.queue(&[Other::Live(60_000)]);
    let mut a = start(&fake, &request());
    sleep(a.step(Budget::ANY));
    fake.w().closed = true;
    assert!(!a.quiet());
    let e = failed(done(a.step(Budget::ANY)));
    assert_eq!(e.kind(), ErrorKind::Canceled);
    assert_eq!(
        e.message(),
        "the locker was closed while acquiring \"r\" (the ticket was withdrawn)"
    );
    assert_eq!(fake.withdrawals(), [2]);
}

#[test]
fn a_draw_refused_is_ridden_out_and_a_connection_error_is_not() {
    // A refusal (no replicas, say) is ridden out from the first draw on.
    let fake = Fake::new();
    fake.fail_next(Error::refusal("NOREPLICAS not enough good replicas"));
    let mut a = start(&fake, &request());
    assert_eq!(sleep(a.step(Budget::ANY)), ms(50));
    assert_eq!(a.serial(), None);
    // Not before the pause is over.
    assert_eq!(sleep(a.step(Budget::ANY)), ms(50));
    assert_eq!(fake.round_trips(), 1);
    fake.advance(ms(50));
    let t = done(a.step(Budget::ANY)).expect("granted");
    assert_eq!(t.serial, 1);
    // A first draw that cannot reach Redis fails at once.
    let fake = Fake::new();
    fake.fail_next(outage());
    let mut a = start(&fake, &request());
    let e = failed(done(a.step(Budget::ANY)));
    assert_eq!(e.message(), "connection refused");
}

#[test]
fn the_budget_bounds_the_round_trips_of_a_step() {
    let fake = Fake::new();
    fake.queue(&[Other::Live(60_000)]);
    let mut a = start(&fake, &request());
    // None allowed: nothing is done, and the step asks to come back.
    assert_eq!(sleep(a.step(Budget(Some(0)))), Duration::ZERO);
    assert_eq!(fake.round_trips(), 0);
    // One: the draw alone.
    sleep(a.step(Budget(Some(1))));
    assert_eq!(fake.round_trips(), 1);
    // A call with no round trip allowed is kept for the next step.
    fake.release();
    assert_eq!(sleep(a.step(Budget(Some(0)))), Duration::ZERO);
    assert_eq!(fake.round_trips(), 1);
    let t = done(a.step(Budget(Some(1)))).expect("granted");
    assert_eq!(t.serial, 2);
    assert_eq!(fake.round_trips(), 2);
}

#[test]
fn dropping_a_wait_withdraws_its_ticket() {
    let fake = Fake::new();
    fake.queue(&[Other::Live(60_000)]);
    let mut a = start(&fake, &request());
    sleep(a.step(Budget::ANY));
    drop(a);
    assert_eq!(fake.withdrawals(), [2]);
    assert!(fake.w().registered.is_empty());
}

#[test]
fn with_sentinel_a_first_draw_rides_a_failover_out() {
    let fake = Fake::new();
    fake.w().sentinel = true;
    fake.fail_next(outage());
    fake.fail_next(outage());
    let mut a = start(&fake, &request());
    assert_eq!(sleep(a.step(Budget::ANY)), ms(50));
    fake.advance(ms(50));
    assert_eq!(sleep(a.step(Budget::ANY)), ms(100));
    fake.advance(ms(100));
    let t = done(a.step(Budget::ANY)).expect("granted by the new master");
    assert_eq!(t.serial, 1);
    assert_eq!(fake.round_trips(), 3);
    // A try-lock answers at once.
    let fake = Fake::new();
    fake.w().sentinel = true;
    fake.fail_next(outage());
    let mut a = start(&fake, &request().wait(Wait::TryOnce));
    assert_eq!(
        failed(done(a.step(Budget::ANY))).message(),
        "connection refused"
    );
}
