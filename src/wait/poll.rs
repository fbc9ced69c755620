//! A waiting ticket's poll: confirming its call, re-reading the queue,
//! stepping past dead tickets ahead, and how long nothing needs doing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::outage::{GiveUp, Outage};
use super::{Acquiring, kick};
use crate::error::Error;
use crate::scripts::{self, Bumped, Checked, Holder, Reading};
use crate::ticket::Ticket;

/// How long a new listener waits for the `internal` subscription to be
/// confirmed before it reads the queue anyway (it then relies on bounded
/// waits).
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(1);
/// Slack added to a watched ticket's remaining lease before looking again.
const LEASE_MARGIN: Duration = Duration::from_millis(2);

/// A drawn ticket waiting for its turn.
pub(super) struct Waiter {
    pub(super) ticket: Arc<Ticket>,
    pub(super) nonce: String,
    /// A reading still known to hold (nothing came since it was taken).
    pub(super) known: Option<Reading>,
    /// The last reading, for the position.
    pub(super) last: Reading,
    /// The `internal` channel's message count before the last reading.
    pub(super) internal_seen: Option<u64>,
    pub(super) listening: bool,
    pub(super) outage: Outage,
    /// Nothing to do before then unless signaled (an outage's pause, a
    /// subscription awaited).
    pub(super) resume_at: Option<Instant>,
    /// The call is to be confirmed again (its read failed).
    pub(super) recall: bool,
    /// When the draw's reply came: a ticket ahead missing its presence key
    /// counts as dead once this ticket is older than the grace (a turn 1.0
    /// ticket drawn before it had that long to set its key).
    pub(super) drawn_at: Instant,
    /// Tickets between the watched one and this one are missing their
    /// presence key: the watched serial, and whether the gap was recorded
    /// (its tickets noted withdrawn).
    pub(super) gap: Option<(u64, bool)>,
}

/// What a waiter's poll came to.
pub(super) enum Poll {
    Granted,
    /// The ticket was lost (or passed while this process was paused).
    Lost,
    Failed(Error),
    Sleep(Duration),
    /// The round-trip budget is spent: step again at once.
    Spent,
}

impl From<GiveUp> for Poll {
    fn from(end: GiveUp) -> Poll {
        match end {
            GiveUp::Failed(e) => Poll::Failed(e),
            GiveUp::Lost => Poll::Lost,
        }
    }
}

/// What a waiter's bump past the ticket at the indicator came to.
enum Passing {
    /// The indicator moved: read the queue again.
    Moved,
    /// The ticket at the indicator was left alone, as found: alive
    /// (`Expires`, `NoExpiry`), or missing but not to be passed before the
    /// grace (`Missing`).
    Kept(Holder),
    /// An outage: the waiter pauses (its `resume_at` is set).
    Paused,
    /// The poll ends (granted, lost, failed, or its budget spent).
    Done(Poll),
}

impl Acquiring {
    /// Bumps past the ticket at the indicator for `t` if it is dead (and
    /// the dead tickets after it, never past a live one nor past `t`):
    /// one round trip.
    fn pass_head(&mut self, t: &Arc<Ticket>, past_grace: bool, now: Instant) -> Passing {
        if !self.spend() {
            return Passing::Done(Poll::Spent);
        }
        let rt = self.rt.clone();
        let core = &rt.core;
        let deadline = self.deadline;
        let w = self.waiter.as_mut().expect("a waiter");
        match scripts::bump_before(core, t, past_grace) {
            Ok(Ok(Bumped::NotOurs)) => Passing::Done(Poll::Lost),
            Ok(Ok(Bumped::To(to))) if to == t.serial => {
                // The bump reached this ticket, ours in the same script:
                // its turn ("N started" said).
                Passing::Done(if rt.heartbeat.grant(core, t) {
                    Poll::Granted
                } else {
                    Poll::Lost
                })
            }
            Ok(Ok(Bumped::To(_) | Bumped::NoQueue)) => Passing::Moved,
            Ok(Err(holder)) => Passing::Kept(holder),
            Err(e) => match w.outage.pause(e, t, core, deadline) {
                Ok(pause) => {
                    w.resume_at = Some(now + pause);
                    Passing::Paused
                }
                Err(end) => Passing::Done(end.into()),
            },
        }
    }

    /// Advances the waiting ticket as far as it goes now.
    pub(super) fn poll(&mut self) -> Poll {
        let rt = self.rt.clone();
        let core = &rt.core;
        let deadline = self.deadline;
        loop {
            let w = self.waiter.as_mut().expect("a waiter to poll");
            let t = w.ticket.clone();
            // Taken before the flags are read: a signal that comes after
            // this (a call, a message, a cancel, the locker closing) ends
            // the sleep that follows; one that came before it makes the
            // last reading stale.
            if t.take_signal() {
                w.known = None;
                w.resume_at = None;
            }
            let now = Instant::now();
            if let Some(at) = w.resume_at {
                if now < at {
                    return Poll::Sleep(at - now);
                }
                w.resume_at = None;
            }
            if t.is_lost() || !core.in_owner_process() || core.is_closed() {
                return Poll::Lost;
            }
            if t.take_call() || std::mem::take(&mut w.recall) {
                // Its nonce came: the indicator was set to it. One plain
                // read confirms it (the message may have sat in a socket
                // while this process was paused, and the queue may have
                // vanished since).
                if !self.spend() {
                    let w = self.waiter.as_mut().expect("a waiter");
                    w.recall = true;
                    return Poll::Spent;
                }
                let w = self.waiter.as_mut().expect("a waiter");
                match scripts::confirm(core, &t) {
                    Ok(true) => {
                        return if rt.heartbeat.grant(core, &t) {
                            Poll::Granted
                        } else {
                            Poll::Lost
                        };
                    }
                    Ok(false) => {}
                    Err(e) => match w.outage.pause(e, &t, core, deadline) {
                        Ok(pause) => {
                            w.recall = true;
                            w.resume_at = Some(now + pause);
                            continue;
                        }
                        Err(end) => return end.into(),
                    },
                }
            }
            let w = self.waiter.as_mut().expect("a waiter");
            let reading = match w.known.take() {
                Some(reading) => reading,
                None => {
                    if !self.spend() {
                        return Poll::Spent;
                    }
                    let w = self.waiter.as_mut().expect("a waiter");
                    w.internal_seen = rt.notifier.snapshot(&t.keys.internal);
                    // Missing tickets ahead of a ticket older than the grace
                    // are dead (not turn 1.0 ones whose presence key is not
                    // set yet): the check records them withdrawn.
                    let record = w.drawn_at.elapsed() >= core.options.grace
                        && w.gap.is_none_or(|(_, recorded)| !recorded);
                    match scripts::check(core, &t, record) {
                        Ok(Checked::Waiting(reading)) => {
                            w.outage.over();
                            if record && let Some(gap) = w.gap.as_mut() {
                                gap.1 = true;
                            }
                            reading
                        }
                        Ok(Checked::Granted) => {
                            return if rt.heartbeat.grant(core, &t) {
                                Poll::Granted
                            } else {
                                Poll::Lost
                            };
                        }
                        Ok(Checked::Lost) => return Poll::Lost,
                        Err(e) => match w.outage.pause(e, &t, core, deadline) {
                            Ok(pause) => {
                                w.resume_at = Some(now + pause);
                                continue;
                            }
                            Err(end) => return end.into(),
                        },
                    }
                }
            };
            let w = self.waiter.as_mut().expect("a waiter");
            w.last = reading;
            let gapped = matches!(reading.holder, Holder::Missing | Holder::Withdrawn)
                || reading.watched + 1 < t.serial;
            if !gapped {
                w.gap = None;
            } else if w.gap.is_none_or(|(watched, _)| watched != reading.watched) {
                w.gap = Some((reading.watched, false));
            }
            if !reading.ours && !w.listening {
                // The watched ticket announces its leaving on `internal`
                // only: listen there from now on, and read again unless the
                // channel was subscribed before this reading with no
                // message since.
                w.listening = true;
                let count = rt.notifier.listen(&t);
                if count.is_none() || count != w.internal_seen {
                    if count.is_none() {
                        kick(&rt);
                        let mut wait = SUBSCRIBE_WAIT;
                        if let Some(d) = deadline {
                            wait = wait.min(d.saturating_duration_since(now));
                        }
                        w.resume_at = Some(now + wait);
                    }
                    continue;
                }
            }
            let now = Instant::now();
            if let Some(d) = deadline
                && now >= d
            {
                // The step ends the acquire with a timeout.
                return Poll::Sleep(Duration::ZERO);
            }
            let mut sleep = self.patience;
            let grace = core.options.grace;
            let age = now.duration_since(w.drawn_at);
            let past_grace = age >= grace;
            match reading.holder {
                Holder::Missing | Holder::Withdrawn => {
                    if !past_grace && reading.holder == Holder::Missing {
                        sleep = sleep.min(grace - age);
                    } else if reading.watched == reading.indicator {
                        // The ticket at the indicator is dead, and every
                        // one between it and ours: step past them.
                        match self.pass_head(&t, past_grace, now) {
                            Passing::Done(poll) => return poll,
                            Passing::Kept(Holder::Missing) => {
                                // Withdrawn when read, not any more (its
                                // record expired): a dead ticket, once
                                // this one is older than the grace.
                                sleep = sleep.min(grace.saturating_sub(age));
                            }
                            // Moved (a check reads where to), found alive
                            // (the indicator moved meanwhile), or paused
                            // by an outage.
                            Passing::Moved | Passing::Kept(_) | Passing::Paused => continue,
                        }
                    } else {
                        // The ticket before ours is gone: read again,
                        // recording the dead ones as withdrawn, and watch
                        // the next alive.
                        continue;
                    }
                }
                Holder::Expires(left) => sleep = sleep.min(left + LEASE_MARGIN),
                Holder::NoExpiry => {}
            }
            if !reading.ours
                && reading.watched > reading.indicator
                && matches!(reading.holder, Holder::Expires(_) | Holder::NoExpiry)
            {
                // The nearest live ticket ahead is a turn 1.0 one (or one
                // whose release only `internal` may announce), and it is
                // not at the indicator. When the ticket at the indicator
                // dies, no waiter of ours is right behind it to step past
                // it, and a turn 1.0 waiter bumps only after its patience:
                // this waiter watches the ticket at the indicator too, and
                // passes it when its lease lapses, with turn 1.0's message
                // on `internal` for the ticket it reaches. The bump moves
                // only while the ticket at the indicator is dead, so one
                // bump is made however many waiters try.
                match self.pass_head(&t, past_grace, now) {
                    Passing::Done(poll) => return poll,
                    Passing::Kept(Holder::Expires(left)) => {
                        sleep = sleep.min(left + LEASE_MARGIN);
                    }
                    Passing::Kept(Holder::Missing) => {
                        sleep = sleep.min(grace.saturating_sub(age));
                    }
                    Passing::Kept(_) => {}
                    Passing::Moved | Passing::Paused => continue,
                }
            }
            let w = self.waiter.as_mut().expect("a waiter");
            if w.gap.is_some_and(|(_, recorded)| !recorded) {
                // Dead tickets between the watched one and this one: once
                // this ticket is older than the grace, read again to record
                // them, so that the release before them passes them.
                if age >= grace {
                    continue;
                }
                sleep = sleep.min(grace - age);
            }
            if let Some(d) = deadline {
                sleep = sleep.min(d.saturating_duration_since(now));
            }
            return Poll::Sleep(sleep);
        }
    }
}
