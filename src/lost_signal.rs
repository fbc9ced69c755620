//! The lost fd of a ticket: a file descriptor, owned by the library and
//! made on first demand, that becomes readable once the lock is known lost
//! and stays readable (level-triggered) until it is closed with the lock.
//!
//! On Linux it is a timerfd (CLOCK_MONOTONIC, the clock of `Instant` and so
//! of the lease's local clock): armed for the moment the lease lapses by
//! the local clock and re-armed at each confirmed renewal, so it turns
//! readable at that moment by the kernel's hand, even while the heartbeat
//! thread waits on a stalled server; a loss found otherwise (presence key
//! gone, indicator moved on, the locker closed) arms it to fire at once. A
//! lock released normally disarms it: it never reports loss then.
//! Elsewhere it is a pipe written when the ticket is marked lost (found by
//! the heartbeat or by a check): without the timer, a lapse is reported
//! when the heartbeat thread or a check notices it.

use std::io;
use std::os::fd::RawFd;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::ready_fd::ReadyFd;
use crate::sync::lock;

/// What the fd shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shows {
    /// Not made yet, or held: readable at `deadline` (the lease's lapse).
    Armed,
    /// Lost: readable for good.
    Fired,
    /// Released or withdrawn: never readable.
    Disarmed,
}

struct Inner {
    fd: Option<ReadyFd>,
    phase: Shows,
    /// When the lease lapses by the local clock.
    deadline: Option<Instant>,
    /// The locker's epoch (its clock's zero), known once the fd is made.
    epoch: Option<Instant>,
    /// Closed with its lock: never made again.
    closed: bool,
}

/// The lost fd of one ticket; see the module's description.
pub(crate) struct LostSignal {
    /// Lock order: 5 (see `sync.rs`).
    inner: Mutex<Inner>,
}

/// What a renewal found (see [`LostSignal::renewed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Renewal {
    /// Nothing to do (no fd, or not armed).
    Quiet,
    /// Re-armed for the new lapse.
    Rearmed,
    /// The lease had lapsed by the local clock before this renewal was
    /// recorded: the fd fired or was about to, so the ticket is lost.
    Lapsed,
}

impl LostSignal {
    pub fn new() -> LostSignal {
        LostSignal {
            inner: Mutex::new(Inner {
                fd: None,
                phase: Shows::Armed,
                deadline: None,
                epoch: None,
                closed: false,
            }),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// The fd, made on the first call. `now` tells the ticket's state,
    /// read under this signal's mutex (so that no renewal or loss recorded
    /// meanwhile is missed): when its lease lapses in ms after `epoch`,
    /// whether it is lost (readable at once) and whether it is done (never
    /// readable). An error when it cannot be made, or was closed with its
    /// lock.
    pub fn fd(&self, epoch: Instant, now: impl FnOnce() -> (u64, bool, bool)) -> io::Result<RawFd> {
        let mut inner = self.inner();
        if inner.closed {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the lock was released; its lost fd is closed",
            ));
        }
        if let Some(fd) = &inner.fd {
            return Ok(fd.raw());
        }
        let fd = ReadyFd::new()?;
        let raw = fd.raw();
        inner.fd = Some(fd);
        inner.epoch = Some(epoch);
        let (lapse_ms, lost, done) = now();
        if inner.phase == Shows::Armed {
            if lost {
                inner.phase = Shows::Fired;
            } else if done {
                inner.phase = Shows::Disarmed;
            } else {
                inner.deadline = epoch.checked_add(Duration::from_millis(lapse_ms));
            }
        }
        apply(&inner);
        Ok(raw)
    }

    /// The ticket is lost: the fd becomes readable for good.
    pub fn fire(&self) {
        let mut inner = self.inner();
        if inner.phase == Shows::Armed {
            inner.phase = Shows::Fired;
            apply(&inner);
        }
    }

    /// The ticket was released or withdrawn: the fd never turns readable
    /// (unless it had fired already).
    pub fn disarm(&self) {
        let mut inner = self.inner();
        if inner.phase == Shows::Armed {
            inner.phase = Shows::Disarmed;
            apply(&inner);
        }
    }

    /// A renewal was confirmed: the lease now lapses `lapse_ms` after the
    /// locker's epoch. `Lapsed` when the former lapse has passed already
    /// (the fd fired or is about to: the caller marks the ticket lost, so
    /// that every view of it agrees).
    pub fn renewed(&self, lapse_ms: u64) -> Renewal {
        let mut inner = self.inner();
        if inner.phase != Shows::Armed || inner.fd.is_none() {
            return Renewal::Quiet;
        }
        if inner.deadline.is_some_and(|d| Instant::now() >= d) {
            inner.phase = Shows::Fired;
            apply(&inner);
            return Renewal::Lapsed;
        }
        let Some(epoch) = inner.epoch else {
            return Renewal::Quiet;
        };
        let deadline = epoch.checked_add(Duration::from_millis(lapse_ms));
        if deadline <= inner.deadline {
            return Renewal::Quiet;
        }
        inner.deadline = deadline;
        apply(&inner);
        Renewal::Rearmed
    }

    /// Closes the fd (its lock is gone); it is never made again.
    pub fn close(&self) {
        let mut inner = self.inner();
        inner.closed = true;
        if inner.phase == Shows::Armed {
            inner.phase = Shows::Disarmed;
        }
        inner.fd = None;
    }

    /// True when the fd exists and shows a loss (for tests).
    #[cfg(test)]
    fn fired(&self) -> bool {
        self.inner().phase == Shows::Fired
    }
}

/// Makes the fd show the phase.
fn apply(inner: &Inner) {
    let Some(fd) = &inner.fd else {
        return;
    };
    match inner.phase {
        Shows::Fired => fd.set(),
        Shows::Disarmed => fd.clear(),
        Shows::Armed => match inner.deadline {
            Some(d) => fd.arm_at(d),
            None => fd.clear(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ready_fd::readable;

    fn ms_from(epoch: Instant) -> u64 {
        epoch.elapsed().as_millis() as u64
    }

    #[test]
    fn a_held_ticket_s_fd_is_quiet_until_it_fires_and_then_stays_readable() {
        let s = LostSignal::new();
        let epoch = Instant::now();
        let fd = s
            .fd(epoch, || (ms_from(epoch) + 60_000, false, false))
            .unwrap();
        assert!(!readable(fd));
        assert_eq!(s.fd(epoch, || (0, false, false)).unwrap(), fd, "made once");
        s.fire();
        assert!(readable(fd));
        assert!(readable(fd), "level-triggered");
        // Nothing turns it quiet again.
        s.disarm();
        assert_eq!(s.renewed(ms_from(epoch) + 60_000), Renewal::Quiet);
        assert!(readable(fd) && s.fired());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_fd_turns_readable_by_itself_when_the_lease_lapses() {
        let s = LostSignal::new();
        let epoch = Instant::now();
        let fd = s.fd(epoch, || (ms_from(epoch) + 50, false, false)).unwrap();
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, 10_000) };
        assert_eq!(n, 1, "the timer fired");
        // A renewal recorded after the lapse does not revive it.
        assert_eq!(s.renewed(ms_from(epoch) + 60_000), Renewal::Lapsed);
        assert!(readable(fd) && s.fired());
    }

    #[test]
    fn a_renewal_moves_the_lapse_and_a_release_disarms() {
        let s = LostSignal::new();
        let epoch = Instant::now();
        let fd = s
            .fd(epoch, || (ms_from(epoch) + 60_000, false, false))
            .unwrap();
        assert_eq!(s.renewed(ms_from(epoch) + 120_000), Renewal::Rearmed);
        assert_eq!(
            s.renewed(ms_from(epoch) + 90_000),
            Renewal::Quiet,
            "never moved back"
        );
        s.disarm();
        s.fire();
        assert!(!readable(fd), "a released lock never reports loss");
        s.close();
        assert!(s.fd(epoch, || (0, true, false)).is_err(), "closed for good");
    }

    #[test]
    fn an_fd_made_late_shows_what_happened_before() {
        let epoch = Instant::now();
        let lost = LostSignal::new();
        assert!(readable(lost.fd(epoch, || (0, true, false)).unwrap()));
        let done = LostSignal::new();
        assert!(!readable(done.fd(epoch, || (0, false, true)).unwrap()));
        let fired_first = LostSignal::new();
        fired_first.fire();
        assert!(readable(
            fired_first
                .fd(epoch, || (u64::MAX / 2, false, false))
                .unwrap()
        ));
    }
}
