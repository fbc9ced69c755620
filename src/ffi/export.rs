//! The one way an exported function runs its body.
//!
//! `guard` runs a body that answers a `turn_result`: it catches a panic
//! (`TURN_ERR_PANIC`), maps an error to its code, and records the detail
//! for `turn_last_error`. `guard_out` and its forms do the same for a body
//! that makes a value for an out-parameter: they check the out-parameter
//! before the work (NULL: `TURN_ERR_NULL_ARGUMENT`) and write it only when
//! the body succeeded, so no exported body touches an out-parameter itself.
//! Functions that answer a value rather than a `turn_result` run under
//! `quiet`, which answers their documented fallback on a panic.
//!
//! The exported functions themselves stay plain `extern "C" fn` items:
//! cbindgen reads the sources without expanding macros.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::args::null;
pub(super) use super::panic::quiet;
use super::result::{set_last_error, turn_result};
use crate::error::Result;

/// An out-parameter as C passes it: NULL, or storage for a `T`.
pub(super) struct Out<T> {
    ptr: *mut T,
}

impl<T> Out<T> {
    /// Takes an out-parameter of an exported function.
    ///
    /// # Safety
    /// `ptr` is NULL or valid for writing a `T` until the function returns
    /// (the exported function's contract says so to its caller).
    pub(super) unsafe fn new(ptr: *mut T) -> Out<T> {
        Out { ptr }
    }

    /// The parameter, or `TURN_ERR_NULL_ARGUMENT` when it is NULL (every
    /// required out-parameter is called `out`).
    fn required(self) -> Result<Out<T>> {
        if self.ptr.is_null() {
            Err(null("out"))
        } else {
            Ok(self)
        }
    }

    /// Writes `value` to the storage; nowhere when the parameter is NULL.
    fn write(self, value: T) {
        if !self.ptr.is_null() {
            // SAFETY: non-NULL, so writable, as `Out::new`'s caller vouched.
            unsafe { self.ptr.write(value) };
        }
    }
}

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

/// Runs an exported body that makes the value of the out-parameter `out`,
/// as `guard` does: `out` is checked first (the body does not run when it
/// is NULL) and written only when the body succeeds.
pub(super) fn guard_out<T>(out: Out<T>, body: impl FnOnce() -> Result<T>) -> turn_result {
    guard_out_after(|| Ok(()), out, |()| body())
}

/// Like `guard_out`, for a function that checks other arguments before
/// `out`: `args` runs first (its errors come before a NULL `out`), then
/// `out` is checked, then `body` runs on what `args` returned.
pub(super) fn guard_out_after<A, T>(
    args: impl FnOnce() -> Result<A>,
    out: Out<T>,
    body: impl FnOnce(A) -> Result<T>,
) -> turn_result {
    guard(|| {
        let args = args()?;
        let out = out.required()?;
        out.write(body(args)?);
        Ok(())
    })
}

/// Like `guard_out`, for an out-parameter that may be NULL: written when it
/// is not NULL and the body succeeds.
pub(super) fn guard_optional_out<T>(out: Out<T>, body: impl FnOnce() -> Result<T>) -> turn_result {
    guard(|| {
        out.write(body()?);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;
    use crate::error::{Error, ErrorKind};
    use crate::ffi::turn_last_error;

    fn last_error() -> String {
        // SAFETY: turn_last_error answers a NUL-terminated string that lives
        // until the next failing call on this thread.
        unsafe { CStr::from_ptr(turn_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn errors_and_panics_become_codes_with_their_detail() {
        let rc = guard(|| Err(Error::new(ErrorKind::Busy, "in use")));
        assert_eq!(rc, turn_result::TURN_ERR_BUSY);
        assert_eq!(last_error(), "in use");
        let rc = guard(|| panic!("boom"));
        assert_eq!(rc, turn_result::TURN_ERR_PANIC);
        assert_eq!(last_error(), "internal error (panic): boom");
        assert_eq!(quiet(7, || panic!("boom")), 7);
        assert_eq!(guard(|| Ok(())), turn_result::TURN_OK);
    }

    #[test]
    fn out_is_checked_before_the_body_and_written_only_on_success() {
        let mut ran = false;
        // SAFETY: NULL.
        let rc = guard_out(unsafe { Out::new(std::ptr::null_mut()) }, || {
            ran = true;
            Ok(1u64)
        });
        assert_eq!(rc, turn_result::TURN_ERR_NULL_ARGUMENT);
        assert!(!ran && last_error().contains("out"));

        let mut value = 5u64;
        // SAFETY: a live u64.
        let rc = guard_out(unsafe { Out::new(&mut value) }, || {
            Err(Error::invalid("no"))
        });
        assert_eq!((rc, value), (turn_result::TURN_ERR_INVALID_ARGUMENT, 5));
        // SAFETY: a live u64.
        let rc = guard_out(unsafe { Out::new(&mut value) }, || panic!("boom"));
        assert_eq!((rc, value), (turn_result::TURN_ERR_PANIC, 5));
        // SAFETY: a live u64.
        let rc = guard_out(unsafe { Out::new(&mut value) }, || Ok(9));
        assert_eq!((rc, value), (turn_result::TURN_OK, 9));
    }

    #[test]
    fn arguments_are_checked_before_out_and_an_optional_out_may_be_null() {
        // SAFETY: NULL.
        let null_out = || unsafe { Out::<u64>::new(std::ptr::null_mut()) };
        let rc = guard_out_after(
            || Err::<(), _>(Error::invalid("bad")),
            null_out(),
            |()| Ok(1),
        );
        assert_eq!(rc, turn_result::TURN_ERR_INVALID_ARGUMENT);
        let rc = guard_out_after(|| Ok(2), null_out(), Ok);
        assert_eq!(rc, turn_result::TURN_ERR_NULL_ARGUMENT);
        let mut value = 0u64;
        // SAFETY: a live u64.
        let rc = guard_out_after(|| Ok(2), unsafe { Out::new(&mut value) }, |n| Ok(n * 3));
        assert_eq!((rc, value), (turn_result::TURN_OK, 6));

        assert_eq!(
            guard_optional_out(null_out(), || Ok(4)),
            turn_result::TURN_OK
        );
        // SAFETY: a live u64.
        let rc = guard_optional_out(unsafe { Out::new(&mut value) }, || Ok(4));
        assert_eq!((rc, value), (turn_result::TURN_OK, 4));
    }
}
