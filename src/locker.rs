//! The public face of the library: the locker, one client's connections
//! and background threads shared by every lock it takes (its locks and
//! pending acquires are in `lock.rs`). The work is done by `wait`
//! (acquiring), `admin` (the tools' operations) and `engine` (the running
//! parts).

use std::ops::ControlFlow;
use std::sync::Arc;

use crate::admin::{self, LogLine};
use crate::engine::{self, Engine, Running};
use crate::error::{Error, Result};
use crate::heartbeat::Beat;
use crate::keys::validate_resource;
use crate::lock::{Lock, Pending};
use crate::metrics::MetricsSnapshot;
use crate::options::{Acquire, MinReplicas, Options};
use crate::pending;
use crate::status::Status;
use crate::wait;

pub use crate::admin::ResetOutcome;

/// The Redis URL used when none is given.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379/0";

/// A client of the turn protocol: its Redis connections (a bounded pool, plus
/// one for the heartbeat and one for the notifier) and its three background
/// threads (heartbeat, notifier, withdrawals), shared by every lock it
/// takes. Cheap to clone and to share between threads.
///
/// A [`Lock`] (and a [`Pending`]) keeps its locker running: the heartbeat
/// goes on renewing a held lock whatever became of the `Locker` values,
/// so `Locker::new(url)?.lock(..)?` is a lock held until it is released
/// or dropped. The threads stop and the connections close when the last
/// clone, lock and pending are gone; [`Locker::close`] ends it all at once
/// (locks still held are released then).
///
/// ```no_run
/// use std::time::Duration;
/// use turn::{Acquire, Locker, Wait};
///
/// let locker = Locker::new(Some("redis://127.0.0.1:6379/0"))?;
/// let job = Acquire::label("nightly report").wait(Wait::For(Duration::from_secs(30)));
/// let lock = locker.acquire("printer", &job)?;
/// println!("printing with fencing token {}", lock.token());
/// lock.release()?;
///
/// // Clones share the connections and threads: one per process is enough.
/// let other = locker.clone();
/// std::thread::spawn(move || other.lock("printer", "another job").map(drop));
/// # Ok::<(), turn::Error>(())
/// ```
#[derive(Clone)]
pub struct Locker {
    running: Arc<Running>,
}

impl std::fmt::Debug for Locker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locker")
            .field("prefix", &self.rt().core.options.prefix)
            .finish()
    }
}

impl Locker {
    /// Connects to `url` (`redis://[user:password@]host:port/db`, or None for
    /// [`DEFAULT_URL`]) with default options.
    pub fn new(url: Option<&str>) -> Result<Locker> {
        Locker::with_options(url, Options::default())
    }

    /// Connects with the given options. Fails with `Connection` when Redis
    /// cannot be reached within the connect timeout.
    pub fn with_options(url: Option<&str>, options: Options) -> Result<Locker> {
        let running = engine::start(url.unwrap_or(DEFAULT_URL), options)?;
        Ok(Locker {
            running: Arc::new(running),
        })
    }

    fn rt(&self) -> &Arc<Engine> {
        &self.running.engine
    }

    /// The options this locker was made with.
    pub fn options(&self) -> &Options {
        &self.rt().core.options
    }

    /// The replica confirmation in force: [`Options::min_replicas`], or the
    /// default of the deployment when that is None (one replica on a
    /// Sentinel URL, none otherwise).
    pub fn min_replicas(&self) -> MinReplicas {
        self.rt().core.durable
    }

    /// Ok while the background threads never failed and the heartbeat
    /// keeps up. After a failure (a bug: a panic in the heartbeat or
    /// notifier thread, which was then restarted) it answers a `Panic`
    /// error saying how many failures there were and what the last one
    /// was. For a minute after a slow beat (one that took longer than a
    /// third of the shortest lease among its tickets: renewals then come
    /// late, and locks may be lost) it answers a `Connection` error saying
    /// how long the beat took (also said on standard error, at most one
    /// line a minute). The locker keeps working.
    pub fn health(&self) -> Result<()> {
        let rt = self.rt();
        rt.core.health()?;
        rt.heartbeat.health(rt.core.now_ms())
    }

    /// The figures of the heartbeat's last beat: how many tickets, how
    /// long, how many round trips; None before the first.
    pub fn last_beat(&self) -> Option<Beat> {
        self.rt().heartbeat.last_beat()
    }

    /// What this locker counted since it was made: acquires (granted at
    /// once, after waiting), timeouts, cancels, locks lost, hand-offs,
    /// beats and slow beats, broken connections, and the wait and hold
    /// histograms. Reading them makes no round trip; keeping them costs
    /// a few atomic additions per lock. [`MetricsSnapshot::text`] writes
    /// them in the Prometheus text format; no label names a resource.
    ///
    /// ```no_run
    /// let locker = turn::Locker::new(None)?;
    /// locker.lock("printer", "job")?.release()?;
    /// let metrics = locker.metrics();
    /// assert_eq!(metrics.acquired_at_once, 1);
    /// print!("{}", metrics.text());
    /// # Ok::<(), turn::Error>(())
    /// ```
    pub fn metrics(&self) -> MetricsSnapshot {
        let (beats, slow_beats) = self.rt().heartbeat.beats();
        self.rt().core.metrics.snapshot(beats, slow_beats)
    }

    /// Closes the locker now, whoever else holds a clone, a lock or a
    /// pending: waits in progress end with `Canceled` (their tickets
    /// withdrawn), locks still held are released (their `check` and
    /// `release` answer `Lost`), and later calls fail. The threads are
    /// woken at once and end then; they are joined, and the connections
    /// closed, when the last clone, lock and pending are gone. When Redis
    /// does not answer within 250 ms (or the command timeout if shorter),
    /// closing releases nothing (the leases run out by themselves).
    pub fn close(&self) {
        let rt = self.rt();
        if rt.core.in_owner_process() {
            rt.shutdown();
        }
    }

    /// Makes the background threads panic once (for tests of their restart).
    #[doc(hidden)]
    pub fn inject_background_panic(&self, heartbeat: bool, notifier: bool) {
        self.rt().heartbeat.inject_panic(heartbeat);
        self.rt().notifier.inject_panic(notifier);
    }

    /// Takes the lock on `resource` with a label and default settings,
    /// waiting as long as it takes.
    pub fn lock(&self, resource: &str, label: &str) -> Result<Lock> {
        self.acquire(resource, &Acquire::label(label))
    }

    /// Takes a ticket for `resource` and waits for its turn, as `request`
    /// says. On timeout, failure or a try-lock that would block, the ticket
    /// is withdrawn: it leaves no trace and does not stall the queue. (The
    /// withdrawal's round trip is the locker's withdrawal thread's; this
    /// waits for it at most 250 ms, the command timeout if shorter, and when
    /// Redis does not answer it goes on in the background.) The lock keeps
    /// this locker running until it is released or dropped.
    pub fn acquire(&self, resource: &str, request: &Acquire) -> Result<Lock> {
        let ticket = wait::acquire(self.rt(), resource, request)?;
        Ok(Lock::new(self.running.clone(), ticket))
    }

    /// Takes `request`'s lock on every one of `resources` (1 to
    /// [`MAX_ALL_RESOURCES`](crate::MAX_ALL_RESOURCES) distinct names), or
    /// none: the locks come back in the order of `resources`. They are
    /// taken one after another in one order every client uses (the names'
    /// bytes, ascending), so that such calls and single acquires never
    /// wait for each other in a circle; on a Redis Cluster too, whatever
    /// the slots. The request's wait bounds the whole call. On timeout,
    /// cancel or error every lock taken is released and the waiting ticket
    /// withdrawn. Free resources cost one round trip each.
    ///
    /// ```no_run
    /// let locker = turn::Locker::new(None)?;
    /// let locks = locker.acquire_all(&["ledger", "audit"], &turn::Acquire::label("close"))?;
    /// assert_eq!(locks[0].resource(), "ledger");
    /// # Ok::<(), turn::Error>(())
    /// ```
    pub fn acquire_all(&self, resources: &[&str], request: &Acquire) -> Result<Vec<Lock>> {
        crate::all_or_none::acquire_all(&self.rt().core, resources, request, |r, a| {
            self.acquire(r, a)
        })
    }

    /// Takes a ticket for `resource` and returns without waiting for the
    /// turn: it blocks for the draw's one round trip, no longer. The wait
    /// goes on in the locker's notifier thread (no thread per pending
    /// acquire: any number may wait); [`Pending::fd`] becomes readable once
    /// the outcome is known, and [`Pending::finish`] takes it. `request`
    /// must wait ([`Wait::Forever`](crate::Wait::Forever) or a timeout above zero: a try-lock is
    /// [`Locker::acquire`] with [`Wait::TryOnce`](crate::Wait::TryOnce)).
    ///
    /// ```no_run
    /// use std::os::fd::AsRawFd;
    ///
    /// let locker = turn::Locker::new(None)?;
    /// let pending = locker.start_acquire("ledger", &turn::Acquire::label("close"))?;
    /// let mut watch = libc::pollfd { fd: pending.fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
    /// // SAFETY: one valid pollfd.
    /// while unsafe { libc::poll(&mut watch, 1, -1) } < 1 {}
    /// let lock = pending.finish()?.expect("the outcome is known once readable");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_acquire(&self, resource: &str, request: &Acquire) -> Result<Pending> {
        let inner = pending::PendingWait::start(self.rt(), resource, request)?;
        Ok(Pending::new(self.running.clone(), inner))
    }

    /// A snapshot of the queue of `resource`; `NotFound` when there is none.
    pub fn status(&self, resource: &str) -> Result<Status> {
        self.rt().core.usable()?;
        validate_resource(resource)?;
        admin::status(&self.rt().core, resource)
    }

    /// Every resource with a queue (a dispenser key) under this prefix,
    /// sorted by name.
    pub fn resources(&self) -> Result<Vec<String>> {
        self.rt().core.usable()?;
        admin::resources(&self.rt().core)
    }

    /// Moves the indicator of `resource` past tickets whose presence key is
    /// missing (never back), announces it, and returns it.
    pub fn bump(&self, resource: &str) -> Result<u64> {
        self.rt().core.usable()?;
        validate_resource(resource)?;
        admin::bump(&self.rt().core, resource)
    }

    /// Removes the queue of `resource` (dispenser and indicator) when nobody
    /// is in it after a bump. `Busy` while in use, `NotFound` when absent.
    pub fn reset(&self, resource: &str) -> Result<()> {
        self.rt().core.usable()?;
        validate_resource(resource)?;
        admin::reset(&self.rt().core, resource)
    }

    /// Reset, atomically: when `expected_dispenser` is given and the
    /// dispenser is no longer that value, nothing is done (`Activity`).
    pub fn reset_queue(
        &self,
        resource: &str,
        expected_dispenser: Option<u64>,
    ) -> Result<ResetOutcome> {
        self.rt().core.usable()?;
        validate_resource(resource)?;
        admin::reset_queue(&self.rt().core, resource, expected_dispenser)
    }

    /// Publishes the log line `RESOURCE: text` on the `external` channel of
    /// `resource`, beside the library's own (`follow` shows it). The Python
    /// binding says turn 1.0's `N crashed!` with it. `text` is at most
    /// [`MAX_LABEL_LEN`](crate::MAX_LABEL_LEN) bytes without control
    /// characters.
    pub fn announce(&self, resource: &str, text: &str) -> Result<()> {
        self.rt().core.usable()?;
        validate_resource(resource)?;
        crate::keys::validate_label(text)?;
        if text.chars().any(char::is_control) {
            return Err(Error::invalid("log line contains a control character"));
        }
        let channel = self.external_channel(resource);
        let line = format!("{resource}: {text}");
        self.rt().core.run(|c| {
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(&line)
                .query::<i64>(c)
        })?;
        Ok(())
    }

    /// The `external` channel of `resource`, where its log lines go.
    pub fn external_channel(&self, resource: &str) -> String {
        self.rt().core.keys(resource).external
    }

    /// Follows the log lines of `resources` (`5 assigned to "job"`, `5
    /// started`, ...) as they are published, on a connection of its own:
    /// `f` is given each line, and `None` after each 200 ms without one,
    /// so that it can stop (answer `Break`) without waiting for a line.
    /// Returns when `f` breaks, or with the error that ended the
    /// connection.
    ///
    /// ```no_run
    /// use std::ops::ControlFlow;
    ///
    /// let locker = turn::Locker::new(None)?;
    /// let mut seen = 0;
    /// locker.follow(&["printer".to_string()], |line| {
    ///     if let Some(line) = line {
    ///         println!("{}", line.text);
    ///         seen += 1;
    ///     }
    ///     if seen < 10 { ControlFlow::Continue(()) } else { ControlFlow::Break(()) }
    /// })?;
    /// # Ok::<(), turn::Error>(())
    /// ```
    pub fn follow(
        &self,
        resources: &[String],
        f: impl FnMut(Option<LogLine>) -> ControlFlow<()>,
    ) -> Result<()> {
        self.rt().core.usable()?;
        admin::follow(&self.rt().core, resources, f)
    }
}
