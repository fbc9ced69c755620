//! The handles of a drawn ticket: [`Lock`], a ticket whose turn came (held
//! until released or dropped), and [`Pending`], a ticket still waiting
//! with no thread of the caller's in its wait. Both keep their locker
//! running; a ticket leaves the queue through `leaving.rs` alone (the
//! engine's `release` and `withdraw`).

use std::os::fd::BorrowedFd;
use std::sync::Arc;

use crate::engine::{Engine, Running};
use crate::error::{Error, Result};
use crate::pending;
use crate::ticket::Ticket;

/// A held lock. Release it with [`Lock::release`] to learn whether it was
/// still held; dropping it releases it too, ignoring the outcome.
///
/// It keeps its [`Locker`](crate::Locker) running (heartbeat, notifier, connections) until
/// it is released or dropped, so it may outlive every `Locker` value:
/// `Locker::new(url)?.lock("ledger", "job")?` holds the lock. Only
/// [`Locker::close`](crate::Locker::close) ends it early (it is then released, and reported
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
    running: Arc<Running>,
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
    /// The lock of a held `ticket`, keeping its locker running.
    pub(crate) fn new(running: Arc<Running>, ticket: Arc<Ticket>) -> Lock {
        Lock {
            running,
            ticket,
            released: false,
        }
    }

    fn rt(&self) -> &Arc<Engine> {
        &self.running.engine
    }

    /// Its ticket.
    pub(crate) fn ticket(&self) -> &Arc<Ticket> {
        &self.ticket
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
    /// for an event loop (epoll, poll, an async engine's reactor) to watch
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
        self.rt().release(&self.ticket)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.rt().release(&self.ticket);
        }
        self.ticket.close_lost_fd();
        // The running locker goes after this: when it was the locker's last, the
        // locker closes now (nothing is held any more).
    }
}

/// An acquire in progress that no thread waits in (see
/// [`Locker::start_acquire`](crate::Locker::start_acquire)). Dropping it withdraws its ticket, as
/// [`Pending::cancel`] does. Like a [`Lock`], it keeps its locker running
/// (its wait goes on in the locker's notifier thread) until it ends.
pub struct Pending {
    /// The locker's running parts, kept alive by this pending.
    running: Arc<Running>,
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
    /// The handle of a pending acquire, keeping its locker running.
    pub(crate) fn new(running: Arc<Running>, inner: Arc<pending::PendingWait>) -> Pending {
        Pending {
            running,
            inner,
            ended: false,
        }
    }

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
            pending::Finished::Held(ticket) => Ok(Some(Lock::new(self.running.clone(), ticket))),
        }
    }

    /// Withdraws the ticket (no trace, no stall for those behind; a turn
    /// that came meanwhile is handed on) and ends the pending: waits for the
    /// withdrawal's round trip at most 250 ms (see [`Locker::acquire`](crate::Locker::acquire)).
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
    /// outcome is known. With a [`Status`](crate::Status) of the queue it tells the live
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
