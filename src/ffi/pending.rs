//! `turn_pending`: acquires that no thread waits in, for event loops.

use std::ffi::{c_char, c_int};
use std::os::fd::AsRawFd;
use std::sync::Mutex;

use super::args::{Handle, acquire_names, acquire_request};
use super::export::{Out, guard, guard_out, guard_out_after, quiet};
use super::handles::{Kind, Table};
use super::lock::{insert_lock, turn_lock};
use super::locker::{locker_of, turn_locker};
use super::result::turn_result;
use crate::Pending;
use crate::error::{Error, ErrorKind};
use crate::sync;

/// The pending acquires handed out, by handle.
static PENDINGS: Table<PendingCell> = Table::new(Kind::Pending);

/// A pending acquire behind a `turn_pending` handle.
pub(super) struct PendingCell {
    fd: c_int,
    /// Lock order: 2 (see `sync.rs`).
    pending: Mutex<Option<Pending>>,
}

/// An acquire in progress that no thread waits in: its ticket is drawn, its
/// wait goes on in the locker's notifier thread (no thread per pending; any
/// number may wait, and are granted in ticket order), and
/// `turn_pending_fd` becomes readable once its outcome is known. Owned by
/// the caller from `turn_acquire_start` until `turn_pending_finish` gives
/// the outcome or `turn_pending_cancel` withdraws it; either ends the
/// handle. May be used from any thread.
///
/// The handle is a checked number like a `turn_locker`'s (see there), with
/// the kind pending: a pending that ended, a value this library did not
/// return, or another kind's handle answers `TURN_ERR_INVALID_ARGUMENT`
/// (`turn_pending_fd` answers -1); one of the parent used in a child after
/// fork() answers `TURN_ERR_FORKED`. Freeing its locker ends the wait:
/// `turn_pending_finish` then answers `TURN_ERR_CANCELED`.
pub struct turn_pending {
    _opaque: [u8; 0],
}

impl Handle for turn_pending {
    type Object = PendingCell;
    const PARAM: &'static str = "pending";
    fn table() -> &'static Table<PendingCell> {
        &PENDINGS
    }
}

/// Takes a ticket for `resource` and returns without waiting for the turn:
/// it blocks for the draw's one round trip, no longer. On success writes
/// the pending acquire to `*out`; when the turn came with the draw, its fd
/// is readable at once.
///
/// - `resource`, `label`, `expire_ms`, `patience_ms`: as
///   `turn_lock_acquire`'s, with the same limits.
/// - `timeout_ms`: < 0 waits forever; > 0 ends the wait after that long
///   with `TURN_ERR_TIMEOUT` (the ticket withdrawn); 0 is
///   `TURN_ERR_INVALID_ARGUMENT` (a try-lock is `turn_lock_acquire` with
///   timeout 0).
///
/// ```c
/// turn_pending *p;
/// if (turn_acquire_start(locker, "printer", "job 7", 0, 0, -1, &p) == TURN_OK) {
///     struct epoll_event ev = { .events = EPOLLIN, .data.ptr = p };
///     epoll_ctl(ep, EPOLL_CTL_ADD, turn_pending_fd(p), &ev);
/// }
/// ```
///
/// # Safety
/// Strings are NULL or NUL-terminated; `out` points to writable storage for
/// a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_acquire_start(
    locker: *mut turn_locker,
    resource: *const c_char,
    label: *const c_char,
    expire_ms: u32,
    patience_ms: u32,
    timeout_ms: i64,
    out: *mut *mut turn_pending,
) -> turn_result {
    // The arguments first (no round trip), then out, then the handles.
    let args = || {
        // SAFETY: strings NULL or NUL-terminated per the contract.
        let names = unsafe { acquire_names(resource, label)? };
        if timeout_ms == 0 {
            return Err(Error::invalid(
                "timeout_ms 0 is a try-lock: use turn_lock_acquire (a pending acquire waits)",
            ));
        }
        Ok(names)
    };
    // SAFETY: out is NULL or writable per the contract.
    let out = unsafe { Out::new(out) };
    guard_out_after(args, out, |(resource, label)| {
        let locker = locker_of(locker)?;
        let request = acquire_request(label, expire_ms, patience_ms, timeout_ms, None);
        insert_pending(locker.start_acquire(resource, &request)?)
    })
}

/// A new `turn_pending` handle for a pending acquire.
pub(super) fn insert_pending(pending: Pending) -> crate::error::Result<*mut turn_pending> {
    turn_pending::insert(PendingCell {
        fd: pending.fd().as_raw_fd(),
        pending: Mutex::new(Some(pending)),
    })
}

/// A file descriptor that becomes readable once the outcome is known
/// (level-triggered: readable until the pending is finished or canceled,
/// which closes it). Watch it, do not read from it or close it. -1 for an
/// invalid handle.
#[unsafe(no_mangle)]
pub extern "C" fn turn_pending_fd(pending: *const turn_pending) -> c_int {
    quiet(-1, || turn_pending::get(pending).map_or(-1, |cell| cell.fd))
}

/// `TURN_ERR_WOULD_BLOCK` while still waiting (the pending stays valid).
/// Any other result ends it and frees the handle: `TURN_OK` with the held
/// lock written to `*out`, or why not (`TURN_ERR_TIMEOUT`,
/// `TURN_ERR_CONNECTION`, `TURN_ERR_CANCELED` when its locker was freed,
/// `TURN_ERR_LOST` when the turn came but the lock was lost before this
/// call: its lease lapsed by the local clock or its ticket was found gone).
/// A NULL `out` answers `TURN_ERR_NULL_ARGUMENT` and ends nothing.
///
/// Never waits on a round trip: on Linux the fd turns readable at the
/// deadline by the kernel's timer, and past it this answers
/// `TURN_ERR_TIMEOUT` at once, even while Redis stalls; the locker's
/// notifier thread withdraws the ticket right after (a status read at that
/// very moment may still show it).
///
/// # Safety
/// `out` points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_pending_finish(
    pending: *mut turn_pending,
    out: *mut *mut turn_lock,
) -> turn_result {
    // SAFETY: out is NULL or writable per the contract.
    let out = unsafe { Out::new(out) };
    guard_out(out, || {
        let cell = turn_pending::get(pending)?;
        let mut slot = sync::lock(&cell.pending);
        let Some(p) = slot.as_ref() else {
            return Err(Error::invalid("the pending acquire has ended"));
        };
        let outcome = match p.finish() {
            Ok(None) => {
                return Err(Error::new(
                    ErrorKind::WouldBlock,
                    "still waiting for the turn",
                ));
            }
            Ok(Some(lock)) => Ok(lock),
            Err(e) => Err(e),
        };
        // Ended: the handle goes.
        let _ = slot.take();
        drop(slot);
        let _ = turn_pending::remove(pending);
        insert_lock(outcome?)
    })
}

/// Withdraws the ticket (no trace, no stall for those behind; a turn that
/// came meanwhile is handed on at once) and frees the pending. It returns
/// once the ticket is withdrawn (one round trip, made by the locker's
/// withdrawal thread), or after 250 ms at most (the command timeout if
/// shorter) when Redis does not answer: the withdrawal then goes on in the
/// background, and a ticket never withdrawn is passed once its lease
/// lapses. When the notifier thread is stepping the wait at that moment, it
/// withdraws the ticket as its step ends, and this returns at once.
/// `TURN_OK`, or `TURN_ERR_INVALID_ARGUMENT` for a pending that ended; the
/// handle ends in every case.
#[unsafe(no_mangle)]
pub extern "C" fn turn_pending_cancel(pending: *mut turn_pending) -> turn_result {
    guard(|| {
        let cell = turn_pending::remove(pending)?;
        let taken = sync::lock(&cell.pending).take();
        match taken {
            Some(p) => p.cancel(),
            None => Err(Error::invalid("the pending acquire has ended")),
        }
    })
}

/// Writes the number of live tickets ahead of this one, the holder
/// included, as last read, for progress displays: read when the ticket was
/// drawn and each time its waiter looked at the queue since (not at each
/// hand-off); tickets withdrawn or dead count until the queue passes them.
/// 0 once the outcome is known.
///
/// # Safety
/// `ahead` points to writable storage for a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_pending_position(
    pending: *const turn_pending,
    ahead: *mut u64,
) -> turn_result {
    // SAFETY: ahead is NULL or writable per the contract.
    let out = unsafe { Out::new(ahead) };
    guard_out(out, || {
        let cell = turn_pending::get(pending)?;
        let slot = sync::lock(&cell.pending);
        match slot.as_ref() {
            Some(p) => Ok(p.ahead()),
            None => Err(Error::invalid("the pending acquire has ended")),
        }
    })
}
