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
    fn a_waiters_channel_is_subscribed_and_lingers_after_it_leaves() {
        let mut state = State::default();
        let k = keys("r");
        let t = ticket(&k, 1, 5);
        let t0 = Instant::now();
        let mut current = HashSet::new();
        assert_eq!(state.plan(&current, t0), (vec![], vec![]));
        assert_eq!(state.add(&t, t0), None);
        assert_eq!(
            state.plan(&current, t0),
            (names(&["turn:r:internal"]), vec![])
        );
        current.insert(k.internal.clone());
        state.subscribed(&names(&["turn:r:internal"]));
        assert_eq!(state.plan(&current, t0), (vec![], vec![]));
        // The waiter leaves: the channel stays for LINGER, then goes.
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
        let mut state = State::default();
        let k = keys("r");
        let t = ticket(&k, 1, 5);
        let t0 = Instant::now();
        state.add(&t, t0);
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
    fn a_message_wakes_the_waiter_it_names_and_the_head() {
        let mut state = State::default();
        let k = keys("r");
        let t0 = Instant::now();
        let (head, named, other) = (ticket(&k, 1, 3), ticket(&k, 2, 5), ticket(&k, 3, 7));
        for t in [&head, &named, &other] {
            state.add(t, t0);
        }
        state.deliver(&k.internal, b"turn:r:serial:5");
        assert!(woken(&head) && woken(&named) && !woken(&other));
        // A message naming no local waiter, or nothing at all, wakes the
        // head alone.
        state.deliver(&k.internal, b"turn:r:serial:6");
        assert!(woken(&head) && !woken(&named) && !woken(&other));
        state.deliver(&k.internal, b"turn:other:serial:7");
        assert!(woken(&head) && !woken(&other));
        // Another resource's channel wakes nobody here.
        state.deliver("turn:s:internal", b"turn:r:serial:7");
        assert!(!woken(&head) && !woken(&other));
    }

    #[test]
    fn the_message_count_runs_from_the_subscription() {
        let mut state = State::default();
        let k = keys("r");
        let t0 = Instant::now();
        assert_eq!(state.add(&ticket(&k, 1, 3), t0), None);
        assert_eq!(state.snapshot(&k.internal), None);
        state.subscribed(&names(&["turn:r:internal"]));
        assert_eq!(state.snapshot(&k.internal), Some(1));
        state.deliver(&k.internal, b"turn:r:serial:9");
        state.deliver(&k.internal, b"junk");
        assert_eq!(state.snapshot(&k.internal), Some(3));
        assert_eq!(state.add(&ticket(&k, 2, 4), t0), Some(3));
        // A new subscription counts on: a reading taken before it is stale.
        state.disconnected();
        assert_eq!(state.snapshot(&k.internal), None);
        state.subscribed(&names(&["turn:r:internal"]));
        assert_eq!(state.snapshot(&k.internal), Some(4));
    }

    #[test]
    fn the_lowest_local_ticket_is_the_head_and_the_next_takes_over() {
        let mut state = State::default();
        let k = keys("r");
        let t0 = Instant::now();
        let (a, b, c) = (ticket(&k, 1, 8), ticket(&k, 2, 4), ticket(&k, 3, 6));
        for t in [&a, &b, &c] {
            state.add(t, t0);
        }
        assert!(state.is_head(&b) && !state.is_head(&a) && !state.is_head(&c));
        // A waiter that is not the head leaves: nobody is woken.
        state.remove(&a, t0);
        assert!(!woken(&b) && !woken(&c));
        state.remove(&b, t0);
        assert!(state.is_head(&c));
        assert!(woken(&c));
        // Another resource has its own head.
        let other = ticket(&keys("s"), 4, 1);
        assert!(!state.is_head(&other));
        state.add(&other, t0);
        assert!(state.is_head(&other) && state.is_head(&c));
    }

    #[test]
    fn two_tickets_with_one_serial_are_both_woken_and_one_is_the_head() {
        let mut state = State::default();
        let k = keys("r");
        let t0 = Instant::now();
        // Two tickets of this locker with serial 5: one of a queue that
        // vanished, one of the queue made anew.
        let (old, new) = (ticket(&k, 1, 5), ticket(&k, 2, 5));
        state.add(&old, t0);
        state.add(&new, t0);
        assert!(state.is_head(&old) && !state.is_head(&new));
        state.deliver(&k.internal, b"turn:r:serial:5");
        assert!(woken(&old) && woken(&new));
        state.remove(&old, t0);
        assert!(state.is_head(&new));
        assert!(woken(&new));
    }

    #[test]
    fn a_call_that_comes_before_the_ticket_is_attached_is_remembered() {
        let mut state = State::default();
        let k = keys("r");
        let t = ticket(&k, 1, 5);
        state.own_subscribed();
        assert_eq!(state.expect("n1"), Some(1));
        state.call(b"n1");
        assert_eq!(state.attach("n1", &t), (Some(1), true));
        assert!(!woken(&t));
    }

    #[test]
    fn a_call_after_the_ticket_is_attached_wakes_it() {
        let mut state = State::default();
        let k = keys("r");
        let (t, other) = (ticket(&k, 1, 5), ticket(&k, 2, 6));
        state.own_subscribed();
        state.expect("n1");
        state.expect("n2");
        assert_eq!(state.attach("n1", &t), (Some(1), false));
        assert_eq!(state.attach("n2", &other), (Some(1), false));
        state.call(b"n1");
        assert!(woken(&t) && !woken(&other));
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
        let mut state = State::default();
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
    fn a_disconnect_wakes_every_waiter_and_drops_every_subscription() {
        let mut state = State::default();
        let (k, l) = (keys("r"), keys("s"));
        let t0 = Instant::now();
        let (a, b, c) = (ticket(&k, 1, 3), ticket(&k, 2, 4), ticket(&l, 3, 1));
        for t in [&a, &b, &c] {
            state.add(t, t0);
        }
        state.subscribed(&names(&["turn:r:internal", "turn:s:internal"]));
        for t in [&a, &b, &c] {
            assert!(woken(t));
        }
        state.disconnected();
        for t in [&a, &b, &c] {
            assert!(woken(t));
        }
        assert_eq!(state.snapshot(&k.internal), None);
        assert_eq!(state.snapshot(&l.internal), None);
        // Every wanted channel is subscribed again on the next connection.
        let (mut subscribe, unsubscribe) = state.plan(&HashSet::new(), t0);
        subscribe.sort();
        assert_eq!(subscribe, names(&["turn:r:internal", "turn:s:internal"]));
        assert!(unsubscribe.is_empty());
    }
}
