//! Pending acquires: a ticket drawn by the caller in one round trip, its
//! wait then stepped by the locker's notifier thread between messages (no
//! thread of its own: any number may wait), its outcome shown by a file
//! descriptor that becomes readable once it is known. The wait itself is
//! `wait.rs`'s, the one blocking acquires step in their own thread.

use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::event_fd::EventFd;
use crate::options::{Acquire, Wait};
use crate::runtime::{Driven, Runtime};
use crate::ticket::Ticket;
use crate::wait::{Acquiring, Step};

/// One pending acquire, shared by its owner and the notifier thread.
pub(crate) struct Pending {
    state: Mutex<State>,
    fd: EventFd,
    rt: Arc<Runtime>,
}

enum State {
    Waiting {
        acquiring: Box<Acquiring>,
        /// No step is needed before then unless the ticket is signaled.
        due: Instant,
    },
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

impl Pending {
    /// Takes a ticket for `resource` and returns without waiting for the
    /// turn: blocks for the draw's round trip, no longer. A try-lock is not
    /// a pending acquire (`InvalidArgument`).
    pub fn start(rt: &Arc<Runtime>, resource: &str, request: &Acquire) -> Result<Arc<Pending>> {
        if request.wait == Wait::TryOnce || request.wait == Wait::For(Duration::ZERO) {
            return Err(Error::invalid(
                "a pending acquire waits: use a timeout above 0, or none (a try-lock is a plain acquire)",
            ));
        }
        let fd = EventFd::new().map_err(|e| {
            Error::new(
                ErrorKind::Connection,
                format!("no descriptor for the pending acquire: {e}"),
            )
        })?;
        let mut acquiring = Box::new(Acquiring::new(rt, resource, request)?);
        acquiring.limit(Some(1));
        let first = acquiring.step();
        acquiring.limit(None);
        let state = match first {
            Step::Done(outcome) => {
                fd.set();
                State::Done(outcome)
            }
            Step::Sleep(d) => State::Waiting {
                acquiring,
                due: Instant::now() + d,
            },
        };
        let waiting = matches!(state, State::Waiting { .. });
        let pending = Arc::new(Pending {
            state: Mutex::new(state),
            fd,
            rt: rt.clone(),
        });
        if waiting {
            rt.drive(pending.clone());
        }
        Ok(pending)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The descriptor that becomes readable once the outcome is known.
    pub fn fd(&self) -> RawFd {
        self.fd.raw()
    }

    /// The outcome when it is known (the pending then ends), else Waiting.
    pub fn finish(&self) -> Result<Finished> {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, State::Ended) {
            waiting @ State::Waiting { .. } => {
                *state = waiting;
                Ok(Finished::Waiting)
            }
            State::Done(outcome) => {
                // Ended: its watchers stop hearing of it now, though the
                // notifier's step may keep the fd open a moment longer.
                self.fd.clear();
                outcome.map(Finished::Held)
            }
            State::Ended => Err(Error::invalid("this pending acquire has ended")),
        }
    }

    /// Withdraws the ticket (one round trip) and ends the pending. A turn
    /// that came meanwhile is handed on at once.
    pub fn cancel(&self) -> Result<()> {
        let ended = std::mem::replace(&mut *self.lock(), State::Ended);
        // Ended: no step sets the fd again (see finish).
        self.fd.clear();
        match ended {
            // Dropping the wait withdraws its ticket.
            State::Waiting { acquiring, .. } => drop(acquiring),
            State::Done(Ok(ticket)) => crate::wait::withdraw(&self.rt, &ticket),
            State::Done(Err(_)) => {}
            State::Ended => return Err(Error::invalid("this pending acquire has ended")),
        }
        Ok(())
    }

    /// Tickets ahead of this one as last read, the holder included; 0 once
    /// the outcome is known.
    pub fn ahead(&self) -> u64 {
        match &*self.lock() {
            State::Waiting { acquiring, .. } => acquiring.ahead().unwrap_or(0),
            _ => 0,
        }
    }
}

impl Pending {
    /// The serial of the ticket waiting now; None once the outcome is known.
    pub fn serial(&self) -> Option<u64> {
        match &*self.lock() {
            State::Waiting { acquiring, .. } => acquiring.serial(),
            _ => None,
        }
    }
}

impl Driven for Pending {
    fn drive(&self, now: Instant) -> Option<Instant> {
        let mut state = self.lock();
        let State::Waiting { acquiring, due } = &mut *state else {
            return None;
        };
        if now < *due && acquiring.quiet() {
            return Some(*due);
        }
        match acquiring.step() {
            Step::Sleep(d) => {
                *due = now + d;
                Some(*due)
            }
            Step::Done(outcome) => {
                *state = State::Done(outcome);
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

impl Drop for Pending {
    fn drop(&mut self) {
        // An outcome nobody took: a held ticket is handed on.
        if let State::Done(Ok(ticket)) = std::mem::replace(&mut *self.lock(), State::Ended) {
            crate::wait::withdraw(&self.rt, &ticket);
        }
    }
}
