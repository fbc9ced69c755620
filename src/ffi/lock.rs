//! `turn_lock`: taking a turn, holding it and giving it back.

use std::ffi::{c_char, c_int};
use std::os::fd::AsRawFd;

use super::args::{Handle, acquire_names, acquire_request};
use super::cancel::{cancel_or_none, turn_cancel};
use super::export::{Out, guard, guard_out, guard_out_after, quiet};
use super::handles::{Kind, Table};
use super::locker::{locker_of, turn_locker};
use super::result::{set_last_error, turn_result};
use crate::Lock;
use crate::error::Error;
use crate::sync;

/// The locks handed out, by handle.
static LOCKS: Table<LockCell> = Table::new(Kind::Lock);

/// A lock behind a `turn_lock` handle; release takes it out.
pub(super) struct LockCell {
    serial: u64,
    token: u64,
    /// Lock order: 2 (see `sync.rs`).
    lock: std::sync::Mutex<Option<Lock>>,
}

/// One held lock. Owned by the caller from `turn_lock_acquire` until
/// `turn_lock_release`, which always ends it. May be used from any thread.
///
/// The handle is a checked number like a `turn_locker`'s (see there), with
/// the kind lock: a second release, any use after release, a value this
/// library did not return, or a `turn_locker` or `turn_cancel` handle
/// passed as a lock answers `TURN_ERR_INVALID_ARGUMENT` (`turn_lock_serial`
/// answers 0) and touches nothing; a lock of the parent used in a child
/// after fork() answers `TURN_ERR_FORKED`. A released handle never names a
/// later lock (on 32-bit targets: until 2^20 newer locks were taken).
pub struct turn_lock {
    _opaque: [u8; 0],
}

impl Handle for turn_lock {
    type Object = LockCell;
    const PARAM: &'static str = "lock";
    fn table() -> &'static Table<LockCell> {
        &LOCKS
    }
}

/// Takes a ticket for `resource` and waits for its turn; on success writes
/// the held lock to `*out`.
///
/// - `label`: shown in status and messages (NULL for "").
/// - `expire_ms`: the lease; 0 for the default, 10000 ms. At least 100 ms:
///   1 to 99 answer `TURN_ERR_INVALID_ARGUMENT`. The heartbeat renews it
///   every third of it while waiting and holding.
/// - `patience_ms`: the longest wait without news before re-reading the
///   queue; 0 for the default, 60000 ms. Values below 10 ms count as 10 ms.
/// - `timeout_ms`: < 0 waits forever; 0 tries once (`TURN_ERR_WOULD_BLOCK`
///   when someone else has the turn); > 0 gives up after that long with
///   `TURN_ERR_TIMEOUT`. A ticket given up leaves no trace.
///
/// Resource names are 1 to 1024 bytes of UTF-8 without control characters;
/// labels at most 4096 bytes of UTF-8. Anything else answers
/// `TURN_ERR_INVALID_ARGUMENT`, before any round trip.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `out` points to writable storage for
/// a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_lock_acquire(
    locker: *mut turn_locker,
    resource: *const c_char,
    label: *const c_char,
    expire_ms: u32,
    patience_ms: u32,
    timeout_ms: i64,
    out: *mut *mut turn_lock,
) -> turn_result {
    // SAFETY: same contract as this function's.
    unsafe {
        turn_lock_acquire_cancelable(
            locker,
            resource,
            label,
            expire_ms,
            patience_ms,
            timeout_ms,
            std::ptr::null(),
            out,
        )
    }
}

/// Like `turn_lock_acquire`, and `turn_cancel_fire(cancel)` from another
/// thread ends the wait: the ticket is withdrawn and the call answers
/// `TURN_ERR_CANCELED`. `cancel` may be NULL (not cancelable).
///
/// # Safety
/// As `turn_lock_acquire`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn turn_lock_acquire_cancelable(
    locker: *mut turn_locker,
    resource: *const c_char,
    label: *const c_char,
    expire_ms: u32,
    patience_ms: u32,
    timeout_ms: i64,
    cancel: *const turn_cancel,
    out: *mut *mut turn_lock,
) -> turn_result {
    // The arguments first (no round trip), then out, then the handles.
    // SAFETY: strings NULL or NUL-terminated per the contract.
    let args = || unsafe { acquire_names(resource, label) };
    // SAFETY: out is NULL or writable per the contract.
    let out = unsafe { Out::new(out) };
    guard_out_after(args, out, |(resource, label)| {
        let locker = locker_of(locker)?;
        let cancel = cancel_or_none(cancel)?;
        let request = acquire_request(label, expire_ms, patience_ms, timeout_ms, cancel);
        insert_lock(locker.acquire(resource, &request)?)
    })
}

/// A new `turn_lock` handle for a held lock.
pub(super) fn insert_lock(lock: Lock) -> crate::error::Result<*mut turn_lock> {
    turn_lock::insert(LockCell {
        serial: lock.serial(),
        token: lock.token(),
        lock: std::sync::Mutex::new(Some(lock)),
    })
}

/// Gives the turn to the next ticket (one round trip) and ends the handle,
/// whatever the outcome. `TURN_ERR_LOST` when the lock had been lost (the
/// indicator is then left alone unless it still showed this ticket);
/// `TURN_ERR_CONNECTION` when Redis could not be told within the command
/// timeout (the lease then runs out by itself). NULL gives
/// `TURN_ERR_NULL_ARGUMENT`; a handle released already gives
/// `TURN_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub extern "C" fn turn_lock_release(lock: *mut turn_lock) -> turn_result {
    guard(|| {
        let cell = turn_lock::remove(lock)?;
        let taken = sync::lock(&cell.lock).take();
        match taken {
            Some(lock) => lock.release(),
            None => Err(Error::invalid("the lock was released already")),
        }
    })
}

/// The lock's ticket number (turn 1.0's serial, shown by status): it
/// starts over when the queue is made anew (a reset, a Redis restart
/// without persistence, a failover that lost the queue), so it is not a
/// fencing token: `turn_lock_token` is. 0 for NULL or a handle that is not
/// a live lock.
#[unsafe(no_mangle)]
pub extern "C" fn turn_lock_serial(lock: *const turn_lock) -> u64 {
    quiet(0, || turn_lock::get(lock).map_or(0, |l| l.serial))
}

/// Writes the lock's fencing token to `*out`: strictly greater than the
/// token of every lock granted before it on this resource, also across a
/// Redis restart without persistence (the README's Guarantees say exactly
/// what holds). Not the ticket number (`turn_lock_serial`). Pass it to the
/// resource with each write, and have the resource refuse a token not
/// greater than the last one it accepted.
///
/// # Safety
/// `out` points to writable storage for a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_lock_token(lock: *const turn_lock, out: *mut u64) -> turn_result {
    // SAFETY: out is NULL or writable per the contract.
    let out = unsafe { Out::new(out) };
    guard_out(out, || Ok(turn_lock::get(lock)?.token))
}

/// `TURN_OK` while the lock is held; `TURN_ERR_LOST` once the heartbeat
/// found its presence key gone or the indicator moved on, or its lease
/// lapsed without a confirmed renewal (a process paused past its lease
/// sees this at once when it resumes). Reads local state only (no round
/// trip), so it can be polled before each write to the resource.
#[unsafe(no_mangle)]
pub extern "C" fn turn_lock_check(lock: *const turn_lock) -> turn_result {
    guard(|| {
        let cell = turn_lock::get(lock)?;
        let held = sync::lock(&cell.lock);
        match held.as_ref() {
            Some(lock) => lock.check(),
            None => Err(Error::invalid("the lock was released already")),
        }
    })
}

/// A file descriptor that becomes readable once the lock is known lost, for
/// an event loop (epoll, poll, select, libuv, asyncio) to watch instead of
/// polling `turn_lock_check`; -1 for NULL, a handle that is not a live lock,
/// a lock of the parent after fork(), or when no descriptor could be made
/// (`turn_last_error` says which).
///
/// It turns readable within one heartbeat (a third of the lease) after the
/// loss is detectable (the presence key gone, the indicator moved on), at
/// once when the lease lapses by the local clock (on Linux a kernel timer
/// makes it readable then, even while Redis stalls the heartbeat), and
/// when the locker is freed. Level-triggered: once readable it stays so;
/// `turn_lock_check` then answers `TURN_ERR_LOST`.
///
/// Owned by the library: made on the first call (later calls answer the same
/// number), close-on-exec. Watch it for readability; do not read from it,
/// write to it or close it. A lock released normally never makes it
/// readable; `turn_lock_release` closes it, so take it out of your poll set
/// (epoll_ctl DEL, uv_poll_stop, remove_reader) before the release.
#[unsafe(no_mangle)]
pub extern "C" fn turn_lock_lost_fd(lock: *const turn_lock) -> c_int {
    quiet(-1, || {
        let fd = (|| {
            let cell = turn_lock::get(lock)?;
            let held = sync::lock(&cell.lock);
            match held.as_ref() {
                Some(lock) => lock
                    .lost_fd()
                    .map(|fd| fd.as_raw_fd())
                    .map_err(|e| Error::invalid(format!("no lost fd: {e}"))),
                None => Err(Error::invalid("the lock was released already")),
            }
        })();
        fd.unwrap_or_else(|e| {
            set_last_error(e.message());
            -1
        })
    })
}
