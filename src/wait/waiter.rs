//! A drawn ticket waiting for its turn, and its poll: confirming its call,
//! re-reading the queue, stepping past dead tickets ahead, and how long
//! nothing needs doing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::env::{Budget, Env};
use super::outage::{GiveUp, Outage};
use crate::error::Error;
use crate::scripts::{Bumped, Checked, Holder, Reading};
use crate::ticket::Ticket;

/// How long a new listener waits for the `internal` subscription to be
/// confirmed before it reads the queue anyway (it then relies on bounded
/// waits).
pub(super) const SUBSCRIBE_WAIT: Duration = Duration::from_secs(1);
/// Slack added to a watched ticket's remaining lease before looking again.
pub(super) const LEASE_MARGIN: Duration = Duration::from_millis(2);

/// A drawn ticket waiting for its turn.
pub(super) struct Waiter {
    pub(super) ticket: Arc<Ticket>,
    pub(super) nonce: String,
    /// A reading still known to hold (nothing came since it was taken).
    known: Option<Reading>,
    /// The last reading, for the position.
    pub(super) last: Reading,
    /// The `internal` channel's message count before the last reading.
    internal_seen: Option<u64>,
    /// Subscribed to `internal` (a ticket ahead is not ours).
    listening: bool,
    /// The outage ridden out now, if any.
    pub(super) outage: Outage,
    /// Nothing to do before then unless signaled (an outage's pause, a
    /// subscription awaited).
    resume_at: Option<Instant>,
    /// The call is to be confirmed again (its read failed, or the budget
    /// was spent before it).
    recall: bool,
    /// When the draw's reply came: a ticket ahead missing its presence key
    /// counts as dead once this ticket is older than the grace (a turn 1.0
    /// ticket drawn before it had that long to set its key).
    drawn_at: Instant,
    /// Tickets between the watched one and this one are missing their
    /// presence key: the watched serial, and whether the gap was recorded
    /// (its tickets noted withdrawn).
    gap: Option<(u64, bool)>,
}

/// What bounds a waiter's sleeps: the acquire's deadline and patience.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    pub deadline: Option<Instant>,
    pub patience: Duration,
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

/// What a round trip of the poll came to when the poll does not go on
/// from it.
enum Unread {
    /// Poll again from the top (an outage's pause was set).
    Again,
    /// The poll ends.
    Done(Poll),
}

impl Waiter {
    /// A ticket the draw found waiting, `reading` its draw's reading;
    /// `known`: that reading still holds (nothing came since); `seen`: the
    /// `internal` message count before the draw.
    pub(super) fn drawn(
        ticket: Arc<Ticket>,
        nonce: String,
        reading: Reading,
        known: bool,
        seen: Option<u64>,
        now: Instant,
    ) -> Waiter {
        Waiter {
            ticket,
            nonce,
            known: known.then_some(reading),
            last: reading,
            internal_seen: seen,
            listening: false,
            outage: Outage::default(),
            resume_at: None,
            recall: false,
            drawn_at: now,
            gap: None,
        }
    }

    /// A ticket the indicator showed at its draw, whose grant the replicas
    /// did not confirm: it rides that out as an outage (`outage`), and
    /// checks again at `resume_at` (None: at once).
    pub(super) fn unconfirmed(
        ticket: Arc<Ticket>,
        nonce: String,
        seen: Option<u64>,
        outage: Outage,
        resume_at: Option<Instant>,
        now: Instant,
    ) -> Waiter {
        let serial = ticket.serial;
        Waiter {
            ticket,
            nonce,
            known: None,
            // Nothing ahead of it: the indicator showed it.
            last: Reading {
                indicator: serial,
                watched: serial,
                holder: Holder::Missing,
                ours: true,
            },
            internal_seen: seen,
            listening: false,
            outage,
            resume_at,
            recall: false,
            drawn_at: now,
            gap: None,
        }
    }

    /// The turn came: the ticket is held unless it is too late for that.
    fn granted(&self, env: &impl Env) -> Poll {
        if env.grant(&self.ticket) {
            Poll::Granted
        } else {
            Poll::Lost
        }
    }

    /// Bumps past the ticket at the indicator for this ticket if it is
    /// dead (and the dead tickets after it, never past a live one nor past
    /// this one): one round trip.
    fn pass_head(
        &mut self,
        env: &impl Env,
        budget: &mut Budget,
        past_grace: bool,
        now: Instant,
        deadline: Option<Instant>,
    ) -> Passing {
        if !budget.spend() {
            return Passing::Done(Poll::Spent);
        }
        let t = self.ticket.clone();
        match env.bump_before(&t, past_grace) {
            Ok(Ok(Bumped::NotOurs)) => Passing::Done(Poll::Lost),
            // The bump reached this ticket, ours in the same script: its
            // turn ("N started" said).
            Ok(Ok(Bumped::To(to))) if to == t.serial => Passing::Done(self.granted(env)),
            Ok(Ok(Bumped::To(_) | Bumped::NoQueue)) => Passing::Moved,
            Ok(Err(holder)) => Passing::Kept(holder),
            Err(e) => match self.outage.pause(e, &t, deadline, env) {
                Ok(pause) => {
                    self.resume_at = Some(now + pause);
                    Passing::Paused
                }
                Err(end) => Passing::Done(end.into()),
            },
        }
    }

    /// Confirms the call with one plain read (one round trip): Ok when
    /// the poll goes on to read the queue (not this ticket's turn after
    /// all).
    fn confirm_call(
        &mut self,
        env: &impl Env,
        budget: &mut Budget,
        now: Instant,
        deadline: Option<Instant>,
    ) -> Result<(), Unread> {
        if !budget.spend() {
            self.recall = true;
            return Err(Unread::Done(Poll::Spent));
        }
        match env.confirm(&self.ticket) {
            Ok(true) => {
                let poll = self.granted(env);
                if matches!(poll, Poll::Granted) {
                    env.metrics().handoff();
                }
                Err(Unread::Done(poll))
            }
            Ok(false) => Ok(()),
            Err(e) => match self.outage.pause(e, &self.ticket, deadline, env) {
                Ok(pause) => {
                    self.recall = true;
                    self.resume_at = Some(now + pause);
                    Err(Unread::Again)
                }
                Err(end) => Err(Unread::Done(end.into())),
            },
        }
    }

    /// Reads the queue with a check (one round trip).
    fn read(
        &mut self,
        env: &impl Env,
        budget: &mut Budget,
        now: Instant,
        deadline: Option<Instant>,
    ) -> Result<Reading, Unread> {
        if !budget.spend() {
            return Err(Unread::Done(Poll::Spent));
        }
        let t = &self.ticket;
        self.internal_seen = env.snapshot(&t.keys.internal);
        // Missing tickets ahead of a ticket older than the grace are dead
        // (not turn 1.0 ones whose presence key is not set yet): the check
        // records them withdrawn.
        let record = env.now().saturating_duration_since(self.drawn_at) >= env.grace()
            && self.gap.is_none_or(|(_, recorded)| !recorded);
        match env.check(t, record) {
            Ok(Checked::Waiting(reading)) => {
                self.outage.over();
                if record && let Some(gap) = self.gap.as_mut() {
                    gap.1 = true;
                }
                Ok(reading)
            }
            Ok(Checked::Granted) => Err(Unread::Done(self.granted(env))),
            Ok(Checked::Lost) => Err(Unread::Done(Poll::Lost)),
            Err(e) => match self.outage.pause(e, &self.ticket, deadline, env) {
                Ok(pause) => {
                    self.resume_at = Some(now + pause);
                    Err(Unread::Again)
                }
                Err(end) => Err(Unread::Done(end.into())),
            },
        }
    }

    /// Advances the waiting ticket as far as it goes now.
    pub(super) fn poll(&mut self, env: &impl Env, budget: &mut Budget, bounds: Bounds) -> Poll {
        let deadline = bounds.deadline;
        let mut first = true;
        loop {
            let t = self.ticket.clone();
            // Taken before the flags are read: a signal that comes after
            // this (a call, a message, a cancel, the locker closing) ends
            // the sleep that follows; one that came before it makes the
            // last reading stale. One that came during this poll's round
            // trips goes back to the step first, which ends the wait when
            // it was a cancel, the locker closing or the deadline (no
            // other round trip is made then).
            if t.take_signal() {
                self.known = None;
                self.resume_at = None;
                if !first {
                    return Poll::Sleep(Duration::ZERO);
                }
            }
            first = false;
            let now = env.now();
            if let Some(at) = self.resume_at {
                if now < at {
                    return Poll::Sleep(at - now);
                }
                self.resume_at = None;
            }
            if t.is_lost() || !env.in_owner_process() || env.is_closed() {
                return Poll::Lost;
            }
            if t.take_call() || std::mem::take(&mut self.recall) {
                // Its nonce came: the indicator was set to it. One plain
                // read confirms it (the message may have sat in a socket
                // while this process was paused, and the queue may have
                // vanished since).
                match self.confirm_call(env, budget, now, deadline) {
                    Ok(()) => {}
                    Err(Unread::Again) => continue,
                    Err(Unread::Done(poll)) => return poll,
                }
            }
            let reading = match self.known.take() {
                Some(reading) => reading,
                None => match self.read(env, budget, now, deadline) {
                    Ok(reading) => reading,
                    Err(Unread::Again) => continue,
                    Err(Unread::Done(poll)) => return poll,
                },
            };
            self.last = reading;
            let gapped = matches!(reading.holder, Holder::Missing | Holder::Withdrawn)
                || reading.watched + 1 < t.serial;
            if !gapped {
                self.gap = None;
            } else if self
                .gap
                .is_none_or(|(watched, _)| watched != reading.watched)
            {
                self.gap = Some((reading.watched, false));
            }
            if !reading.ours && !self.listening {
                // The watched ticket announces its leaving on `internal`
                // only: listen there from now on, and read again unless the
                // channel was subscribed before this reading with no
                // message since.
                self.listening = true;
                let count = env.listen(&t);
                if count.is_none() || count != self.internal_seen {
                    if count.is_none() {
                        env.kick();
                        let mut wait = SUBSCRIBE_WAIT;
                        if let Some(d) = deadline {
                            wait = wait.min(d.saturating_duration_since(now));
                        }
                        self.resume_at = Some(now + wait);
                    }
                    continue;
                }
            }
            let now = env.now();
            if let Some(d) = deadline
                && now >= d
            {
                // The step ends the acquire with a timeout.
                return Poll::Sleep(Duration::ZERO);
            }
            let mut sleep = bounds.patience;
            let grace = env.grace();
            let age = now.saturating_duration_since(self.drawn_at);
            let past_grace = age >= grace;
            match reading.holder {
                Holder::Missing | Holder::Withdrawn => {
                    if !past_grace && reading.holder == Holder::Missing {
                        sleep = sleep.min(grace - age);
                    } else if reading.watched == reading.indicator {
                        // The ticket at the indicator is dead, and every
                        // one between it and ours: step past them.
                        match self.pass_head(env, budget, past_grace, now, deadline) {
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
                match self.pass_head(env, budget, past_grace, now, deadline) {
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
            if self.gap.is_some_and(|(_, recorded)| !recorded) {
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
