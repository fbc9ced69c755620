//! turn: a FIFO, take-a-number lock for shared resources, kept in Redis.
//!
//! A [`Locker`] draws a ticket (a serial number) from a resource's
//! dispenser and waits until the resource's indicator shows that number;
//! releasing moves the indicator to the next ticket. The keys and messages
//! are those of the Python package turn 1.0, so both kinds of client can
//! share one queue; every state change here is one atomic Lua script.
//!
//! ```no_run
//! let locker = turn::Locker::new(Some("redis://127.0.0.1:6379/0"))?;
//! let lock = locker.lock("printer", "report job")?;
//! println!("my turn, fencing token {}", lock.token());
//! lock.release()?;
//! # Ok::<(), turn::Error>(())
//! ```

mod admin;
mod all_or_none;
mod connect;
mod engine;
mod error;
mod fork;
mod heartbeat;
mod keys;
mod leaving;
mod lock;
mod locker;
mod log;
mod lost_signal;
mod metrics;
mod mode;
mod notifier;
mod options;
mod pending;
mod pool;
mod ready_fd;
mod scripts;
mod shared;
mod status;
mod sync;
mod ticket;
mod wait;

pub mod ffi;

pub use admin::LogLine;
pub use all_or_none::MAX_ALL_RESOURCES;
pub use error::{Error, ErrorKind, Result};
pub use heartbeat::Beat;
pub use keys::{
    MAX_LABEL_LEN, MAX_PREFIX_LEN, MAX_RESOURCE_LEN, validate_label, validate_resource,
};
pub use lock::{Lock, Pending};
pub use locker::{DEFAULT_URL, Locker, ResetOutcome};
pub use metrics::{HOLD_BUCKETS, HistogramSnapshot, MetricsSnapshot, WAIT_BUCKETS};
pub use mode::{Kind, Mode};
pub use options::{
    Acquire, Cancel, DEFAULT_EXPIRE, DEFAULT_GRACE, DEFAULT_PATIENCE, DEFAULT_REPLICA_TIMEOUT,
    MAX_EXPIRE, MIN_EXPIRE, MIN_PATIENCE, MinReplicas, Options, Tls, Wait,
};
pub use status::{MAX_STATUS_TICKETS, Status, TicketInfo};

/// Entry points for the fuzz targets in `fuzz/` (built with `--cfg fuzzing`).
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use crate::keys::{self, Keys};

    /// Parses names and messages the way the notifier and discovery do, and
    /// checks that what is built parses back.
    pub fn names(prefix: &str, resource: &str, payload: &[u8], serial: u64) {
        let _ = keys::validate_prefix(prefix);
        let _ = keys::validate_resource(resource);
        let _ = keys::validate_label(resource);
        let k = Keys::new(prefix, resource);
        let _ = k.serial_of_message(payload);
        assert_eq!(
            k.serial_of_message(k.presence(serial).as_bytes()),
            Some(serial)
        );
        if let Ok(key) = std::str::from_utf8(payload)
            && let Some(r) = keys::resource_of_dispenser(prefix, key)
        {
            assert_eq!(Keys::new(prefix, r).dispenser, key);
        }
        if keys::validate_resource(resource).is_ok() && keys::validate_prefix(prefix).is_ok() {
            assert_eq!(
                keys::resource_of_dispenser(prefix, &k.dispenser),
                Some(resource)
            );
        }
        let _ = keys::glob_escape(resource);
        let _ = keys::parse_serial(payload);
    }
}

/// This library's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
