//! Result codes and the last error of each thread.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int};

use super::panic::quiet;
use crate::error::ErrorKind;

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
    /// The resource's queue is of another kind (a plain lock, a semaphore,
    /// a read-write lock), or a semaphore with other permits.
    TURN_ERR_WRONG_KIND = 12,
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
            ErrorKind::WrongKind => turn_result::TURN_ERR_WRONG_KIND,
            ErrorKind::Panic => turn_result::TURN_ERR_PANIC,
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(super) fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
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
        12 => c"TURN_ERR_WRONG_KIND",
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
