//! The notifier: one background thread with one pubsub connection,
//! subscribed to the locker's own channel, and to the `internal` channel of
//! a resource only while a local waiter there watches a ticket that is not
//! ours (a turn 1.0 ticket).
//!
//! On the locker's own channel a release or bump that sets the indicator to
//! one of this locker's tickets publishes that ticket's nonce, which wakes
//! that waiter alone: it then takes its turn with one check. So a hand-off
//! wakes one process, the next ticket's, however many wait. (No message
//! grants by itself: a message can sit in a socket while its process is
//! paused and the queue vanishes meanwhile.)
//!
//! An `internal` message (turn 1.0's "N may go now") wakes the waiter it
//! names and the listeners behind it; they re-read the queue. Every waiter
//! also re-reads on silence: when the ticket it watches would lapse, and
//! after its patience.
//!
//! The bookkeeping (`state.rs`) knows no connection; this file holds it
//! behind a mutex, and runs the thread. Between messages the thread also
//! steps the pending acquires (`driven.rs`): it is their executor, since
//! their tickets' calls come to it first.

mod driven;
mod state;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::pool::Pool;
use crate::sync::{lock, wait_timeout};
use crate::ticket::Ticket;

pub(crate) use driven::Driven;
use driven::DrivenList;
use state::Bookkeeping;

/// How long the pubsub read blocks before the thread looks at its work.
const POLL: Duration = Duration::from_millis(250);
/// The same while it steps pending acquires: what other threads do to them
/// (a lost ticket, a cancel token fired, a pending given up by its owner)
/// is seen within this, whatever pause they are in.
const POLL_DRIVING: Duration = Duration::from_millis(10);
/// The first pause before connecting again; it doubles up to a second.
const BACKOFF: Duration = Duration::from_millis(20);

/// The work the thread steps between messages (see `Engine::step_driven`):
/// how long until it is due next, None when there is none.
pub(crate) type Tick<'a> = &'a dyn Fn() -> Option<Duration>;

pub(crate) struct Notifier {
    /// Lock order: 4 (see `sync.rs`).
    state: Mutex<Bookkeeping>,
    /// A channel of this locker's own: a message on it makes the thread
    /// look at new subscriptions at once.
    wake_channel: String,
    /// Makes the thread panic once (tests of its restart).
    inject_panic: AtomicBool,
    /// Wakes the thread from its pause between connections (closing); its
    /// mutex guards nothing else.
    /// Lock order: 5 (see `sync.rs`).
    idle: (Mutex<()>, Condvar),
    /// The pending acquires the thread steps between messages.
    driven: DrivenList,
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
            state: Mutex::new(Bookkeeping::default()),
            wake_channel: format!("{prefix}:notifier:{}.{nanos}.{n}:wake", std::process::id()),
            inject_panic: AtomicBool::new(false),
            idle: (Mutex::new(()), Condvar::new()),
            driven: DrivenList::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Bookkeeping> {
        lock(&self.state)
    }

    /// The locker's own channel (the identity keys of its tickets name it;
    /// a message on it with no nonce makes the thread look at its
    /// subscriptions now).
    pub fn channel(&self) -> &str {
        &self.wake_channel
    }

    /// Expects a message with `nonce` (before the draw is sent). Returns the
    /// subscription count of the locker's channel when it is subscribed.
    pub fn expect(&self, nonce: &str) -> Option<u64> {
        self.lock().expect(nonce)
    }

    /// Attaches the drawn ticket to its nonce. Returns the subscription
    /// count as `expect` does, and whether its call came already (then the
    /// draw's reading is stale).
    pub fn attach(&self, nonce: &str, t: &Arc<Ticket>) -> (Option<u64>, bool) {
        self.lock().attach(nonce, t)
    }

    /// Stops expecting `nonce`.
    pub fn forget(&self, nonce: &str) {
        self.lock().forget(nonce);
    }

    /// A waiter comes: messages naming it wake it.
    pub fn register(&self, t: &Arc<Ticket>) {
        self.lock().add(t);
    }

    /// A waiter leaves.
    pub fn unregister(&self, t: &Ticket) {
        self.lock().remove(t, Instant::now());
    }

    /// The waiter `t` listens on its resource's `internal` channel from
    /// now on; the channel's message count when it is subscribed.
    pub fn listen(&self, t: &Ticket) -> Option<u64> {
        self.lock().listen(t, Instant::now())
    }

    /// The message count of `channel` when it is subscribed, else None.
    pub fn snapshot(&self, channel: &str) -> Option<u64> {
        self.lock().snapshot(channel)
    }

    /// Makes the thread panic once, or not (tests of its restart).
    pub fn inject_panic(&self, on: bool) {
        self.inject_panic.store(on, Ordering::Release);
    }

    /// Hands a pending acquire to the thread.
    pub fn drive(&self, work: Arc<dyn Driven>) {
        self.driven.add(work);
    }

    /// Steps the pending acquires that are due (in the thread); how long
    /// until the next is due, None when there is none.
    pub fn step_driven(&self) -> Option<Duration> {
        self.driven.step()
    }

    /// Takes every pending acquire out (closing).
    pub fn take_driven(&self) -> Vec<Arc<dyn Driven>> {
        self.driven.take()
    }

    /// Wakes the thread from its pause between connections (closing sets
    /// its flag first). A read of the pubsub connection is ended by a
    /// message on the locker's own channel instead.
    pub fn wake(&self) {
        let (mutex, woken) = &self.idle;
        let _guard = lock(mutex);
        woken.notify_all();
    }

    /// The notifier thread's body: connects with `pool`, serves until the
    /// connection fails, and again, until `closed` is set.
    pub fn run(&self, pool: &Pool, closed: &AtomicBool, tick: Tick<'_>) {
        let is_closed = || closed.load(Ordering::Acquire);
        let mut backoff = BACKOFF;
        while !is_closed() {
            let epoch = pool.epoch();
            match pool.connect_one(Some(POLL)) {
                Ok(mut conn) => {
                    backoff = BACKOFF;
                    let _ = self.serve(&mut conn, closed, tick, || pool.epoch() != epoch);
                    self.lock().disconnected();
                }
                Err(_) => {
                    self.lock().disconnected();
                    self.pause(backoff, closed, tick);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// The pause before connecting again, `backoff` long: the pending
    /// acquires are still stepped when due (their pauses, cancels and
    /// deadlines do not wait for Redis), and closing ends it at once.
    fn pause(&self, backoff: Duration, closed: &AtomicBool, tick: Tick<'_>) {
        let end = Instant::now() + backoff;
        loop {
            let due = tick();
            let (mutex, woken) = &self.idle;
            let guard = lock(mutex);
            // Read under the mutex that `wake` takes: no wake-up is missed
            // between this look and the wait.
            let now = Instant::now();
            if closed.load(Ordering::Acquire) || now >= end {
                return;
            }
            let mut wait = end - now;
            if let Some(due) = due {
                wait = wait.min(due.clamp(Duration::from_millis(1), POLL_DRIVING));
            }
            drop(wait_timeout(woken, guard, wait));
        }
    }

    /// Serves on `conn` until it fails, the locker closes or `stale` says
    /// the connection is to a master that is not the master any more.
    fn serve(
        &self,
        conn: &mut crate::connect::Link,
        closed: &AtomicBool,
        tick: Tick<'_>,
        stale: impl Fn() -> bool,
    ) -> redis::RedisResult<()> {
        let mut pubsub = conn.as_pubsub();
        pubsub.subscribe(&self.wake_channel)?;
        self.lock().own_subscribed();
        let mut current: HashSet<String> = HashSet::new();
        let mut timeout = POLL;
        loop {
            if closed.load(Ordering::Acquire) || stale() {
                return Ok(());
            }
            if self.inject_panic.swap(false, Ordering::AcqRel) {
                panic!("injected into the notifier thread");
            }
            let (subscribe, unsubscribe) = self.lock().plan(&current, Instant::now());
            if !subscribe.is_empty() {
                pubsub.subscribe(&subscribe)?;
                current.extend(subscribe.iter().cloned());
                self.lock().subscribed(&subscribe);
            }
            if !unsubscribe.is_empty() {
                pubsub.unsubscribe(&unsubscribe)?;
                for name in &unsubscribe {
                    current.remove(name);
                }
                self.lock().unsubscribed(&unsubscribe);
            }
            match pubsub.get_message() {
                Ok(msg) => {
                    let channel = msg.get_channel_name();
                    if channel == self.wake_channel {
                        self.lock().call(msg.get_payload_bytes());
                    } else {
                        self.lock().deliver(channel, msg.get_payload_bytes());
                    }
                }
                Err(e) if crate::error::is_retryable_read(&e) => {}
                Err(e) => return Err(e),
            }
            let wanted = match tick() {
                Some(due) => due.clamp(Duration::from_millis(1), POLL_DRIVING),
                None => POLL,
            };
            if wanted != timeout {
                pubsub.set_read_timeout(Some(wanted))?;
                timeout = wanted;
            }
        }
    }
}
