//! Settings of a locker and of one acquire.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::keys::validate_prefix;
use crate::mode::Mode;
use crate::sync::lock;

/// The lease when none is given: a presence key lives this long without a
/// heartbeat (the heartbeat refreshes it every third of it).
pub const DEFAULT_EXPIRE: Duration = Duration::from_secs(10);
/// The longest a waiter sleeps without news before it re-reads the queue.
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(60);
/// The shortest lease accepted.
pub const MIN_EXPIRE: Duration = Duration::from_millis(100);
/// The longest lease accepted (u32::MAX ms, about 49.7 days).
pub const MAX_EXPIRE: Duration = Duration::from_millis(u32::MAX as u64);
/// The shortest patience accepted (shorter values are raised to it).
pub const MIN_PATIENCE: Duration = Duration::from_millis(10);
/// How long a ticket must have existed before a missing presence key marks
/// it dead. turn 1.0 clients set their presence key a moment after drawing.
pub const DEFAULT_GRACE: Duration = Duration::from_millis(500);
/// How long a grant, renewal or release waits for its replicas when
/// [`Options::min_replicas`] is left to the default on a Sentinel URL.
pub const DEFAULT_REPLICA_TIMEOUT: Duration = Duration::from_millis(1000);

/// Settings of a [`crate::Locker`].
///
/// ```no_run
/// use std::time::Duration;
/// use turn::{Locker, Options};
///
/// let options = Options {
///     prefix: "jobs".to_string(),
///     command_timeout: Duration::from_secs(2),
///     pool_size: 4,
///     ..Options::default()
/// };
/// let locker = Locker::with_options(Some("redis://10.0.0.5:6379/2"), options)?;
/// # Ok::<(), turn::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Key prefix (`turn`, as turn 1.0).
    pub prefix: String,
    /// Time allowed to open a connection (default 2 s).
    pub connect_timeout: Duration,
    /// Time allowed for one command's reply, and for a free pooled
    /// connection (default 5 s).
    pub command_timeout: Duration,
    /// Most command connections open at once (default 8). The heartbeat and
    /// the notifier have one connection each besides.
    pub pool_size: usize,
    /// Grace before a ticket with a missing presence key counts as dead
    /// (default 500 ms), see [`DEFAULT_GRACE`].
    pub grace: Duration,
    /// Seed the serials of a queue this locker creates from the server's
    /// clock (microseconds) instead of 1, so that serials (turn 1.0's
    /// ticket numbers) keep increasing when the queue is lost with a Redis
    /// restart without persistence, or reset (default off, as turn 1.0).
    /// Fencing tokens ([`crate::Lock::token`]) need no option.
    pub clock_serials: bool,
    /// TLS files for a `rediss://` URL (None: the system's trusted roots,
    /// no client certificate).
    pub tls: Option<Tls>,
    /// How many replicas must have a grant, a renewal or a release before
    /// it counts (Redis `WAIT`, sent in the same round trip as the script).
    /// None: the default of the deployment, one replica within
    /// [`DEFAULT_REPLICA_TIMEOUT`] for a `redis+sentinel://` URL (a Sentinel
    /// set has replicas by definition), none for one server and for a Redis
    /// Cluster. See [`MinReplicas`].
    pub min_replicas: Option<MinReplicas>,
}

/// Replica confirmation ("durable grants"): a write of the lock's counts
/// only once `replicas` replicas have it, waiting at most `timeout` for
/// them.
///
/// - A grant not confirmed in time is not a grant: the acquire keeps
///   waiting (within its timeout and lease) and asks again, or fails with
///   a `Connection` error when the confirmation never comes.
/// - A renewal not confirmed does not extend the lease on the local clock,
///   so the holder sees its lock lost before the lease on any replica
///   can lapse.
/// - A release not confirmed answers a `Connection` error (the lock is
///   given up all the same: should the master fail now, the next holder
///   waits for the lease to lapse).
///
/// So a failover onto a replica never loses a confirmed grant, and an old
/// master that still accepts writes after a failover (it has no replica
/// any more) confirms nothing. `replicas` 0 turns it off.
///
/// ```
/// use std::time::Duration;
/// use turn::{MinReplicas, Options};
///
/// let options = Options {
///     min_replicas: Some(MinReplicas::new(1, Duration::from_millis(500))),
///     ..Options::default()
/// };
/// assert_eq!(options.min_replicas.unwrap().replicas, 1);
/// let off = MinReplicas::off();
/// assert_eq!(off.replicas, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinReplicas {
    /// Replicas that must have the write (0: do not wait).
    pub replicas: u32,
    /// How long to wait for them (more than 0, less than the command
    /// timeout). A lease's renewals and grants wait at most a third of
    /// the lease.
    pub timeout: Duration,
}

impl MinReplicas {
    /// No confirmation: writes count once the master has them.
    pub const fn off() -> MinReplicas {
        MinReplicas::new(0, DEFAULT_REPLICA_TIMEOUT)
    }

    /// `replicas` replicas within `timeout`.
    pub const fn new(replicas: u32, timeout: Duration) -> MinReplicas {
        MinReplicas { replicas, timeout }
    }

    /// The default on a Sentinel URL: one replica within
    /// [`DEFAULT_REPLICA_TIMEOUT`].
    pub const fn sentinel_default() -> MinReplicas {
        MinReplicas::new(1, DEFAULT_REPLICA_TIMEOUT)
    }

    /// True when writes wait for replicas.
    pub fn is_on(&self) -> bool {
        self.replicas > 0
    }
}

/// TLS files (PEM) for `rediss://` connections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    /// CA certificate(s) to trust instead of the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate, for servers that ask for one (mutual TLS).
    pub cert_file: Option<std::path::PathBuf>,
    /// The client certificate's private key.
    pub key_file: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            prefix: "turn".to_string(),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(5),
            pool_size: 8,
            grace: DEFAULT_GRACE,
            clock_serials: false,
            tls: None,
            min_replicas: None,
        }
    }
}

impl Options {
    pub(crate) fn validate(&self) -> Result<()> {
        validate_prefix(&self.prefix)?;
        if self.connect_timeout.is_zero() || self.command_timeout.is_zero() {
            return Err(Error::invalid("timeouts must be greater than zero"));
        }
        if self.connect_timeout > Duration::from_secs(86_400)
            || self.command_timeout > Duration::from_secs(86_400)
        {
            return Err(Error::invalid("timeouts must be at most a day"));
        }
        if self.pool_size == 0 || self.pool_size > 1024 {
            return Err(Error::invalid("pool size must be between 1 and 1024"));
        }
        if let Some(m) = self.min_replicas
            && m.replicas > 0
        {
            if m.timeout.is_zero() {
                return Err(Error::invalid(
                    "the replica timeout must be greater than zero",
                ));
            }
            if m.timeout >= self.command_timeout {
                return Err(Error::invalid(format!(
                    "the replica timeout ({} ms) must be shorter than the command timeout ({} ms)",
                    m.timeout.as_millis(),
                    self.command_timeout.as_millis()
                )));
            }
        }
        Ok(())
    }
}

/// How long an acquire may wait for the turn.
///
/// Every acquire draws a ticket once, whatever its wait: a lock that is
/// free is taken. A timeout shorter than a millisecond, zero included,
/// would pass before the draw is even sent, so it is a try-lock:
/// `Wait::For(Duration::ZERO)` is [`Wait::TryOnce`] (as a timeout of 0
/// is in the C ABI). A pending acquire ([`crate::Locker::start_acquire`])
/// waits, so it refuses `TryOnce` and `For(Duration::ZERO)`
/// (`InvalidArgument`); a timeout above zero but under 1 ms is tried
/// once there too, its outcome given by `finish`.
///
/// ```no_run
/// use std::time::Duration;
/// use turn::{Acquire, ErrorKind, Locker, Wait};
///
/// let locker = Locker::new(None)?;
/// // Free: taken. Held by someone else: `WouldBlock` at once.
/// match locker.acquire("printer", &Acquire::label("probe").wait(Wait::For(Duration::ZERO))) {
///     Ok(lock) => lock.release()?,
///     Err(e) if e.kind() == ErrorKind::WouldBlock => println!("busy"),
///     Err(e) => return Err(e),
/// }
/// # Ok::<(), turn::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// Wait until granted.
    #[default]
    Forever,
    /// Take the lock only if it is free now (one draw, one round trip);
    /// else `WouldBlock`, the ticket withdrawn.
    TryOnce,
    /// Give up with `Timeout` after this long (the ticket withdrawn). Under
    /// 1 ms, zero included: [`Wait::TryOnce`].
    For(Duration),
}

/// Cancels the acquires it is given to, from another thread: a waiting
/// acquire withdraws its ticket and fails with `Canceled`. Cheap to clone;
/// clones cancel together.
///
/// ```no_run
/// use turn::{Acquire, Cancel, ErrorKind, Locker};
///
/// let locker = Locker::new(None)?;
/// let cancel = Cancel::new();
/// let request = Acquire::label("report").cancel(&cancel);
/// let waiter = {
///     let locker = locker.clone();
///     std::thread::spawn(move || locker.acquire("printer", &request))
/// };
/// // Later, from this thread: the waiter gives up its ticket.
/// cancel.cancel();
/// match waiter.join().unwrap() {
///     Ok(lock) => println!("got it first: ticket {}", lock.serial()),
///     Err(e) if e.kind() == ErrorKind::Canceled => println!("canceled"),
///     Err(e) => return Err(e),
/// }
/// # Ok::<(), turn::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    inner: Arc<CancelInner>,
}

#[derive(Debug, Default)]
struct CancelInner {
    canceled: AtomicBool,
    /// Lock order: 4 (see `sync.rs`).
    waiting: Mutex<Vec<Weak<crate::ticket::Ticket>>>,
}

impl PartialEq for Cancel {
    fn eq(&self, other: &Cancel) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Cancel {}

impl Cancel {
    /// A new, not yet canceled, token.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Cancels every acquire waiting with this token, now and later.
    pub fn cancel(&self) {
        self.inner.canceled.store(true, Ordering::Release);
        let waiting = std::mem::take(&mut *lock(&self.inner.waiting));
        for t in waiting.iter().filter_map(Weak::upgrade) {
            t.signal();
        }
    }

    /// True once canceled.
    pub fn is_canceled(&self) -> bool {
        self.inner.canceled.load(Ordering::Acquire)
    }

    pub(crate) fn watch(&self, ticket: &Arc<crate::ticket::Ticket>) {
        let mut waiting = lock(&self.inner.waiting);
        waiting.retain(|w| w.strong_count() > 0);
        waiting.push(Arc::downgrade(ticket));
        drop(waiting);
        if self.is_canceled() {
            ticket.signal();
        }
    }
}

/// Settings of one acquire.
///
/// ```
/// use std::time::Duration;
/// use turn::{Acquire, Wait};
///
/// // Wait at most 30 s, with a lease of 5 s (renewed while the lock is
/// // held; a crashed holder is passed 5 s after its last renewal).
/// let request = Acquire::label("nightly report")
///     .expire(Duration::from_secs(5))
///     .wait(Wait::For(Duration::from_secs(30)));
/// assert_eq!(request.label, "nightly report");
/// // A try-lock: `WouldBlock` at once when someone else holds the turn.
/// let try_once = Acquire::label("probe").wait(Wait::TryOnce);
/// assert_eq!(try_once.expire, None); // the default lease, DEFAULT_EXPIRE
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acquire {
    /// Label shown in status and messages (may be empty).
    pub label: String,
    /// Lease; `None` for [`DEFAULT_EXPIRE`].
    pub expire: Option<Duration>,
    /// Longest sleep without news; `None` for [`DEFAULT_PATIENCE`].
    pub patience: Option<Duration>,
    /// How long to wait for the turn.
    pub wait: Wait,
    /// Cancels the wait from another thread.
    pub cancel: Option<Cancel>,
    /// What the ticket asks of its queue: the plain lock (the default), a
    /// semaphore's permits, or a read-write lock's share.
    pub mode: Mode,
}

impl Acquire {
    /// An acquire with this label and the defaults.
    pub fn label(label: impl Into<String>) -> Acquire {
        Acquire {
            label: label.into(),
            ..Acquire::default()
        }
    }

    /// Sets the lease.
    pub fn expire(mut self, expire: Duration) -> Acquire {
        self.expire = Some(expire);
        self
    }

    /// Sets the patience.
    pub fn patience(mut self, patience: Duration) -> Acquire {
        self.patience = Some(patience);
        self
    }

    /// Sets how long to wait.
    pub fn wait(mut self, wait: Wait) -> Acquire {
        self.wait = wait;
        self
    }

    /// Makes the wait cancelable with `cancel`.
    pub fn cancel(mut self, cancel: &Cancel) -> Acquire {
        self.cancel = Some(cancel.clone());
        self
    }

    /// Sets what the ticket asks of its queue.
    pub fn mode(mut self, mode: Mode) -> Acquire {
        self.mode = mode;
        self
    }

    pub(crate) fn expire_or_default(&self) -> Result<Duration> {
        let e = self.expire.unwrap_or(DEFAULT_EXPIRE);
        if e < MIN_EXPIRE || e > MAX_EXPIRE {
            return Err(Error::invalid(format!(
                "expire must be from {} ms to {} ms",
                MIN_EXPIRE.as_millis(),
                MAX_EXPIRE.as_millis()
            )));
        }
        Ok(e)
    }

    pub(crate) fn patience_or_default(&self) -> Duration {
        self.patience.unwrap_or(DEFAULT_PATIENCE).max(MIN_PATIENCE)
    }
}
