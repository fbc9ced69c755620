//! What every exported function shares: the panic guard that maps errors
//! to codes and records the last error, and the reading of arguments.

use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use super::result::{set_last_error, turn_result};
use crate::error::{Error, ErrorKind, Result};

/// Runs an exported body: maps errors to codes and panics to
/// `TURN_ERR_PANIC`, recording the detail for `turn_last_error`.
pub(super) fn guard(body: impl FnOnce() -> Result<()>) -> turn_result {
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
pub(super) fn quiet<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

pub(super) fn null(what: &str) -> Error {
    Error::new(ErrorKind::NullArgument, format!("{what} is NULL"))
}

/// Reads a C string argument as UTF-8.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string.
pub(super) unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(null(what));
    }
    // SAFETY: the caller passes a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

pub(super) fn out_ptr<T>(out: *mut T, what: &str) -> Result<()> {
    if out.is_null() {
        Err(null(what))
    } else {
        Ok(())
    }
}

pub(super) fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}
