//! One locker's running parts: the shared core, the heartbeat's registry,
//! the notifier and the tickets leaving, with the three background threads
//! that serve them; their start, their supervision (a thread that panics is
//! restarted) and the locker's closing.
//!
//! Closing wakes whatever waits instead of letting it wait out a poll: the
//! heartbeat's condvar, the notifier's (between reconnections) and its
//! pubsub read (a message on its own channel), the pauses of acquires
//! waiting without a ticket (a condvar here) and the waiters' tickets (each
//! marked lost). Its own round trips are bounded (see [`CLOSE_TIMEOUT`]),
//! and so is its wait for the threads (see [`JOIN_WAIT`]).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::core::Core;
use crate::error::{Error, Result};
use crate::heartbeat::{self, Heartbeat};
use crate::leaving::{self, Leaving};
use crate::notifier::Notifier;
use crate::options::{Cancel, Options};

/// Pause before a background thread that failed is run again.
const FAULT_PAUSE: Duration = Duration::from_millis(100);

/// The longest closing waits for the reply to its first round trip (the
/// message that wakes the notifier; the command timeout if shorter): when
/// Redis does not answer within it (paused, unreachable), closing makes no
/// other round trip (the leases of its tickets run out by themselves);
/// when it does, the releases follow.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_millis(250);

/// When Redis did not answer closing, the longest closing waits for a
/// background thread to end once woken: one still running then is blocked
/// in a round trip with that server, and is left to end by itself (within
/// the command timeout; it holds nothing of the caller's, and the process
/// may exit meanwhile). When Redis answered, closing waits for the threads
/// up to the command timeout.
pub(crate) const JOIN_WAIT: Duration = Duration::from_millis(100);

/// How often a pause without a ticket looks at its cancel token (a
/// [`Cancel`] wakes the tickets it watches; such a pause has none).
const CANCEL_LOOK: Duration = Duration::from_millis(5);

pub(crate) struct Runtime {
    pub core: Core,
    pub heartbeat: Heartbeat,
    pub notifier: Notifier,
    /// The tickets given up, withdrawn by a thread of their own.
    pub leaving: Leaving,
    /// Work the notifier thread steps between messages (pending acquires).
    driven: Mutex<Vec<Arc<dyn Driven>>>,
    /// Set once closing has done its work, to whether Redis answered it (a
    /// second closing waits for the first, then does nothing).
    shut: Mutex<Option<bool>>,
    /// Wakes the acquires pausing without a ticket (see [`Runtime::pause`])
    /// when the locker closes; its mutex guards nothing else.
    pauses: (Mutex<()>, Condvar),
    /// Which background threads have ended (by their index), for the
    /// bounded join.
    ended: (Mutex<Vec<bool>>, Condvar),
}

/// Work stepped by the notifier thread between messages: a pending
/// acquire.
pub(crate) trait Driven: Send + Sync {
    /// Steps when due at `now` or signaled; the time it wants its next
    /// step, None once it has ended.
    fn drive(&self, now: Instant) -> Option<Instant>;
    /// The locker is closing: end now.
    fn close(&self);
}

impl Runtime {
    fn driven(&self) -> MutexGuard<'_, Vec<Arc<dyn Driven>>> {
        self.driven.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `work` to the notifier thread.
    pub fn drive(&self, work: Arc<dyn Driven>) {
        self.driven().push(work.clone());
        // Closing takes the list after it sets its flag: work added after
        // that is ended here (ending twice does nothing).
        if self.core.is_closed() {
            work.close();
        }
    }

    /// Steps the work that is due (in the notifier thread); how long until
    /// the next is due, None when there is none.
    pub fn step_driven(&self) -> Option<Duration> {
        let work: Vec<Arc<dyn Driven>> = self.driven().clone();
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
            self.driven()
                .retain(|w| !ended.iter().any(|e| Arc::ptr_eq(e, w)));
        }
        next.map(|n| n.saturating_duration_since(Instant::now()))
    }

    /// Sleeps up to `d` in the calling thread: the pause of an acquire
    /// that has no ticket to be woken through (between draws while Redis is
    /// away). It ends at once when the locker closes, and within
    /// [`CANCEL_LOOK`] of `cancel` firing.
    pub fn pause(&self, d: Duration, cancel: Option<&Cancel>) {
        let end = Instant::now().checked_add(d);
        let (lock, woken) = &self.pauses;
        let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            // Read under the mutex that closing takes to wake: no wake-up
            // is missed between this look and the wait.
            if self.core.is_closed() || cancel.is_some_and(Cancel::is_canceled) {
                return;
            }
            let left = match end {
                Some(end) => end.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return;
            }
            let wait = if cancel.is_some() {
                left.min(CANCEL_LOOK)
            } else {
                left
            };
            guard = woken
                .wait_timeout(guard, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Stops the background threads' work and releases the locks still
    /// held (and withdraws the tickets still waiting). A second call waits
    /// for the first to finish, then does nothing.
    pub fn shutdown(&self) {
        let mut shut = self.shut.lock().unwrap_or_else(|e| e.into_inner());
        if shut.is_some() {
            return;
        }
        // The flag first: a ticket admitted after it was set is refused,
        // one admitted before is in the registry drained here.
        self.core.set_closed();
        // What waits on this process alone is woken now: acquires pausing
        // without a ticket, the notifier between connections, the
        // heartbeat between beats.
        {
            let (lock, woken) = &self.pauses;
            let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            woken.notify_all();
        }
        self.notifier.wake();
        self.heartbeat.wake();
        let tickets = self.heartbeat.drain();
        // Tickets given up and not withdrawn yet are withdrawn here.
        let leaving = self.leaving.stop();
        // The notifier sleeps in a read of its pubsub connection: a message
        // on its own channel ends it now, not after a poll. Its reply also
        // tells whether Redis answers: when it does not within
        // CLOSE_TIMEOUT (paused, unreachable), closing makes no other round
        // trip, so that it stays quick (the leases run out by themselves).
        let answered = self.wake_notifier();
        leaving::close(&self.core, tickets, leaving, answered);
        // Pending acquires end now (their tickets were withdrawn above).
        let work = std::mem::take(&mut *self.driven());
        for w in work {
            w.close();
        }
        *shut = Some(answered);
    }

    /// How long the closing of the handle waits for the threads to end:
    /// up to the command timeout when Redis answered closing, else
    /// JOIN_WAIT.
    fn join_wait(&self) -> Duration {
        match *self.shut.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(true) => self.core.options.command_timeout.max(JOIN_WAIT),
            _ => JOIN_WAIT,
        }
    }

    /// Publishes the empty message on the notifier's own channel, which
    /// ends its read; waits at most CLOSE_TIMEOUT (the command timeout if
    /// shorter) for the whole of it: a connection from the pool (not
    /// checked with a PING of its own; a new one within what is left), the
    /// message and its reply. True when Redis answered.
    fn wake_notifier(&self) -> bool {
        let core = &self.core;
        let command = core.options.command_timeout;
        let end = Instant::now() + CLOSE_TIMEOUT.min(command);
        let channel = self.notifier.channel();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(1) {
                return false;
            }
            let Ok(mut conn) = core.pool.get_within(left) else {
                return false;
            };
            let left = end
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            let published = conn.run(|c| {
                c.set_timeouts(Some(left), left)?;
                let published = redis::cmd("PUBLISH").arg(channel).arg("").query::<i64>(c);
                // A connection that failed is not used again; one that
                // answered goes back to the pool with its usual timeouts.
                if published.is_ok() {
                    c.set_timeouts(Some(command), command)?;
                }
                published
            });
            match published {
                Ok(_) => return true,
                // An idle connection the server had closed (a restart):
                // the server never saw it; another one, within the bound.
                Err(e)
                    if conn.reused && (e.is_connection_dropped() || e.is_connection_refusal()) => {}
                Err(_) => return false,
            }
        }
    }

    /// Notes that background thread `index` ended.
    fn thread_ended(&self, index: usize) {
        let (lock, cv) = &self.ended;
        let mut ended = lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = ended.get_mut(index) {
            *e = true;
        }
        cv.notify_all();
    }

    /// Waits until every background thread has ended, or until `deadline`;
    /// which ones have.
    fn wait_ended(&self, deadline: Instant) -> Vec<bool> {
        let (lock, cv) = &self.ended;
        let mut ended = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            if ended.iter().all(|e| *e) || now >= deadline {
                return ended.clone();
            }
            ended = cv
                .wait_timeout(ended, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The body of a background thread.
type Body = fn(&Runtime);

/// The running locker: its parts and its threads. Dropping it closes the
/// locker, joins the threads and closes the connections.
pub(crate) struct Handle {
    pub runtime: Arc<Runtime>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Connects and starts the three background threads.
pub(crate) fn start(url: &str, options: Options) -> Result<Handle> {
    let core = Core::new(url, options)?;
    let bodies: [(&str, Body); 3] = [
        ("heartbeat", |rt| heartbeat::run(&rt.core, &rt.heartbeat)),
        ("leaving", |rt| leaving::run(&rt.core, &rt.leaving)),
        ("notifier", |rt| {
            // Between messages it also follows the master of a Sentinel
            // set (see `sentinel.rs`), but not once closing (an ask may
            // block for a while).
            rt.notifier.run(&rt.core.pool, rt.core.closed_flag(), &|| {
                if !rt.core.is_closed() {
                    rt.core.pool.watch_master();
                }
                rt.step_driven()
            })
        }),
    ];
    let runtime = Arc::new(Runtime {
        notifier: Notifier::new(&core.options.prefix),
        heartbeat: Heartbeat::new(),
        leaving: Leaving::new(),
        driven: Mutex::new(Vec::new()),
        shut: Mutex::new(None),
        pauses: (Mutex::new(()), Condvar::new()),
        ended: (Mutex::new(vec![false; bodies.len()]), Condvar::new()),
        core,
    });
    let mut threads = Vec::with_capacity(bodies.len());
    // The threads are born with every asynchronous signal blocked (a new
    // thread inherits its creator's mask): no signal meant for the host
    // can reach one before it runs. The caller's mask is given back after.
    let host_mask = block_async_signals();
    let mut failed = None;
    for (index, (name, body)) in bodies.into_iter().enumerate() {
        let rt = runtime.clone();
        match std::thread::Builder::new()
            .name(format!("turn-{name}"))
            .spawn(move || {
                leaving::mark_own_thread();
                supervise(name, body, &rt);
                rt.thread_ended(index);
            }) {
            Ok(t) => threads.push(t),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    set_signal_mask(&host_mask);
    if let Some(e) = failed {
        runtime.shutdown();
        for t in threads {
            let _ = t.join();
        }
        return Err(Error::connection(format!("cannot start a thread: {e}")));
    }
    Ok(Handle {
        runtime,
        threads: Mutex::new(threads),
    })
}

/// Blocks every asynchronous signal in the calling thread, for the
/// threads it creates next (the library's own): a signal sent to the
/// process then reaches one of the host's threads, never ours. The signals
/// a fault raises in the thread itself stay unblocked (blocking them would
/// not stop them anyway). Answers the mask it replaced.
fn block_async_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data filled by sigfillset (or by
    // pthread_sigmask) before use; pthread_sigmask only changes this
    // thread's mask.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for sync in [
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGTRAP,
            libc::SIGSYS,
        ] {
            libc::sigdelset(&mut set, sync);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        old
    }
}

/// Sets the calling thread's signal mask back to `mask`.
fn set_signal_mask(mask: &libc::sigset_t) {
    // SAFETY: mask was filled by pthread_sigmask; this changes only this
    // thread's mask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut());
    }
}

/// Runs a background thread's body, and again after a panic (after a short
/// pause), until the locker closes. Each failure is counted and its text
/// kept for `Locker::health`, and said on standard error.
fn supervise(name: &str, body: Body, rt: &Runtime) {
    loop {
        let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(rt))) else {
            return;
        };
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".to_string());
        let text = format!("the {name} thread failed ({what}) and was restarted");
        crate::log::error(&text);
        rt.core.fault(text);
        if rt.core.is_closed() {
            return;
        }
        std::thread::sleep(FAULT_PAUSE);
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        if !self.runtime.core.in_owner_process() {
            // After fork the threads do not exist here and the parent's
            // mutexes may be held: touch nothing.
            std::mem::forget(threads);
            std::mem::forget(self.runtime.clone());
            return;
        }
        self.runtime.shutdown();
        // Woken, the threads end at once; one blocked in a round trip
        // with a Redis that did not answer closing is not waited for
        // longer than JOIN_WAIT (dropping its handle detaches it).
        let wait = self.runtime.join_wait();
        let ended = self.runtime.wait_ended(Instant::now() + wait);
        for (t, ended) in threads.into_iter().zip(ended) {
            if ended {
                let _ = t.join();
            }
        }
        self.runtime.core.pool.close();
    }
}
