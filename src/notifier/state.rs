//! The notifier's bookkeeping, without a connection: who waits on which
//! resource, which `internal` channels to subscribe, which nonces are
//! expected on the locker's own channel, and whom a message wakes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::keys::Keys;
use crate::ticket::Ticket;

/// A channel stays subscribed this long after its last local waiter that
/// wanted it left, so that a busy resource does not resubscribe for every
/// wait.
pub(super) const LINGER: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(super) struct Bookkeeping {
    /// By `internal` channel name: the resources with local waiters.
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

struct Registered {
    ticket: Arc<Ticket>,
    /// It watches a ticket whose leaving only `internal` announces (a turn
    /// 1.0 ticket, or one not known to be ours).
    internal: bool,
}

struct Channel {
    keys: Arc<Keys>,
    /// Local waiters by (serial, ticket id): two tickets of one locker can
    /// have one serial (one of a queue that vanished).
    waiters: BTreeMap<(u64, u64), Registered>,
    subscribed: bool,
    /// Messages seen on this channel since it was subscribed.
    seq: u64,
    /// When a waiter last wanted the channel (None: never).
    last_wanted: Option<Instant>,
}

impl Channel {
    fn wants(&self) -> bool {
        self.waiters.values().any(|w| w.internal)
    }

    fn lingers(&self, now: Instant) -> bool {
        self.last_wanted
            .is_some_and(|at| now.duration_since(at) < LINGER)
    }

    fn wake_all(&self) {
        for w in self.waiters.values() {
            w.ticket.signal();
        }
    }

    fn wake_listeners(&self) {
        for w in self.waiters.values().filter(|w| w.internal) {
            w.ticket.signal();
        }
    }
}

impl Bookkeeping {
    /// The subscription count of the locker's channel when it is
    /// subscribed, else None.
    fn own(&self) -> Option<u64> {
        self.own_live.then_some(self.own_epoch)
    }

    /// Wakes every waiter and every drawn ticket expecting its call: a
    /// message may have been missed.
    fn wake_everyone(&self) {
        for c in self.channels.values() {
            c.wake_all();
        }
        for t in self.expected.values().filter_map(|e| e.ticket.as_ref()) {
            t.signal();
        }
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
        if called {
            t.call();
        }
        (self.own(), called)
    }

    /// Stops expecting `nonce`.
    pub fn forget(&mut self, nonce: &str) {
        self.expected.remove(nonce);
    }

    /// The locker's channel was subscribed (again): calls sent while it
    /// was not were missed, so everyone looks again.
    pub fn own_subscribed(&mut self) {
        self.own_epoch += 1;
        self.own_live = true;
        self.wake_everyone();
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
            t.call();
        }
    }

    /// The message count of `channel` when it is subscribed, else None.
    pub fn snapshot(&self, channel: &str) -> Option<u64> {
        self.channels
            .get(channel)
            .filter(|c| c.subscribed)
            .map(|c| c.seq)
    }

    /// A waiter comes (not listening on `internal` yet).
    pub fn add(&mut self, t: &Arc<Ticket>) {
        let channel = self
            .channels
            .entry(t.keys.internal.clone())
            .or_insert_with(|| Channel {
                keys: t.keys.clone(),
                waiters: BTreeMap::new(),
                subscribed: false,
                seq: 0,
                last_wanted: None,
            });
        channel.waiters.insert(
            (t.serial, t.id),
            Registered {
                ticket: t.clone(),
                internal: false,
            },
        );
    }

    /// A waiter listens on its resource's `internal` channel from now on.
    /// Returns the channel's message count when it is subscribed.
    pub fn listen(&mut self, t: &Ticket, now: Instant) -> Option<u64> {
        let c = self.channels.get_mut(&t.keys.internal)?;
        if let Some(w) = c.waiters.get_mut(&(t.serial, t.id)) {
            w.internal = true;
        }
        c.last_wanted = Some(now);
        c.subscribed.then_some(c.seq)
    }

    /// A waiter leaves.
    pub fn remove(&mut self, t: &Ticket, now: Instant) {
        if let Some(c) = self.channels.get_mut(&t.keys.internal)
            && let Some(w) = c.waiters.remove(&(t.serial, t.id))
            && w.internal
        {
            c.last_wanted = Some(now);
        }
    }

    /// Which channels to subscribe and unsubscribe at `now`, given the
    /// current ones: those a waiter listens on, or did within [`LINGER`],
    /// are wanted; channels nobody waits on are forgotten once
    /// unsubscribed.
    pub fn plan(&mut self, current: &HashSet<String>, now: Instant) -> (Vec<String>, Vec<String>) {
        self.channels
            .retain(|name, c| !c.waiters.is_empty() || c.lingers(now) || current.contains(name));
        let mut subscribe = Vec::new();
        let mut unsubscribe = Vec::new();
        for (name, c) in &self.channels {
            let wanted = c.wants() || c.lingers(now);
            if wanted && !current.contains(name) {
                subscribe.push(name.clone());
            } else if !wanted && current.contains(name) {
                unsubscribe.push(name.clone());
            }
        }
        (subscribe, unsubscribe)
    }

    /// The server confirmed these subscriptions: their listeners look
    /// again (messages before it were missed).
    pub fn subscribed(&mut self, names: &[String]) {
        for name in names {
            if let Some(c) = self.channels.get_mut(name) {
                c.subscribed = true;
                c.seq = c.seq.wrapping_add(1);
                c.wake_listeners();
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
    /// may have been missed, so every waiter looks again.
    pub fn disconnected(&mut self) {
        self.own_live = false;
        for c in self.channels.values_mut() {
            c.subscribed = false;
        }
        self.wake_everyone();
    }

    /// A message on a resource's `internal` channel (turn 1.0's "N may go
    /// now"): it wakes the waiters whose serial it names, and the
    /// listeners from that serial on (a ticket named may be dead; those
    /// behind it then step past it). A message naming nothing readable
    /// wakes every listener.
    pub fn deliver(&mut self, channel: &str, payload: &[u8]) {
        let Some(c) = self.channels.get_mut(channel) else {
            return;
        };
        c.seq = c.seq.wrapping_add(1);
        let from = c.keys.serial_of_message(payload);
        for ((serial, _), w) in &c.waiters {
            let named = from == Some(*serial);
            let behind = w.internal && from.is_none_or(|x| *serial >= x);
            if named || behind {
                w.ticket.signal();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(resource: &str) -> Arc<Keys> {
        Arc::new(Keys::new("turn", resource))
    }

    fn ticket(keys: &Arc<Keys>, id: u64, serial: u64) -> Arc<Ticket> {
        Ticket::for_test(keys, id, serial, 10_000, 0)
    }

    /// True when `t` was signaled since the last look.
    fn woken(t: &Ticket) -> bool {
        t.take_signal()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn waiters_that_watch_tickets_of_ours_subscribe_nothing() {
        let mut state = Bookkeeping::default();
        let k = keys("r");
        let t0 = Instant::now();
        for (id, serial) in [(1, 5), (2, 6), (3, 7)] {
            state.add(&ticket(&k, id, serial));
        }
        assert_eq!(state.plan(&HashSet::new(), t0), (vec![], vec![]));
    }

    #[test]
    fn a_listeners_channel_is_subscribed_and_lingers_after_it_leaves() {
        let mut state = Bookkeeping::default();
        let k = keys("r");
        let t = ticket(&k, 1, 5);
        let t0 = Instant::now();
        let mut current = HashSet::new();
        state.add(&t);
        assert_eq!(state.plan(&current, t0), (vec![], vec![]));
        assert_eq!(state.listen(&t, t0), None);
        assert_eq!(
            state.plan(&current, t0),
            (names(&["turn:r:internal"]), vec![])
        );
        current.insert(k.internal.clone());
        state.subscribed(&names(&["turn:r:internal"]));
        assert!(woken(&t));
        assert_eq!(state.plan(&current, t0), (vec![], vec![]));
        // The listener leaves: the channel stays for LINGER, then goes.
        state.remove(&t, t0);
        let almost = t0 + LINGER - Duration::from_millis(1);
        assert_eq!(state.plan(&current, almost), (vec![], vec![]));
        let after = t0 + LINGER;
        assert_eq!(
            state.plan(&current, after),
            (vec![], names(&["turn:r:internal"]))
        );
        current.clear();
        state.unsubscribed(&names(&["turn:r:internal"]));
        assert_eq!(state.snapshot(&k.internal), None);
        assert!(state.channels.is_empty());
    }

    #[test]
    fn a_lingering_channel_not_subscribed_is_forgotten() {
        let mut state = Bookkeeping::default();
        let k = keys("r");
        let t = ticket(&k, 1, 5);
        let t0 = Instant::now();
        state.add(&t);
        state.listen(&t, t0);
        state.remove(&t, t0);
        // Still wanted while it lingers, though nobody waits.
        assert_eq!(
            state.plan(&HashSet::new(), t0),
            (names(&["turn:r:internal"]), vec![])
        );
        assert_eq!(state.plan(&HashSet::new(), t0 + LINGER), (vec![], vec![]));
        assert!(state.channels.is_empty());
    }

    #[test]
    fn an_internal_message_wakes_the_waiter_it_names_and_the_listeners_behind_it() {
        let mut state = Bookkeeping::default();
        let k = keys("r");
        let t0 = Instant::now();
        let (before, named, quiet, listener) = (
            ticket(&k, 1, 3),
            ticket(&k, 2, 5),
            ticket(&k, 3, 7),
            ticket(&k, 4, 9),
        );
        for t in [&before, &named, &quiet, &listener] {
            state.add(t);
        }
        state.listen(&before, t0);
        state.listen(&listener, t0);
        state.deliver(&k.internal, b"turn:r:serial:5");
        assert!(!woken(&before) && woken(&named) && !woken(&quiet) && woken(&listener));
        // A message naming nobody local wakes the listeners from it on.
        state.deliver(&k.internal, b"turn:r:serial:8");
        assert!(!woken(&before) && !woken(&named) && !woken(&quiet) && woken(&listener));
        // One naming nothing readable wakes every listener.
        state.deliver(&k.internal, b"turn:other:serial:7");
        assert!(woken(&before) && !woken(&named) && !woken(&quiet) && woken(&listener));
        // Another resource's channel wakes nobody here.
        state.deliver("turn:s:internal", b"turn:r:serial:7");
        assert!(!woken(&before) && !woken(&quiet) && !woken(&listener));
    }

    #[test]
    fn the_message_count_runs_from_the_subscription() {
        let mut state = Bookkeeping::default();
        let k = keys("r");
        let t0 = Instant::now();
        let (a, b) = (ticket(&k, 1, 3), ticket(&k, 2, 4));
        state.add(&a);
        assert_eq!(state.listen(&a, t0), None);
        assert_eq!(state.snapshot(&k.internal), None);
        state.subscribed(&names(&["turn:r:internal"]));
        assert_eq!(state.snapshot(&k.internal), Some(1));
        state.deliver(&k.internal, b"turn:r:serial:9");
        state.deliver(&k.internal, b"junk");
        assert_eq!(state.snapshot(&k.internal), Some(3));
        state.add(&b);
        assert_eq!(state.listen(&b, t0), Some(3));
        // A new subscription counts on: a reading taken before it is stale.
        state.disconnected();
        assert_eq!(state.snapshot(&k.internal), None);
        state.subscribed(&names(&["turn:r:internal"]));
        assert_eq!(state.snapshot(&k.internal), Some(4));
    }

    #[test]
    fn two_tickets_with_one_serial_are_both_woken() {
        let mut state = Bookkeeping::default();
        let k = keys("r");
        // Two tickets of this locker with serial 5: one of a queue that
        // vanished, one of the queue made anew.
        let (old, new) = (ticket(&k, 1, 5), ticket(&k, 2, 5));
        state.add(&old);
        state.add(&new);
        state.deliver(&k.internal, b"turn:r:serial:5");
        assert!(woken(&old) && woken(&new));
        state.remove(&old, Instant::now());
        state.deliver(&k.internal, b"turn:r:serial:5");
        assert!(!woken(&old) && woken(&new));
    }

    #[test]
    fn a_call_that_comes_before_the_ticket_is_attached_is_remembered() {
        let mut state = Bookkeeping::default();
        let k = keys("r");
        let t = ticket(&k, 1, 5);
        state.own_subscribed();
        assert_eq!(state.expect("n1"), Some(1));
        state.call(b"n1");
        assert_eq!(state.attach("n1", &t), (Some(1), true));
        assert!(t.take_call());
    }

    #[test]
    fn a_call_after_the_ticket_is_attached_wakes_it() {
        let mut state = Bookkeeping::default();
        let k = keys("r");
        let (t, other) = (ticket(&k, 1, 5), ticket(&k, 2, 6));
        state.own_subscribed();
        state.expect("n1");
        state.expect("n2");
        assert_eq!(state.attach("n1", &t), (Some(1), false));
        assert_eq!(state.attach("n2", &other), (Some(1), false));
        state.call(b"n1");
        assert!(woken(&t) && !woken(&other));
        assert!(t.take_call() && !t.take_call() && !other.take_call());
        // Unknown or forgotten nonces wake nobody.
        state.call(b"n3");
        state.call(&[0xff, 0xfe]);
        state.forget("n2");
        state.call(b"n2");
        assert!(!woken(&t) && !woken(&other));
        // A nonce never expected cannot be attached to.
        assert_eq!(state.attach("n2", &other), (Some(1), false));
        state.call(b"n2");
        assert!(!woken(&other));
    }

    #[test]
    fn the_locker_channels_subscription_is_counted_and_lost_on_disconnect() {
        let mut state = Bookkeeping::default();
        let k = keys("r");
        let t = ticket(&k, 1, 5);
        assert_eq!(state.expect("n1"), None);
        state.own_subscribed();
        assert_eq!(state.attach("n1", &t), (Some(1), false));
        state.disconnected();
        assert_eq!(state.expect("n2"), None);
        state.own_subscribed();
        // Not the count seen before the draw: a call may have been missed.
        assert_eq!(state.attach("n2", &t), (Some(2), false));
    }

    #[test]
    fn a_disconnect_or_a_new_subscription_wakes_every_waiter_and_drawn_ticket() {
        let mut state = Bookkeeping::default();
        let (k, l) = (keys("r"), keys("s"));
        let t0 = Instant::now();
        let (a, b, c) = (ticket(&k, 1, 3), ticket(&k, 2, 4), ticket(&l, 3, 1));
        for t in [&a, &b, &c] {
            state.add(t);
        }
        state.listen(&a, t0);
        state.listen(&c, t0);
        // Drawn, not registered as a waiter yet.
        let drawn = ticket(&k, 4, 9);
        state.expect("n4");
        state.attach("n4", &drawn);
        state.subscribed(&names(&["turn:r:internal", "turn:s:internal"]));
        assert!(woken(&a) && !woken(&b) && woken(&c));
        state.disconnected();
        for t in [&a, &b, &c, &drawn] {
            assert!(woken(t));
        }
        assert_eq!(state.snapshot(&k.internal), None);
        assert_eq!(state.snapshot(&l.internal), None);
        state.own_subscribed();
        for t in [&a, &b, &c, &drawn] {
            assert!(woken(t));
        }
        // Every wanted channel is subscribed again on the next connection.
        let (mut subscribe, unsubscribe) = state.plan(&HashSet::new(), t0);
        subscribe.sort();
        assert_eq!(subscribe, names(&["turn:r:internal", "turn:s:internal"]));
        assert!(unsubscribe.is_empty());
    }
}
