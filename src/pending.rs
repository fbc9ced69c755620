//! Pending acquires: a ticket drawn by the caller in one round trip, its
//! wait then stepped by the locker's notifier thread between messages (no
//! thread of its own: any number may wait), its outcome shown by a file
//! descriptor that becomes readable once it is known. The wait itself is
//! `wait`'s, the one blocking acquires step in their own thread.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::notifier::Driven;
use crate::options::{Acquire, Wait};
use crate::ready_fd::ReadyFd;
use crate::sync::lock;
use crate::ticket::Ticket;
use crate::wait::{Acquiring, Budget, Step};

/// One pending acquire, shared by its owner and the notifier thread.
pub(crate) struct PendingWait {
    /// Lock order: 3 (see `sync.rs`).
    state: Mutex<PendingState>,
    fd: ReadyFd,
    rt: Arc<Engine>,
    resource: String,
    deadline: Option<Instant>,
    /// Its owner gave it up (canceled it, or finished it past its deadline)
    /// while it was still waiting: the notifier withdraws its ticket.
    given_up: AtomicBool,
}

/// Where a pending acquire stands.
enum PendingState {
    Waiting {
        acquiring: Box<Acquiring>,
        /// No step is needed before then unless the ticket is signaled.
        due: Instant,
    },
    /// The notifier thread is stepping it (without the lock: a step may
    /// take round trips, and the owner must not wait on them).
    Stepping,
    /// The outcome, not taken yet.
    Done(Result<Arc<Ticket>>),
    /// Taken by `finish`, or canceled.
    Ended,
}

/// What `finish` found.
pub(crate) enum Finished {
    /// Still waiting.
    Waiting,
    /// The turn came: the held ticket.
    Held(Arc<Ticket>),
}

impl PendingWait {
    /// Takes a ticket for `resource` and returns without waiting for the
    /// turn: blocks for the draw's round trip, no longer. A try-lock is not
    /// a pending acquire (`InvalidArgument`).
    pub fn start(rt: &Arc<Engine>, resource: &str, request: &Acquire) -> Result<Arc<PendingWait>> {
        if request.wait == Wait::TryOnce || request.wait == Wait::For(Duration::ZERO) {
            return Err(Error::invalid(
                "a pending acquire waits: use a timeout above 0, or none (a try-lock is a plain acquire)",
            ));
        }
        let fd = ReadyFd::new().map_err(|e| {
            Error::new(
                ErrorKind::Connection,
                format!("no descriptor for the pending acquire: {e}"),
            )
        })?;
        let deadline = match request.wait {
            Wait::For(d) => Instant::now().checked_add(d),
            _ => None,
        };
        if let Some(d) = deadline {
            // Readable at the deadline by the kernel's hand, even while the
            // notifier thread waits on a stalled server.
            fd.arm_at(d);
        }
        let mut acquiring = Box::new(Acquiring::new(rt, resource, request)?);
        // The draw's round trip, no more: the wait goes on in the
        // notifier thread.
        let first = acquiring.step(Budget(Some(1)));
        let state = match first {
            Step::Done(outcome) => {
                fd.set();
                PendingState::Done(outcome)
            }
            Step::Sleep(d) => PendingState::Waiting {
                acquiring,
                due: Instant::now() + d,
            },
        };
        let waiting = matches!(state, PendingState::Waiting { .. });
        let pending = Arc::new(PendingWait {
            state: Mutex::new(state),
            fd,
            rt: rt.clone(),
            resource: resource.to_string(),
            deadline,
            given_up: AtomicBool::new(false),
        });
        if waiting {
            rt.drive(pending.clone());
        }
        Ok(pending)
    }

    fn lock(&self) -> MutexGuard<'_, PendingState> {
        lock(&self.state)
    }

    fn ended() -> Error {
        Error::invalid("this pending acquire has ended")
    }

    /// The descriptor that becomes readable once the outcome is known.
    pub fn fd(&self) -> RawFd {
        self.fd.raw()
    }

    /// The outcome when it is known (the pending then ends), else Waiting.
    /// Never waits on a round trip. A turn that came is given only while it
    /// is still held: not once its lease lapsed by the local clock, its
    /// ticket was found lost, or its locker was closed.
    pub fn finish(&self) -> Result<Finished> {
        let mut state = self.lock();
        if self.given_up.load(Ordering::Acquire) {
            return Err(Self::ended());
        }
        let closed = self.rt.core.is_closed();
        match &*state {
            PendingState::Waiting { .. } | PendingState::Stepping if closed => {
                // Closing ended it, or will at the notifier's next step
                // (one held up by a server that does not answer): it ends
                // now, and its ticket was withdrawn or is left to lapse.
                self.given_up.store(true, Ordering::Release);
                self.fd.clear();
                return Err(self.closed_before());
            }
            PendingState::Waiting { .. } | PendingState::Stepping => {
                if self.deadline.is_some_and(|d| Instant::now() >= d) {
                    // Past its deadline: it ends now, and the notifier
                    // withdraws its ticket.
                    self.given_up.store(true, Ordering::Release);
                    self.fd.clear();
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "\"{}\" was not granted in time (the ticket is withdrawn)",
                            self.resource
                        ),
                    ));
                }
                return Ok(Finished::Waiting);
            }
            PendingState::Ended => return Err(Self::ended()),
            PendingState::Done(_) => {}
        }
        let PendingState::Done(outcome) = std::mem::replace(&mut *state, PendingState::Ended)
        else {
            return Err(Self::ended());
        };
        drop(state);
        // Ended: its watchers stop hearing of it now, though the notifier's
        // step may keep the fd open a moment longer.
        self.fd.clear();
        let ticket = match outcome {
            // A round trip that failed because the locker closed under it.
            Err(e) if closed && e.is_connection() => return Err(self.closed_before()),
            outcome => outcome?,
        };
        let core = &self.rt.core;
        if ticket.lapsed(core.now_ms()) {
            ticket.mark_lost();
        }
        if core.is_closed() || !ticket.is_held() {
            // Closing released it, or it was lost: withdrawing a ticket
            // known lost touches nothing (no round trip).
            self.rt.withdraw(&ticket);
            return Err(if core.is_closed() {
                self.closed_before()
            } else {
                Error::lost(format!(
                    "the turn on \"{}\" came (ticket {}) but was lost before it was taken",
                    self.resource, ticket.serial
                ))
            });
        }
        Ok(Finished::Held(ticket))
    }

    /// The error of a pending whose locker was closed before its outcome
    /// was taken.
    fn closed_before(&self) -> Error {
        Error::new(
            ErrorKind::Canceled,
            format!(
                "the locker was closed before \"{}\" was taken",
                self.resource
            ),
        )
    }

    /// Withdraws the ticket and ends the pending: waits for the round trip
    /// at most `leaving::WITHDRAW_WAIT` (not at all while the notifier
    /// thread is stepping it: it withdraws it then). A turn that came
    /// meanwhile is handed on at once.
    pub fn cancel(&self) -> Result<()> {
        let mut state = self.lock();
        if self.given_up.load(Ordering::Acquire) {
            return Err(Self::ended());
        }
        // Ended: no step sets the fd again (see finish).
        self.fd.clear();
        match std::mem::replace(&mut *state, PendingState::Ended) {
            PendingState::Waiting { acquiring, .. } => {
                drop(state);
                // Dropping the wait withdraws its ticket.
                drop(acquiring);
            }
            PendingState::Stepping => {
                *state = PendingState::Stepping;
                self.given_up.store(true, Ordering::Release);
            }
            PendingState::Done(Ok(ticket)) => {
                drop(state);
                self.rt.withdraw(&ticket);
            }
            PendingState::Done(Err(_)) => {}
            PendingState::Ended => return Err(Self::ended()),
        }
        Ok(())
    }

    /// Tickets ahead of this one as last read, the holder included; 0 once
    /// the outcome is known (or while the notifier steps it).
    pub fn ahead(&self) -> u64 {
        match &*self.lock() {
            PendingState::Waiting { acquiring, .. } => acquiring.ahead().unwrap_or(0),
            _ => 0,
        }
    }

    /// The serial of the ticket waiting now; None once the outcome is known
    /// (or while the notifier steps it).
    pub fn serial(&self) -> Option<u64> {
        match &*self.lock() {
            PendingState::Waiting { acquiring, .. } => acquiring.serial(),
            _ => None,
        }
    }
}

impl Driven for PendingWait {
    fn drive(&self, now: Instant) -> Option<Instant> {
        let mut acquiring = {
            let mut state = self.lock();
            match std::mem::replace(&mut *state, PendingState::Stepping) {
                PendingState::Waiting { acquiring, due } => {
                    if self.given_up.load(Ordering::Acquire) {
                        *state = PendingState::Ended;
                        drop(state);
                        // Dropping the wait withdraws its ticket.
                        drop(acquiring);
                        return None;
                    }
                    if now < due && acquiring.quiet() {
                        *state = PendingState::Waiting { acquiring, due };
                        return Some(due);
                    }
                    acquiring
                }
                other => {
                    *state = other;
                    return None;
                }
            }
        };
        let mut step = acquiring.step(Budget::ANY);
        if matches!(step, Step::Sleep(_)) && self.rt.core.is_closed() {
            // Closing came during the step: the next one ends the wait.
            step = acquiring.step(Budget::ANY);
        }
        let mut state = self.lock();
        if self.given_up.load(Ordering::Acquire) {
            *state = PendingState::Ended;
            drop(state);
            if let Step::Done(Ok(ticket)) = step {
                self.rt.withdraw(&ticket);
            }
            // Dropping a wait still going withdraws its ticket.
            drop(acquiring);
            return None;
        }
        match step {
            Step::Sleep(d) => {
                let due = now + d;
                *state = PendingState::Waiting { acquiring, due };
                Some(due)
            }
            Step::Done(outcome) => {
                *state = PendingState::Done(outcome);
                self.fd.set();
                None
            }
        }
    }

    fn close(&self) {
        // The locker is closing: the next step ends the wait.
        let _ = self.drive(Instant::now() + Duration::from_secs(3600 * 24 * 365));
    }
}

impl Drop for PendingWait {
    fn drop(&mut self) {
        // An outcome nobody took: a held ticket is handed on.
        if let PendingState::Done(Ok(ticket)) =
            std::mem::replace(&mut *self.lock(), PendingState::Ended)
        {
            self.rt.withdraw(&ticket);
        }
    }
}
