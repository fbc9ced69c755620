//! The log callback: where the library's messages go.

use std::ffi::{c_char, c_int, c_void};

use super::export::guard;
use super::result::turn_result;

/// Level of a message: something failed (a background thread of a locker
/// failed and was restarted).
pub const TURN_LOG_ERROR: c_int = 1;
/// Level of a message: something may go wrong (a heartbeat slower than a
/// third of the shortest lease: locks may be lost).
pub const TURN_LOG_WARN: c_int = 2;
/// Level of a message: for information.
pub const TURN_LOG_INFO: c_int = 3;
/// Level of a message: for debugging.
pub const TURN_LOG_DEBUG: c_int = 4;

/// Receives the library's messages (see `turn_set_log_callback`):
/// `context` as given to `turn_set_log_callback`, `level` one of
/// `TURN_LOG_ERROR`, `TURN_LOG_WARN`, `TURN_LOG_INFO`, `TURN_LOG_DEBUG`,
/// and `message` a NUL-terminated UTF-8 line without a trailing newline,
/// owned by the library and valid only during the call (copy it to keep
/// it).
///
/// It may be called from any thread, the library's own background threads
/// included, and from several threads at once. It is called with no lock
/// of the library held, so it may call the library (`turn_locker_health`,
/// say, or `turn_set_log_callback`), but it must not free a locker (nor a
/// lock), and it should return soon: on a locker's heartbeat thread, time
/// spent here delays the next renewal of that locker's leases.
pub type turn_log_fn =
    Option<unsafe extern "C" fn(context: *mut c_void, level: c_int, message: *const c_char)>;

/// Sends every message the library would write on standard error to `fn`
/// instead, with its level and `context`, process-wide (for every locker,
/// made before or after); `fn` NULL gives them back to standard error
/// (each as one line `turn: <message>`), the default. Messages never
/// contain a URL nor a password (whatever looks like the credentials of a
/// URL is masked as `***`). Always answers `TURN_OK`.
///
/// When it returns, no call of the callback it replaces is in progress nor
/// will begin (so that callback's context may be freed then), except when
/// it is called from within the callback itself: then it returns at once.
/// It waits for those calls: do not call it while holding a lock that the
/// callback takes.
///
/// While a callback is set, a panic in one of the library's background
/// threads writes nothing on standard error: the thread is restarted and
/// the failure, with the panic's text, comes to the callback at
/// `TURN_LOG_ERROR`.
///
/// # Safety
/// `fn` is NULL or a function of the type `turn_log_fn` that stays
/// callable, with `context`, until this function is called again and has
/// returned; `context` is passed back as it is.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_set_log_callback(
    r#fn: turn_log_fn,
    context: *mut c_void,
) -> turn_result {
    guard(|| {
        crate::log::set_callback(r#fn, context);
        Ok(())
    })
}
