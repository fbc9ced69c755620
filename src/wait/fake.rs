//! A fake environment for the wait's unit tests: one queue (its indicator
//! and dispenser, tickets with a presence key that lapses by a fake clock,
//! turn 1.0 tickets, the withdrawn set), faults injected into the next
//! round trips, and a log of what the wait did. It follows the scripts'
//! rules closely enough for the wait's logic (see `scripts/*.rs`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::env::{Clock, DrawReply, Env};
use crate::error::{Error, Result};
use crate::options::Cancel;
use crate::scripts::{Bumped, Checked, Confirm, Holder, Reading, Turn};
use crate::ticket::{Draw, Ticket};

/// A ticket put in the queue by a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Other {
    /// One of ours, alive for this many ms more.
    Live(u64),
    /// A turn 1.0 client's, alive for this many ms more.
    Turn1(u64),
    /// Dead: its presence key is gone (not recorded withdrawn).
    Dead,
    /// Withdrawn: gone, and recorded in the withdrawn set.
    Withdrawn,
}

#[derive(Default)]
pub(super) struct World {
    /// The fake clock, in ms since `start`.
    pub ms: u64,
    pub indicator: u64,
    pub dispenser: u64,
    /// Presence keys: when each lapses (ms; None: no expiry).
    pub presence: BTreeMap<u64, Option<u64>>,
    /// Tickets that are not ours (turn 1.0 ones).
    pub turn1: BTreeSet<u64>,
    /// The withdrawn set.
    pub withdrawn: BTreeSet<u64>,
    /// Our tickets whose identity is gone (the queue made anew, say).
    pub taken: BTreeSet<u64>,
    /// Errors the next round trips answer, in order.
    pub faults: VecDeque<Error>,
    /// What happens while the next round trip is under way (a cancel token
    /// fired, say), before it answers.
    pub during: Option<Box<dyn FnOnce()>>,
    /// Grants (by a draw, check or bump) the replicas do not confirm.
    pub unconfirmed: u32,
    /// The locker asks for replicas.
    pub min_replicas: bool,
    pub closed: bool,
    pub sentinel: bool,
    /// The locker's channel's subscription count (None: not subscribed).
    pub own: Option<u64>,
    /// `internal`'s message count (None: not subscribed).
    pub internal: Option<u64>,
    pub grace: Duration,
    /// Round trips made.
    pub round_trips: u32,
    /// What the wait did, in order.
    pub log: Vec<String>,
    /// Tickets withdrawn.
    pub withdrawals: Vec<u64>,
    /// Tickets registered with the notifier now.
    pub registered: BTreeMap<u64, Arc<Ticket>>,
    /// Tickets admitted by the heartbeat (by serial).
    pub admitted: Vec<u64>,
    /// Tickets listening on `internal`.
    pub listening: Vec<u64>,
    next_id: u64,
}

/// The fake: a handle on one shared world (the test keeps one, the wait
/// another).
#[derive(Clone)]
pub(super) struct Fake {
    start: Instant,
    pub world: Rc<RefCell<World>>,
}

impl Fake {
    /// An empty queue (the next draw is granted), the locker's channel
    /// subscribed, a grace of 3 s.
    pub fn new() -> Fake {
        let world = World {
            indicator: 1,
            own: Some(1),
            grace: Duration::from_secs(3),
            ..World::default()
        };
        Fake {
            start: Instant::now(),
            world: Rc::new(RefCell::new(world)),
        }
    }

    pub fn w(&self) -> std::cell::RefMut<'_, World> {
        self.world.borrow_mut()
    }

    /// Puts these tickets in the queue, in order; the first drawn has the
    /// turn.
    pub fn queue(&self, others: &[Other]) {
        let mut w = self.w();
        w.indicator = w.dispenser + 1;
        for other in others {
            w.dispenser += 1;
            let n = w.dispenser;
            let now = w.ms;
            match *other {
                Other::Live(ms) => {
                    w.presence.insert(n, Some(now + ms));
                }
                Other::Turn1(ms) => {
                    w.presence.insert(n, Some(now + ms));
                    w.turn1.insert(n);
                }
                Other::Dead => {}
                Other::Withdrawn => {
                    w.withdrawn.insert(n);
                }
            }
        }
    }

    /// Moves the fake clock on.
    pub fn advance(&self, d: Duration) {
        self.w().ms += d.as_millis() as u64;
    }

    /// The ticket at the indicator releases: the indicator moves to the
    /// next ticket not recorded withdrawn, which is called (its nonce
    /// delivered) when it is one of ours registered with the notifier.
    pub fn release(&self) {
        let next = {
            let mut w = self.w();
            let ind = w.indicator;
            w.presence.remove(&ind);
            let mut next = ind + 1;
            while w.withdrawn.contains(&next) && !w.alive(next) {
                next += 1;
            }
            w.indicator = next;
            w.registered.get(&next).cloned()
        };
        if let Some(t) = next {
            t.call();
        }
    }

    /// Runs `f` while the next round trip is under way.
    pub fn during_next(&self, f: impl FnOnce() + 'static) {
        self.w().during = Some(Box::new(f));
    }

    /// The next round trip (not yet failed by another) fails with `e`.
    pub fn fail_next(&self, e: Error) {
        self.w().faults.push_back(e);
    }

    pub fn log(&self) -> Vec<String> {
        self.world.borrow().log.clone()
    }

    pub fn round_trips(&self) -> u32 {
        self.world.borrow().round_trips
    }

    pub fn withdrawals(&self) -> Vec<u64> {
        self.world.borrow().withdrawals.clone()
    }

    /// The registered ticket with this serial.
    pub fn ticket(&self, serial: u64) -> Arc<Ticket> {
        self.world.borrow().registered[&serial].clone()
    }
}

impl World {
    fn note(&mut self, what: String) {
        self.log.push(what);
    }

    /// A round trip: the next fault, if any.
    fn trip(&mut self, what: String) -> Result<()> {
        self.round_trips += 1;
        self.note(what);
        if let Some(during) = self.during.take() {
            during();
        }
        match self.faults.pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn alive(&self, n: u64) -> bool {
        match self.presence.get(&n) {
            Some(None) => true,
            Some(Some(until)) => *until > self.ms,
            None => false,
        }
    }

    fn holder(&self, n: u64) -> Holder {
        match self.presence.get(&n) {
            Some(None) => Holder::NoExpiry,
            Some(Some(until)) if *until > self.ms => {
                Holder::Expires(Duration::from_millis(until - self.ms))
            }
            _ => Holder::Missing,
        }
    }

    /// A grant the replicas may not confirm (the error `check` and
    /// `bump_before` answer then).
    fn grant(&mut self, serial: u64, resource: &str) -> Result<()> {
        if self.unconfirmed > 0 {
            self.unconfirmed -= 1;
            return Err(Error::refusal(format!(
                "the grant of ticket {serial} on \"{resource}\" was not confirmed by 1 replica(s) within 100 ms"
            )));
        }
        Ok(())
    }
}

impl Clock for Fake {
    fn now(&self) -> Instant {
        self.start + Duration::from_millis(self.world.borrow().ms)
    }

    fn now_ms(&self) -> u64 {
        self.world.borrow().ms
    }
}

impl Env for Fake {
    fn is_closed(&self) -> bool {
        self.world.borrow().closed
    }

    fn in_owner_process(&self) -> bool {
        true
    }

    fn grace(&self) -> Duration {
        self.world.borrow().grace
    }

    fn is_sentinel(&self) -> bool {
        self.world.borrow().sentinel
    }

    fn confirm_of(&self, _lease: Duration) -> Option<Confirm> {
        self.world.borrow().min_replicas.then_some(Confirm {
            replicas: 1,
            wait_ms: 100,
        })
    }

    fn nonce(&self) -> String {
        format!("nonce{}", self.world.borrow().next_id + 1)
    }

    fn next_id(&self) -> u64 {
        let mut w = self.w();
        w.next_id += 1;
        w.next_id
    }

    fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        Arc::default()
    }

    fn draw(&self, draw: &Draw) -> Result<DrawReply> {
        let mut w = self.w();
        let n = w.dispenser + 1;
        w.trip(format!("draw {n}"))?;
        w.dispenser = n;
        let until = w.ms + draw.expire.as_millis() as u64;
        w.presence.insert(n, Some(until));
        let turn = if w.indicator == n {
            Turn::Granted
        } else {
            Turn::Waiting(Reading {
                indicator: w.indicator,
                watched: n - 1,
                holder: w.holder(n - 1),
                ours: w.alive(n - 1) && !w.turn1.contains(&(n - 1)),
            })
        };
        let confirmed = !(turn == Turn::Granted && w.grant(n, &draw.resource).is_err());
        Ok(DrawReply {
            serial: n,
            token: 1000 + n,
            turn,
            confirmed,
        })
    }

    fn check(&self, t: &Ticket, record: bool) -> Result<Checked> {
        let mut w = self.w();
        let n = t.serial;
        w.trip(format!("check {n}{}", if record { " record" } else { "" }))?;
        let ind = w.indicator;
        if w.taken.contains(&n) || ind > n {
            return Ok(Checked::Lost);
        }
        if ind == n {
            if !w.alive(n) {
                return Ok(Checked::Lost);
            }
            w.grant(n, &t.resource)?;
            return Ok(Checked::Granted);
        }
        let mut unsure = false;
        let mut p = n - 1;
        loop {
            if w.alive(p) {
                return Ok(Checked::Waiting(Reading {
                    indicator: ind,
                    watched: p,
                    holder: w.holder(p),
                    ours: !unsure && !w.turn1.contains(&p),
                }));
            }
            if p == ind {
                let holder = if w.withdrawn.contains(&p) {
                    Holder::Withdrawn
                } else {
                    Holder::Missing
                };
                return Ok(Checked::Waiting(Reading {
                    indicator: ind,
                    watched: p,
                    holder,
                    ours: false,
                }));
            }
            if record {
                w.withdrawn.insert(p);
            } else if !w.withdrawn.contains(&p) {
                unsure = true;
            }
            p -= 1;
        }
    }

    fn confirm(&self, t: &Ticket) -> Result<bool> {
        let mut w = self.w();
        let n = t.serial;
        w.trip(format!("confirm {n}"))?;
        Ok(!w.taken.contains(&n) && w.indicator == n && w.alive(n))
    }

    fn bump_before(
        &self,
        t: &Ticket,
        past_grace: bool,
    ) -> Result<std::result::Result<Bumped, Holder>> {
        let mut w = self.w();
        let n = t.serial;
        w.trip(format!(
            "bump {n}{}",
            if past_grace { " past grace" } else { "" }
        ))?;
        if w.taken.contains(&n) {
            return Ok(Ok(Bumped::NotOurs));
        }
        let ind = w.indicator;
        if ind >= n {
            return Ok(Ok(Bumped::NoQueue));
        }
        if w.alive(ind) {
            return Ok(Err(w.holder(ind)));
        }
        if !past_grace && !w.withdrawn.contains(&ind) {
            return Ok(Err(Holder::Missing));
        }
        let mut next = ind + 1;
        while next < n && !w.alive(next) && (past_grace || w.withdrawn.contains(&next)) {
            next += 1;
        }
        w.indicator = next;
        if next == n {
            w.grant(n, &t.resource)?;
        }
        Ok(Ok(Bumped::To(next)))
    }

    fn withdraw(&self, t: &Arc<Ticket>) {
        let mut w = self.w();
        w.note(format!("withdraw {}", t.serial));
        w.withdrawals.push(t.serial);
        w.presence.remove(&t.serial);
        t.set_done();
    }

    fn kick(&self) {
        let mut w = self.w();
        w.round_trips += 1;
        w.note("kick".to_string());
    }

    fn admit(&self, t: &Arc<Ticket>, held: bool) -> bool {
        let mut w = self.w();
        if w.closed || t.lapsed(w.ms) {
            return false;
        }
        if held {
            t.set_held(w.ms);
        }
        w.admitted.push(t.serial);
        true
    }

    fn grant(&self, t: &Ticket) -> bool {
        let w = self.world.borrow();
        if w.closed || t.lapsed(w.ms) {
            return false;
        }
        t.set_held(w.ms);
        t.is_held()
    }

    fn channel(&self) -> String {
        "channel".to_string()
    }

    fn expect(&self, _nonce: &str) -> Option<u64> {
        self.world.borrow().own
    }

    fn attach(&self, _nonce: &str, _t: &Arc<Ticket>) -> (Option<u64>, bool) {
        (self.world.borrow().own, false)
    }

    fn forget(&self, nonce: &str) {
        self.w().note(format!("forget {nonce}"));
    }

    fn register(&self, t: &Arc<Ticket>) {
        self.w().registered.insert(t.serial, t.clone());
    }

    fn unregister(&self, t: &Ticket) {
        self.w().registered.remove(&t.serial);
    }

    fn listen(&self, t: &Ticket) -> Option<u64> {
        let mut w = self.w();
        w.listening.push(t.serial);
        w.internal
    }

    fn snapshot(&self, _channel: &str) -> Option<u64> {
        self.world.borrow().internal
    }

    fn pause(&self, d: Duration, _cancel: Option<&Cancel>) {
        self.advance(d);
    }
}
