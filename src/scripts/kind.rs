//! The kind of a queue in messages, and the error of a draw that found
//! its queue of another kind.

use crate::error::{Error, ErrorKind};
use crate::mode::Mode;

/// What a kind key's value names, for messages.
pub(super) fn kind_text(kind: &str) -> String {
    match kind.strip_prefix("semaphore ") {
        Some("1") => "a semaphore of 1 permit".to_string(),
        Some(permits) => format!("a semaphore of {permits} permits"),
        None if kind == "rwlock" => "a read-write lock".to_string(),
        None if kind == "plain" => "a plain lock".to_string(),
        None => format!("of kind \"{kind}\""),
    }
}

/// What a mode asks for, for messages.
fn mode_text(mode: Mode) -> String {
    match mode {
        Mode::Plain => "a plain lock".to_string(),
        Mode::Semaphore { permits: 1, .. } => "a semaphore of 1 permit".to_string(),
        Mode::Semaphore { permits, .. } => format!("a semaphore of {permits} permits"),
        Mode::ReadWrite { .. } => "a read-write lock".to_string(),
    }
}

/// The error of a draw that found its queue of another kind (`TURNKIND`).
pub(super) fn wrong_kind(e: Error, resource: &str, mode: Mode) -> Error {
    if e.kind() != ErrorKind::WrongKind {
        return e;
    }
    Error::new(
        ErrorKind::WrongKind,
        format!(
            "\"{resource}\" is {}; this acquire asked for {} (reset the queue when it is idle to \
             make it anew)",
            kind_text(e.message()),
            mode_text(mode)
        ),
    )
}
