//! The pending acquires the notifier thread steps between messages: a
//! pending acquire has no thread of its own, and the notifier's is the one
//! that hears of its ticket first.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sync::lock;

/// Work stepped by the notifier thread between messages: a pending
/// acquire.
pub(crate) trait Driven: Send + Sync {
    /// Steps when due at `now` or signaled; the time it wants its next
    /// step, None once it has ended.
    fn drive(&self, now: Instant) -> Option<Instant>;
    /// The locker is closing: end now.
    fn close(&self);
}

/// The work handed to the notifier thread.
#[derive(Default)]
pub(crate) struct DrivenList {
    /// Lock order: 5 (see `sync.rs`).
    work: Mutex<Vec<Arc<dyn Driven>>>,
}

impl DrivenList {
    /// Adds `work`.
    pub fn add(&self, work: Arc<dyn Driven>) {
        lock(&self.work).push(work);
    }

    /// Takes every piece of work out (closing).
    pub fn take(&self) -> Vec<Arc<dyn Driven>> {
        std::mem::take(&mut *lock(&self.work))
    }

    /// Steps the work that is due (in the notifier thread, with the list
    /// let go); how long until the next is due, None when there is none.
    pub fn step(&self) -> Option<Duration> {
        let work: Vec<Arc<dyn Driven>> = lock(&self.work).clone();
        if work.is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut ended = Vec::new();
        for w in &work {
            match w.drive(now) {
                Some(due) => next = Some(next.map_or(due, |n| n.min(due))),
                None => ended.push(w.clone()),
            }
        }
        if !ended.is_empty() {
            lock(&self.work).retain(|w| !ended.iter().any(|e| Arc::ptr_eq(e, w)));
        }
        next.map(|n| n.saturating_duration_since(Instant::now()))
    }
}
