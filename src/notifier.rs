//! The notifier: one background thread with one pubsub connection,
//! subscribed to the `internal` channel of each resource that has a local
//! waiter, waking the right waiter when a message names its ticket.
//!
//! The thread also listens on the locker's own channel, where a release or
//! bump that sets the indicator to one of this locker's tickets publishes
//! that ticket's nonce. That message is the one a waiter trusts without a
//! round trip: the nonce was made for its draw, so the message cannot
//! predate the draw nor be meant for another ticket with the same serial.
//!
//! An `internal` message (turn 1.0's "N may go now") only wakes the waiter
//! it names and the local head (the lowest local ticket of that resource,
//! which watches the queue for dead tickets); they re-read the queue. Every
//! waiter sleeps only for bounded times.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::keys::Keys;
use crate::locker::Core;
use crate::ticket::Ticket;

/// How long the pubsub read blocks before the thread looks at its work.
const POLL: Duration = Duration::from_millis(250);
/// A channel stays subscribed this long after its last local waiter left,
/// so that a busy resource does not resubscribe for every wait.
const LINGER: Duration = Duration::from_secs(30);

pub(crate) struct Notifier {
    state: Mutex<State>,
    /// A channel of this locker's own: a message on it makes the thread
    /// look at new subscriptions at once.
    wake_channel: String,
}

#[derive(Default)]
struct State {
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

static UNIQUE: AtomicU64 = AtomicU64::new(0);

impl Notifier {
    pub fn new(prefix: &str) -> Notifier {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        Notifier {
            state: Mutex::new(State::default()),
            wake_channel: format!("{prefix}:notifier:{}.{nanos}.{n}:wake", std::process::id()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The locker's own channel (the identity keys of its tickets name it).
    pub fn channel(&self) -> &str {
        &self.wake_channel
    }

    /// Expects a message with `nonce` (before the draw is sent). Returns the
    /// subscription count of the locker's channel when it is subscribed.
    pub fn expect(&self, nonce: &str) -> Option<u64> {
        let mut state = self.lock();
        state
            .expected
            .insert(nonce.to_string(), Expected::default());
        state.own_live.then_some(state.own_epoch)
    }

    /// Attaches the drawn ticket to its nonce. Returns the subscription
    /// count as `expect` does, and whether its call came already (then the
    /// draw's reading is stale).
    pub fn attach(&self, nonce: &str, t: &Arc<Ticket>) -> (Option<u64>, bool) {
        let mut state = self.lock();
        let mut called = false;
        if let Some(e) = state.expected.get_mut(nonce) {
            e.ticket = Some(t.clone());
            called = e.called;
        }
        (state.own_live.then_some(state.own_epoch), called)
    }

    /// Stops expecting `nonce`.
    pub fn forget(&self, nonce: &str) {
        self.lock().expected.remove(nonce);
    }

    fn own_subscribed(&self) {
        let mut state = self.lock();
        state.own_epoch += 1;
        state.own_live = true;
    }

    fn call(&self, nonce: &[u8]) {
        let mut state = self.lock();
        let Some(e) = std::str::from_utf8(nonce)
            .ok()
            .and_then(|n| state.expected.get_mut(n))
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
        let state = self.lock();
        state
            .channels
            .get(channel)
            .filter(|c| c.subscribed)
            .map(|c| c.seq)
    }

    /// True when `t` is the lowest local waiter of its resource.
    pub fn is_head(&self, t: &Ticket) -> bool {
        let state = self.lock();
        state
            .channels
            .get(&t.keys.internal)
            .and_then(|c| c.waiters.keys().next().copied())
            == Some((t.serial, t.id))
    }

    /// Makes the thread look at its subscriptions now.
    pub fn kick(&self, core: &Core) {
        let channel = self.wake_channel.clone();
        let _ = core.run(|c| redis::cmd("PUBLISH").arg(&channel).arg("").query::<i64>(c));
    }

    fn add(&self, t: &Arc<Ticket>) -> Option<u64> {
        let mut state = self.lock();
        let channel = state
            .channels
            .entry(t.keys.internal.clone())
            .or_insert_with(|| Channel {
                keys: t.keys.clone(),
                waiters: BTreeMap::new(),
                subscribed: false,
                seq: 0,
                last_used: Instant::now(),
            });
        channel.waiters.insert((t.serial, t.id), t.clone());
        channel.last_used = Instant::now();
        channel.subscribed.then_some(channel.seq)
    }

    fn remove(&self, t: &Ticket) {
        let mut state = self.lock();
        if let Some(channel) = state.channels.get_mut(&t.keys.internal) {
            let was_head = channel.waiters.keys().next() == Some(&(t.serial, t.id));
            channel.waiters.remove(&(t.serial, t.id));
            channel.last_used = Instant::now();
            if was_head {
                // The next local ticket takes over watching the queue.
                channel.wake_head();
            }
        }
    }

    /// Which channels to subscribe and unsubscribe, given the current ones.
    fn plan(&self, current: &HashSet<String>) -> (Vec<String>, Vec<String>) {
        let mut state = self.lock();
        let now = Instant::now();
        state.channels.retain(|name, c| {
            !c.waiters.is_empty()
                || now.duration_since(c.last_used) < LINGER
                || current.contains(name)
        });
        let mut subscribe = Vec::new();
        let mut unsubscribe = Vec::new();
        for (name, c) in &state.channels {
            let wanted = !c.waiters.is_empty() || now.duration_since(c.last_used) < LINGER;
            if wanted && !current.contains(name) {
                subscribe.push(name.clone());
            } else if !wanted && current.contains(name) {
                unsubscribe.push(name.clone());
            }
        }
        (subscribe, unsubscribe)
    }

    fn subscribed(&self, names: &[String]) {
        let mut state = self.lock();
        for name in names {
            if let Some(c) = state.channels.get_mut(name) {
                c.subscribed = true;
                c.seq = c.seq.wrapping_add(1);
                c.wake_all();
            }
        }
    }

    fn unsubscribed(&self, names: &[String]) {
        let mut state = self.lock();
        for name in names {
            if let Some(c) = state.channels.get_mut(name) {
                c.subscribed = false;
                if c.waiters.is_empty() {
                    state.channels.remove(name);
                }
            }
        }
    }

    /// The connection went away: every subscription is gone and messages
    /// may have been missed, so every waiter re-reads its queue.
    fn disconnected(&self) {
        let state = &mut *self.lock();
        state.own_live = false;
        for c in state.channels.values_mut() {
            c.subscribed = false;
            c.wake_all();
        }
    }

    fn deliver(&self, channel: &str, payload: &[u8]) {
        let mut state = self.lock();
        let Some(c) = state.channels.get_mut(channel) else {
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

/// A waiter's entry in the notifier, removed on drop.
pub(crate) struct Registration<'a> {
    notifier: &'a Notifier,
    ticket: &'a Ticket,
    seq: Option<u64>,
}

impl<'a> Registration<'a> {
    pub fn new(notifier: &'a Notifier, ticket: &'a Arc<Ticket>) -> Registration<'a> {
        let seq = notifier.add(ticket);
        Registration {
            notifier,
            ticket,
            seq,
        }
    }

    /// The message count when registered, if the channel was subscribed.
    pub fn seq(&self) -> Option<u64> {
        self.seq
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.notifier.remove(self.ticket);
    }
}

/// The notifier thread's body.
pub(crate) fn run(core: Arc<Core>) {
    let mut backoff = Duration::from_millis(20);
    while !core.is_closed() {
        match core.pool.connect_pubsub(Some(POLL)) {
            Ok(mut conn) => {
                backoff = Duration::from_millis(20);
                let _ = serve(&core, &mut conn);
                core.notifier.disconnected();
            }
            Err(_) => {
                core.notifier.disconnected();
                sleep_unless_closed(&core, backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

fn sleep_unless_closed(core: &Core, total: Duration) {
    let end = Instant::now() + total;
    while !core.is_closed() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10).min(end - Instant::now()));
    }
}

fn serve(core: &Core, conn: &mut redis::Connection) -> redis::RedisResult<()> {
    let notifier = &core.notifier;
    let mut pubsub = conn.as_pubsub();
    pubsub.subscribe(&notifier.wake_channel)?;
    notifier.own_subscribed();
    let mut current: HashSet<String> = HashSet::new();
    loop {
        if core.is_closed() {
            return Ok(());
        }
        if core.inject_panic[1].swap(false, Ordering::AcqRel) {
            panic!("injected into the notifier thread");
        }
        let (subscribe, unsubscribe) = notifier.plan(&current);
        if !subscribe.is_empty() {
            pubsub.subscribe(&subscribe)?;
            current.extend(subscribe.iter().cloned());
            notifier.subscribed(&subscribe);
        }
        if !unsubscribe.is_empty() {
            pubsub.unsubscribe(&unsubscribe)?;
            for name in &unsubscribe {
                current.remove(name);
            }
            notifier.unsubscribed(&unsubscribe);
        }
        match pubsub.get_message() {
            Ok(msg) => {
                let channel = msg.get_channel_name();
                if channel == notifier.wake_channel {
                    notifier.call(msg.get_payload_bytes());
                } else {
                    notifier.deliver(channel, msg.get_payload_bytes());
                }
            }
            Err(e) if crate::error::is_retryable_read(&e) => {}
            Err(e) => return Err(e),
        }
    }
}
