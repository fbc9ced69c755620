//! Arguments as C passes them: strings, and handles of the C types, each
//! read in one call that answers the error the C API documents (NULL:
//! `TURN_ERR_NULL_ARGUMENT`, not UTF-8 or not a live handle:
//! `TURN_ERR_INVALID_ARGUMENT`, a handle of the parent after fork():
//! `TURN_ERR_FORKED`).

use std::ffi::{CStr, c_char};
use std::sync::Arc;
use std::time::Duration;

use super::handles::Table;
use super::panic::quiet;
use crate::error::{Error, ErrorKind, Result};
use crate::{Acquire, Cancel, Wait};

/// `TURN_ERR_NULL_ARGUMENT`, naming the parameter.
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

/// Reads a C string argument that may be NULL (`None`) as UTF-8.
///
/// # Safety
/// As `text`.
pub(super) unsafe fn optional_text<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: non-NULL, NUL-terminated per the caller.
        unsafe { text(p, what) }.map(Some)
    }
}

/// The resource and label of an acquire, read and checked (no round trip):
/// a resource of 1 to 1024 bytes of UTF-8 without control characters, a
/// label (NULL for "") of at most 4096 bytes.
///
/// # Safety
/// `resource` is NUL-terminated; `label` is NULL or NUL-terminated.
pub(super) unsafe fn acquire_names<'a>(
    resource: *const c_char,
    label: *const c_char,
) -> Result<(&'a str, &'a str)> {
    // SAFETY: NUL-terminated per the contract.
    let resource = unsafe { text(resource, "resource")? };
    // SAFETY: NULL or NUL-terminated per the contract.
    let label = unsafe { optional_text(label, "label")? }.unwrap_or("");
    crate::validate_resource(resource)?;
    crate::validate_label(label)?;
    Ok((resource, label))
}

/// An acquire as the C functions describe it: `expire_ms` and
/// `patience_ms` 0 for the defaults; `timeout_ms` < 0 waits forever, 0
/// tries once, > 0 waits that long.
pub(super) fn acquire_request(
    label: &str,
    expire_ms: u32,
    patience_ms: u32,
    timeout_ms: i64,
    cancel: Option<Cancel>,
) -> Acquire {
    Acquire {
        label: label.to_string(),
        expire: (expire_ms > 0).then(|| Duration::from_millis(expire_ms.into())),
        patience: (patience_ms > 0).then(|| Duration::from_millis(patience_ms.into())),
        wait: match timeout_ms {
            t if t < 0 => Wait::Forever,
            0 => Wait::TryOnce,
            t => Wait::For(Duration::from_millis(t as u64)),
        },
        cancel,
        mode: crate::Mode::Plain,
    }
}

/// A C handle type (`turn_locker`, ...) and the table of the objects its
/// handles name. A handle is a checked number from the table (see
/// `handles`), never an address: these calls never dereference it.
pub(super) trait Handle: Sized + 'static {
    /// What a handle names.
    type Object: 'static;

    /// The name of such a parameter, for messages ("locker is NULL").
    const PARAM: &'static str;

    /// The table of the live objects.
    fn table() -> &'static Table<Self::Object>;

    /// Stores `object` and returns its new handle.
    fn insert(object: Self::Object) -> Result<*mut Self> {
        Ok(Self::table().insert(object)? as *mut Self)
    }

    /// The object of a live handle.
    fn get(handle: *const Self) -> Result<Arc<Self::Object>> {
        if handle.is_null() {
            return Err(null(Self::PARAM));
        }
        Self::table().get(handle as usize)
    }

    /// The object of a live handle, or `None` for NULL (a parameter that may
    /// be NULL).
    fn optional(handle: *const Self) -> Result<Option<Arc<Self::Object>>> {
        if handle.is_null() {
            return Ok(None);
        }
        Self::table().get(handle as usize).map(Some)
    }

    /// Takes the object of a live handle out of the table; the handle is
    /// dead from then on.
    fn remove(handle: *const Self) -> Result<Arc<Self::Object>> {
        if handle.is_null() {
            return Err(null(Self::PARAM));
        }
        Self::table().remove(handle as usize)
    }

    /// Ends a handle for a `_free` function, which reports nothing: NULL,
    /// or a value that is not a live handle, does nothing; otherwise `end`
    /// gets the object taken out of the table.
    fn free(handle: *mut Self, end: impl FnOnce(Arc<Self::Object>)) {
        if !handle.is_null() {
            quiet((), || {
                if let Ok(object) = Self::table().remove(handle as usize) {
                    end(object)
                }
            })
        }
    }
}
