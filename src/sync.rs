//! The library's mutexes and condition variables, through helpers that
//! never poison: a panic while a lock is held (a background thread's
//! failure, which is restarted) does not make later users fail; what it
//! guarded is used as it was left, and each guarded value is kept
//! consistent at every point a panic could come.
//!
//! Lock order. While holding one of the library's mutexes, a thread takes
//! only those listed after it here (and never waits on a round trip with
//! Redis, but where said). Each mutex says its rank where it is declared
//! (`Lock order: N`):
//!
//! 1. `Engine::shut`: closing holds it throughout (a second close waits
//!    for the first), and takes any lock below, round trips included.
//! 2. The C handles' cells (`LockCell`, `PendingCell`, `OptionsCell`): a
//!    call on a handle runs under its cell's lock, round trips included,
//!    and takes any lock below.
//! 3. A pending acquire's state: a ticket's `signaled` (to see whether it
//!    is quiet). A step runs with it let go.
//! 4. The heartbeat's registry, the notifier's state, a `Cancel`'s
//!    waiting list: a ticket's lost signal and its `signaled` (a ticket
//!    marked lost, called or canceled is woken).
//! 5. A ticket's lost signal, then its `signaled`; the pool's state, the
//!    leaving queue, the sentinels' answers, the engine's `ended`,
//!    `pauses` and `threads`, the core's key names and faults, the
//!    notifier's pause and its list of pending acquires, the heartbeat's
//!    figures, the handle tables, the log's state: nothing (a log message
//!    reaches the host's callback with no lock held).
//!
//! A condition variable is waited on with its own mutex, and at most the
//! locks of ranks 1 and 2 held besides (closing, a C handle's call that
//! waits for a withdrawal).

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Locks `m`, whatever a panic left it in.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `cv` with `guard` (of the mutex it guards) until notified.
pub(crate) fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `cv` with `guard` until notified, at most `d`.
pub(crate) fn wait_timeout<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    d: Duration,
) -> MutexGuard<'a, T> {
    cv.wait_timeout(guard, d)
        .unwrap_or_else(PoisonError::into_inner)
        .0
}
