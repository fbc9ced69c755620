//! One locker's running parts: the shared core, the heartbeat's registry
//! and the notifier, with the two background threads that serve them;
//! their start, their supervision (a thread that panics is restarted) and
//! the locker's closing.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::core::Core;
use crate::error::{Error, Result};
use crate::heartbeat::{self, Heartbeat};
use crate::notifier::Notifier;
use crate::options::Options;
use crate::scripts::{self, Mode};

/// Pause before a background thread that failed is run again.
const FAULT_PAUSE: Duration = Duration::from_millis(100);

pub(crate) struct Runtime {
    pub core: Core,
    pub heartbeat: Heartbeat,
    pub notifier: Notifier,
    /// Work the notifier thread steps between messages (pending acquires).
    driven: Mutex<Vec<Arc<dyn Driven>>>,
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

    /// Stops the background threads' work and releases the locks still
    /// held (and withdraws the tickets still waiting).
    pub fn shutdown(&self) {
        // The flag first: a ticket admitted after it was set is refused,
        // one admitted before is in the registry drained here.
        self.core.set_closed();
        let tickets = self.heartbeat.drain();
        // Release what is held and withdraw what waits; once Redis proves
        // unreachable, stop trying (the leases run out by themselves), so
        // that closing stays quick.
        let mut reachable = true;
        for t in tickets {
            let mode = if t.is_held() {
                Some(Mode::Release)
            } else if t.is_active() {
                Some(Mode::Abandon)
            } else {
                None
            };
            if reachable
                && let Some(mode) = mode
                && let Err(e) = scripts::release(&self.core, &t, mode, false)
            {
                reachable = !e.is_connection();
            }
            t.mark_lost();
        }
        self.heartbeat.wake();
        // The notifier sleeps in a read of its pubsub connection: a
        // message on its own channel ends it now, not after a poll.
        if reachable {
            let channel = self.notifier.channel();
            let _ = self
                .core
                .run(|c| redis::cmd("PUBLISH").arg(channel).arg("").query::<i64>(c));
        }
        // Pending acquires end now (their tickets were withdrawn above).
        let work = std::mem::take(&mut *self.driven());
        for w in work {
            w.close();
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

/// Connects and starts the two background threads.
pub(crate) fn start(url: &str, options: Options) -> Result<Handle> {
    let core = Core::new(url, options)?;
    let runtime = Arc::new(Runtime {
        notifier: Notifier::new(&core.options.prefix),
        heartbeat: Heartbeat::new(),
        driven: Mutex::new(Vec::new()),
        core,
    });
    let bodies: [(&str, Body); 2] = [
        ("heartbeat", |rt| heartbeat::run(&rt.core, &rt.heartbeat)),
        ("notifier", |rt| {
            // Between messages it also follows the master of a Sentinel
            // set (see `sentinel.rs`).
            rt.notifier.run(&rt.core.pool, rt.core.closed_flag(), &|| {
                rt.core.pool.watch_master();
                rt.step_driven()
            })
        }),
    ];
    let mut threads = Vec::with_capacity(2);
    for (name, body) in bodies {
        let rt = runtime.clone();
        match std::thread::Builder::new()
            .name(format!("turn-{name}"))
            .spawn(move || {
                block_async_signals();
                supervise(name, body, &rt)
            }) {
            Ok(t) => threads.push(t),
            Err(e) => {
                runtime.shutdown();
                for t in threads {
                    let _ = t.join();
                }
                return Err(Error::connection(format!("cannot start a thread: {e}")));
            }
        }
    }
    Ok(Handle {
        runtime,
        threads: Mutex::new(threads),
    })
}

/// Blocks every asynchronous signal in the calling thread (one of the
/// library's own): a signal sent to the process then reaches one of the
/// host's threads, never ours. The signals a fault raises in the thread
/// itself stay unblocked (blocking them would not stop them anyway).
fn block_async_signals() {
    // SAFETY: sigset_t is plain data filled by sigfillset before use;
    // pthread_sigmask only changes this thread's mask.
    unsafe {
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
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
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
        for t in threads {
            let _ = t.join();
        }
        self.runtime.core.pool.close();
    }
}
