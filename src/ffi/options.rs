//! `turn_options`: settings for `turn_locker_new_with_options`.

use std::ffi::c_char;
use std::time::Duration;

use super::args::{Handle, optional_text, text};
use super::export::{Out, guard, guard_out};
use super::handles::{Kind, Table};
use super::result::turn_result;
use crate::Options;
use crate::error::Result;
use crate::sync;

/// The options handed out, by handle.
static OPTIONS: Table<OptionsCell> = Table::new(Kind::Options);

/// Options behind a `turn_options` handle. Behind a mutex only so that
/// calls from several threads at once, which the C contract does not
/// allow, cannot break memory.
pub(super) struct OptionsCell {
    /// Lock order: 2 (see `sync.rs`).
    options: std::sync::Mutex<Options>,
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
///
/// Each setter checks its value against the limits it states, and against
/// the other settings (a replica timeout must stay below the command
/// timeout): a value out of them answers `TURN_ERR_INVALID_ARGUMENT` and
/// leaves the options as they were; `turn_last_error` says which limit.
pub struct turn_options {
    _opaque: [u8; 0],
}

impl Handle for turn_options {
    type Object = OptionsCell;
    const PARAM: &'static str = "options";
    fn table() -> &'static Table<OptionsCell> {
        &OPTIONS
    }
}

/// New options with the defaults (prefix "turn", connect timeout 2000 ms,
/// command timeout 5000 ms, pool of 8 connections, grace 500 ms), written
/// to `*out`.
///
/// # Safety
/// `out` points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_options_new(out: *mut *mut turn_options) -> turn_result {
    // SAFETY: out is NULL or writable per the contract.
    let out = unsafe { Out::new(out) };
    guard_out(out, || {
        turn_options::insert(OptionsCell {
            options: std::sync::Mutex::new(Options::default()),
        })
    })
}

/// Frees options. NULL is a no-op.
///
/// # Safety
/// `options` is NULL or from `turn_options_new` and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_options_free(options: *mut turn_options) {
    turn_options::free(options, drop)
}

/// A copy of the options behind a handle; the defaults for NULL.
pub(super) fn options_or_default(options: *const turn_options) -> Result<Options> {
    Ok(match turn_options::optional(options)? {
        None => Options::default(),
        Some(cell) => {
            let options = sync::lock(&cell.options);
            options.clone()
        }
    })
}

/// Runs a setter on a copy of the options behind a handle, which replaces
/// them only when it succeeds and the result is valid.
fn with_options(
    options: *mut turn_options,
    f: impl FnOnce(&mut Options) -> Result<()>,
) -> turn_result {
    guard(|| {
        let cell = turn_options::get(options)?;
        let mut o = sync::lock(&cell.options);
        let mut next = o.clone();
        f(&mut next)?;
        next.validate()?;
        *o = next;
        Ok(())
    })
}

/// Sets the key prefix (default "turn"; 1 to 256 bytes of UTF-8, no
/// control characters). Anything else answers `TURN_ERR_INVALID_ARGUMENT`;
/// NULL answers `TURN_ERR_NULL_ARGUMENT`.
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

/// Sets the time allowed to connect (default 2000 ms): 1 to 86400000 ms
/// (a day). 0, or more than a day, answers `TURN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `options` is a live options object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_options_set_connect_timeout_ms(
    options: *mut turn_options,
    millis: u32,
) -> turn_result {
    with_options(options, |o| {
        o.connect_timeout = Duration::from_millis(millis.into());
        Ok(())
    })
}

/// Sets the time allowed for a reply, and for a free pooled connection
/// (default 5000 ms): 1 to 86400000 ms (a day), and above the replica
/// timeout when `turn_options_set_min_replicas` set one with replicas > 0.
/// Anything else answers `TURN_ERR_INVALID_ARGUMENT`. Calls fail with
/// `TURN_ERR_CONNECTION` after it.
///
/// # Safety
/// `options` is a live options object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_options_set_command_timeout_ms(
    options: *mut turn_options,
    millis: u32,
) -> turn_result {
    with_options(options, |o| {
        o.command_timeout = Duration::from_millis(millis.into());
        Ok(())
    })
}

/// Sets the most command connections open at once (default 8): 1 to 1024.
/// 0, or more than 1024, answers `TURN_ERR_INVALID_ARGUMENT`.
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
/// Any value is accepted, 0 included.
///
/// # Safety
/// `options` is a live options object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_options_set_grace_ms(
    options: *mut turn_options,
    millis: u32,
) -> turn_result {
    with_options(options, |o| {
        o.grace = Duration::from_millis(millis.into());
        Ok(())
    })
}

/// Seeds the serials of queues this locker creates from the server's clock
/// (microseconds) when `enabled` is non-zero, so that serials (turn 1.0's
/// ticket numbers) keep increasing when a queue is lost with a Redis
/// restart without persistence (or reset). Default off: new queues start at
/// 1, as with turn 1.0. Fencing tokens (`turn_lock_token`) need no option.
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
/// off. A path that is not UTF-8 answers `TURN_ERR_INVALID_ARGUMENT`.
///
/// The files are read when the locker is made: `turn_locker_new_with_options`
/// answers `TURN_ERR_INVALID_ARGUMENT` for a file it cannot read, a client
/// certificate without its key (or a key without its certificate), and TLS
/// files with a `redis://`, `redis+unix://` or `unix://` URL.
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
            // SAFETY: NULL or NUL-terminated per the contract.
            Ok(unsafe { optional_text(p, what)? }.map(Into::into))
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

/// Sets replica confirmation ("durable grants"): `replicas` is how many
/// replicas must have a grant, renewal or release before it counts (any
/// number); `timeout_ms` how long to wait for them: with replicas > 0, at
/// least 1 ms and below the command timeout set at that moment (set the
/// command timeout first), else `TURN_ERR_INVALID_ARGUMENT`. 0 replicas: do
/// not wait (`timeout_ms` is then not used).
///
/// Default: 1 replica within 1000 ms for a `redis+sentinel://` URL, 0 for
/// one server and for a Redis Cluster. A grant not confirmed in time is
/// not `TURN_OK`: the acquire keeps waiting within its timeout and lease
/// (and answers `TURN_ERR_CONNECTION` when confirmation never comes); a
/// renewal not confirmed does not extend the lease on the local clock, so
/// the holder sees `TURN_ERR_LOST` before the lease on any replica can
/// lapse; a release not confirmed answers `TURN_ERR_CONNECTION` (the lock
/// is given up all the same).
///
/// # Safety
/// `options` is a live options object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_options_set_min_replicas(
    options: *mut turn_options,
    replicas: u32,
    timeout_ms: u32,
) -> turn_result {
    with_options(options, |o| {
        o.min_replicas = Some(crate::MinReplicas::new(
            replicas,
            Duration::from_millis(timeout_ms.into()),
        ));
        Ok(())
    })
}
