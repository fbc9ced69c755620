//! One locker's running parts: the shared core, the heartbeat's registry,
//! the notifier and the tickets leaving, with the three background threads
//! that serve them; their start, their supervision (a thread that panics is
//! restarted) and the locker's closing.
//!
//! Closing wakes whatever waits instead of letting it wait out a poll: the
//! heartbeat's condvar, the notifier's (between reconnections) and its
//! pubsub read (a message on its own channel), the pauses of acquires
//! waiting without a ticket (a condvar here) and the waiters' tickets (each
//! marked lost). Its own round trips are bounded (see `core::CLOSE_TIMEOUT`),
//! and so is its wait for the threads (see [`JOIN_WAIT`]).

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::heartbeat::{self, Heartbeat};
use crate::leaving::{self, Leaving};
use crate::notifier::{Driven, Notifier};
use crate::options::{Cancel, Options};
use crate::shared::{CLOSE_BUDGET, CLOSE_TIMEOUT, Core};
use crate::sync::{lock, wait_timeout};
use crate::ticket::Ticket;

/// Pause before a background thread that failed is run again.
const FAULT_PAUSE: Duration = Duration::from_millis(100);

/// When Redis did not answer closing, the longest closing waits for a
/// background thread to end once woken: one still running then is blocked
/// in a round trip with that server, and is left to end by itself (within
/// the command timeout; it holds nothing of the caller's, and the process
/// may exit meanwhile). When Redis answered, closing waits for the threads
/// up to `CLOSE_TIMEOUT` (250 ms), and leaves one still in a round trip
/// with a slow server to end by itself.
pub(crate) const JOIN_WAIT: Duration = Duration::from_millis(100);

/// How often a pause without a ticket looks at its cancel token (a
/// [`Cancel`] wakes the tickets it watches; such a pause has none).
const CANCEL_LOOK: Duration = Duration::from_millis(5);

pub(crate) struct Engine {
    pub core: Core,
    pub heartbeat: Heartbeat,
    pub notifier: Notifier,
    /// The tickets given up, withdrawn by a thread of their own.
    pub leaving: Leaving,
    /// Set once closing has done its work, to whether Redis answered it (a
    /// second closing waits for the first, then does nothing).
    /// Lock order: 1 (see `sync.rs`).
    shut: Mutex<Option<bool>>,
    /// Wakes the acquires pausing without a ticket (see [`Engine::pause`])
    /// when the locker closes; its mutex guards nothing else.
    /// Lock order: 5 (see `sync.rs`).
    pauses: (Mutex<()>, Condvar),
    /// Which background threads have ended (by their index), for the
    /// bounded join.
    /// Lock order: 5 (see `sync.rs`).
    ended: (Mutex<Vec<bool>>, Condvar),
}

impl Engine {
    /// Withdraws a ticket that will not be used (see `leaving::withdraw`).
    pub fn withdraw(&self, t: &Arc<Ticket>) {
        leaving::withdraw(&self.core, &self.heartbeat, &self.leaving, t);
    }

    /// Releases a held lock (see `leaving::release`).
    pub fn release(&self, t: &Ticket) -> Result<()> {
        leaving::release(&self.core, &self.heartbeat, t)
    }

    /// Hands `work` to the notifier thread (ended at once when the locker
    /// is closing: closing takes the list after it sets its flag, so work
    /// added after that is ended here; ending twice does nothing).
    pub fn drive(&self, work: Arc<dyn Driven>) {
        self.notifier.drive(work.clone());
        if self.core.is_closed() {
            work.close();
        }
    }

    /// Sleeps up to `d` in the calling thread: the pause of an acquire
    /// that has no ticket to be woken through (between draws while Redis is
    /// away). It ends at once when the locker closes, and within
    /// [`CANCEL_LOOK`] of `cancel` firing.
    pub fn pause(&self, d: Duration, cancel: Option<&Cancel>) {
        let end = Instant::now().checked_add(d);
        let (mutex, woken) = &self.pauses;
        let mut guard = lock(mutex);
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
            guard = wait_timeout(woken, guard, wait);
        }
    }

    /// Stops the background threads' work and releases the locks still
    /// held (and withdraws the tickets still waiting). A second call waits
    /// for the first to finish, then does nothing.
    pub fn shutdown(&self) {
        let mut shut = lock(&self.shut);
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
            let (mutex, woken) = &self.pauses;
            let _guard = lock(mutex);
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
        let deadline = Instant::now() + CLOSE_BUDGET;
        let answered = self.wake_notifier();
        leaving::close(&self.core, tickets, leaving, answered, deadline);
        // Pending acquires end now (their tickets were withdrawn above).
        for w in self.notifier.take_driven() {
            w.close();
        }
        *shut = Some(answered);
    }

    /// How long the closing of the handle waits for the threads to end:
    /// CLOSE_TIMEOUT when Redis answered closing (a thread then in a round
    /// trip with a slow server is left to end by itself), else JOIN_WAIT.
    fn join_wait(&self) -> Duration {
        match *lock(&self.shut) {
            Some(true) => CLOSE_TIMEOUT.max(JOIN_WAIT),
            _ => JOIN_WAIT,
        }
    }

    /// Publishes the empty message on the notifier's own channel, which
    /// ends its read; waits at most CLOSE_TIMEOUT (the command timeout if
    /// shorter) for the whole of it, the connection included (closing is
    /// flagged: see `Core::run`). True when Redis answered.
    fn wake_notifier(&self) -> bool {
        let channel = self.notifier.channel();
        self.core
            .run(|c| redis::cmd("PUBLISH").arg(channel).arg("").query::<i64>(c))
            .is_ok()
    }

    /// Notes that background thread `index` ended.
    fn thread_ended(&self, index: usize) {
        let (mutex, cv) = &self.ended;
        let mut ended = lock(mutex);
        if let Some(e) = ended.get_mut(index) {
            *e = true;
        }
        cv.notify_all();
    }

    /// Waits until every background thread has ended, or until `deadline`;
    /// which ones have.
    fn wait_ended(&self, deadline: Instant) -> Vec<bool> {
        let (mutex, cv) = &self.ended;
        let mut ended = lock(mutex);
        loop {
            let now = Instant::now();
            if ended.iter().all(|e| *e) || now >= deadline {
                return ended.clone();
            }
            ended = wait_timeout(cv, ended, deadline - now);
        }
    }
}

/// The body of a background thread.
type Body = fn(&Engine);

/// The running locker: its parts and its threads. Dropping it closes the
/// locker, joins the threads and closes the connections.
pub(crate) struct Running {
    pub engine: Arc<Engine>,
    /// Lock order: 5 (see `sync.rs`).
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Connects and starts the three background threads.
pub(crate) fn start(url: &str, options: Options) -> Result<Running> {
    let core = Core::new(url, options)?;
    let bodies: [(&str, Body); 3] = [
        ("heartbeat", |rt| heartbeat::run(&rt.core, &rt.heartbeat)),
        ("leaving", |rt| leaving::run(&rt.core, &rt.leaving)),
        ("notifier", |rt| {
            // Between messages it also follows the master of a Sentinel
            // set (see `connect/sentinel.rs`), but not once closing (an ask may
            // block for a while).
            rt.notifier.run(&rt.core.pool, rt.core.closed_flag(), &|| {
                if !rt.core.is_closed() {
                    rt.core.pool.watch_master();
                }
                rt.notifier.step_driven()
            })
        }),
    ];
    let engine = Arc::new(Engine {
        notifier: Notifier::new(&core.options.prefix),
        heartbeat: Heartbeat::new(),
        leaving: Leaving::new(),
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
        let rt = engine.clone();
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
        engine.shutdown();
        for t in threads {
            let _ = t.join();
        }
        return Err(Error::connection(format!("cannot start a thread: {e}")));
    }
    Ok(Running {
        engine,
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
fn supervise(name: &str, body: Body, rt: &Engine) {
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

impl Drop for Running {
    fn drop(&mut self) {
        let threads = std::mem::take(&mut *lock(&self.threads));
        if !self.engine.core.in_owner_process() {
            // After fork the threads do not exist here and the parent's
            // mutexes may be held: touch nothing.
            std::mem::forget(threads);
            std::mem::forget(self.engine.clone());
            return;
        }
        self.engine.shutdown();
        // Woken, the threads end at once; one blocked in a round trip
        // with a Redis that did not answer closing is not waited for
        // longer than JOIN_WAIT (dropping its handle detaches it).
        let wait = self.engine.join_wait();
        let ended = self.engine.wait_ended(Instant::now() + wait);
        for (t, ended) in threads.into_iter().zip(ended) {
            if ended {
                let _ = t.join();
            }
        }
        self.engine.core.pool.close();
    }
}
