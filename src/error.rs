//! Errors of the Rust API; each kind maps to one `turn_result` code of the C ABI.

use std::fmt;

/// What went wrong, in the categories the C ABI reports as `turn_result`.
///
/// More kinds may come: a `match` needs a wildcard arm. Two kinds are made
/// by the C ABI alone and are not among what the Rust API promises:
/// [`ErrorKind::NullArgument`], and [`ErrorKind::Panic`] for a panic caught
/// at the C boundary (the Rust API answers `Panic` only from
/// [`crate::Locker::health`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A required pointer was NULL. Made by the C ABI only; the Rust API
    /// never answers it.
    NullArgument,
    /// An argument was out of range, too long, not UTF-8 or otherwise unusable.
    InvalidArgument,
    /// Redis could not be reached, or the connection broke or timed out.
    Connection,
    /// The lock was not granted within the timeout; the ticket was withdrawn.
    Timeout,
    /// A try-lock (timeout 0) found someone else holding the turn.
    WouldBlock,
    /// The lock (or the waiting ticket) was lost: its presence key vanished,
    /// its lease lapsed, or the indicator moved past it.
    Lost,
    /// The queue is in use (reset refused).
    Busy,
    /// No such queue.
    NotFound,
    /// The locker was created in another process (used after `fork()`).
    Forked,
    /// Data in Redis is not in the shape the turn protocol prescribes.
    Protocol,
    /// The wait was canceled (see [`crate::Cancel`]); the ticket was withdrawn.
    Canceled,
    /// The resource's queue is of another kind (a plain lock, a semaphore,
    /// a read-write lock) than the acquire asked for, or a semaphore with
    /// other permits.
    WrongKind,
    /// A panic was caught at the C boundary (C ABI only), or a background
    /// thread failed and was restarted ([`crate::Locker::health`]).
    Panic,
}

/// An error with its kind and a human-readable detail message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// A `Connection` error from a server that answered but refused for
    /// now (NOREPLICAS, READONLY, LOADING, ...) or a write its replicas did
    /// not confirm in time: an acquire rides it out from its first draw.
    refusal: bool,
    /// A `Connection` error of a request that was sent but not answered
    /// (the reply did not come in time, or the connection broke): the
    /// server may have carried it out.
    unanswered: bool,
}

/// Result type of the Rust API.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Makes an error of `kind` with a detail message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            refusal: false,
            unanswered: false,
        }
    }

    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The detail message.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub(crate) fn lost(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Lost, message)
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Protocol, message)
    }

    pub(crate) fn connection(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Connection, message)
    }

    /// A `Connection` error from a server that refuses for now, or a write
    /// its replicas did not confirm.
    pub(crate) fn refusal(message: impl Into<String>) -> Error {
        Error {
            refusal: true,
            ..Error::connection(message)
        }
    }

    /// True for [`Error::refusal`]'s errors.
    pub(crate) fn is_refusal(&self) -> bool {
        self.refusal
    }

    /// A `Connection` error of a request sent and not answered.
    pub(crate) fn unanswered(message: impl Into<String>) -> Error {
        Error {
            unanswered: true,
            ..Error::connection(message)
        }
    }

    /// True for [`Error::unanswered`]'s errors: the server may have carried
    /// the request out.
    pub(crate) fn is_unanswered(&self) -> bool {
        self.unanswered
    }

    /// True for errors caused by the network or the server going away.
    pub(crate) fn is_connection(&self) -> bool {
        self.kind == ErrorKind::Connection
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The codes of replies from a server that cannot serve writes for now
/// (a master without enough replicas, a replica, a server loading its
/// data, a busy script, a cluster slot moving or down).
const REFUSALS: [&str; 9] = [
    "NOREPLICAS",
    "READONLY",
    "MASTERDOWN",
    "LOADING",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "BUSY",
    "NOTREADY",
    // A blocked command (WAIT) ended by a master turned replica.
    "UNBLOCKED",
];

/// True for a reply of a server that refuses for now (see [`REFUSALS`]).
pub(crate) fn is_refusal(e: &redis::RedisError) -> bool {
    e.code().is_some_and(|code| REFUSALS.contains(&code))
        || matches!(
            e.kind(),
            redis::ErrorKind::BusyLoadingError
                | redis::ErrorKind::TryAgain
                | redis::ErrorKind::ClusterDown
                | redis::ErrorKind::MasterDown
                | redis::ErrorKind::ReadOnly
                | redis::ErrorKind::ClusterConnectionNotFound
        )
}

/// True for Redis errors that mean the connection or the server is not
/// usable now (reported as `Connection`).
pub(crate) fn is_connection_error(e: &redis::RedisError) -> bool {
    is_refusal(e)
        || e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            redis::ErrorKind::AuthenticationFailed
                | redis::ErrorKind::BusyLoadingError
                | redis::ErrorKind::TryAgain
                | redis::ErrorKind::ClusterDown
                | redis::ErrorKind::MasterDown
                | redis::ErrorKind::ReadOnly
                | redis::ErrorKind::ClusterConnectionNotFound
        )
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Error {
        let text = format!("redis: {e}");
        if e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
            || e.detail().is_some_and(|d| d.contains("unauthenticated"))
        {
            // The password refused, or none given to a server that wants
            // one (NOAUTH, or a long command refused to an unauthenticated
            // connection): the connection is not usable, nothing is wrong
            // with the data.
            Error::connection(format!("authentication failed: {text}"))
        } else if e.code() == Some("NOPERM") {
            // The ACL refuses a command, key or channel the library needs:
            // not a reply the protocol may give.
            Error::connection(format!(
                "permission denied: the server's ACL refuses this user a command, key or \
                 channel the library needs ({text}); see the README's ACL rule"
            ))
        } else if e.code() == Some("TURNKIND") {
            // The queue is of another kind: the draw wraps this with the
            // resource and what it asked for.
            Error::new(ErrorKind::WrongKind, e.detail().unwrap_or("plain"))
        } else if is_refusal(&e) {
            Error::refusal(text)
        } else if is_connection_error(&e) {
            Error::connection(text)
        } else if e.kind() == redis::ErrorKind::InvalidClientConfig {
            Error::invalid(text)
        } else {
            Error::protocol(text)
        }
    }
}

/// True when a Redis read timed out, or was interrupted by a signal (EINTR,
/// which the library's connections retry themselves and never answer):
/// nothing is wrong with the connection, the read may be made again and
/// goes on with what the first one read.
pub(crate) fn is_retryable_read(e: &redis::RedisError) -> bool {
    e.is_timeout() || is_interrupted(e)
}

/// The kind of the I/O error behind `e`, when it is one.
pub(crate) fn io_kind(e: &redis::RedisError) -> Option<std::io::ErrorKind> {
    std::error::Error::source(e)?
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind)
}

/// True when a signal interrupted the system call behind `e` (EINTR).
pub(crate) fn is_interrupted(e: &redis::RedisError) -> bool {
    io_kind(e) == Some(std::io::ErrorKind::Interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error a server's reply `-CODE something` makes.
    fn reply(code: &str) -> redis::RedisError {
        redis::parse_redis_value(format!("-{code} something\r\n").as_bytes())
            .and_then(|v| v.extract_error())
            .expect_err("an error reply")
    }

    #[test]
    fn refusals_are_connection_errors_and_other_replies_are_protocol_errors() {
        for code in ["NOREPLICAS", "MASTERDOWN", "BUSY", "NOTREADY", "UNBLOCKED"] {
            let e = Error::from(reply(code));
            assert_eq!(e.kind(), ErrorKind::Connection, "{code}");
            assert!(e.is_refusal(), "{code}");
        }
        for kind in [
            redis::ErrorKind::ReadOnly,
            redis::ErrorKind::BusyLoadingError,
            redis::ErrorKind::TryAgain,
            redis::ErrorKind::ClusterDown,
        ] {
            let e = Error::from(redis::RedisError::from((kind, "refused")));
            assert_eq!(e.kind(), ErrorKind::Connection, "{kind:?}");
            assert!(e.is_refusal(), "{kind:?}");
        }
        let e = Error::from(reply("NOPERM"));
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert!(e.to_string().contains("ACL"), "{e}");
        assert!(!e.is_refusal());
        let e = Error::from(reply("TURNPROTO"));
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(!e.is_refusal());
        let io =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let e = Error::from(io);
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert!(!e.is_refusal());
    }

    #[test]
    fn only_timeouts_and_interruptions_are_retryable_reads() {
        use std::io::ErrorKind as Io;
        let io = |k: Io| redis::RedisError::from(std::io::Error::from(k));
        for k in [Io::TimedOut, Io::WouldBlock, Io::Interrupted] {
            assert!(is_retryable_read(&io(k)), "{k:?}");
        }
        assert!(is_interrupted(&io(Io::Interrupted)));
        assert!(!is_interrupted(&io(Io::TimedOut)));
        for k in [
            Io::ConnectionReset,
            Io::UnexpectedEof,
            Io::NotConnected,
            Io::InvalidData,
            Io::Other,
        ] {
            assert!(!is_retryable_read(&io(k)), "{k:?}");
        }
        assert!(!is_retryable_read(&reply("ERR")));
    }
}
