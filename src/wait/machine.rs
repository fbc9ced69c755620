//! The wait as a state machine, [`Acquiring`]: its phases, its draws, and
//! how a waiting ticket's poll ends it or sends it back to drawing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::env::{Budget, Env};
use super::live::Live;
use super::outage::{Outage, Redraw};
use super::waiter::{Bounds, Poll, Waiter};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::keys::{Keys, validate_label, validate_resource};
use crate::metrics::Ended;
use crate::options::{Acquire, Cancel, Wait};
use crate::scripts::{Bumped, Holder, Turn};
use crate::ticket::{Draw, Ticket};

/// Takes a ticket for `resource` and waits for its turn in the calling
/// thread, as `request` says; the held ticket, admitted to the heartbeat.
/// On timeout, failure or a try-lock that would block, the ticket is
/// withdrawn.
pub(crate) fn acquire(rt: &Arc<Engine>, resource: &str, request: &Acquire) -> Result<Arc<Ticket>> {
    let mut acquiring = Acquiring::new(rt, resource, request)?;
    loop {
        match acquiring.step(Budget::ANY) {
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

/// Where an acquire stands.
enum Phase {
    /// A draw is due: the first, or a new one once a ticket was lost (or
    /// its draw answered after its lease lapsed).
    Drawing,
    /// Drawing anew while Redis is away: no draw before `until`.
    PausingBeforeRedraw { until: Instant },
    /// A drawn ticket waits for its turn (or for its grant to be
    /// confirmed by the replicas).
    Waiting(Box<Waiter>),
    /// The outcome was given.
    Done,
}

/// One acquire, from its first draw to its end.
pub(crate) struct Acquiring<E: Env = Live> {
    env: E,
    resource: String,
    request: Acquire,
    keys: Arc<Keys>,
    expire: Duration,
    patience: Duration,
    deadline: Option<Instant>,
    phase: Phase,
    /// Set once a ticket was lost: drawing anew rides out an outage.
    redraw: Option<Redraw>,
    /// The last outage a lost ticket of this acquire rode out (a refusal,
    /// a grant its replicas did not confirm): what a timeout reports when
    /// nothing newer is known.
    refused: Option<Error>,
    /// A draw was made (or tried): the deadline counts from then on.
    drawn: bool,
    /// A drawn ticket waited (it was not granted by its draw).
    waited: bool,
    /// When the acquire began (its wait is counted from then).
    started: Instant,
}

impl Acquiring<Live> {
    pub fn new(rt: &Arc<Engine>, resource: &str, request: &Acquire) -> Result<Acquiring> {
        let core = &rt.core;
        core.usable()?;
        validate_resource(resource)?;
        validate_label(&request.label)?;
        request.mode.validate()?;
        let expire = request.expire_or_default()?;
        let keys = core.shared_keys(resource);
        Ok(Acquiring::with_env(
            Live::new(rt),
            resource,
            keys,
            request,
            expire,
        ))
    }
}

impl<E: Env> Acquiring<E> {
    /// An acquire of `resource` (its queue's `keys`) in `env`, as `request`
    /// says (already validated; `expire`: its lease).
    pub(super) fn with_env(
        env: E,
        resource: &str,
        keys: Arc<Keys>,
        request: &Acquire,
        expire: Duration,
    ) -> Acquiring<E> {
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
        let env_now = env.now();
        let deadline = match request.wait {
            Wait::For(d) => env_now.checked_add(d),
            _ => None,
        };
        Acquiring {
            env,
            resource: resource.to_string(),
            request,
            keys,
            expire,
            patience,
            deadline,
            phase: Phase::Drawing,
            redraw: None,
            refused: None,
            drawn: false,
            waited: false,
            started: env_now,
        }
    }

    fn waiter(&self) -> Option<&Waiter> {
        match &self.phase {
            Phase::Waiting(w) => Some(w),
            _ => None,
        }
    }

    fn is_canceled(&self) -> bool {
        self.request
            .cancel
            .as_ref()
            .is_some_and(Cancel::is_canceled)
    }

    /// True when no step is needed: nothing signaled the ticket and the
    /// flags that end a wait are not set (for a driver deciding whether to
    /// step before the time `step` asked for).
    pub fn quiet(&self) -> bool {
        if self.env.is_closed() || self.is_canceled() {
            return false;
        }
        self.waiter()
            .is_none_or(|w| !w.ticket.is_signaled() && !w.ticket.is_lost())
    }

    /// Tickets ahead of the waiting one as last read (the holder included;
    /// tickets withdrawn or dead count until the queue passes them). None
    /// before the first reading.
    pub fn ahead(&self) -> Option<u64> {
        self.waiter()
            .map(|w| w.ticket.serial.saturating_sub(w.last.indicator))
    }

    /// The serial of the ticket waiting now (None before the draw and
    /// once the wait ended; a ticket lost while waiting is drawn anew).
    pub fn serial(&self) -> Option<u64> {
        self.waiter().map(|w| w.ticket.serial)
    }

    /// Sleeps in the calling thread for up to `d`, or until the ticket is
    /// signaled (its call, a message, its loss, its cancel token fired, the
    /// locker closing: closing marks every ticket lost). Without a ticket
    /// (between draws while Redis is away) it ends at once when the locker
    /// closes and within a few ms of the cancel token firing.
    pub fn sleep(&self, d: Duration) {
        match self.waiter() {
            Some(w) => {
                w.ticket.wait_signal(d);
            }
            None => self.env.pause(d, self.request.cancel.as_ref()),
        }
    }

    /// Does what can be done now, with at most `budget` round trips
    /// (a step that spent them asks to be stepped again at once). The
    /// locker's metrics count how the acquire ended.
    pub fn step(&mut self, budget: Budget) -> Step {
        let ended = matches!(self.phase, Phase::Done);
        let step = self.advance(budget);
        if let (false, Step::Done(outcome)) = (ended, &step) {
            let how = match outcome {
                Ok(_) if self.waited => Ended::AfterWaiting,
                Ok(_) => Ended::AtOnce,
                Err(e) => match e.kind() {
                    ErrorKind::Timeout => Ended::Timeout,
                    ErrorKind::Canceled => Ended::Canceled,
                    ErrorKind::WouldBlock => Ended::WouldBlock,
                    _ => Ended::Failed,
                },
            };
            self.env
                .metrics()
                .acquired(how, self.env.now().saturating_duration_since(self.started));
        }
        step
    }

    fn advance(&mut self, mut budget: Budget) -> Step {
        if matches!(self.phase, Phase::Done) {
            return Step::Done(Err(Error::new(
                ErrorKind::InvalidArgument,
                "this acquire has ended",
            )));
        }
        loop {
            if self.env.is_closed() {
                return self.fail(closed_during_wait(&self.resource));
            }
            // Every acquire draws once at least: a timeout shorter than
            // the time to the first step still tries.
            if let Some(d) = self.deadline
                && self.drawn
                && self.env.now() >= d
            {
                let e = self.timed_out();
                return self.fail(e);
            }
            if self.is_canceled() {
                let e = match self.waiter() {
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
            let bounds = Bounds {
                deadline: self.deadline,
                patience: self.patience,
            };
            let poll = match &mut self.phase {
                Phase::Done => unreachable!("an ended acquire is not stepped"),
                Phase::Waiting(w) => w.poll(&self.env, &mut budget, bounds),
                Phase::PausingBeforeRedraw { until } => {
                    let until = *until;
                    let now = self.env.now();
                    if now < until {
                        return Step::Sleep(until - now);
                    }
                    self.phase = Phase::Drawing;
                    match self.draw_within(&mut budget) {
                        Some(step) => return step,
                        None => continue,
                    }
                }
                Phase::Drawing => match self.draw_within(&mut budget) {
                    Some(step) => return step,
                    None => continue,
                },
            };
            match poll {
                Poll::Granted => {
                    let Phase::Waiting(w) = std::mem::replace(&mut self.phase, Phase::Done) else {
                        unreachable!("a waiter polled");
                    };
                    self.env.unregister(&w.ticket);
                    self.env.forget(&w.nonce);
                    return Step::Done(Ok(w.ticket));
                }
                Poll::Lost => {
                    // DrawReply anew, unless the locker is closing. An outage
                    // the lost ticket was riding out is remembered: a
                    // timeout reports it.
                    if let Some(e) = self.waiter().and_then(|w| w.outage.last.clone()) {
                        self.refused = Some(e);
                    }
                    self.drop_waiter();
                    if self.env.is_closed() {
                        return self.fail(closed_during_wait(&self.resource));
                    }
                    if self.redraw.is_none() {
                        self.redraw = Some(Redraw::new(self.expire, self.env.now()));
                    }
                }
                Poll::Failed(e) => return self.fail(e),
                Poll::Sleep(d) => return Step::Sleep(d),
                Poll::Spent => return Step::Sleep(Duration::ZERO),
            }
        }
    }

    /// The error of an acquire past its deadline. Timed out while riding
    /// an outage out (a refusal, grants the replicas did not confirm):
    /// that is the error.
    fn timed_out(&self) -> Error {
        let waiter = self.waiter();
        let outage = match (waiter, &self.redraw) {
            (Some(w), _) => w.outage.last.as_ref(),
            (None, Some(r)) => r.last.as_ref(),
            (None, None) => None,
        }
        .or(self.refused.as_ref());
        match (waiter, outage) {
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
        }
    }

    /// Ends the acquire with `e`, withdrawing the waiting ticket. A round
    /// trip that failed while the cancel token fired (Redis stalled, say)
    /// ends the acquire as canceled, as the caller asked.
    fn fail(&mut self, e: Error) -> Step {
        let e = if e.kind() == ErrorKind::Connection && self.is_canceled() {
            Error::new(
                ErrorKind::Canceled,
                format!(
                    "acquiring \"{}\" was canceled (meanwhile: {e})",
                    self.resource
                ),
            )
        } else {
            e
        };
        self.drop_waiter();
        self.phase = Phase::Done;
        Step::Done(Err(e))
    }

    /// Withdraws the waiting ticket, if any: the acquire draws next.
    fn drop_waiter(&mut self) {
        if let Phase::Waiting(w) = std::mem::replace(&mut self.phase, Phase::Drawing) {
            self.env.unregister(&w.ticket);
            self.env.forget(&w.nonce);
            self.env.withdraw(&w.ticket);
        }
    }

    /// Draws a ticket when the budget allows a round trip (else the step
    /// asks to be stepped again at once).
    fn draw_within(&mut self, budget: &mut Budget) -> Option<Step> {
        if !budget.spend() {
            return Some(Step::Sleep(Duration::ZERO));
        }
        self.draw()
    }

    /// Draws a ticket. Some: the acquire ends (granted, would block, an
    /// error). None: a ticket waits now, or the draw is to be made again
    /// (at once, or after an outage's pause).
    fn draw(&mut self) -> Option<Step> {
        self.drawn = true;
        let env = &self.env;
        let nonce = env.nonce();
        // Expected before the draw is sent, so that the call that may
        // follow it at once is not missed.
        let before = env.expect(&nonce);
        let seen = env.snapshot(&self.keys.internal);
        let draw = Draw {
            id: env.next_id(),
            resource: self.resource.clone(),
            keys: self.keys.clone(),
            nonce: nonce.clone(),
            channel: env.channel(),
            label: self.request.label.clone(),
            expire: self.expire,
            sent_ms: env.now_ms(),
            mode: self.request.mode,
            metrics: env.metrics(),
        };
        let drawn = match env.draw(&draw) {
            Ok(drawn) => drawn,
            Err(e) => {
                env.forget(&nonce);
                return self.draw_failed(e);
            }
        };
        let serial = drawn.serial;
        let ticket = Arc::new(Ticket::new(draw, serial, drawn.token));
        let reading = match drawn.turn {
            Turn::Granted if !drawn.confirmed => {
                // The indicator shows the ticket, but the replicas do not
                // have it yet: not a grant. The ticket waits and checks
                // again (a check grants it once they confirm).
                let confirm = env.confirm_of(self.expire);
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
                    env.forget(&nonce);
                    env.withdraw(&ticket);
                    return Some(self.fail(e));
                }
                return self.wait_unconfirmed(ticket, nonce, seen, e);
            }
            Turn::Granted => {
                env.forget(&nonce);
                if env.admit(&ticket, true) {
                    self.phase = Phase::Done;
                    return Some(Step::Done(Ok(ticket)));
                }
                // Closing, or the reply came after the lease lapsed.
                env.withdraw(&ticket);
                if env.is_closed() {
                    return Some(self.fail(closed_during_wait(&self.resource)));
                }
                if self.request.wait == Wait::TryOnce {
                    return Some(self.fail(late_reply(&self.resource, serial)));
                }
                return None;
            }
            Turn::Waiting(reading) => reading,
        };
        if self.request.wait == Wait::TryOnce
            && reading.holder == Holder::Missing
            && let Ok(Ok(Bumped::To(to))) = env.bump_before(&ticket, false)
            && to == serial
        {
            // The ticket before this one is gone: the bump passes the one at
            // the indicator when it is dead (granted longer than the grace
            // ago, its key gone) and those withdrawn after it, and this
            // one's turn may come.
            env.forget(&nonce);
            if env.admit(&ticket, true) {
                self.phase = Phase::Done;
                return Some(Step::Done(Ok(ticket)));
            }
            env.withdraw(&ticket);
            return Some(self.fail(late_reply(&self.resource, serial)));
        }
        if self.request.wait == Wait::TryOnce {
            env.forget(&nonce);
            env.withdraw(&ticket);
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
        let (after, called) = env.attach(&nonce, &ticket);
        let own = before.is_some() && after == before && !called;
        if let Err(step) = self.admit_waiting(&ticket, &nonce) {
            return step;
        }
        let now = self.env.now();
        self.waited = true;
        self.phase = Phase::Waiting(Box::new(Waiter::drawn(
            ticket, nonce, reading, own, seen, now,
        )));
        None
    }

    /// A draw that failed with `e`: the acquire ends, or (riding an outage
    /// out) pauses before drawing again.
    fn draw_failed(&mut self, e: Error) -> Option<Step> {
        // Drawing anew after a loss (Redis restarting, say): ride the
        // outage out for as long as a lease would. A server that refuses
        // for now (no replicas, a replica, loading), or with Sentinel a
        // master that went away (a failover is on its way), is ridden out
        // from the first draw on; not by a try-lock, which answers at
        // once.
        let failing_over = self.env.is_sentinel() && e.is_connection();
        if self.redraw.is_none()
            && self.request.wait != Wait::TryOnce
            && (e.is_refusal() || failing_over)
        {
            self.redraw = Some(Redraw::new(self.expire, self.env.now()));
        }
        match self.redraw.as_mut() {
            Some(outage) if e.is_connection() => match outage.pause(e, self.deadline, &self.env) {
                Ok(pause) => {
                    self.phase = Phase::PausingBeforeRedraw {
                        until: self.env.now() + pause,
                    };
                    None
                }
                Err(e) => Some(self.fail(e)),
            },
            _ => Some(self.fail(e)),
        }
    }

    /// Admits a drawn ticket as waiting (heartbeat, cancel token,
    /// notifier); when it cannot be (closing, or its lease lapsed before
    /// the draw's reply), withdraws it and says what the draw comes to.
    fn admit_waiting(
        &mut self,
        ticket: &Arc<Ticket>,
        nonce: &str,
    ) -> std::result::Result<(), Option<Step>> {
        let env = &self.env;
        if !env.admit(ticket, false) {
            env.forget(nonce);
            env.withdraw(ticket);
            if env.is_closed() {
                return Err(Some(self.fail(closed_during_wait(&self.resource))));
            }
            return Err(None);
        }
        if let Some(cancel) = &self.request.cancel {
            cancel.watch(ticket);
        }
        env.register(ticket);
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
        self.env.forget(&nonce);
        if let Err(step) = self.admit_waiting(&ticket, &nonce) {
            return step;
        }
        let mut outage = Outage::default();
        let resume_at = match outage.pause(e.clone(), &ticket, self.deadline, &self.env) {
            Ok(pause) => Some(self.env.now() + pause),
            // The deadline: the next step ends the acquire.
            Err(_) => None,
        };
        // What a timeout reports, whatever the pause said.
        outage.last = Some(e);
        let now = self.env.now();
        self.waited = true;
        self.phase = Phase::Waiting(Box::new(Waiter::unconfirmed(
            ticket, nonce, seen, outage, resume_at, now,
        )));
        None
    }
}

impl<E: Env> Drop for Acquiring<E> {
    fn drop(&mut self) {
        // Given up before its end (a pending canceled or dropped).
        if !matches!(self.phase, Phase::Done) {
            self.drop_waiter();
        }
    }
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
