//! The panic guard of functions that cannot report an error.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs a body that cannot report an error, returning `fallback` on panic.
pub(super) fn quiet<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}
