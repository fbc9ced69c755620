//! One ticket this locker drew: waiting for its turn, or holding the lock.
//! Shared between the caller, the heartbeat and the notifier.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::keys::Keys;
use crate::lost_signal::{LostSignal, Renewal};
use crate::metrics::Metrics;
use crate::mode::Mode;
use crate::sync::{lock, wait_timeout};

const WAITING: u8 = 0;
const HELD: u8 = 1;
const LOST: u8 = 2;
const DONE: u8 = 3;

/// What a draw is made of, before its reply.
#[derive(Clone)]
pub(crate) struct Draw {
    pub id: u64,
    pub resource: String,
    pub keys: Arc<Keys>,
    /// Made for this draw alone: the message that calls the ticket.
    pub nonce: String,
    /// The drawing locker's channel, where the ticket is called.
    pub channel: String,
    pub label: String,
    pub expire: Duration,
    /// When the draw was sent, in ms since the locker's epoch: the lease
    /// runs from there.
    pub sent_ms: u64,
    /// What the ticket asks of its queue.
    pub mode: Mode,
    /// The drawing locker's counters.
    pub metrics: Arc<Metrics>,
}

pub(crate) struct Ticket {
    pub id: u64,
    pub resource: String,
    /// The queue's names, shared by the tickets of one acquire call.
    pub keys: Arc<Keys>,
    pub serial: u64,
    /// The fencing token of this ticket (see `Lock::token`).
    pub token: u64,
    /// The token base of the queue's incarnation it was drawn in (token -
    /// serial), as the scripts compare it.
    pub base: String,
    /// The value of its identity key: `NONCE BASE CHANNEL` (see `Keys`).
    pub identity: String,
    pub label: String,
    pub expire: Duration,
    /// What the ticket asks of its queue.
    pub mode: Mode,
    /// Its locker's counters.
    metrics: Arc<Metrics>,
    state: AtomicU8,
    /// When it became held, in ms since the locker's epoch.
    held_ms: AtomicU64,
    /// When the last confirmed refresh was sent, in ms since the locker's
    /// epoch: the lease runs from there.
    refreshed_ms: AtomicU64,
    /// Its nonce came on the locker's channel since the waiter last
    /// looked: a release or bump set the indicator to it (a hint, to be
    /// confirmed: the message may be old).
    called: AtomicBool,
    /// Lock order: 5 (see `sync.rs`).
    signaled: Mutex<bool>,
    wake: Condvar,
    /// The lost fd, made when a lock's holder asks for it.
    lost: LostSignal,
}

impl Ticket {
    pub fn new(draw: Draw, serial: u64, token: u64) -> Ticket {
        let Draw {
            id,
            resource,
            keys,
            nonce,
            channel,
            label,
            expire,
            sent_ms: drawn_ms,
            mode,
            metrics,
        } = draw;
        let base = (token as i128 - serial as i128).to_string();
        Ticket {
            id,
            resource,
            keys,
            serial,
            token,
            identity: format!("{nonce} {base} {channel}"),
            base,
            label,
            expire,
            mode,
            metrics,
            state: AtomicU8::new(WAITING),
            held_ms: AtomicU64::new(0),
            refreshed_ms: AtomicU64::new(drawn_ms),
            called: AtomicBool::new(false),
            signaled: Mutex::new(false),
            wake: Condvar::new(),
            lost: LostSignal::new(),
        }
    }

    pub fn expire_ms(&self) -> u64 {
        self.expire.as_millis() as u64
    }

    pub fn is_held(&self) -> bool {
        self.state.load(Ordering::Acquire) == HELD
    }

    pub fn is_active(&self) -> bool {
        matches!(self.state.load(Ordering::Acquire), WAITING | HELD)
    }

    pub fn is_lost(&self) -> bool {
        self.state.load(Ordering::Acquire) == LOST
    }

    /// Held from `now_ms` (the locker's clock) on, when it was waiting.
    pub fn set_held(&self, now_ms: u64) {
        if self
            .state
            .compare_exchange(WAITING, HELD, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.held_ms.store(now_ms, Ordering::Release);
        }
    }

    /// How long it has been held at `now_ms` (zero when it is not held).
    pub fn held_for(&self, now_ms: u64) -> Duration {
        if !self.is_held() {
            return Duration::ZERO;
        }
        Duration::from_millis(now_ms.saturating_sub(self.held_ms.load(Ordering::Acquire)))
    }

    /// Released or withdrawn: its lost fd (if it had not fired) never
    /// turns readable.
    pub fn set_done(&self) {
        self.state.store(DONE, Ordering::Release);
        self.lost.disarm();
    }

    /// Marks the ticket lost (once waiting or held), makes its lost fd
    /// readable and wakes its waiter; a held one counts as a lock lost.
    pub fn mark_lost(&self) {
        if self.end(LOST) == Some(HELD) {
            self.metrics.lost();
        }
    }

    /// Marks the ticket ended by its locker's closing: as lost (its waiter
    /// and its lost fd hear of it), but not counted as a lock lost.
    pub fn mark_closed(&self) {
        self.end(LOST);
    }

    /// Ends a waiting or held ticket as `LOST`; the state it left, if any.
    fn end(&self, lost: u8) -> Option<u8> {
        let mut left = None;
        let mut s = self.state.load(Ordering::Acquire);
        while s == WAITING || s == HELD {
            match self
                .state
                .compare_exchange(s, lost, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    left = Some(s);
                    break;
                }
                Err(now) => s = now,
            }
        }
        if self.is_lost() {
            self.lost.fire();
        }
        self.signal();
        left
    }

    pub fn refreshed_ms(&self) -> u64 {
        self.refreshed_ms.load(Ordering::Acquire)
    }

    /// A renewal sent at `sent_ms` was confirmed. When the lost fd had
    /// been armed for a lapse that passed before this (a late reply), the
    /// ticket is lost: once the local clock said so, every view agrees.
    pub fn refreshed(&self, sent_ms: u64) {
        let now = self
            .refreshed_ms
            .fetch_max(sent_ms, Ordering::AcqRel)
            .max(sent_ms);
        if self.lost.renewed(self.lapse_ms(now)) == Renewal::Lapsed {
            self.mark_lost();
        }
    }

    /// When a lease renewed at `refreshed_ms` lapses by the local clock:
    /// the first millisecond at which `lapsed` is true.
    fn lapse_ms(&self, refreshed_ms: u64) -> u64 {
        refreshed_ms
            .saturating_add(self.expire_ms())
            .saturating_add(1)
    }

    /// The lost fd (made on the first call; see `lost_signal.rs`): readable once
    /// the ticket is lost, at once when its lease lapses by the local clock
    /// (`epoch`: the locker's clock's zero).
    pub fn lost_fd(&self, epoch: Instant) -> std::io::Result<std::os::fd::RawFd> {
        self.lost.fd(epoch, || {
            let state = self.state.load(Ordering::Acquire);
            (
                self.lapse_ms(self.refreshed_ms()),
                state == LOST,
                state == DONE,
            )
        })
    }

    /// Closes the lost fd (its lock is gone).
    pub fn close_lost_fd(&self) {
        self.lost.close();
    }

    /// True when the lease has run out by the local clock: no refresh was
    /// confirmed for longer than `expire`.
    pub fn lapsed(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.refreshed_ms()) > self.expire_ms()
    }

    /// Its nonce came: notes it and wakes the waiter.
    pub fn call(&self) {
        self.called.store(true, Ordering::Release);
        self.signal();
    }

    /// True when its nonce came since the last take.
    pub fn take_call(&self) -> bool {
        self.called.swap(false, Ordering::AcqRel)
    }

    /// Wakes the thread waiting on this ticket.
    pub fn signal(&self) {
        let mut s = lock(&self.signaled);
        *s = true;
        self.wake.notify_one();
    }

    /// True when a signal came since the last take (it stays).
    pub fn is_signaled(&self) -> bool {
        *lock(&self.signaled)
    }

    /// Clears the signal; true when one had come since the last take.
    pub fn take_signal(&self) -> bool {
        std::mem::take(&mut *lock(&self.signaled))
    }

    /// Sleeps until signaled or `timeout` passed; true when signaled.
    pub fn wait_signal(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut s = lock(&self.signaled);
        while !*s {
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return false;
            }
            s = wait_timeout(&self.wake, s, left);
        }
        true
    }
}

#[cfg(test)]
impl Ticket {
    /// A ticket of `keys` for unit tests: drawn (its lease running) at
    /// `sent_ms`, with a lease of `expire_ms`.
    pub fn for_test(
        keys: &Arc<Keys>,
        id: u64,
        serial: u64,
        expire_ms: u64,
        sent_ms: u64,
    ) -> Arc<Ticket> {
        let draw = Draw {
            id,
            resource: keys.name.clone(),
            keys: keys.clone(),
            nonce: format!("nonce{id}"),
            channel: "channel".to_string(),
            label: String::new(),
            expire: Duration::from_millis(expire_ms),
            sent_ms,
            mode: Mode::Plain,
            metrics: Arc::default(),
        };
        Arc::new(Ticket::new(draw, serial, 1000 + serial))
    }
}
