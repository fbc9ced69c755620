//! The C ABI: a thin layer over the Rust API. Every exported body runs
//! inside `guard`, so no panic crosses the boundary.
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::{Acquire, Lock, Locker, Options, Status, Wait};

mod handles;

use handles::{Kind, Table};

/// The lockers handed out, by handle.
static LOCKERS: Table<Locker> = Table::new(Kind::Locker);
/// The locks handed out, by handle.
static LOCKS: Table<LockCell> = Table::new(Kind::Lock);
/// The cancel tokens handed out, by handle.
static CANCELS: Table<crate::Cancel> = Table::new(Kind::Cancel);
/// The statuses handed out, by handle.
static STATUSES: Table<StatusCell> = Table::new(Kind::Status);
/// The options handed out, by handle.
static OPTIONS: Table<OptionsCell> = Table::new(Kind::Options);

/// A lock behind a `turn_lock` handle; release takes it out.
struct LockCell {
    serial: u64,
    token: u64,
    lock: std::sync::Mutex<Option<Lock>>,
}

/// A status behind a `turn_status` handle, with the strings handed out
/// from it (they live as long as it stays in the table).
struct StatusCell {
    status: Status,
    labels: Vec<CString>,
}

/// Options behind a `turn_options` handle. Behind a mutex only so that
/// calls from several threads at once, which the C contract does not
/// allow, cannot break memory.
struct OptionsCell {
    options: std::sync::Mutex<Options>,
}

/// Result of every fallible function. Values are fixed and never
/// renumbered; 0 is success. `turn_result_str` names them and
/// `turn_last_error` gives the detail of the last failure on this thread.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum turn_result {
    /// Success.
    TURN_OK = 0,
    /// A required pointer argument was NULL.
    TURN_ERR_NULL_ARGUMENT = 1,
    /// An argument was unusable: not UTF-8, empty, too long, control
    /// characters in a name, out of range, or a malformed URL.
    TURN_ERR_INVALID_ARGUMENT = 2,
    /// Redis could not be reached or the connection failed or timed out.
    TURN_ERR_CONNECTION = 3,
    /// The lock was not granted within the timeout (the ticket was withdrawn).
    TURN_ERR_TIMEOUT = 4,
    /// Try-lock (timeout 0): someone else has the turn.
    TURN_ERR_WOULD_BLOCK = 5,
    /// The lock was lost (presence key gone, lease lapsed, indicator moved on).
    TURN_ERR_LOST = 6,
    /// The queue is in use (reset refused).
    TURN_ERR_BUSY = 7,
    /// No such queue.
    TURN_ERR_NOT_FOUND = 8,
    /// The locker was created in another process (used after fork()).
    TURN_ERR_FORKED = 9,
    /// Data in Redis does not have the shape of the turn protocol.
    TURN_ERR_PROTOCOL = 10,
    /// The wait was canceled (the ticket was withdrawn).
    TURN_ERR_CANCELED = 11,
    /// A bug: a panic was caught inside the library.
    TURN_ERR_PANIC = 99,
}

impl From<ErrorKind> for turn_result {
    fn from(kind: ErrorKind) -> turn_result {
        match kind {
            ErrorKind::NullArgument => turn_result::TURN_ERR_NULL_ARGUMENT,
            ErrorKind::InvalidArgument => turn_result::TURN_ERR_INVALID_ARGUMENT,
            ErrorKind::Connection => turn_result::TURN_ERR_CONNECTION,
            ErrorKind::Timeout => turn_result::TURN_ERR_TIMEOUT,
            ErrorKind::WouldBlock => turn_result::TURN_ERR_WOULD_BLOCK,
            ErrorKind::Lost => turn_result::TURN_ERR_LOST,
            ErrorKind::Busy => turn_result::TURN_ERR_BUSY,
            ErrorKind::NotFound => turn_result::TURN_ERR_NOT_FOUND,
            ErrorKind::Forked => turn_result::TURN_ERR_FORKED,
            ErrorKind::Protocol => turn_result::TURN_ERR_PROTOCOL,
            ErrorKind::Canceled => turn_result::TURN_ERR_CANCELED,
            ErrorKind::Panic => turn_result::TURN_ERR_PANIC,
        }
    }
}

/// A connection to Redis with its two background threads (heartbeat and
/// notifier), shared by every lock taken through it.
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

/// A cancel token: `turn_cancel_fire` ends the waits of
/// `turn_lock_acquire_cancelable` calls given it. Owned by the caller, freed
/// with `turn_cancel_free`; thread-safe (fire it from any thread).
///
/// The handle is a checked number like a `turn_locker`'s (see there), with
/// the kind cancel: a token freed already, a value this library did not
/// return, or a `turn_locker` or `turn_lock` handle passed as a token
/// answers `TURN_ERR_INVALID_ARGUMENT` (and `turn_cancel_free` of it does
/// nothing); a token of the parent used in a child after fork() answers
/// `TURN_ERR_FORKED`.
pub struct turn_cancel {
    _opaque: [u8; 0],
}

/// A snapshot of one queue from `turn_status_get`. Owned by the caller,
/// freed with `turn_status_free`; immutable, so it may be read from several
/// threads at once. Strings it returns live as long as it does.
///
/// The handle is a checked number like a `turn_locker`'s (see there), with
/// the kind status: a status freed already, a value this library did not
/// return, or a handle of another kind makes each reader answer its
/// fallback (0, or NULL from `turn_status_label_at`) and touches nothing,
/// and `turn_status_free` of it does nothing (a second free is harmless).
/// A status is plain data: after fork() the child may still read and free
/// the statuses its parent had (its own copies).
pub struct turn_status {
    _opaque: [u8; 0],
}

/// Settings for `turn_locker_new_with_options`. Owned by the caller, created
/// by `turn_options_new` with the defaults, freed with `turn_options_free`.
/// Not thread-safe; it is only read by `turn_locker_new_with_options`.
///
/// The handle is a checked number like a `turn_locker`'s (see there), with
/// the kind options: options freed already, a value this library did not
/// return, or a handle of another kind answers `TURN_ERR_INVALID_ARGUMENT`
/// (also from `turn_locker_new_with_options`) and touches nothing, and
/// `turn_options_free` of it does nothing (a second free is harmless).
/// Calls on one options object from several threads at once remain
/// unsupported (which setting wins is not said) but cannot crash. Options
/// are plain data: after fork() the child may still use and free the
/// options its parent had (its own copies).
pub struct turn_options {
    _opaque: [u8; 0],
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// Runs an exported body: maps errors to codes and panics to
/// `TURN_ERR_PANIC`, recording the detail for `turn_last_error`.
fn guard(body: impl FnOnce() -> Result<()>) -> turn_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => turn_result::TURN_OK,
        Ok(Err(e)) => {
            set_last_error(e.message());
            e.kind().into()
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".to_string());
            set_last_error(&format!("internal error (panic): {what}"));
            turn_result::TURN_ERR_PANIC
        }
    }
}

/// Runs a body that cannot report an error, returning `fallback` on panic.
fn quiet<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

fn null(what: &str) -> Error {
    Error::new(ErrorKind::NullArgument, format!("{what} is NULL"))
}

/// Reads a C string argument as UTF-8.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string.
unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(null(what));
    }
    // SAFETY: the caller passes a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

fn out_ptr<T>(out: *mut T, what: &str) -> Result<()> {
    if out.is_null() {
        Err(null(what))
    } else {
        Ok(())
    }
}

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

/// Connects a new locker to `redis_url`
/// (`redis://[user:password@]host:port/db`; NULL for
/// `redis://127.0.0.1:6379/0`) with default options, and writes it to
/// `*out`. Fails with `TURN_ERR_CONNECTION` when Redis cannot be reached
/// within the connect timeout (2 s), `TURN_ERR_INVALID_ARGUMENT` for a bad
/// URL.
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
    guard(|| {
        out_ptr(out, "out")?;
        let url = if redis_url.is_null() {
            None
        } else {
            // SAFETY: non-NULL, NUL-terminated per the contract.
            Some(unsafe { text(redis_url, "redis_url")? })
        };
        let options = if options.is_null() {
            Options::default()
        } else {
            let cell = OPTIONS.get(options as usize)?;
            let options = cell.options.lock().unwrap_or_else(|e| e.into_inner());
            options.clone()
        };
        let locker = Locker::with_options(url, options)?;
        let handle = LOCKERS.insert(locker)?;
        // SAFETY: out is non-NULL and writable per the contract.
        unsafe { *out = handle as *mut turn_locker };
        Ok(())
    })
}

/// Stops the locker's threads, releases locks still held, closes its
/// connections and frees it; with Redis unreachable it gives up after the
/// connect timeout. NULL, or a handle freed already, is a no-op. In a
/// child process after fork() it frees nothing of the parent's and returns
/// at once.
#[unsafe(no_mangle)]
pub extern "C" fn turn_locker_free(locker: *mut turn_locker) {
    if locker.is_null() {
        return;
    }
    quiet((), || {
        if let Ok(locker) = LOCKERS.remove(locker as usize) {
            locker.close();
            drop(locker);
        }
    })
}

/// `TURN_OK` while the locker's background threads (heartbeat, notifier)
/// never failed. After a failure (a bug: a panic in one of them, which was
/// then restarted; the locker keeps working) it answers `TURN_ERR_PANIC`,
/// and `turn_last_error` says how many failures there were and what the
/// last one was.
#[unsafe(no_mangle)]
pub extern "C" fn turn_locker_health(locker: *const turn_locker) -> turn_result {
    guard(|| locker_of(locker)?.health())
}

/// The locker behind a handle (a clone: the handle may be freed meanwhile).
fn locker_of(locker: *const turn_locker) -> Result<Locker> {
    if locker.is_null() {
        return Err(null("locker"));
    }
    Ok((*LOCKERS.get(locker as usize)?).clone())
}

/// The status behind a handle, if it is a live one.
fn status_of(status: *const turn_status) -> Option<std::sync::Arc<StatusCell>> {
    if status.is_null() {
        return None;
    }
    STATUSES.get(status as usize).ok()
}

fn lock_of(lock: *const turn_lock) -> Result<std::sync::Arc<LockCell>> {
    if lock.is_null() {
        return Err(null("lock"));
    }
    LOCKS.get(lock as usize)
}

/// Takes a ticket for `resource` and waits for its turn; on success writes
/// the held lock to `*out`.
///
/// - `label`: shown in status and messages (NULL for "").
/// - `expire_ms`: the lease; 0 for the default, 10000 ms. At least 100 ms.
///   The heartbeat renews it every third of it while waiting and holding.
/// - `patience_ms`: the longest wait without news before re-reading the
///   queue; 0 for the default, 60000 ms.
/// - `timeout_ms`: < 0 waits forever; 0 tries once (`TURN_ERR_WOULD_BLOCK`
///   when someone else has the turn); > 0 gives up after that long with
///   `TURN_ERR_TIMEOUT`. A ticket given up leaves no trace.
///
/// Resource names are 1 to 1024 bytes of UTF-8 without control characters;
/// labels at most 4096 bytes.
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
    guard(|| {
        // The arguments first (no round trip), then the handles.
        // SAFETY: NUL-terminated per the contract.
        let resource = unsafe { text(resource, "resource")? };
        let label = if label.is_null() {
            ""
        } else {
            // SAFETY: NUL-terminated per the contract.
            unsafe { text(label, "label")? }
        };
        crate::validate_resource(resource)?;
        crate::validate_label(label)?;
        out_ptr(out, "out")?;
        let locker = locker_of(locker)?;
        let cancel = if cancel.is_null() {
            None
        } else {
            Some((*CANCELS.get(cancel as usize)?).clone())
        };
        let request = Acquire {
            label: label.to_string(),
            expire: (expire_ms > 0).then(|| ms(expire_ms.into())),
            patience: (patience_ms > 0).then(|| ms(patience_ms.into())),
            wait: match timeout_ms {
                t if t < 0 => Wait::Forever,
                0 => Wait::TryOnce,
                t => Wait::For(ms(t as u64)),
            },
            cancel,
        };
        let lock = locker.acquire(resource, &request)?;
        let handle = LOCKS.insert(LockCell {
            serial: lock.serial(),
            token: lock.token(),
            lock: std::sync::Mutex::new(Some(lock)),
        })?;
        // SAFETY: out is non-NULL and writable per the contract.
        unsafe { *out = handle as *mut turn_lock };
        Ok(())
    })
}

/// A new cancel token for `turn_lock_acquire_cancelable`, written to `*out`.
/// Free it with `turn_cancel_free` once no call uses it.
///
/// # Safety
/// `out` points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_cancel_new(out: *mut *mut turn_cancel) -> turn_result {
    guard(|| {
        out_ptr(out, "out")?;
        let handle = CANCELS.insert(crate::Cancel::new())?;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { *out = handle as *mut turn_cancel };
        Ok(())
    })
}

/// Cancels every wait using this token, now and later (callable from any
/// thread, also while another thread waits with it).
#[unsafe(no_mangle)]
pub extern "C" fn turn_cancel_fire(cancel: *mut turn_cancel) -> turn_result {
    guard(|| {
        if cancel.is_null() {
            return Err(null("cancel"));
        }
        CANCELS.get(cancel as usize)?.cancel();
        Ok(())
    })
}

/// Frees a cancel token. NULL, or a token freed already, is a no-op. A wait
/// still using it keeps working (it holds its own reference).
#[unsafe(no_mangle)]
pub extern "C" fn turn_cancel_free(cancel: *mut turn_cancel) {
    if !cancel.is_null() {
        quiet((), || drop(CANCELS.remove(cancel as usize)));
    }
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
        if lock.is_null() {
            return Err(null("lock"));
        }
        let cell = LOCKS.remove(lock as usize)?;
        let taken = cell.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
        match taken {
            Some(lock) => lock.release(),
            None => Err(Error::invalid("the lock was released already")),
        }
    })
}

/// The lock's ticket number: strictly increasing per queue while the
/// queue's dispenser survives, so usable as a fencing token. 0 for NULL or
/// a handle that is not a live lock.
#[unsafe(no_mangle)]
pub extern "C" fn turn_lock_serial(lock: *const turn_lock) -> u64 {
    quiet(0, || lock_of(lock).map_or(0, |l| l.serial))
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
    guard(|| {
        out_ptr(out, "out")?;
        let token = lock_of(lock)?.token;
        // SAFETY: out is non-NULL and writable per the contract.
        unsafe { *out = token };
        Ok(())
    })
}

/// `TURN_OK` while the lock is held; `TURN_ERR_LOST` once the heartbeat
/// found its presence key gone or the indicator moved on, or its lease
/// lapsed without a confirmed renewal (a process paused past its lease
/// sees this at once when it resumes). Reads local state only (no round
/// trip), so it can be polled before each write to the resource.
#[unsafe(no_mangle)]
pub extern "C" fn turn_lock_check(lock: *const turn_lock) -> turn_result {
    guard(|| {
        let cell = lock_of(lock)?;
        let held = cell.lock.lock().unwrap_or_else(|e| e.into_inner());
        match held.as_ref() {
            Some(lock) => lock.check(),
            None => Err(Error::invalid("the lock was released already")),
        }
    })
}

/// Reads a snapshot of the queue of `resource` atomically and writes it to
/// `*out`. `TURN_ERR_NOT_FOUND` when there is no queue.
///
/// # Safety
/// `resource` is NULL or NUL-terminated; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_get(
    locker: *mut turn_locker,
    resource: *const c_char,
    out: *mut *mut turn_status,
) -> turn_result {
    guard(|| {
        let locker = locker_of(locker)?;
        // SAFETY: NUL-terminated per the contract.
        let resource = unsafe { text(resource, "resource")? };
        out_ptr(out, "out")?;
        let status = locker.status(resource)?;
        let labels = status
            .tickets
            .iter()
            .map(|t| {
                let clean: Vec<u8> = t.label.bytes().filter(|b| *b != 0).collect();
                CString::new(clean).unwrap_or_default()
            })
            .collect();
        let handle = STATUSES.insert(StatusCell { status, labels })?;
        // SAFETY: out is non-NULL and writable per the contract.
        unsafe { *out = handle as *mut turn_status };
        Ok(())
    })
}

/// The serial whose turn it is. 0 for NULL.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_indicator(status: *const turn_status) -> u64 {
    quiet(0, || status_of(status).map_or(0, |s| s.status.indicator))
}

/// The last serial handed out. 0 for NULL.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_dispenser(status: *const turn_status) -> u64 {
    quiet(0, || status_of(status).map_or(0, |s| s.status.dispenser))
}

/// The number of live tickets (holder and waiters), in ascending serial
/// order. 0 for NULL.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_len(status: *const turn_status) -> usize {
    quiet(0, || {
        status_of(status).map_or(0, |s| s.status.tickets.len())
    })
}

/// The serial of live ticket `i` (0-based). 0 for NULL or out of range.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_serial_at(status: *const turn_status, i: usize) -> u64 {
    quiet(0, || {
        status_of(status)
            .and_then(|s| s.status.tickets.get(i).map(|t| t.serial))
            .unwrap_or(0)
    })
}

/// The label of live ticket `i` (0-based), owned by the status and valid
/// until `turn_status_free`. NULL for NULL or out of range.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_label_at(
    status: *const turn_status,
    i: usize,
) -> *const c_char {
    // The string belongs to the status held by the table, which keeps it
    // until turn_status_free.
    quiet(std::ptr::null(), || {
        status_of(status)
            .and_then(|s| s.labels.get(i).map(|l| l.as_ptr()))
            .unwrap_or(std::ptr::null())
    })
}

/// Frees a status. NULL is a no-op.
///
/// # Safety
/// `status` is NULL or from `turn_status_get` and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_free(status: *mut turn_status) {
    if !status.is_null() {
        quiet((), || drop(STATUSES.remove(status as usize)))
    }
}

/// Moves the indicator of `resource` past tickets whose presence key is
/// missing (never back), announces it, and writes it to `*indicator_out`
/// (which may be NULL). `TURN_ERR_NOT_FOUND` when there is no queue.
///
/// # Safety
/// `resource` is NULL or NUL-terminated; `indicator_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_bump(
    locker: *mut turn_locker,
    resource: *const c_char,
    indicator_out: *mut u64,
) -> turn_result {
    guard(|| {
        let locker = locker_of(locker)?;
        // SAFETY: NUL-terminated per the contract.
        let resource = unsafe { text(resource, "resource")? };
        let indicator = locker.bump(resource)?;
        if !indicator_out.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { *indicator_out = indicator };
        }
        Ok(())
    })
}

/// Removes the queue of `resource` (after bumping past dead tickets) when
/// nobody is in it, atomically. `TURN_ERR_BUSY` while in use,
/// `TURN_ERR_NOT_FOUND` when there is no queue.
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

/// A static name for a result code ("TURN_OK", ...); the static string
/// "TURN_ERR_UNKNOWN" for any other value. Takes an `int`, so that any
/// value a caller holds (a `turn_result` converts to it) is safe to pass.
#[unsafe(no_mangle)]
pub extern "C" fn turn_result_str(code: c_int) -> *const c_char {
    let name: &'static CStr = match code {
        0 => c"TURN_OK",
        1 => c"TURN_ERR_NULL_ARGUMENT",
        2 => c"TURN_ERR_INVALID_ARGUMENT",
        3 => c"TURN_ERR_CONNECTION",
        4 => c"TURN_ERR_TIMEOUT",
        5 => c"TURN_ERR_WOULD_BLOCK",
        6 => c"TURN_ERR_LOST",
        7 => c"TURN_ERR_BUSY",
        8 => c"TURN_ERR_NOT_FOUND",
        9 => c"TURN_ERR_FORKED",
        10 => c"TURN_ERR_PROTOCOL",
        11 => c"TURN_ERR_CANCELED",
        99 => c"TURN_ERR_PANIC",
        _ => c"TURN_ERR_UNKNOWN",
    };
    name.as_ptr()
}

/// The detail message of the last failure on this thread, or "". Valid until
/// the next failing call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn turn_last_error() -> *const c_char {
    quiet(c"".as_ptr(), || LAST_ERROR.with(|e| e.borrow().as_ptr()))
}

/// The library's version, a static string such as "0.1.0".
#[unsafe(no_mangle)]
pub extern "C" fn turn_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// New options with the defaults (prefix "turn", connect timeout 2000 ms,
/// command timeout 5000 ms, pool of 8 connections, grace 500 ms), written
/// to `*out`.
///
/// # Safety
/// `out` points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_options_new(out: *mut *mut turn_options) -> turn_result {
    guard(|| {
        out_ptr(out, "out")?;
        let handle = OPTIONS.insert(OptionsCell {
            options: std::sync::Mutex::new(Options::default()),
        })?;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { *out = handle as *mut turn_options };
        Ok(())
    })
}

/// Frees options. NULL is a no-op.
///
/// # Safety
/// `options` is NULL or from `turn_options_new` and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_options_free(options: *mut turn_options) {
    if !options.is_null() {
        quiet((), || drop(OPTIONS.remove(options as usize)))
    }
}

fn with_options(
    options: *mut turn_options,
    f: impl FnOnce(&mut Options) -> Result<()>,
) -> turn_result {
    guard(|| {
        if options.is_null() {
            return Err(null("options"));
        }
        let cell = OPTIONS.get(options as usize)?;
        let mut o = cell.options.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = o.clone();
        f(&mut next)?;
        next.validate()?;
        *o = next;
        Ok(())
    })
}

/// Sets the key prefix (default "turn"; 1 to 256 bytes, no control
/// characters).
///
/// # Safety
/// `options` is a live options object; `prefix` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_options_set_prefix(
    options: *mut turn_options,
    prefix: *const c_char,
) -> turn_result {
    with_options(options, |o| {
        // SAFETY: NUL-terminated per the contract.
        o.prefix = unsafe { text(prefix, "prefix")? }.to_string();
        Ok(())
    })
}

/// Sets the time allowed to connect (default 2000 ms; must be > 0).
///
/// # Safety
/// `options` is a live options object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_options_set_connect_timeout_ms(
    options: *mut turn_options,
    millis: u32,
) -> turn_result {
    with_options(options, |o| {
        o.connect_timeout = ms(millis.into());
        Ok(())
    })
}

/// Sets the time allowed for a reply, and for a free pooled connection
/// (default 5000 ms; must be > 0). Calls fail with `TURN_ERR_CONNECTION`
/// after it.
///
/// # Safety
/// `options` is a live options object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_options_set_command_timeout_ms(
    options: *mut turn_options,
    millis: u32,
) -> turn_result {
    with_options(options, |o| {
        o.command_timeout = ms(millis.into());
        Ok(())
    })
}

/// Sets the most command connections open at once (default 8, 1 to 1024).
///
/// # Safety
/// `options` is a live options object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_options_set_pool_size(
    options: *mut turn_options,
    size: u32,
) -> turn_result {
    with_options(options, |o| {
        o.pool_size = size as usize;
        Ok(())
    })
}

/// Sets how long a ticket must exist before a missing presence key marks it
/// dead (default 500 ms; turn 1.0 clients set theirs a moment after drawing).
///
/// # Safety
/// `options` is a live options object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_options_set_grace_ms(
    options: *mut turn_options,
    millis: u32,
) -> turn_result {
    with_options(options, |o| {
        o.grace = ms(millis.into());
        Ok(())
    })
}

/// Seeds the serials of queues this locker creates from the server's clock
/// (microseconds) when `enabled` is non-zero, so that fencing tokens keep
/// increasing when a queue is lost with a Redis restart without persistence
/// (or reset). Default off: new queues start at 1, as with turn 1.0.
///
/// # Safety
/// `options` is a live options object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_options_set_clock_serials(
    options: *mut turn_options,
    enabled: i32,
) -> turn_result {
    with_options(options, |o| {
        o.clock_serials = enabled != 0;
        Ok(())
    })
}

/// Sets the TLS files (PEM) for a `rediss://` URL: `ca_file` the CA to
/// trust instead of the system's roots, `cert_file` and `key_file` a client
/// certificate for mutual TLS. Each may be NULL; all NULL turns the files
/// off. The files are read when the locker is made.
///
/// # Safety
/// `options` is a live options object; the paths are NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_options_set_tls(
    options: *mut turn_options,
    ca_file: *const c_char,
    cert_file: *const c_char,
    key_file: *const c_char,
) -> turn_result {
    with_options(options, |o| {
        let path = |p: *const c_char, what: &str| -> Result<Option<std::path::PathBuf>> {
            if p.is_null() {
                Ok(None)
            } else {
                // SAFETY: NUL-terminated per the contract.
                Ok(Some(unsafe { text(p, what)? }.into()))
            }
        };
        let tls = crate::Tls {
            ca_file: path(ca_file, "ca_file")?,
            cert_file: path(cert_file, "cert_file")?,
            key_file: path(key_file, "key_file")?,
        };
        o.tls = (tls != crate::Tls::default()).then_some(tls);
        Ok(())
    })
}
