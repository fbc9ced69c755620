//! Waiting for the turn: an acquire draws a ticket and, unless it was
//! granted at once, waits for its call: the message with its nonce that the
//! release (or bump) setting the indicator to it sends to this locker
//! alone; it then confirms its turn with one plain read.
//! Meanwhile it watches the nearest ticket ahead of it that is alive, and
//! re-reads the queue on silence: when that ticket's lease would lapse, and
//! after its patience. A watched ticket found dead is stepped past (bumped
//! when it is at the indicator, recorded as withdrawn otherwise, so that
//! the release before it passes it). A watched ticket that is not ours (a
//! turn 1.0 client's) announces its leaving only on `internal`, so then
//! the waiter listens there too. A ticket lost while waiting is withdrawn
//! and drawn anew; one given up (timeout, cancel, try-lock, closing) is
//! withdrawn.
//!
//! The wait is a state machine, [`Acquiring`], which never sleeps itself:
//! each [`Acquiring::step`] does what can be done now (round trips
//! included) and says how long nothing needs doing unless the ticket is
//! signaled. A blocking acquire steps it in the calling thread and sleeps
//! on the ticket's signal between steps; a pending acquire (see
//! `pending.rs`) is stepped by the notifier thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::keys::{Keys, validate_label, validate_resource};
use crate::options::{Acquire, Cancel, Wait};
use crate::scripts::{self, Confirm, Turn};
use crate::ticket::{Draw, Ticket};

mod outage;
mod poll;

use outage::{Outage, Redraw};
use poll::{Poll, Waiter};

/// Takes a ticket for `resource` and waits for its turn in the calling
/// thread, as `request` says; the held ticket, admitted to the heartbeat.
/// On timeout, failure or a try-lock that would block, the ticket is
/// withdrawn.
pub(crate) fn acquire(rt: &Arc<Engine>, resource: &str, request: &Acquire) -> Result<Arc<Ticket>> {
    let mut acquiring = Acquiring::new(rt, resource, request)?;
    loop {
        match acquiring.step() {
            Step::Done(outcome) => return outcome,
            Step::Sleep(d) => acquiring.sleep(d),
        }
    }
}

/// What a step of an acquire came to.
pub(crate) enum Step {
    /// The acquire ended: the held ticket, or why not.
    Done(Result<Arc<Ticket>>),
    /// Nothing to do for this long, unless the ticket is signaled.
    Sleep(Duration),
}

/// One acquire, from its first draw to its end.
pub(crate) struct Acquiring {
    rt: Arc<Engine>,
    resource: String,
    request: Acquire,
    keys: Arc<Keys>,
    expire: Duration,
    patience: Duration,
    deadline: Option<Instant>,
    /// Set once a ticket was lost: drawing anew rides out an outage.
    redraw: Option<Redraw>,
    /// No draw before then (an outage while drawing anew).
    draw_after: Option<Instant>,
    /// The ticket waiting now.
    waiter: Option<Waiter>,
    /// Round trips allowed before the step must stop (None: any number).
    budget: Option<u32>,
    /// The last outage a lost ticket of this acquire rode out (a refusal,
    /// a grant its replicas did not confirm): what a timeout reports when
    /// nothing newer is known.
    refused: Option<Error>,
    /// A draw was made (or tried): the deadline counts from then on.
    drawn: bool,
    done: bool,
}

impl Acquiring {
    pub fn new(rt: &Arc<Engine>, resource: &str, request: &Acquire) -> Result<Acquiring> {
        let core = &rt.core;
        core.usable()?;
        validate_resource(resource)?;
        validate_label(&request.label)?;
        let expire = request.expire_or_default()?;
        let keys = core.shared_keys(resource);
        let patience = request.patience_or_default();
        // Every acquire draws once. A timeout shorter than a millisecond
        // (zero included) would pass before the draw is sent, so it is a
        // try-lock: one draw, `WouldBlock` when someone else has the turn.
        let mut request = request.clone();
        if let Wait::For(d) = request.wait
            && d < Duration::from_millis(1)
        {
            request.wait = Wait::TryOnce;
        }
        // Taken last: the first step follows at once.
        let deadline = match request.wait {
            Wait::For(d) => Instant::now().checked_add(d),
            _ => None,
        };
        Ok(Acquiring {
            rt: rt.clone(),
            resource: resource.to_string(),
            request,
            keys,
            expire,
            patience,
            deadline,
            redraw: None,
            draw_after: None,
            waiter: None,
            budget: None,
            refused: None,
            drawn: false,
            done: false,
        })
    }

    /// Allows only `n` round trips per step from now on (None: any).
    pub fn limit(&mut self, n: Option<u32>) {
        self.budget = n;
    }

    /// True when no step is needed: nothing signaled the ticket and the
    /// flags that end a wait are not set (for a driver deciding whether to
    /// step before the time `step` asked for).
    pub fn quiet(&self) -> bool {
        let core = &self.rt.core;
        if core.is_closed()
            || self
                .request
                .cancel
                .as_ref()
                .is_some_and(Cancel::is_canceled)
        {
            return false;
        }
        self.waiter
            .as_ref()
            .is_none_or(|w| !w.ticket.is_signaled() && !w.ticket.is_lost())
    }

    /// Tickets ahead of the waiting one as last read (the holder included;
    /// tickets withdrawn or dead count until the queue passes them). None
    /// before the first reading.
    pub fn ahead(&self) -> Option<u64> {
        self.waiter
            .as_ref()
            .map(|w| w.ticket.serial.saturating_sub(w.last.indicator))
    }

    /// The serial of the ticket waiting now (None before the draw and
    /// once the wait ended; a ticket lost while waiting is drawn anew).
    pub fn serial(&self) -> Option<u64> {
        self.waiter.as_ref().map(|w| w.ticket.serial)
    }

    /// Sleeps in the calling thread for up to `d`, or until the ticket is
    /// signaled (its call, a message, its loss, its cancel token fired, the
    /// locker closing: closing marks every ticket lost). Without a ticket
    /// (between draws while Redis is away) it ends at once when the locker
    /// closes and within a few ms of the cancel token firing.
    pub fn sleep(&self, d: Duration) {
        match &self.waiter {
            Some(w) => {
                w.ticket.wait_signal(d);
            }
            None => self.rt.pause(d, self.request.cancel.as_ref()),
        }
    }

    /// Spends a round trip; false when the budget is spent.
    fn spend(&mut self) -> bool {
        match &mut self.budget {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }

    /// Does what can be done now.
    pub fn step(&mut self) -> Step {
        if self.done {
            return Step::Done(Err(Error::new(
                ErrorKind::InvalidArgument,
                "this acquire has ended",
            )));
        }
        loop {
            if self.rt.core.is_closed() {
                return self.fail(closed_during_wait(&self.resource));
            }
            // Every acquire draws once at least: a timeout shorter than
            // the time to the first step still tries.
            if let Some(d) = self.deadline
                && self.drawn
                && Instant::now() >= d
            {
                // Timed out while riding an outage out (a refusal, grants
                // the replicas did not confirm): that is the error.
                let outage = match (&self.waiter, &self.redraw) {
                    (Some(w), _) => w.outage.last.as_ref(),
                    (None, Some(r)) => r.last.as_ref(),
                    (None, None) => None,
                }
                .or(self.refused.as_ref());
                let e = match (&self.waiter, outage) {
                    (Some(w), Some(e)) => Error::connection(format!(
                        "\"{}\" was not granted in time: {e} (ticket {} withdrawn)",
                        self.resource, w.ticket.serial
                    )),
                    (None, Some(e)) => Error::connection(format!(
                        "\"{}\" was not granted in time: {e}",
                        self.resource
                    )),
                    (Some(w), None) => Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "\"{}\" was not granted in time (turn {}, ticket {} withdrawn)",
                            self.resource, w.last.indicator, w.ticket.serial
                        ),
                    ),
                    (None, None) => Error::new(
                        ErrorKind::Timeout,
                        format!("\"{}\" was not granted in time", self.resource),
                    ),
                };
                return self.fail(e);
            }
            if self
                .request
                .cancel
                .as_ref()
                .is_some_and(Cancel::is_canceled)
            {
                let e = match &self.waiter {
                    Some(w) => Error::new(
                        ErrorKind::Canceled,
                        format!(
                            "waiting for \"{}\" was canceled (ticket {} withdrawn)",
                            self.resource, w.ticket.serial
                        ),
                    ),
                    None => Error::new(
                        ErrorKind::Canceled,
                        format!("acquiring \"{}\" was canceled", self.resource),
                    ),
                };
                return self.fail(e);
            }
            if self.waiter.is_none() {
                if let Some(at) = self.draw_after {
                    let now = Instant::now();
                    if now < at {
                        return Step::Sleep(at - now);
                    }
                    self.draw_after = None;
                }
                if !self.spend() {
                    return Step::Sleep(Duration::ZERO);
                }
                if let Some(step) = self.draw() {
                    return step;
                }
                continue;
            }
            match self.poll() {
                Poll::Granted => {
                    let w = self.waiter.take().expect("a waiter polled");
                    self.rt.notifier.unregister(&w.ticket);
                    self.rt.notifier.forget(&w.nonce);
                    self.done = true;
                    return Step::Done(Ok(w.ticket));
                }
                Poll::Lost => {
                    // Drawn anew, unless the locker is closing. An outage
                    // the lost ticket was riding out is remembered: a
                    // timeout reports it.
                    if let Some(e) = self.waiter.as_ref().and_then(|w| w.outage.last.clone()) {
                        self.refused = Some(e);
                    }
                    self.drop_waiter();
                    if self.rt.core.is_closed() {
                        return self.fail(closed_during_wait(&self.resource));
                    }
                    if self.redraw.is_none() {
                        self.redraw = Some(Redraw::new(self.expire));
                    }
                }
                Poll::Failed(e) => return self.fail(e),
                Poll::Sleep(d) => return Step::Sleep(d),
                Poll::Spent => return Step::Sleep(Duration::ZERO),
            }
        }
    }

    /// Ends the acquire with `e`, withdrawing the waiting ticket.
    fn fail(&mut self, e: Error) -> Step {
        self.drop_waiter();
        self.done = true;
        Step::Done(Err(e))
    }

    /// Withdraws the waiting ticket, if any.
    fn drop_waiter(&mut self) {
        if let Some(w) = self.waiter.take() {
            self.rt.notifier.unregister(&w.ticket);
            self.rt.notifier.forget(&w.nonce);
            self.rt.withdraw(&w.ticket);
        }
    }

    /// Draws a ticket. Some: the acquire ends (granted, would block, an
    /// error). None: a ticket waits now, or the draw is to be made again.
    fn draw(&mut self) -> Option<Step> {
        self.drawn = true;
        let rt = self.rt.clone();
        let core = &rt.core;
        let nonce = core.nonce();
        // Expected before the draw is sent, so that the call that may
        // follow it at once is not missed.
        let before = rt.notifier.expect(&nonce);
        let seen = rt.notifier.snapshot(&self.keys.internal);
        let draw = Draw {
            id: core.next_id(),
            resource: self.resource.clone(),
            keys: self.keys.clone(),
            nonce: nonce.clone(),
            channel: rt.notifier.channel().to_string(),
            label: self.request.label.clone(),
            expire: self.expire,
            sent_ms: core.now_ms(),
        };
        let drawn = match scripts::draw(core, &draw) {
            Ok(drawn) => drawn,
            Err(e) => {
                rt.notifier.forget(&nonce);
                // Drawing anew after a loss (Redis restarting, say): ride
                // the outage out for as long as a lease would.
                // A server that refuses for now (no replicas, a replica,
                // loading), or with Sentinel a master that went away (a
                // failover is on its way), is ridden out from the first
                // draw on; not by a try-lock, which answers at once.
                let failing_over = core.pool.is_sentinel() && e.is_connection();
                if self.redraw.is_none()
                    && self.request.wait != Wait::TryOnce
                    && (e.is_refusal() || failing_over)
                {
                    self.redraw = Some(Redraw::new(self.expire));
                }
                return match self.redraw.as_mut() {
                    Some(outage) if e.is_connection() => match outage.pause(e, self.deadline) {
                        Ok(pause) => {
                            self.draw_after = Some(Instant::now() + pause);
                            None
                        }
                        Err(e) => Some(self.fail(e)),
                    },
                    _ => Some(self.fail(e)),
                };
            }
        };
        let serial = drawn.serial;
        let ticket = Arc::new(Ticket::new(draw, serial, drawn.token));
        let reading = match drawn.turn {
            Turn::Granted if !drawn.confirmed => {
                // The indicator shows the ticket, but the replicas do not
                // have it yet: not a grant. The ticket waits and checks
                // again (a check grants it once they confirm).
                let confirm = Confirm::of(core, self.expire);
                let e = confirm.map_or_else(
                    || Error::refusal("the grant was not confirmed"),
                    |c| {
                        c.missed(&format!(
                            "the grant of ticket {serial} on \"{}\"",
                            self.resource
                        ))
                    },
                );
                if self.request.wait == Wait::TryOnce {
                    rt.notifier.forget(&nonce);
                    rt.withdraw(&ticket);
                    return Some(self.fail(e));
                }
                return self.wait_unconfirmed(ticket, nonce, seen, e);
            }
            Turn::Granted => {
                rt.notifier.forget(&nonce);
                if rt.heartbeat.admit(core, &ticket, true) {
                    self.done = true;
                    return Some(Step::Done(Ok(ticket)));
                }
                // Closing, or the reply came after the lease lapsed.
                rt.withdraw(&ticket);
                if core.is_closed() {
                    return Some(self.fail(closed_during_wait(&self.resource)));
                }
                if self.request.wait == Wait::TryOnce {
                    return Some(self.fail(late_reply(&self.resource, serial)));
                }
                return None;
            }
            Turn::Waiting(reading) => reading,
        };
        if self.request.wait == Wait::TryOnce {
            rt.notifier.forget(&nonce);
            rt.withdraw(&ticket);
            return Some(self.fail(Error::new(
                ErrorKind::WouldBlock,
                format!(
                    "\"{}\" is taken (turn {}, ticket {serial} withdrawn)",
                    self.resource, reading.indicator
                ),
            )));
        }
        // The draw's reading still holds if the locker's channel was
        // subscribed before the draw and has stayed so, and no call came.
        let (after, called) = rt.notifier.attach(&nonce, &ticket);
        let own = before.is_some() && after == before && !called;
        if let Err(step) = self.admit_waiting(&ticket, &nonce) {
            return step;
        }
        self.waiter = Some(Waiter {
            ticket,
            nonce,
            known: own.then_some(reading),
            last: reading,
            internal_seen: seen,
            listening: false,
            outage: Outage::default(),
            resume_at: None,
            recall: false,
            drawn_at: Instant::now(),
            gap: None,
        });
        None
    }
}

impl Acquiring {
    /// Admits a drawn ticket as waiting (heartbeat, cancel token,
    /// notifier); when it cannot be (closing, or its lease lapsed before
    /// the draw's reply), withdraws it and says what the draw comes to.
    fn admit_waiting(
        &mut self,
        ticket: &Arc<Ticket>,
        nonce: &str,
    ) -> std::result::Result<(), Option<Step>> {
        let rt = self.rt.clone();
        if !rt.heartbeat.admit(&rt.core, ticket, false) {
            rt.notifier.forget(nonce);
            rt.withdraw(ticket);
            if rt.core.is_closed() {
                return Err(Some(self.fail(closed_during_wait(&self.resource))));
            }
            return Err(None);
        }
        if let Some(cancel) = &self.request.cancel {
            cancel.watch(ticket);
        }
        rt.notifier.register(ticket);
        Ok(())
    }

    /// A drawn ticket whose grant the replicas did not confirm: it waits,
    /// checking again after an outage's pause.
    fn wait_unconfirmed(
        &mut self,
        ticket: Arc<Ticket>,
        nonce: String,
        seen: Option<u64>,
        e: Error,
    ) -> Option<Step> {
        let rt = self.rt.clone();
        let core = &rt.core;
        rt.notifier.forget(&nonce);
        if let Err(step) = self.admit_waiting(&ticket, &nonce) {
            return step;
        }
        let serial = ticket.serial;
        let mut outage = Outage::default();
        let resume_at = match outage.pause(e.clone(), &ticket, core, self.deadline) {
            Ok(pause) => Some(Instant::now() + pause),
            // The deadline: the next step ends the acquire.
            Err(_) => None,
        };
        // What a timeout reports, whatever the pause said.
        outage.last = Some(e);
        self.waiter = Some(Waiter {
            ticket,
            nonce,
            known: None,
            // Nothing ahead of it: the indicator showed it.
            last: scripts::Reading {
                indicator: serial,
                watched: serial,
                holder: scripts::Holder::Missing,
                ours: true,
            },
            internal_seen: seen,
            listening: false,
            outage,
            resume_at,
            recall: false,
            drawn_at: Instant::now(),
            gap: None,
        });
        None
    }
}

impl Drop for Acquiring {
    fn drop(&mut self) {
        // Given up before its end (a pending canceled or dropped).
        if !self.done {
            self.drop_waiter();
        }
    }
}

/// Makes the notifier thread look at its subscriptions now.
fn kick(rt: &Engine) {
    let channel = rt.notifier.channel();
    let _ = rt
        .core
        .run(|c| redis::cmd("PUBLISH").arg(channel).arg("").query::<i64>(c));
}

/// The error of a try-lock whose draw was answered after its lease lapsed.
fn late_reply(resource: &str, serial: u64) -> Error {
    Error::new(
        ErrorKind::WouldBlock,
        format!(
            "\"{resource}\": the reply to ticket {serial} came after its lease lapsed (withdrawn)"
        ),
    )
}

/// The error of an acquire whose locker was closed (freed) meanwhile.
fn closed_during_wait(resource: &str) -> Error {
    Error::new(
        ErrorKind::Canceled,
        format!("the locker was closed while acquiring \"{resource}\" (the ticket was withdrawn)"),
    )
}
