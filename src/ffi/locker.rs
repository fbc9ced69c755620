//! `turn_locker`: a connection to Redis and the calls made through it.

use std::ffi::c_char;

use super::args::{Handle, null, optional_text, text};
use super::export::{Out, guard, guard_optional_out, guard_out};
use super::handles::{Kind, Table};
use super::options::{options_or_default, turn_options};
use super::result::turn_result;
use crate::Locker;
use crate::error::{Error, Result};

/// The lockers handed out, by handle.
static LOCKERS: Table<Locker> = Table::new(Kind::Locker);

/// A connection to Redis with its three background threads (heartbeat,
/// notifier, withdrawals), shared by every lock taken through it.
///
/// Created by `turn_locker_new`, owned by the caller, freed with
/// `turn_locker_free`. Thread-safe: share one locker between threads.
///
/// A handle is a number, never dereferenced. On 64-bit targets it packs a
/// 40-bit id, never given to another object of this process or of its
/// forked children (after 2^40 lockers `turn_locker_new` fails with
/// `TURN_ERR_INVALID_ARGUMENT` rather than reuse one) and drawn through a
/// permutation keyed with a secret drawn once per process, so that the ids
/// of earlier handles do not tell the next one; its kind (locker, lock,
/// cancel token, status or options); 3 bits of the fork generation; and an
/// 18-bit check keyed with the same secret. A made-up value passes the
/// check with a chance of 1 in 2^18, and must then also name a live object
/// (1 in 2^40 per live one). Every call checks the handle and answers
/// `TURN_ERR_INVALID_ARGUMENT`, touching nothing, for a value that fails
/// the check (made up or damaged), a handle of another kind, or a locker
/// freed already; `TURN_ERR_FORKED` only for a real locker of the parent
/// (up to 7 forks up) used in a child after fork(). On 32-bit targets a
/// handle has a 20-bit id (permuted likewise), 1 bit of the fork generation
/// (`TURN_ERR_FORKED` for the parent's lockers only) and an 8-bit check,
/// and an id is given again after 2^20 newer lockers, so a handle kept
/// after its free may then name a newer locker. `turn_locker_free` of a
/// value that is not a live locker does nothing.
///
/// After `turn_locker_free`, waits in progress in other threads end with
/// `TURN_ERR_CANCELED` (their tickets withdrawn; never `TURN_OK`), and the
/// threads and connections go when the last such call returns. Locks still
/// held when it is freed are released then; their handles stay valid until
/// passed to `turn_lock_release`, which answers `TURN_ERR_LOST` (as
/// `turn_lock_check` does from then on).
pub struct turn_locker {
    _opaque: [u8; 0],
}

impl Handle for turn_locker {
    type Object = Locker;
    const PARAM: &'static str = "locker";
    fn table() -> &'static Table<Locker> {
        &LOCKERS
    }
}

/// Connects a new locker to `redis_url`
/// (`redis://[user:password@]host:port/db`; NULL for
/// `redis://127.0.0.1:6379/0`) with default options, and writes it to
/// `*out`. Fails with `TURN_ERR_CONNECTION` when Redis cannot be reached
/// within the connect timeout (2 s), `TURN_ERR_INVALID_ARGUMENT` for a bad
/// URL (one that does not parse or is not UTF-8, a scheme other than
/// `redis://`, `rediss://`, `redis+unix://`, `unix://`, `redis+sentinel://`
/// and `redis+cluster://`, port 0, a negative database number).
///
/// # Safety
/// `redis_url` is NULL or a NUL-terminated string; `out` points to writable
/// storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_locker_new(
    redis_url: *const c_char,
    out: *mut *mut turn_locker,
) -> turn_result {
    // SAFETY: same contract as this function's.
    unsafe { turn_locker_new_with_options(redis_url, std::ptr::null(), out) }
}

/// Like `turn_locker_new`, with options (NULL for the defaults). The options
/// are copied; free them when convenient.
///
/// # Safety
/// As `turn_locker_new`; `options` is NULL or from `turn_options_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_locker_new_with_options(
    redis_url: *const c_char,
    options: *const turn_options,
    out: *mut *mut turn_locker,
) -> turn_result {
    // SAFETY: out is NULL or writable per the contract.
    let out = unsafe { Out::new(out) };
    guard_out(out, || {
        // SAFETY: NULL or NUL-terminated per the contract.
        let url = unsafe { optional_text(redis_url, "redis_url")? };
        let options = options_or_default(options)?;
        turn_locker::insert(Locker::with_options(url, options)?)
    })
}

/// Stops the locker's threads, releases locks still held, closes its
/// connections and frees it. It wakes the locker's threads at once; when
/// Redis does not answer within 250 ms (or the command timeout if shorter)
/// it releases nothing (the leases run out) and waits at most 100 ms more
/// for its threads (up to the connect timeout if it must open a
/// connection). The connections close when the last lock handle of the
/// locker is released too. NULL, or a handle freed already, is a no-op. In a
/// child process after fork() it frees nothing of the parent's and returns
/// at once.
#[unsafe(no_mangle)]
pub extern "C" fn turn_locker_free(locker: *mut turn_locker) {
    turn_locker::free(locker, |locker| locker.close())
}

/// `TURN_OK` while the locker's background threads (heartbeat, notifier)
/// never failed and the heartbeat keeps up. After a failure (a bug: a
/// panic in one of them, which was then restarted; the locker keeps
/// working) it answers `TURN_ERR_PANIC`, and `turn_last_error` says how
/// many failures there were and what the last one was. For a minute after
/// a slow beat (one that took longer than a third of the shortest lease
/// among the tickets it renewed: renewals came late, locks may be lost) it
/// answers `TURN_ERR_CONNECTION`, and `turn_last_error` says how long the
/// beat took, in how many round trips, for how many tickets (also said on
/// standard error, at most one line a minute).
#[unsafe(no_mangle)]
pub extern "C" fn turn_locker_health(locker: *const turn_locker) -> turn_result {
    guard(|| locker_of(locker)?.health())
}

/// Writes the locker's counters and histograms in the Prometheus text
/// format (version 0.0.4), NUL-terminated, to `buf` (`len` bytes), and
/// the size that takes, the terminating NUL included, to `*needed`. With
/// `buf` NULL it only writes `*needed` (and answers `TURN_OK`); a `len`
/// below it writes nothing to `buf` and answers
/// `TURN_ERR_INVALID_ARGUMENT` (with `*needed` written). `needed` may be
/// NULL when `buf` is not.
///
/// The series (every name starts with `turn_`; no label names a resource,
/// a label or a ticket, so their number is fixed): `turn_acquires_total`
/// (`granted` = `at_once` or `after_waiting`),
/// `turn_acquire_failures_total` (`reason` = `timeout`, `canceled`,
/// `would_block`, `error`), `turn_locks_lost_total`,
/// `turn_handoffs_total`, `turn_heartbeat_beats_total`,
/// `turn_heartbeat_slow_beats_total`, `turn_reconnections_total`, and the
/// histograms `turn_wait_seconds` and `turn_hold_seconds`. No round trip.
///
/// ```c
/// size_t needed;
/// turn_locker_metrics(locker, NULL, 0, &needed);
/// char *text = malloc(needed);
/// if (text && turn_locker_metrics(locker, text, needed, &needed) == TURN_OK) fputs(text, out);
/// free(text);
/// ```
///
/// # Safety
/// `buf` is NULL or writable for `len` bytes; `needed` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_locker_metrics(
    locker: *const turn_locker,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> turn_result {
    guard(|| {
        if buf.is_null() && needed.is_null() {
            return Err(null("needed"));
        }
        let text = locker_of(locker)?.metrics().text();
        let size = text.len() + 1;
        if !needed.is_null() {
            // SAFETY: writable per the contract.
            unsafe { needed.write(size) };
        }
        if buf.is_null() {
            return Ok(());
        }
        if len < size {
            return Err(Error::invalid(format!(
                "buf has {len} bytes; the metrics need {size}"
            )));
        }
        // SAFETY: buf is writable for len >= size bytes per the contract.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
            buf.add(text.len()).write(0);
        }
        Ok(())
    })
}

/// The locker behind a handle (a clone: the handle may be freed meanwhile).
pub(super) fn locker_of(locker: *const turn_locker) -> Result<Locker> {
    Ok((*turn_locker::get(locker)?).clone())
}

/// Moves the indicator of `resource` past tickets whose presence key is
/// missing (never back), announces it, and writes it to `*indicator_out`
/// (which may be NULL). `TURN_ERR_NOT_FOUND` when there is no queue;
/// `TURN_ERR_INVALID_ARGUMENT` for a resource that is not 1 to 1024 bytes
/// of UTF-8 without control characters (as `turn_lock_acquire`'s).
///
/// # Safety
/// `resource` is NULL or NUL-terminated; `indicator_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_bump(
    locker: *mut turn_locker,
    resource: *const c_char,
    indicator_out: *mut u64,
) -> turn_result {
    // SAFETY: indicator_out is NULL or writable per the contract.
    let indicator_out = unsafe { Out::new(indicator_out) };
    guard_optional_out(indicator_out, || {
        let locker = locker_of(locker)?;
        // SAFETY: NUL-terminated per the contract.
        let resource = unsafe { text(resource, "resource")? };
        locker.bump(resource)
    })
}

/// Removes the queue of `resource` (after bumping past dead tickets) when
/// nobody is in it, atomically. `TURN_ERR_BUSY` while in use,
/// `TURN_ERR_NOT_FOUND` when there is no queue, `TURN_ERR_INVALID_ARGUMENT`
/// for a resource that is not 1 to 1024 bytes of UTF-8 without control
/// characters.
///
/// # Safety
/// `resource` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_reset(
    locker: *mut turn_locker,
    resource: *const c_char,
) -> turn_result {
    guard(|| {
        let locker = locker_of(locker)?;
        // SAFETY: NUL-terminated per the contract.
        let resource = unsafe { text(resource, "resource")? };
        locker.reset(resource)
    })
}

/// Publishes the log line `RESOURCE: line` on the `external` channel of
/// `resource` (where `turn follow` shows the library's own lines, such as
/// `5 started`): the bindings say turn 1.0's `N crashed!` with it. `line`
/// is at most 4096 bytes of UTF-8 without control characters, `resource`
/// 1 to 1024 bytes of UTF-8 without control characters; anything else
/// answers `TURN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `resource` and `line` are NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_announce(
    locker: *mut turn_locker,
    resource: *const c_char,
    line: *const c_char,
) -> turn_result {
    guard(|| {
        let locker = locker_of(locker)?;
        // SAFETY: NUL-terminated per the contract.
        let resource = unsafe { text(resource, "resource")? };
        // SAFETY: NUL-terminated per the contract.
        let line = unsafe { text(line, "text")? };
        locker.announce(resource, line)
    })
}
