//! `turn_cancel`: tokens that end waits from another thread.

use super::args::Handle;
use super::export::{Out, guard, guard_out};
use super::handles::{Kind, Table};
use super::result::turn_result;
use crate::Cancel;
use crate::error::Result;

/// The cancel tokens handed out, by handle.
static CANCELS: Table<Cancel> = Table::new(Kind::Cancel);

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

impl Handle for turn_cancel {
    type Object = Cancel;
    const PARAM: &'static str = "cancel";
    fn table() -> &'static Table<Cancel> {
        &CANCELS
    }
}

/// The token behind a handle (a clone: the handle may be freed meanwhile);
/// none for NULL.
pub(super) fn cancel_or_none(cancel: *const turn_cancel) -> Result<Option<Cancel>> {
    Ok(turn_cancel::optional(cancel)?.map(|cancel| (*cancel).clone()))
}

/// A new cancel token for `turn_lock_acquire_cancelable`, written to `*out`.
/// Free it with `turn_cancel_free` once no call uses it.
///
/// # Safety
/// `out` points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_cancel_new(out: *mut *mut turn_cancel) -> turn_result {
    // SAFETY: out is NULL or writable per the contract.
    let out = unsafe { Out::new(out) };
    guard_out(out, || turn_cancel::insert(Cancel::new()))
}

/// Cancels every wait using this token, now and later (callable from any
/// thread, also while another thread waits with it).
#[unsafe(no_mangle)]
pub extern "C" fn turn_cancel_fire(cancel: *mut turn_cancel) -> turn_result {
    guard(|| {
        turn_cancel::get(cancel)?.cancel();
        Ok(())
    })
}

/// Frees a cancel token. NULL, or a token freed already, is a no-op. A wait
/// still using it keeps working (it holds its own reference).
#[unsafe(no_mangle)]
pub extern "C" fn turn_cancel_free(cancel: *mut turn_cancel) {
    turn_cancel::free(cancel, drop)
}
