//! The notifier's bookkeeping, without a connection: who waits on which
//! channel, which channels to subscribe, which nonces are expected on the
//! locker's own channel, and whom a message wakes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::keys::Keys;
use crate::ticket::Ticket;

/// A channel stays subscribed this long after its last local waiter left,
/// so that a busy resource does not resubscribe for every wait.
pub(super) const LINGER: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(super) struct State {
    channels: HashMap<String, Channel>,
    /// Tickets expecting their nonce on the locker's channel, by nonce;
    /// entered before the draw is sent, so that no message is missed.
    expected: HashMap<String, Expected>,
    /// Counts the subscriptions of the locker's channel.
    own_epoch: u64,
    /// The locker's channel is subscribed now.
    own_live: bool,
}

#[derive(Default)]
struct Expected {
    ticket: Option<Arc<Ticket>>,
    called: bool,
}

struct Channel {
    keys: Arc<Keys>,
    /// Local waiters by (serial, ticket id): two tickets of one locker can
    /// have one serial (one of a queue that vanished).
    waiters: BTreeMap<(u64, u64), Arc<Ticket>>,
    subscribed: bool,
    /// Messages seen on this channel since it was subscribed.
    seq: u64,
    last_used: Instant,
}

impl Channel {
    fn wake_all(&self) {
        for t in self.waiters.values() {
            t.signal();
        }
    }

    fn wake_head(&self) {
        if let Some((_, t)) = self.waiters.iter().next() {
            t.signal();
        }
    }
}

impl State {
    /// The subscription count of the locker's channel when it is
    /// subscribed, else None.
    fn own(&self) -> Option<u64> {
        self.own_live.then_some(self.own_epoch)
    }

    /// Expects a message with `nonce` (before the draw is sent). Returns the
    /// subscription count of the locker's channel when it is subscribed.
    pub fn expect(&mut self, nonce: &str) -> Option<u64> {
        self.expected.insert(nonce.to_string(), Expected::default());
        self.own()
    }

    /// Attaches the drawn ticket to its nonce. Returns the subscription
    /// count as `expect` does, and whether its call came already (then the
    /// draw's reading is stale).
    pub fn attach(&mut self, nonce: &str, t: &Arc<Ticket>) -> (Option<u64>, bool) {
        let mut called = false;
        if let Some(e) = self.expected.get_mut(nonce) {
            e.ticket = Some(t.clone());
            called = e.called;
        }
        (self.own(), called)
    }

    /// Stops expecting `nonce`.
    pub fn forget(&mut self, nonce: &str) {
        self.expected.remove(nonce);
    }

    /// The locker's channel was subscribed (again).
    pub fn own_subscribed(&mut self) {
        self.own_epoch += 1;
        self.own_live = true;
    }

    /// A message on the locker's channel: the call of the ticket whose
    /// nonce it is.
    pub fn call(&mut self, nonce: &[u8]) {
        let Some(e) = std::str::from_utf8(nonce)
            .ok()
            .and_then(|n| self.expected.get_mut(n))
        else {
            return;
        };
        e.called = true;
        if let Some(t) = &e.ticket {
            t.signal();
        }
    }

    /// The message count of `channel` when it is subscribed, else None.
    pub fn snapshot(&self, channel: &str) -> Option<u64> {
        self.channels
            .get(channel)
            .filter(|c| c.subscribed)
            .map(|c| c.seq)
    }

    /// True when `t` is the lowest local waiter of its resource.
    pub fn is_head(&self, t: &Ticket) -> bool {
        self.channels
            .get(&t.keys.internal)
            .and_then(|c| c.waiters.keys().next().copied())
            == Some((t.serial, t.id))
    }

    /// A waiter comes: its resource's channel is wanted. Returns the
    /// channel's message count when it is subscribed.
    pub fn add(&mut self, t: &Arc<Ticket>, now: Instant) -> Option<u64> {
        let channel = self
            .channels
            .entry(t.keys.internal.clone())
            .or_insert_with(|| Channel {
                keys: t.keys.clone(),
                waiters: BTreeMap::new(),
                subscribed: false,
                seq: 0,
                last_used: now,
            });
        channel.waiters.insert((t.serial, t.id), t.clone());
        channel.last_used = now;
        channel.subscribed.then_some(channel.seq)
    }

    /// A waiter leaves; when it was the head, the next takes over.
    pub fn remove(&mut self, t: &Ticket, now: Instant) {
        if let Some(channel) = self.channels.get_mut(&t.keys.internal) {
            let was_head = channel.waiters.keys().next() == Some(&(t.serial, t.id));
            channel.waiters.remove(&(t.serial, t.id));
            channel.last_used = now;
            if was_head {
                // The next local ticket takes over watching the queue.
                channel.wake_head();
            }
        }
    }

    /// Which channels to subscribe and unsubscribe at `now`, given the
    /// current ones: those with waiters or used within [`LINGER`] are
    /// wanted; the others are forgotten once unsubscribed.
    pub fn plan(&mut self, current: &HashSet<String>, now: Instant) -> (Vec<String>, Vec<String>) {
        self.channels.retain(|name, c| {
            !c.waiters.is_empty()
                || now.duration_since(c.last_used) < LINGER
                || current.contains(name)
        });
        let mut subscribe = Vec::new();
        let mut unsubscribe = Vec::new();
        for (name, c) in &self.channels {
            let wanted = !c.waiters.is_empty() || now.duration_since(c.last_used) < LINGER;
            if wanted && !current.contains(name) {
                subscribe.push(name.clone());
            } else if !wanted && current.contains(name) {
                unsubscribe.push(name.clone());
            }
        }
        (subscribe, unsubscribe)
    }

    /// The server confirmed these subscriptions: their waiters re-read
    /// their queues (messages before it were missed).
    pub fn subscribed(&mut self, names: &[String]) {
        for name in names {
            if let Some(c) = self.channels.get_mut(name) {
                c.subscribed = true;
                c.seq = c.seq.wrapping_add(1);
                c.wake_all();
            }
        }
    }

    pub fn unsubscribed(&mut self, names: &[String]) {
        for name in names {
            if let Some(c) = self.channels.get_mut(name) {
                c.subscribed = false;
                if c.waiters.is_empty() {
                    self.channels.remove(name);
                }
            }
        }
    }

    /// The connection went away: every subscription is gone and messages
    /// may have been missed, so every waiter re-reads its queue.
    pub fn disconnected(&mut self) {
        self.own_live = false;
        for c in self.channels.values_mut() {
            c.subscribed = false;
            c.wake_all();
        }
    }

    /// A message on a resource's `internal` channel: it wakes the waiters
    /// whose serial it names, and the head.
    pub fn deliver(&mut self, channel: &str, payload: &[u8]) {
        let Some(c) = self.channels.get_mut(channel) else {
            return;
        };
        c.seq = c.seq.wrapping_add(1);
        if let Some(serial) = c.keys.serial_of_message(payload) {
            for t in c
                .waiters
                .range((serial, 0)..=(serial, u64::MAX))
                .map(|(_, t)| t)
            {
                t.signal();
            }
        }
        c.wake_head();
    }
}
