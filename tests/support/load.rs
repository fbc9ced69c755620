//! Load for the fault scenarios: threads that take a lock (or all of
//! several) in a loop, recording each step in a history (see history.rs),
//! until stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use turn::{Acquire, Locker, Mode};

use super::Rng;
use super::history::{Fence, History, Outcome, Worker};

/// The semaphore of [`Load::shared_modes`].
pub const SEMAPHORE: &str = "sem";
/// The read-write lock of [`Load::shared_modes`].
pub const RWLOCK: &str = "rw";
/// The plain locks of [`Load::shared_modes`], taken in pairs by acquires of
/// all and one by one (on a Redis Cluster, in three slots).
pub const ALL_OF: [&str; 3] = ["a", "b", "c"];

/// Threads cycling on locks; see [`Load::spawn`].
pub struct Load {
    pub history: History,
    pub fence: Arc<Fence>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Default for Load {
    fn default() -> Load {
        Load::new()
    }
}

/// `n` lockers on `url`, default options.
pub fn lockers(url: &str, n: usize) -> Vec<Locker> {
    (0..n).map(|_| Locker::new(Some(url)).unwrap()).collect()
}

impl Load {
    /// Two threads per locker cycling on `resource` (see [`Load::spawn`]),
    /// named after their locker (`l0`, `l1`, ...).
    pub fn cycle_on(
        &mut self,
        lockers: &[Locker],
        resource: &str,
        request: &Acquire,
        hold: Duration,
        rest: Duration,
    ) {
        for (i, l) in lockers.iter().enumerate() {
            for _ in 0..2 {
                self.spawn(&format!("l{i}"), l, resource, request, hold, rest);
            }
        }
    }

    /// The shared modes under load, on each locker `i`: a semaphore of 3
    /// permits ([`SEMAPHORE`]) taken with weight 1 and with weight 2; a
    /// read-write lock ([`RWLOCK`]) taken shared and, on even lockers,
    /// exclusive; an acquire of all of two of [`ALL_OF`] (overlapping
    /// sets, not always named in name order) and a plain acquire of one of
    /// them. Each acquire is `request` in that mode.
    pub fn shared_modes(
        &mut self,
        lockers: &[Locker],
        request: &Acquire,
        hold: Duration,
        rest: Duration,
    ) {
        let with = |mode: Mode| request.clone().mode(mode);
        for (i, l) in lockers.iter().enumerate() {
            let name = format!("l{i}");
            for weight in [1, 2] {
                let sem = with(Mode::Semaphore { permits: 3, weight });
                self.spawn(&name, l, SEMAPHORE, &sem, hold, rest);
            }
            for exclusive in [false, true] {
                if exclusive && i % 2 == 1 {
                    continue;
                }
                let rw = with(Mode::ReadWrite { exclusive });
                self.spawn(&name, l, RWLOCK, &rw, hold, rest);
            }
            let [x, y, z] = ALL_OF;
            let sets = [[x, y], [y, z], [z, x]];
            self.spawn_all(&name, l, &sets[i % 3], request, hold, rest);
            self.spawn(&name, l, ALL_OF[i % 3], request, hold, rest);
        }
    }

    pub fn new() -> Load {
        Load {
            history: History::new(),
            fence: Arc::new(Fence::default()),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        }
    }

    /// A thread that, until stopped, acquires `resource` with `request`,
    /// offers its token to the fence, holds for `hold`, checks, releases,
    /// then rests a random time up to `rest`. A failed acquire is retried
    /// after 50 ms.
    pub fn spawn(
        &mut self,
        name: &str,
        locker: &Locker,
        resource: &str,
        request: &Acquire,
        hold: Duration,
        rest: Duration,
    ) {
        self.spawn_on(name, locker, &[resource], request, hold, rest);
    }

    /// As [`Load::spawn`], with an acquire of all of `resources` (two or
    /// more) each time.
    pub fn spawn_all(
        &mut self,
        name: &str,
        locker: &Locker,
        resources: &[&str],
        request: &Acquire,
        hold: Duration,
        rest: Duration,
    ) {
        assert!(resources.len() > 1, "an acquire of all of several");
        self.spawn_on(name, locker, resources, request, hold, rest);
    }

    /// A thread of [`Load::spawn`] (one resource) or [`Load::spawn_all`].
    fn spawn_on(
        &mut self,
        name: &str,
        locker: &Locker,
        resources: &[&str],
        request: &Acquire,
        hold: Duration,
        rest: Duration,
    ) {
        let resources: Vec<String> = resources.iter().map(|r| r.to_string()).collect();
        let (locker, request) = (locker.clone(), request.clone());
        let (history, fence, stop) = (self.history.clone(), self.fence.clone(), self.stop.clone());
        let name = name.to_string();
        let seed = (self.threads.len() as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.threads.push(thread::spawn(move || {
            let mut worker = Worker::new(&name, &history, &*fence);
            let mut rng = Rng(seed | 1);
            while !stop.load(Ordering::Acquire) {
                let outcome = match &resources[..] {
                    [one] => worker.cycle(&locker, one, &request, hold),
                    all => {
                        let all: Vec<&str> = all.iter().map(String::as_str).collect();
                        worker.cycle_all(&locker, &all, &request, hold)
                    }
                };
                match outcome {
                    Outcome::Failed(_) => thread::sleep(Duration::from_millis(50)),
                    Outcome::Held { .. } => {
                        if !rest.is_zero() {
                            thread::sleep(rng.between(Duration::ZERO, rest));
                        }
                    }
                }
            }
        }));
    }

    /// Stops the threads and waits for them (each ends after its current
    /// cycle; acquires should have a bounded wait). Panics if one is still
    /// running after `limit`, naming how many.
    pub fn stop(&mut self, limit: Duration) {
        self.stop.store(true, Ordering::Release);
        let end = Instant::now() + limit;
        while Instant::now() < end && self.threads.iter().any(|t| !t.is_finished()) {
            thread::sleep(Duration::from_millis(20));
        }
        let stuck = self.threads.iter().filter(|t| !t.is_finished()).count();
        assert!(
            stuck == 0,
            "{stuck} load thread(s) still running {limit:?} after the stop"
        );
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        // On a failed assertion, leave the threads to the process's end.
        self.stop.store(true, Ordering::Release);
    }
}
