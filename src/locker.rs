//! The public face of the library: the locker, one client's connections
//! and background threads shared by every lock it takes; and the lock
//! guard. The work is done by `wait` (acquiring), `admin` (the tools'
//! operations) and `runtime` (the running parts).

use std::ops::ControlFlow;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use crate::admin::{self, LogLine};
use crate::error::{Error, Result};
use crate::heartbeat::Beat;
use crate::keys::validate_resource;
use crate::leaving;
use crate::options::{Acquire, MinReplicas, Options};
use crate::pending;
use crate::runtime::{self, Handle, Runtime};
use crate::status::Status;
use crate::ticket::Ticket;
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
    handle: Arc<Handle>,
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
        let handle = runtime::start(url.unwrap_or(DEFAULT_URL), options)?;
        Ok(Locker {
            handle: Arc::new(handle),
        })
    }

    fn rt(&self) -> &Arc<Runtime> {
        &self.handle.runtime
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
        Ok(Lock {
            handle: self.handle.clone(),
            ticket,
            released: false,
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
        Ok(Pending {
            handle: self.handle.clone(),
            inner,
            ended: false,
        })
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

/// A held lock. Release it with [`Lock::release`] to learn whether it was
/// still held; dropping it releases it too, ignoring the outcome.
///
/// It keeps its [`Locker`] running (heartbeat, notifier, connections) until
/// it is released or dropped, so it may outlive every `Locker` value:
/// `Locker::new(url)?.lock("ledger", "job")?` holds the lock. Only
/// [`Locker::close`] ends it early (it is then released, and reported
/// `Lost`).
///
/// ```no_run
/// let locker = turn::Locker::new(None)?;
/// let lock = locker.lock("ledger", "month-end close")?;
/// // Pass the token to the storage you write to, so that it can refuse a
/// // holder that lost the lock and came back late.
/// let token = lock.token();
/// # let write = |_token: u64| Ok::<(), turn::Error>(());
/// lock.check()?; // Lost once the lease lapsed or another ticket holds
/// write(token)?;
/// lock.release()?; // Lost when it had been lost meanwhile
/// # Ok::<(), turn::Error>(())
/// ```
pub struct Lock {
    /// The locker's running parts, kept alive by this lock.
    handle: Arc<Handle>,
    ticket: Arc<Ticket>,
    released: bool,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("resource", &self.ticket.resource)
            .field("serial", &self.ticket.serial)
            .finish()
    }
}

impl Lock {
    fn rt(&self) -> &Arc<Runtime> {
        &self.handle.runtime
    }

    /// The ticket number (turn 1.0's serial, shown by status): it starts
    /// over when the queue is made anew (a reset, a Redis restart without
    /// persistence, a failover that lost the queue), so it is not a fencing
    /// token: [`Lock::token`] is.
    pub fn serial(&self) -> u64 {
        self.ticket.serial
    }

    /// The fencing token: strictly greater than the token of every lock
    /// granted before it on this resource, also across a Redis restart
    /// without persistence (see the README's Guarantees for exactly what
    /// holds). Not the ticket number: [`Lock::serial`] is that.
    pub fn token(&self) -> u64 {
        self.ticket.token
    }

    /// The resource this lock is on.
    pub fn resource(&self) -> &str {
        &self.ticket.resource
    }

    /// The label given at acquire.
    pub fn label(&self) -> &str {
        &self.ticket.label
    }

    /// Ok while held; `Lost` once the heartbeat found the presence key gone
    /// or the indicator moved on, or the lease lapsed by the local clock.
    pub fn check(&self) -> Result<()> {
        if self.ticket.lapsed(self.rt().core.now_ms()) {
            self.ticket.mark_lost();
        }
        if self.ticket.is_held() {
            Ok(())
        } else {
            Err(Error::lost(format!(
                "lock {} on \"{}\" was lost",
                self.ticket.serial, self.ticket.resource
            )))
        }
    }

    /// True once the lock is known lost.
    pub fn is_lost(&self) -> bool {
        self.check().is_err()
    }

    /// A file descriptor that becomes readable once the lock is known lost,
    /// for an event loop (epoll, poll, an async runtime's reactor) to watch
    /// instead of polling [`Lock::check`]: within one heartbeat (a third of
    /// the lease) after the presence key vanished or the indicator moved
    /// on, at once when the lease lapses by the local clock (on Linux the
    /// kernel's timer makes it readable then, even while Redis stalls the
    /// heartbeat), and when the locker is closed. Level-triggered: it stays
    /// readable. Watch it, do not read from it or close it.
    ///
    /// Made on the first call (later calls answer the same descriptor),
    /// close-on-exec, owned by the lock: it never turns readable for a lock
    /// released normally, and is closed when the lock is released or
    /// dropped (the borrow ends there). Fails when no descriptor can be
    /// made, or in a child after `fork()`.
    ///
    /// ```no_run
    /// use std::os::fd::AsRawFd;
    ///
    /// let locker = turn::Locker::new(None)?;
    /// let lock = locker.lock("ledger", "month-end close")?;
    /// let mut watch = libc::pollfd {
    ///     fd: lock.lost_fd()?.as_raw_fd(),
    ///     events: libc::POLLIN,
    ///     revents: 0,
    /// };
    /// // SAFETY: one valid pollfd.
    /// if unsafe { libc::poll(&mut watch, 1, 1000) } == 1 {
    ///     eprintln!("lost: {:?}", lock.check());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lost_fd(&self) -> std::io::Result<BorrowedFd<'_>> {
        if !self.rt().core.in_owner_process() {
            return Err(std::io::Error::other(
                "this lock belongs to another process (before fork)",
            ));
        }
        let raw = self.ticket.lost_fd(self.rt().core.epoch())?;
        // SAFETY: the descriptor lives in the ticket until `close_lost_fd`,
        // which only the release or drop of this lock calls: not while
        // this borrow of the lock lasts.
        Ok(unsafe { BorrowedFd::borrow_raw(raw) })
    }

    /// Gives the turn to the next ticket, in one round trip. `Lost` when the
    /// lock had been lost; then the indicator is left alone unless it still
    /// pointed at this ticket.
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        leaving::release(self.rt(), &self.ticket)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if !self.released {
            let _ = leaving::release(self.rt(), &self.ticket);
        }
        self.ticket.close_lost_fd();
        // The handle goes after this: when it was the locker's last, the
        // locker closes now (nothing is held any more).
    }
}

/// An acquire in progress that no thread waits in (see
/// [`Locker::start_acquire`]). Dropping it withdraws its ticket, as
/// [`Pending::cancel`] does. Like a [`Lock`], it keeps its locker running
/// (its wait goes on in the locker's notifier thread) until it ends.
pub struct Pending {
    /// The locker's running parts, kept alive by this pending.
    handle: Arc<Handle>,
    inner: Arc<pending::PendingWait>,
    ended: bool,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("fd", &self.inner.fd())
            .finish()
    }
}

impl Pending {
    /// A file descriptor that becomes readable once the outcome is known
    /// (level-triggered: it stays readable until the pending ends). Watch
    /// it, do not read from it or close it; it is closed with the pending.
    pub fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor lives as long as `inner`, which this
        // borrow of self keeps.
        unsafe { BorrowedFd::borrow_raw(self.inner.fd()) }
    }

    /// `Ok(None)` while still waiting. Otherwise the outcome: the held lock,
    /// or why not (`Timeout`, `Canceled` when the locker was closed,
    /// `Connection`, ...); the pending has ended then, and a later call
    /// answers `InvalidArgument`.
    pub fn finish(&self) -> Result<Option<Lock>> {
        match self.inner.finish()? {
            pending::Finished::Waiting => Ok(None),
            pending::Finished::Held(ticket) => Ok(Some(Lock {
                handle: self.handle.clone(),
                ticket,
                released: false,
            })),
        }
    }

    /// Withdraws the ticket (no trace, no stall for those behind; a turn
    /// that came meanwhile is handed on) and ends the pending: waits for the
    /// withdrawal's round trip at most 250 ms (see [`Locker::acquire`]).
    /// `InvalidArgument` when it had ended already.
    pub fn cancel(mut self) -> Result<()> {
        self.ended = true;
        self.inner.cancel()
    }

    /// Tickets ahead of this one as last read (the holder included), for
    /// progress displays; 0 once the outcome is known. Read when the
    /// ticket was drawn and each time its waiter looked at the queue since,
    /// not at each hand-off: tickets withdrawn or dead count until the
    /// queue passes them.
    pub fn ahead(&self) -> u64 {
        self.inner.ahead()
    }

    /// The serial number of the ticket waiting now, `None` once the
    /// outcome is known. With a [`Status`] of the queue it tells the live
    /// tickets ahead at this moment (those of the status with a lower
    /// serial), for displays that must move with each hand-off. A ticket
    /// lost while waiting (its presence key gone) is drawn anew, under a
    /// new serial.
    pub fn serial(&self) -> Option<u64> {
        self.inner.serial()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.inner.cancel();
        }
    }
}
