//! Handles across fork(): each fork generation has its own table, and a
//! child copies its parent's objects only for the kinds that are plain data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, TryLockError};

/// A table's live objects in one fork generation.
pub(super) struct Generation<T> {
    pub(super) fork: u64,
    /// Live objects by id (the permuted count in their handles).
    /// Lock order: 5 (see `sync.rs`).
    pub(super) live: Mutex<HashMap<u64, Arc<T>>>,
    /// For kinds carried into children: whether this table started with
    /// every object live in the parent's at the fork (and so on up).
    pub(super) carried: bool,
}

/// Tries to lock an ancestor's table in a child: its mutex stays locked
/// forever if a thread that does not exist here held it at the fork, so
/// give up after a while (another thread of the child copying it holds it
/// only briefly).
pub(super) fn lock_ancestor<T>(live: &Mutex<HashMap<u64, Arc<T>>>) -> Option<HashMap<u64, Arc<T>>> {
    for _ in 0..1000 {
        match live.try_lock() {
            Ok(map) => return Some(map.clone()),
            Err(TryLockError::Poisoned(e)) => return Some(e.into_inner().clone()),
            Err(TryLockError::WouldBlock) => std::thread::yield_now(),
        }
    }
    None
}
