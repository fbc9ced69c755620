//! The C ABI: a thin layer over the Rust API, one file per C type
//! (`result`, `locker`, `lock`, `cancel`, `pending`, `modes`, `status`,
//! `options`) and the
//! version, over the checked handles of `handles`. Every exported body runs
//! inside `export`'s guard, so no panic crosses the boundary, and reads its
//! arguments with `args`.
//!
//! cbindgen reads these files as they are, following the `mod` items below
//! (without expanding macros): each exported function is written out as a
//! `#[unsafe(no_mangle)] extern "C" fn`.
#![allow(non_camel_case_types)]

mod args;
mod export;
mod handles;
mod panic;

// One module per C type, each apart so that rustfmt keeps their order:
// cbindgen writes the functions into the header in this order, the order
// in which a C program meets them.
mod locker;

mod lock;

mod cancel;

mod pending;

mod modes;

mod status;

mod options;

mod result;

mod version;

mod log;

pub use self::log::{
    TURN_LOG_DEBUG, TURN_LOG_ERROR, TURN_LOG_INFO, TURN_LOG_WARN, turn_log_fn,
    turn_set_log_callback,
};
pub use cancel::{turn_cancel, turn_cancel_fire, turn_cancel_free, turn_cancel_new};
pub use lock::{
    turn_lock, turn_lock_acquire, turn_lock_acquire_cancelable, turn_lock_check, turn_lock_lost_fd,
    turn_lock_release, turn_lock_serial, turn_lock_token,
};
pub use locker::{
    turn_announce, turn_bump, turn_locker, turn_locker_free, turn_locker_health,
    turn_locker_metrics, turn_locker_new, turn_locker_new_with_options, turn_reset,
};
pub use modes::{
    turn_lock_acquire_all, turn_rwlock_acquire, turn_rwlock_start, turn_semaphore_acquire,
    turn_semaphore_start,
};
pub use options::{
    turn_options, turn_options_free, turn_options_new, turn_options_set_clock_serials,
    turn_options_set_command_timeout_ms, turn_options_set_connect_timeout_ms,
    turn_options_set_grace_ms, turn_options_set_pool_size, turn_options_set_prefix,
    turn_options_set_tls,
};
pub use pending::{
    turn_acquire_start, turn_pending, turn_pending_cancel, turn_pending_fd, turn_pending_finish,
    turn_pending_position,
};
pub use result::{turn_last_error, turn_result, turn_result_str};
pub use status::{
    TURN_KIND_PLAIN, TURN_KIND_RWLOCK, TURN_KIND_SEMAPHORE, turn_status, turn_status_age_ms_at,
    turn_status_dispenser, turn_status_exclusive_at, turn_status_free, turn_status_get,
    turn_status_held_at, turn_status_indicator, turn_status_kind, turn_status_label_at,
    turn_status_lease_left_ms_at, turn_status_len, turn_status_ours_at, turn_status_permits,
    turn_status_position_at, turn_status_serial_at, turn_status_token_at, turn_status_weight_at,
};
pub use version::turn_version;
