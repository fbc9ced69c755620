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

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::core::Core;
use crate::error::{Error, ErrorKind, Result};
use crate::keys::{validate_label, validate_resource};
use crate::notifier::{Notifier, Registration};
use crate::options::{Acquire, Cancel, Wait};
use crate::runtime::Runtime;
use crate::scripts::{self, Bumped, Checked, Holder, Mode, Reading, Turn};
use crate::ticket::{Draw, Ticket};

/// How long a new waiter waits for its channel subscription to be confirmed
/// before it reads the queue anyway (it then relies on bounded waits).
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(1);
/// Slack added to a holder's remaining lease before looking again.
const LEASE_MARGIN: Duration = Duration::from_millis(2);

/// Takes a ticket for `resource` and waits for its turn, as `request`
/// says; the held ticket, admitted to the heartbeat. On timeout, failure
/// or a try-lock that would block, the ticket is withdrawn.
pub(crate) fn acquire(rt: &Runtime, resource: &str, request: &Acquire) -> Result<Arc<Ticket>> {
    let core = &rt.core;
    core.usable()?;
    validate_resource(resource)?;
    validate_label(&request.label)?;
    let expire = request.expire_or_default()?;
    let patience = request.patience_or_default();
    let deadline = match request.wait {
        Wait::For(d) => Instant::now().checked_add(d),
        _ => None,
    };
    let keys = core.shared_keys(resource);
    let mut redraw: Option<Redraw> = None;
    loop {
        if core.is_closed() {
            return Err(closed_during_wait(resource));
        }
        if let Some(d) = deadline
            && Instant::now() >= d
        {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("\"{resource}\" was not granted in time"),
            ));
        }
        if request.cancel.as_ref().is_some_and(Cancel::is_canceled) {
            return Err(Error::new(
                ErrorKind::Canceled,
                format!("acquiring \"{resource}\" was canceled"),
            ));
        }
        let nonce = core.nonce();
        let id = core.next_id();
        // Expected before the draw is sent, so that the call that may
        // follow it at once is not missed.
        let expected = Expected::new(&rt.notifier, &nonce);
        let seen = rt.notifier.snapshot(&keys.internal);
        let draw = Draw {
            id,
            resource: resource.to_string(),
            keys: keys.clone(),
            nonce: nonce.clone(),
            channel: rt.notifier.channel().to_string(),
            label: request.label.clone(),
            expire,
            sent_ms: core.now_ms(),
        };
        let drawn = match scripts::draw(core, &draw) {
            Ok(drawn) => drawn,
            Err(e) => {
                // Drawing anew after a loss (Redis restarting, say):
                // ride the outage out for as long as a lease would.
                match redraw.as_mut() {
                    Some(outage) if e.is_connection() => {
                        outage.pause(e, deadline)?;
                        continue;
                    }
                    _ => return Err(e),
                }
            }
        };
        let serial = drawn.serial;
        let ticket = Arc::new(Ticket::new(draw, serial, drawn.token, Instant::now()));
        let reading = match drawn.turn {
            Turn::Granted => {
                drop(expected);
                if rt.heartbeat.admit(core, &ticket, true) {
                    return Ok(ticket);
                }
                // Closing, or the reply came after the lease lapsed.
                withdraw(rt, &ticket);
                if core.is_closed() {
                    return Err(closed_during_wait(resource));
                }
                if request.wait == Wait::TryOnce {
                    return Err(late_reply(resource, serial));
                }
                continue;
            }
            Turn::Waiting(reading) => reading,
        };
        if request.wait == Wait::TryOnce {
            drop(expected);
            withdraw(rt, &ticket);
            return Err(Error::new(
                ErrorKind::WouldBlock,
                format!(
                    "\"{resource}\" is taken (turn {}, ticket {serial} withdrawn)",
                    reading.indicator
                ),
            ));
        }
        let own = expected.attach(&ticket);
        if !rt.heartbeat.admit(core, &ticket, false) {
            withdraw(rt, &ticket);
            if core.is_closed() {
                return Err(closed_during_wait(resource));
            }
            continue;
        }
        if let Some(cancel) = &request.cancel {
            cancel.watch(&ticket);
        }
        let outcome = wait_turn(
            rt,
            &ticket,
            reading,
            (seen, own),
            patience,
            deadline,
            request.cancel.as_ref(),
        );
        drop(expected);
        match outcome {
            Ok(()) => return Ok(ticket),
            Err(None) => {
                // The ticket was lost while waiting (or passed while this
                // process was paused): draw a new one, unless the locker
                // is closing.
                withdraw(rt, &ticket);
                if core.is_closed() {
                    return Err(closed_during_wait(resource));
                }
                if redraw.is_none() {
                    redraw = Some(Redraw::new(expire));
                }
            }
            Err(Some(e)) => {
                withdraw(rt, &ticket);
                return Err(e);
            }
        }
    }
}

/// Waits until `t` has the turn. Err(None): the ticket was lost.
/// `drawn`: what the draw read. `seen`: the `internal` channel's message
/// count before the draw, and whether the locker's channel stayed
/// subscribed since before the draw with no call yet (so the draw's
/// reading still holds).
fn wait_turn(
    rt: &Runtime,
    t: &Arc<Ticket>,
    drawn: Reading,
    seen: (Option<u64>, bool),
    patience: Duration,
    deadline: Option<Instant>,
    cancel: Option<&Cancel>,
) -> std::result::Result<(), Option<Error>> {
    let core = &rt.core;
    let waiter = Registration::new(&rt.notifier, t);
    let (mut internal_seen, own) = seen;
    let mut known = own.then_some(drawn);
    let mut listening = false;
    let mut outage = Outage::default();
    loop {
        // Taken before the flags are read: a signal that comes after this
        // (a call, a message, a cancel, the locker closing) ends the sleep
        // below; one that came before it makes the last reading stale.
        if t.take_signal() {
            known = None;
        }
        if t.is_lost() || !core.in_owner_process() || core.is_closed() {
            return Err(None);
        }
        if cancel.is_some_and(Cancel::is_canceled) {
            return Err(Some(Error::new(
                ErrorKind::Canceled,
                format!(
                    "waiting for \"{}\" was canceled (ticket {} withdrawn)",
                    t.resource, t.serial
                ),
            )));
        }
        if t.take_call() {
            // Its nonce came: the indicator was set to it. One plain read
            // confirms it (the message may have sat in a socket while this
            // process was paused, and the queue may have vanished since).
            match scripts::confirm(core, t) {
                Ok(true) => {
                    return if rt.heartbeat.grant(core, t) {
                        Ok(())
                    } else {
                        Err(None)
                    };
                }
                Ok(false) => {}
                Err(e) => {
                    outage.endure(e, t, core, deadline)?;
                    t.call();
                    continue;
                }
            }
        }
        let reading = match known.take() {
            Some(reading) => reading,
            None => {
                internal_seen = rt.notifier.snapshot(&t.keys.internal);
                // Old enough to tell a dead ticket ahead from a turn 1.0
                // one whose presence key is not set yet.
                let record = t.drawn_at.elapsed() >= core.options.grace;
                match scripts::check(core, t, record) {
                    Ok(Checked::Waiting(reading)) => reading,
                    Ok(Checked::Granted) => {
                        return if rt.heartbeat.grant(core, t) {
                            Ok(())
                        } else {
                            Err(None)
                        };
                    }
                    Ok(Checked::Lost) => return Err(None),
                    Err(e) => {
                        outage.endure(e, t, core, deadline)?;
                        continue;
                    }
                }
            }
        };
        if !reading.ours && !listening {
            // The watched ticket announces its leaving on `internal` only:
            // listen there from now on, and read again unless the channel
            // was subscribed before this reading with no message since.
            listening = true;
            let now = waiter.listen();
            if now.is_none() || now != internal_seen {
                if now.is_none() {
                    kick(rt);
                    let mut wait = SUBSCRIBE_WAIT;
                    if let Some(d) = deadline {
                        wait = wait.min(d.saturating_duration_since(Instant::now()));
                    }
                    t.wait_signal(wait);
                }
                continue;
            }
        }
        let now = Instant::now();
        if let Some(d) = deadline
            && now >= d
        {
            return Err(Some(Error::new(
                ErrorKind::Timeout,
                format!(
                    "\"{}\" was not granted in time (turn {}, ticket {} withdrawn)",
                    t.resource, reading.indicator, t.serial
                ),
            )));
        }
        let mut sleep = patience;
        match reading.holder {
            Holder::Missing => {
                let age = now.duration_since(t.drawn_at);
                if age < core.options.grace {
                    sleep = sleep.min(core.options.grace - age);
                } else if reading.watched == reading.indicator {
                    // The ticket at the indicator is dead, and every one
                    // between it and ours: step past them.
                    match scripts::bump_before(core, t) {
                        Ok(Bumped::NotOurs) => return Err(None),
                        Ok(Bumped::To(_) | Bumped::NoQueue) => {}
                        Err(e) => outage.endure(e, t, core, deadline)?,
                    }
                    continue;
                } else {
                    // The ticket before ours is gone: read again, recording
                    // the dead ones as withdrawn, and watch the next alive.
                    continue;
                }
            }
            Holder::Expires(left) => sleep = sleep.min(left + LEASE_MARGIN),
            Holder::NoExpiry => {}
        }
        if let Some(d) = deadline {
            sleep = sleep.min(d.saturating_duration_since(now));
        }
        t.wait_signal(sleep);
    }
}

/// Makes the notifier thread look at its subscriptions now.
fn kick(rt: &Runtime) {
    let channel = rt.notifier.channel();
    let _ = rt
        .core
        .run(|c| redis::cmd("PUBLISH").arg(channel).arg("").query::<i64>(c));
}

/// Withdraws a ticket that will not be used (timeout, failure, loss).
/// A ticket known lost touches nothing (see `Lock::release`).
fn withdraw(rt: &Runtime, t: &Ticket) {
    rt.heartbeat.unregister(t);
    let lost = t.is_lost();
    t.set_done();
    if !lost {
        let _ = scripts::release(&rt.core, t, Mode::Abandon);
    }
}

/// How an acquire that lost its ticket rides out Redis being unreachable
/// while it draws anew: it retries with a growing pause for as long as a
/// lease (from the loss) and its deadline allow.
struct Redraw {
    until: Instant,
    pause: Duration,
}

impl Redraw {
    fn new(lease: Duration) -> Redraw {
        let now = Instant::now();
        Redraw {
            until: now.checked_add(lease).unwrap_or(now),
            pause: Duration::ZERO,
        }
    }

    /// Sleeps before the next try, or gives `e` back when the time is up.
    fn pause(&mut self, e: Error, deadline: Option<Instant>) -> Result<()> {
        let now = Instant::now();
        let until = deadline.map_or(self.until, |d| d.min(self.until));
        if now >= until {
            return Err(e);
        }
        self.pause = (self.pause * 2).clamp(Duration::from_millis(50), Duration::from_secs(1));
        std::thread::sleep(self.pause.min(until - now));
        Ok(())
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

/// A ticket's nonce expected by the notifier, for as long as it waits.
struct Expected<'a> {
    notifier: &'a Notifier,
    nonce: String,
    /// The locker channel's subscription count before the draw.
    before: Option<u64>,
}

impl<'a> Expected<'a> {
    fn new(notifier: &'a Notifier, nonce: &str) -> Expected<'a> {
        let before = notifier.expect(nonce);
        Expected {
            notifier,
            nonce: nonce.to_string(),
            before,
        }
    }

    /// Attaches the drawn ticket. True when the locker's channel was
    /// subscribed before the draw and has stayed so, and no call for the
    /// ticket came yet: then the draw's reading still holds.
    fn attach(&self, t: &Arc<Ticket>) -> bool {
        let (after, called) = self.notifier.attach(&self.nonce, t);
        self.before.is_some() && after == self.before && !called
    }
}

impl Drop for Expected<'_> {
    fn drop(&mut self) {
        self.notifier.forget(&self.nonce);
    }
}

/// How a waiter rides out Redis being unreachable: it retries with a growing
/// pause while its ticket's lease may still hold and its deadline allows,
/// then gives up (a lapsed ticket is drawn anew, which reports the outage if
/// it goes on).
#[derive(Default)]
struct Outage {
    pause: Duration,
}

impl Outage {
    fn endure(
        &mut self,
        e: Error,
        t: &Ticket,
        core: &Core,
        deadline: Option<Instant>,
    ) -> std::result::Result<(), Option<Error>> {
        if !e.is_connection() {
            return Err(Some(e));
        }
        if t.lapsed(core.now_ms()) {
            return Err(None);
        }
        self.pause = (self.pause * 2).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut pause = self.pause;
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Some(e));
            }
            pause = pause.min(left);
        }
        t.wait_signal(pause);
        Ok(())
    }
}
