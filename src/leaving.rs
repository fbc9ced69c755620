//! Withdrawing tickets that will not be used (a wait that timed out, was
//! canceled or failed, a try-lock that would block, a turn that came to a
//! pending nobody takes): one background thread makes the round trips, so
//! that the thread giving a ticket up never waits on a stalled server.
//!
//! A host thread that withdraws waits for the round trip at most
//! [`WITHDRAW_WAIT`] (the command timeout if shorter): on a healthy server
//! it returns with the ticket gone from the queue, as a blocking call
//! would; on a server that does not answer, it returns then all the same
//! and the withdrawal goes on in the background (a ticket never withdrawn
//! is passed by the queue once its lease lapses, as a dead one is). The
//! library's own threads (the notifier stepping pending acquires) do not
//! wait at all. Closing withdraws what is still queued (see
//! `Runtime::shutdown`).

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::core::Core;
use crate::scripts::{self, Mode};
use crate::ticket::Ticket;

/// The longest a host thread waits for its withdrawal's round trip.
pub(crate) const WITHDRAW_WAIT: Duration = Duration::from_millis(250);

thread_local! {
    /// Set in the library's own background threads.
    static OWN_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as one of the library's own.
pub(crate) fn mark_own_thread() {
    OWN_THREAD.with(|own| own.set(true));
}

fn on_own_thread() -> bool {
    OWN_THREAD.with(Cell::get)
}

/// The tickets to withdraw, and the thread's wake-ups.
pub(crate) struct Leaving {
    queue: Mutex<Queue>,
    /// Wakes the thread: work came, or the locker closes.
    work: Condvar,
    /// Wakes the threads waiting for their withdrawal.
    done: Condvar,
}

#[derive(Default)]
struct Queue {
    /// Tickets not withdrawn yet, each with its number.
    waiting: VecDeque<(u64, Arc<Ticket>)>,
    /// The number the next ticket gets.
    next: u64,
    /// Every ticket numbered below it has been withdrawn (or given up).
    done_below: u64,
    /// The thread stopped (closing): nothing queued is withdrawn by it.
    stopped: bool,
}

impl Leaving {
    pub fn new() -> Leaving {
        Leaving {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            done: Condvar::new(),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `t` for withdrawal; on a host thread, waits for it at most
    /// `wait`. False when the thread had stopped (closing): the ticket was
    /// not queued, and is the caller's to withdraw.
    pub fn withdraw(&self, t: Arc<Ticket>, wait: Duration) -> bool {
        let mut queue = self.queue();
        if queue.stopped {
            return false;
        }
        let n = queue.next;
        queue.next += 1;
        queue.waiting.push_back((n, t));
        self.work.notify_all();
        if on_own_thread() {
            return true;
        }
        let end = Instant::now() + wait;
        while queue.done_below <= n && !queue.stopped {
            let now = Instant::now();
            if now >= end {
                break;
            }
            queue = self
                .done
                .wait_timeout(queue, end - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Stops the thread (closing) and takes what it had not withdrawn yet.
    pub fn stop(&self) -> Vec<Arc<Ticket>> {
        let mut queue = self.queue();
        queue.stopped = true;
        self.work.notify_all();
        self.done.notify_all();
        queue.waiting.drain(..).map(|(_, t)| t).collect()
    }
}

/// The thread's body: withdraws the queued tickets one by one, until the
/// locker closes.
pub(crate) fn run(core: &Core, leaving: &Leaving) {
    loop {
        let (n, t) = {
            let mut queue = leaving.queue();
            loop {
                if queue.stopped {
                    return;
                }
                if let Some(next) = queue.waiting.pop_front() {
                    break next;
                }
                queue = leaving.work.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
        };
        let _ = scripts::release(core, &t, Mode::Abandon, false);
        let mut queue = leaving.queue();
        queue.done_below = n + 1;
        leaving.done.notify_all();
    }
}
