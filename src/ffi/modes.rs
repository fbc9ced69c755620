//! The shared modes (`turn_semaphore_*`, `turn_rwlock_*`) and all-or-none
//! (`turn_lock_acquire_all`, `turn_lock_acquire_all_cancelable`): acquires
//! whose handles are ordinary `turn_lock`s and `turn_pending`s.

use std::ffi::{c_char, c_int};
use std::time::Duration;

use super::args::{acquire_names, null, optional_text, text};
use super::cancel::{cancel_or_none, turn_cancel};
use super::export::{Out, guard, guard_out_after};
use super::lock::{insert_lock, turn_lock, turn_lock_release};
use super::locker::{locker_of, turn_locker};
use super::pending::{insert_pending, turn_pending};
use super::result::turn_result;
use crate::error::{Error, Result};
use crate::{Acquire, MAX_ALL_RESOURCES, Mode, Wait};

/// An acquire as the functions of this file take it: `expire_ms` 0 for the
/// default and at least 100 (below 0: `TURN_ERR_INVALID_ARGUMENT`, as
/// `turn_lock_acquire`'s `(uint32_t)-1`); `patience_ms` 0 for the default,
/// below 0 the longest (`(uint32_t)-1` ms, as `turn_lock_acquire`'s);
/// `timeout_ms` < 0 waits forever, 0 tries once, > 0 waits that long.
fn request(
    label: &str,
    expire_ms: i64,
    patience_ms: i64,
    timeout_ms: i64,
    mode: Mode,
) -> Result<Acquire> {
    if expire_ms < 0 {
        return Err(Error::invalid(format!(
            "expire_ms must be 0 (the default) or from {} ms to {} ms, not {expire_ms}",
            crate::MIN_EXPIRE.as_millis(),
            crate::MAX_EXPIRE.as_millis()
        )));
    }
    let patience = match patience_ms {
        0 => None,
        p if p < 0 => Some(Duration::from_millis(u32::MAX.into())),
        p => Some(Duration::from_millis(p as u64)),
    };
    let request = Acquire {
        label: label.to_string(),
        expire: (expire_ms > 0).then(|| Duration::from_millis(expire_ms as u64)),
        patience,
        wait: match timeout_ms {
            t if t < 0 => Wait::Forever,
            0 => Wait::TryOnce,
            t => Wait::For(Duration::from_millis(t as u64)),
        },
        cancel: None,
        mode,
    };
    // Checked before any round trip.
    request.expire_or_default()?;
    mode.validate()?;
    Ok(request)
}

/// A pending acquire's request: a timeout of 0 is a try-lock, which a
/// pending acquire is not.
fn pending_request(
    label: &str,
    expire_ms: i64,
    patience_ms: i64,
    timeout_ms: i64,
    mode: Mode,
) -> Result<Acquire> {
    if timeout_ms == 0 {
        return Err(Error::invalid(
            "timeout_ms 0 is a try-lock: use the blocking acquire (a pending acquire waits)",
        ));
    }
    request(label, expire_ms, patience_ms, timeout_ms, mode)
}

/// The body of the blocking acquires of this file: the arguments read and
/// checked first (no round trip), then `out`, then the locker; `times`:
/// expire, patience and timeout in ms (see [`request`]).
///
/// # Safety
/// As `turn_semaphore_acquire`.
unsafe fn acquire_in_mode(
    locker: *mut turn_locker,
    resource: *const c_char,
    label: *const c_char,
    mode: Mode,
    times: [i64; 3],
    out: *mut *mut turn_lock,
) -> turn_result {
    let [expire_ms, patience_ms, timeout_ms] = times;
    let args = || {
        // SAFETY: strings NULL or NUL-terminated per the contract.
        let (resource, label) = unsafe { acquire_names(resource, label)? };
        Ok((
            resource,
            request(label, expire_ms, patience_ms, timeout_ms, mode)?,
        ))
    };
    // SAFETY: out is NULL or writable per the contract.
    let out = unsafe { Out::new(out) };
    guard_out_after(args, out, |(resource, request)| {
        insert_lock(locker_of(locker)?.acquire(resource, &request)?)
    })
}

/// The body of the pending acquires of this file (see
/// [`acquire_in_mode`]).
///
/// # Safety
/// As `turn_semaphore_start`.
unsafe fn start_in_mode(
    locker: *mut turn_locker,
    resource: *const c_char,
    label: *const c_char,
    mode: Mode,
    times: [i64; 3],
    out: *mut *mut turn_pending,
) -> turn_result {
    let [expire_ms, patience_ms, timeout_ms] = times;
    let args = || {
        // SAFETY: strings NULL or NUL-terminated per the contract.
        let (resource, label) = unsafe { acquire_names(resource, label)? };
        Ok((
            resource,
            pending_request(label, expire_ms, patience_ms, timeout_ms, mode)?,
        ))
    };
    // SAFETY: out is NULL or writable per the contract.
    let out = unsafe { Out::new(out) };
    guard_out_after(args, out, |(resource, request)| {
        insert_pending(locker_of(locker)?.start_acquire(resource, &request)?)
    })
}

/// Takes `weight` permits of the FIFO semaphore `resource` of `permits`,
/// waiting in draw order; on success writes the held lock to `*out`.
///
/// Holders are admitted while the sum of their weights stays within
/// `permits`, strictly in draw order: a ticket that does not fit yet holds
/// back every later one (no barging). The queue records `permits` when it
/// is made: an acquire naming other permits, or a plain lock or
/// read-write lock on that resource, answers `TURN_ERR_WRONG_KIND` (and the
/// other way round). `permits` 0, or `weight` 0 or over `permits`:
/// `TURN_ERR_INVALID_ARGUMENT`. A turn 1.0 client's ticket on such a queue
/// is admitted alone, as if it asked for every permit.
///
/// - `label`, `timeout_ms`: as `turn_lock_acquire`'s.
/// - `expire_ms`: the lease; 0 for the default, 10000 ms; 100 ms at
///   least; below 0 `TURN_ERR_INVALID_ARGUMENT`.
/// - `patience_ms`: 0 for the default, 60000 ms; below 0 the longest.
///
/// The lock is an ordinary `turn_lock`: check, release, token, serial and
/// lost fd work as for a plain lock. A dead holder's permits come back
/// within its lease and a second.
///
/// ```c
/// turn_lock *job;
/// if (turn_semaphore_acquire(locker, "encoder", "job 7", 4, 1, 0, 0, -1, &job) == TURN_OK) {
///     encode();
///     turn_lock_release(job);
/// }
/// ```
///
/// # Safety
/// Strings are NULL or NUL-terminated; `out` points to writable storage for
/// a pointer.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn turn_semaphore_acquire(
    locker: *mut turn_locker,
    resource: *const c_char,
    label: *const c_char,
    permits: u32,
    weight: u32,
    expire_ms: i64,
    patience_ms: i64,
    timeout_ms: i64,
    out: *mut *mut turn_lock,
) -> turn_result {
    let mode = Mode::Semaphore { permits, weight };
    // SAFETY: the caller's contract is this function's.
    unsafe {
        acquire_in_mode(
            locker,
            resource,
            label,
            mode,
            [expire_ms, patience_ms, timeout_ms],
            out,
        )
    }
}

/// Like `turn_semaphore_acquire`, without waiting for the turn: as
/// `turn_acquire_start` (a timeout of 0 is `TURN_ERR_INVALID_ARGUMENT`;
/// the fd turns readable once the outcome is known, and
/// `turn_pending_finish` takes it).
///
/// # Safety
/// As `turn_semaphore_acquire`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn turn_semaphore_start(
    locker: *mut turn_locker,
    resource: *const c_char,
    label: *const c_char,
    permits: u32,
    weight: u32,
    expire_ms: i64,
    patience_ms: i64,
    timeout_ms: i64,
    out: *mut *mut turn_pending,
) -> turn_result {
    let mode = Mode::Semaphore { permits, weight };
    // SAFETY: the caller's contract is this function's.
    unsafe {
        start_in_mode(
            locker,
            resource,
            label,
            mode,
            [expire_ms, patience_ms, timeout_ms],
            out,
        )
    }
}

/// Takes the read-write lock `resource`: alone when `exclusive` is nonzero
/// (a writer), beside other shared holders when it is 0 (a reader); on
/// success writes the held lock to `*out`. Draw order decides: a shared
/// ticket drawn after an exclusive one waits for it (writers are never
/// starved, readers never barge). A plain lock or a semaphore on that
/// resource answers `TURN_ERR_WRONG_KIND` (and the other way round).
/// `label`, `expire_ms`, `patience_ms`, `timeout_ms`: as
/// `turn_semaphore_acquire`'s.
///
/// # Safety
/// As `turn_semaphore_acquire`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn turn_rwlock_acquire(
    locker: *mut turn_locker,
    resource: *const c_char,
    label: *const c_char,
    exclusive: c_int,
    expire_ms: i64,
    patience_ms: i64,
    timeout_ms: i64,
    out: *mut *mut turn_lock,
) -> turn_result {
    let mode = Mode::ReadWrite {
        exclusive: exclusive != 0,
    };
    // SAFETY: the caller's contract is this function's.
    unsafe {
        acquire_in_mode(
            locker,
            resource,
            label,
            mode,
            [expire_ms, patience_ms, timeout_ms],
            out,
        )
    }
}

/// Like `turn_rwlock_acquire`, without waiting for the turn: as
/// `turn_acquire_start`.
///
/// # Safety
/// As `turn_semaphore_acquire`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn turn_rwlock_start(
    locker: *mut turn_locker,
    resource: *const c_char,
    label: *const c_char,
    exclusive: c_int,
    expire_ms: i64,
    patience_ms: i64,
    timeout_ms: i64,
    out: *mut *mut turn_pending,
) -> turn_result {
    let mode = Mode::ReadWrite {
        exclusive: exclusive != 0,
    };
    // SAFETY: the caller's contract is this function's.
    unsafe {
        start_in_mode(
            locker,
            resource,
            label,
            mode,
            [expire_ms, patience_ms, timeout_ms],
            out,
        )
    }
}

/// Takes plain locks on all `count` resources of `resources` (1 to 64
/// distinct names), or none; on success writes `count` handles to
/// `out[0..count]`, in the order of `resources`.
///
/// The locks are taken one after another in one order every client uses
/// (the names' bytes, ascending), so that calls of this and of
/// `turn_lock_acquire` never wait for each other in a circle; on a Redis
/// Cluster too, whatever the slots. `timeout_ms` bounds the whole call. On
/// timeout, cancel or error every lock taken is released and the waiting
/// ticket withdrawn; `out` is left alone. A name twice, `count` 0 or over
/// 64: `TURN_ERR_INVALID_ARGUMENT`. Free resources cost one round trip
/// each. `label`, `expire_ms`, `patience_ms`: as `turn_semaphore_acquire`'s;
/// each lock has that lease.
///
/// ```c
/// const char *accounts[] = { "account:42", "account:7" };
/// turn_lock *locks[2];
/// if (turn_lock_acquire_all(locker, accounts, 2, "transfer", 0, 0, 5000, locks) == TURN_OK) {
///     transfer(42, 7);
///     turn_lock_release(locks[0]);
///     turn_lock_release(locks[1]);
/// }
/// ```
///
/// # Safety
/// `resources` is NULL or points to `count` pointers, each NULL or
/// NUL-terminated; `label` is NULL or NUL-terminated; `out` is NULL or
/// points to writable storage for `count` pointers.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn turn_lock_acquire_all(
    locker: *mut turn_locker,
    resources: *const *const c_char,
    count: usize,
    label: *const c_char,
    expire_ms: i64,
    patience_ms: i64,
    timeout_ms: i64,
    out: *mut *mut turn_lock,
) -> turn_result {
    // SAFETY: same contract as this function's.
    unsafe {
        turn_lock_acquire_all_cancelable(
            locker,
            resources,
            count,
            label,
            expire_ms,
            patience_ms,
            timeout_ms,
            std::ptr::null(),
            out,
        )
    }
}

/// Like `turn_lock_acquire_all`, and `turn_cancel_fire(cancel)` from
/// another thread ends the call: every lock taken is released, the waiting
/// ticket withdrawn, and the call answers `TURN_ERR_CANCELED` (`out` left
/// alone). `cancel` may be NULL (not cancelable).
///
/// # Safety
/// As `turn_lock_acquire_all`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn turn_lock_acquire_all_cancelable(
    locker: *mut turn_locker,
    resources: *const *const c_char,
    count: usize,
    label: *const c_char,
    expire_ms: i64,
    patience_ms: i64,
    timeout_ms: i64,
    cancel: *const turn_cancel,
    out: *mut *mut turn_lock,
) -> turn_result {
    guard(|| {
        // The arguments first (no round trip), then out, then the handles.
        if resources.is_null() {
            return Err(null("resources"));
        }
        if count == 0 || count > MAX_ALL_RESOURCES {
            return Err(Error::invalid(format!(
                "count must be from 1 to {MAX_ALL_RESOURCES}, not {count}"
            )));
        }
        // SAFETY: `resources` points to `count` pointers per the contract.
        let pointers = unsafe { std::slice::from_raw_parts(resources, count) };
        let mut names = Vec::with_capacity(count);
        for (i, &p) in pointers.iter().enumerate() {
            // SAFETY: each NULL or NUL-terminated per the contract.
            names.push(unsafe { text(p, &format!("resources[{i}]"))? });
        }
        // SAFETY: NULL or NUL-terminated per the contract.
        let label = unsafe { optional_text(label, "label")? }.unwrap_or("");
        crate::validate_label(label)?;
        let mut request = request(label, expire_ms, patience_ms, timeout_ms, Mode::Plain)?;
        if out.is_null() {
            return Err(null("out"));
        }
        let locker = locker_of(locker)?;
        request.cancel = cancel_or_none(cancel)?;
        let locks = locker.acquire_all(&names, &request)?;
        let mut handles = Vec::with_capacity(count);
        let mut locks = locks.into_iter();
        for lock in locks.by_ref() {
            match insert_lock(lock) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // The rest are released as `locks` drops.
                    for h in handles {
                        turn_lock_release(h);
                    }
                    return Err(e);
                }
            }
        }
        // SAFETY: `out` has room for `count` pointers per the contract.
        let out = unsafe { std::slice::from_raw_parts_mut(out, count) };
        out.copy_from_slice(&handles);
        Ok(())
    })
}
