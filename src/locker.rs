//! The locker: one client's connections and background threads, shared by
//! every lock it takes; and the lock guard.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::Connection;

use crate::connect::Conn;

use crate::error::{Error, ErrorKind, Result};
use crate::heartbeat;
use crate::keys::{Keys, validate_label, validate_resource};
use crate::notifier::{self, Notifier};
use crate::options::{Acquire, Options, Wait};
use crate::pool::Pool;
use crate::scripts::{self, Call};
use crate::status::{self, Status};
use crate::ticket::{Draw, Ticket};

/// The Redis URL used when none is given.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379/0";

/// How long a new waiter waits for its channel subscription to be confirmed
/// before it reads the queue anyway (it then relies on bounded waits).
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(1);
/// Slack added to a holder's remaining lease before looking again.
const LEASE_MARGIN: Duration = Duration::from_millis(2);
/// Pause before a background thread that failed is run again.
const FAULT_PAUSE: Duration = Duration::from_millis(100);
/// Resources whose key names a locker keeps ready (it forgets them all
/// when there are more).
const KEYS_CACHED: usize = 1024;

/// What became of a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetOutcome {
    /// The dispenser and indicator were removed.
    Reset,
    /// There is no such queue.
    NotFound,
    /// The queue holds this many tickets (holder and waiters) after a bump.
    Busy(u64),
    /// The dispenser moved since it was read: someone drew a ticket.
    Activity,
}

pub(crate) struct Core {
    pub options: Options,
    pub pool: Pool,
    /// The fork generation this locker was made in (see `fork.rs`).
    generation: u64,
    epoch: Instant,
    closed: AtomicBool,
    next_id: AtomicU64,
    /// Every active ticket of this locker, for the heartbeat.
    pub tickets: Mutex<HashMap<u64, Arc<Ticket>>>,
    /// Wakes the heartbeat when tickets come or the locker closes.
    pub beat: Condvar,
    /// When the heartbeat means to wake next (ms since the epoch): a new
    /// ticket due earlier wakes it, later ones do not.
    pub next_beat_ms: AtomicU64,
    pub notifier: Notifier,
    /// The key names of recently locked resources, built once.
    named: Mutex<HashMap<String, Arc<Keys>>>,
    /// Keyed at random: makes the tickets' nonces.
    nonces: RandomState,
    /// Failures of the background threads (each restarted): how many, and
    /// the last one's text.
    pub faults: Mutex<(u64, String)>,
    /// Makes the background threads panic once (tests of their restart).
    pub inject_panic: [AtomicBool; 2],
}

impl Core {
    pub fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    /// `at` in ms since the locker's epoch.
    pub fn ms_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// The keys of `resource` (hash-tagged on a Redis Cluster).
    pub fn keys(&self, resource: &str) -> Keys {
        if self.pool.is_cluster() {
            Keys::tagged(&self.options.prefix, resource)
        } else {
            Keys::new(&self.options.prefix, resource)
        }
    }

    /// The keys of `resource`, shared: built once per resource and kept
    /// for the next acquire.
    fn shared_keys(&self, resource: &str) -> Arc<Keys> {
        let mut named = self.named.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(keys) = named.get(resource) {
            return keys.clone();
        }
        if named.len() >= KEYS_CACHED {
            named.clear();
        }
        let keys = Arc::new(self.keys(resource));
        named.insert(resource.to_string(), keys.clone());
        keys
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn in_owner_process(&self) -> bool {
        crate::fork::generation() == self.generation
    }

    fn usable(&self) -> Result<()> {
        if !self.in_owner_process() {
            return Err(Error::new(
                ErrorKind::Forked,
                "this locker was created in another process (before fork); create a new locker in this one",
            ));
        }
        if self.is_closed() {
            return Err(Error::connection("the locker is closed"));
        }
        Ok(())
    }

    /// Runs `f` on a pooled connection. When an idle connection turns out
    /// to have been closed by the server (a restart, an idle timeout), `f`
    /// runs again on another one: the server never saw the try. (A broken
    /// connection empties the pool's idle ones, but a connection in use
    /// elsewhere during a restart comes back stale: so it tries up to the
    /// pool's size, and a new connection's error is final. Should a server
    /// execute a command and then drop the connection before replying, the
    /// next try repeats it: a draw leaves an extra ticket that lapses with
    /// its lease, a release answers `Lost`.)
    pub fn run<T>(&self, f: impl Fn(&mut Conn) -> redis::RedisResult<T>) -> Result<T> {
        let mut tries = 0;
        loop {
            let mut conn = self.pool.get()?;
            match conn.run(&f) {
                Err(e)
                    if conn.reused
                        && tries <= self.options.pool_size
                        && (e.is_connection_dropped() || e.is_connection_refusal()) =>
                {
                    tries += 1;
                }
                result => return Ok(result?),
            }
        }
    }

    /// A nonce for a new ticket: 64 random bits and a count, unique to it.
    fn nonce(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{n:x}", self.nonces.hash_one(n))
    }

    /// Hands a drawn ticket to the heartbeat, held or waiting. False when
    /// the locker is closing or the ticket's lease lapsed by the local clock
    /// before the draw's reply came (it may have been passed): the ticket is
    /// then the caller's to withdraw.
    /// (Closing sets its flag before it takes the tickets' mutex, so a
    /// ticket admitted here is drained by the closing, never missed.)
    fn admit(&self, ticket: &Arc<Ticket>, held: bool) -> bool {
        let mut tickets = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_closed() || ticket.lapsed(self.now_ms()) {
            return false;
        }
        if held {
            ticket.set_held();
        }
        tickets.insert(ticket.id, ticket.clone());
        drop(tickets);
        let due = ticket.refreshed_ms() + ticket.expire_ms() / 3;
        if due < self.next_beat_ms.load(Ordering::Acquire) {
            self.beat.notify_all();
        }
        true
    }

    /// Makes a waiting ticket held, when that is still true: its locker is
    /// open, it was not found lost, and its lease has not lapsed by the
    /// local clock (a waiter paused past its lease may have been passed).
    fn grant(&self, t: &Ticket) -> bool {
        let _tickets = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_closed() || t.lapsed(self.now_ms()) {
            return false;
        }
        t.set_held();
        t.is_held()
    }

    /// Records that a background thread failed and was restarted.
    pub fn fault(&self, text: String) {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        faults.0 += 1;
        faults.1 = text;
    }

    fn unregister(&self, ticket: &Ticket) {
        self.tickets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ticket.id);
    }

    /// Runs the release script; mode "release" or "abandon".
    /// Returns (indicator moved, presence key existed).
    fn leave(&self, t: &Ticket, mode: &str) -> Result<(bool, bool)> {
        let call = Call::new(
            &scripts::RELEASE,
            &[
                &t.keys.indicator,
                &t.keys.withdrawn,
                &t.keys.dispenser,
                &t.keys.incarnation,
            ],
        )
        .arg(&t.keys.presence_prefix)
        .arg(t.serial)
        .arg(&t.label)
        .arg(&t.keys.external)
        .arg(&t.keys.internal)
        .arg(&t.keys.name)
        .arg(mode)
        .arg(&t.keys.ticket_prefix)
        .arg(&t.identity)
        .arg(&t.base);
        let code: i64 = self.run(|c| call.invoke(c))?;
        Ok((code & 2 != 0, code & 1 != 0))
    }

    /// Withdraws a ticket that will not be used (timeout, failure, loss).
    /// A ticket known lost touches nothing (see `release`).
    fn withdraw(&self, t: &Ticket) {
        self.unregister(t);
        let lost = t.is_lost();
        t.set_done();
        if !lost {
            let _ = self.leave(t, "abandon");
        }
    }

    /// Bumps past dead tickets up to `limit`; for a ticket (`by`), only
    /// while that ticket is still ours (else -2, and nothing is touched).
    fn bump(
        &self,
        keys: &Keys,
        limit: Option<u64>,
        text: &str,
        by: Option<&Ticket>,
    ) -> Result<i64> {
        let call = Call::new(
            &scripts::BUMP,
            &[&keys.indicator, &keys.dispenser, &keys.incarnation],
        )
        .arg(&keys.presence_prefix)
        .arg(limit.map(|l| l.to_string()).unwrap_or_default())
        .arg(&keys.external)
        .arg(&keys.internal)
        .arg(&keys.name)
        .arg(text)
        .arg(&keys.ticket_prefix)
        .arg(by.map(|t| t.keys.ticket(t.serial)).unwrap_or_default())
        .arg(by.map_or("", |t| t.identity.as_str()))
        .arg(by.map_or("", |t| t.base.as_str()));
        self.run(|c| call.invoke(c))
    }

    fn release(&self, t: &Ticket) -> Result<()> {
        if !self.in_owner_process() {
            return Err(Error::new(
                ErrorKind::Forked,
                "this lock belongs to another process (before fork)",
            ));
        }
        self.unregister(t);
        if self.is_closed() {
            t.set_done();
            return Err(Error::lost(
                "the locker was closed; the lock was released then",
            ));
        }
        if t.is_lost() || t.lapsed(self.now_ms()) {
            // Its keys may be someone else's by now (a queue made anew by
            // turn 1.0 clients is one case no check can tell): touch
            // nothing; they expire by themselves.
            t.set_done();
            return Err(Error::lost(format!(
                "lock {} on \"{}\" was lost before the release; nothing was touched",
                t.serial, t.resource
            )));
        }
        let result = self.leave(t, "release");
        t.set_done();
        let (moved, present) = result?;
        if !moved {
            return Err(Error::lost(format!(
                "lock {} on \"{}\" was lost: the indicator had moved on; it was left alone",
                t.serial, t.resource
            )));
        }
        if !present {
            return Err(Error::lost(format!(
                "lock {} on \"{}\" was lost: its lease lapsed before the release",
                t.serial, t.resource
            )));
        }
        Ok(())
    }

    /// Stops the background threads' work and releases the locks still held.
    fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        let tickets: Vec<Arc<Ticket>> = self
            .tickets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, t)| t)
            .collect();
        // Release what is held and withdraw what waits; once Redis proves
        // unreachable, stop trying (the leases run out by themselves), so
        // that closing stays quick.
        let mut reachable = true;
        for t in tickets {
            let mode = if t.is_held() {
                Some("release")
            } else if t.is_active() {
                Some("abandon")
            } else {
                None
            };
            if reachable
                && let Some(mode) = mode
                && let Err(e) = self.leave(&t, mode)
            {
                reachable = !e.is_connection();
            }
            t.mark_lost();
        }
        let _tickets = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        self.beat.notify_all();
    }
}

/// Runs a background thread's body, and again after a panic (after a short
/// pause), until the locker closes. Each failure is counted and its text
/// kept for [`Locker::health`], and said on standard error.
fn supervise(name: &str, body: fn(Arc<Core>), core: Arc<Core>) {
    loop {
        let c = core.clone();
        let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(c))) else {
            return;
        };
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".to_string());
        let text = format!("the {name} thread failed ({what}) and was restarted");
        eprintln!("turn: {text}");
        core.fault(text);
        if core.is_closed() {
            return;
        }
        std::thread::sleep(FAULT_PAUSE);
    }
}

struct Handle {
    core: Arc<Core>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        if !self.core.in_owner_process() {
            // After fork the threads do not exist here and the parent's
            // mutexes may be held: touch nothing.
            std::mem::forget(threads);
            std::mem::forget(self.core.clone());
            return;
        }
        self.core.shutdown();
        for t in threads {
            let _ = t.join();
        }
        self.core.pool.close();
    }
}

/// A client of the turn protocol: its Redis connections (a bounded pool, plus
/// one for the heartbeat and one for the notifier) and its two background
/// threads, shared by every lock it takes. Cheap to clone and to share
/// between threads; the last clone to go stops the threads, releases locks
/// still held and closes the connections.
#[derive(Clone)]
pub struct Locker {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Locker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locker")
            .field("prefix", &self.handle.core.options.prefix)
            .finish()
    }
}

impl Locker {
    /// Connects to `url` (`redis://[user:password@]host:port/db`, or None for
    /// [`DEFAULT_URL`]) with default options.
    pub fn new(url: Option<&str>) -> Result<Locker> {
        Locker::with_options(url, Options::default())
    }

    /// Connects with the given options. Fails with `Connection` when Redis
    /// cannot be reached within the connect timeout.
    pub fn with_options(url: Option<&str>, options: Options) -> Result<Locker> {
        options.validate()?;
        let url = url.unwrap_or(DEFAULT_URL);
        let connector = crate::connect::Connector::open(url, options.tls.as_ref())?;
        let pool = Pool::new(
            connector,
            options.pool_size,
            options.connect_timeout,
            options.command_timeout,
        );
        // Connect now, so that a wrong address is reported here.
        drop(pool.get()?);
        let notifier = Notifier::new(&options.prefix);
        let core = Arc::new(Core {
            options,
            pool,
            generation: crate::fork::generation(),
            epoch: Instant::now(),
            closed: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            tickets: Mutex::new(HashMap::new()),
            beat: Condvar::new(),
            next_beat_ms: AtomicU64::new(u64::MAX),
            named: Mutex::new(HashMap::new()),
            nonces: RandomState::new(),
            faults: Mutex::new((0, String::new())),
            inject_panic: [AtomicBool::new(false), AtomicBool::new(false)],
            notifier,
        });
        let mut threads = Vec::with_capacity(2);
        for (name, body) in [
            ("heartbeat", heartbeat::run as fn(Arc<Core>)),
            ("notifier", notifier::run as fn(Arc<Core>)),
        ] {
            let c = core.clone();
            match std::thread::Builder::new()
                .name(format!("turn-{name}"))
                .spawn(move || supervise(name, body, c))
            {
                Ok(t) => threads.push(t),
                Err(e) => {
                    core.shutdown();
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(Error::connection(format!("cannot start a thread: {e}")));
                }
            }
        }
        Ok(Locker {
            handle: Arc::new(Handle {
                core,
                threads: Mutex::new(threads),
            }),
        })
    }

    fn core(&self) -> &Arc<Core> {
        &self.handle.core
    }

    /// The options this locker was made with.
    pub fn options(&self) -> &Options {
        &self.core().options
    }

    /// Ok while the background threads never failed. After a failure (a
    /// bug: a panic in the heartbeat or notifier thread, which was then
    /// restarted) it answers a `Panic` error saying how many failures
    /// there were and what the last one was. The locker keeps working.
    pub fn health(&self) -> Result<()> {
        let faults = self.core().faults.lock().unwrap_or_else(|e| e.into_inner());
        if faults.0 == 0 {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Panic,
            format!("{} background failure(s); the last: {}", faults.0, faults.1),
        ))
    }

    /// Closes the locker now, whoever else holds a clone: waits in
    /// progress end with `Canceled` (their tickets withdrawn), locks still
    /// held are released (their `check` and `release` answer `Lost`), and
    /// later calls fail. The threads and connections go with the last
    /// clone.
    pub fn close(&self) {
        let core = self.core();
        if core.in_owner_process() {
            core.shutdown();
        }
    }

    /// Makes the background threads panic once (for tests of their restart).
    #[doc(hidden)]
    pub fn inject_background_panic(&self, heartbeat: bool, notifier: bool) {
        let core = self.core();
        core.inject_panic[0].store(heartbeat, Ordering::Release);
        core.inject_panic[1].store(notifier, Ordering::Release);
        core.beat.notify_all();
    }

    /// Takes the lock on `resource` with a label and default settings,
    /// waiting as long as it takes.
    pub fn lock(&self, resource: &str, label: &str) -> Result<Lock> {
        self.acquire(resource, &Acquire::label(label))
    }

    /// Takes a ticket for `resource` and waits for its turn, as `request`
    /// says. On timeout, failure or a try-lock that would block, the ticket
    /// is withdrawn: it leaves no trace and does not stall the queue.
    pub fn acquire(&self, resource: &str, request: &Acquire) -> Result<Lock> {
        let core = self.core();
        core.usable()?;
        validate_resource(resource)?;
        validate_label(&request.label)?;
        let expire = request.expire_or_default()?;
        let patience = request.patience_or_default();
        let deadline = match request.wait {
            Wait::For(d) => Instant::now().checked_add(d),
            _ => None,
        };
        let keys = core.shared_keys(resource);
        let mut redraw: Option<Redraw> = None;
        loop {
            if core.is_closed() {
                return Err(closed_during_wait(resource));
            }
            if let Some(d) = deadline
                && Instant::now() >= d
            {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("\"{resource}\" was not granted in time"),
                ));
            }
            if request
                .cancel
                .as_ref()
                .is_some_and(crate::Cancel::is_canceled)
            {
                return Err(Error::new(
                    ErrorKind::Canceled,
                    format!("acquiring \"{resource}\" was canceled"),
                ));
            }
            let nonce = core.nonce();
            let draw = Draw {
                id: core.next_id.fetch_add(1, Ordering::Relaxed),
                resource: resource.to_string(),
                keys: keys.clone(),
                identity: format!("{nonce} {}", core.notifier.channel()),
                label: request.label.clone(),
                expire,
                sent_ms: 0,
            };
            // Expected before the draw is sent, so that the call that may
            // follow it at once is not missed.
            let expected = Expected::new(&core.notifier, &nonce);
            let seen = core.notifier.snapshot(&keys.internal);
            let call = Call::new(
                &scripts::DRAW,
                &[&keys.dispenser, &keys.indicator, &keys.incarnation],
            )
            .arg(&keys.presence_prefix)
            .arg(&request.label)
            .arg(expire.as_millis() as u64)
            .arg(&keys.external)
            .arg(&keys.name)
            .arg(if core.options.clock_serials {
                "clock"
            } else {
                ""
            })
            .arg(&keys.ticket_prefix)
            .arg(&draw.identity)
            .arg(&keys.withdrawn);
            let draw = Draw {
                sent_ms: core.now_ms(),
                ..draw
            };
            let drawn: scripts::Drawn = match core.run(|c| call.invoke(c)) {
                Ok(drawn) => drawn,
                Err(e) => {
                    // Drawing anew after a loss (Redis restarting, say):
                    // ride the outage out for as long as a lease would.
                    match redraw.as_mut() {
                        Some(outage) if e.is_connection() => {
                            outage.pause(e, deadline)?;
                            continue;
                        }
                        _ => return Err(e),
                    }
                }
            };
            let (serial, indicator, pttl) = (drawn.serial, drawn.indicator, drawn.pttl);
            let ticket = Arc::new(Ticket::new(draw, serial, drawn.token, Instant::now()));
            if drawn.granted() {
                drop(expected);
                if core.admit(&ticket, true) {
                    return Ok(Lock::new(core.clone(), ticket));
                }
                // Closing, or the reply came after the lease lapsed.
                core.withdraw(&ticket);
                if core.is_closed() {
                    return Err(closed_during_wait(resource));
                }
                if request.wait == Wait::TryOnce {
                    return Err(late_reply(resource, serial));
                }
                continue;
            }
            if request.wait == Wait::TryOnce {
                drop(expected);
                core.withdraw(&ticket);
                return Err(Error::new(
                    ErrorKind::WouldBlock,
                    format!(
                        "\"{resource}\" is taken (turn {indicator}, ticket {serial} withdrawn)"
                    ),
                ));
            }
            let own = expected.attach(&ticket);
            if !core.admit(&ticket, false) {
                core.withdraw(&ticket);
                if core.is_closed() {
                    return Err(closed_during_wait(resource));
                }
                continue;
            }
            if let Some(cancel) = &request.cancel {
                cancel.watch(&ticket);
            }
            let outcome = self.wait_turn(
                &ticket,
                (indicator, pttl),
                (seen, own),
                patience,
                deadline,
                request.cancel.as_ref(),
            );
            drop(expected);
            match outcome {
                Ok(()) => return Ok(Lock::new(core.clone(), ticket)),
                Err(None) => {
                    // The ticket was lost while waiting (or passed while
                    // this process was paused): draw a new one, unless the
                    // locker is closing.
                    core.withdraw(&ticket);
                    if core.is_closed() {
                        return Err(closed_during_wait(resource));
                    }
                    if redraw.is_none() {
                        redraw = Some(Redraw::new(expire));
                    }
                }
                Err(Some(e)) => {
                    core.withdraw(&ticket);
                    return Err(e);
                }
            }
        }
    }

    /// Waits until `t` has the turn. Err(None): the ticket was lost.
    /// `seen`: the `internal` channel's message count before the draw, and
    /// whether the locker's channel stayed subscribed since before the draw.
    fn wait_turn(
        &self,
        t: &Arc<Ticket>,
        drawn: (i64, i64),
        seen: (Option<u64>, bool),
        patience: Duration,
        deadline: Option<Instant>,
        cancel: Option<&crate::Cancel>,
    ) -> std::result::Result<(), Option<Error>> {
        let core = self.core();
        let _waiter = notifier::Registration::new(&core.notifier, t);
        let subscribed = _waiter.seq();
        // The draw's reading still holds if the `internal` subscription was
        // active before the draw and no message came since, and the
        // locker's own channel was subscribed before the draw and still is
        // (so a call for this ticket cannot have been missed).
        let (internal_seen, own) = seen;
        let mut known = match (internal_seen, subscribed) {
            (Some(a), Some(b)) if a == b && own => Some(drawn),
            _ => None,
        };
        let mut outage = Outage::default();
        if subscribed.is_none() {
            core.notifier.kick(core);
            let mut wait = SUBSCRIBE_WAIT;
            if let Some(d) = deadline {
                wait = wait.min(d.saturating_duration_since(Instant::now()));
            }
            t.wait_signal(wait);
        }
        loop {
            if t.is_lost() || !core.in_owner_process() || core.is_closed() {
                return Err(None);
            }
            if cancel.is_some_and(crate::Cancel::is_canceled) {
                return Err(Some(Error::new(
                    ErrorKind::Canceled,
                    format!(
                        "waiting for \"{}\" was canceled (ticket {} withdrawn)",
                        t.resource, t.serial
                    ),
                )));
            }
            t.clear_signal();
            let (indicator, pttl) = match known.take() {
                Some(reading) => reading,
                None => {
                    let call =
                        Call::new(&scripts::CHECK, &[&t.keys.indicator, &t.keys.incarnation])
                            .arg(&t.keys.presence_prefix)
                            .arg(t.serial)
                            .arg(&t.keys.external)
                            .arg(&t.keys.name)
                            .arg(&t.keys.ticket_prefix)
                            .arg(&t.identity)
                            .arg(t.expire_ms())
                            .arg(&t.base);
                    let sent_ms = core.now_ms();
                    let checked = core.run(|c| call.invoke(c));
                    let (indicator, code): (i64, i64) = match checked {
                        Ok(reply) => reply,
                        Err(e) => {
                            outage.endure(e, t, core, deadline)?;
                            continue;
                        }
                    };
                    if code == scripts::GRANTED {
                        // The check renewed the lease.
                        t.refreshed(sent_ms);
                        return if core.grant(t) { Ok(()) } else { Err(None) };
                    }
                    if indicator < 0 || indicator as u64 >= t.serial {
                        return Err(None);
                    }
                    (indicator, code)
                }
            };
            let now = Instant::now();
            if let Some(d) = deadline
                && now >= d
            {
                return Err(Some(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "\"{}\" was not granted in time (turn {indicator}, ticket {} withdrawn)",
                        t.resource, t.serial
                    ),
                )));
            }
            let mut sleep = patience;
            if core.notifier.is_head(t) {
                if pttl == -2 {
                    let age = now.duration_since(t.drawn_at);
                    if age >= core.options.grace {
                        // The ticket at the indicator is dead: step past it
                        // and every other dead ticket before ours.
                        let bumped = core.bump(
                            &t.keys,
                            Some(t.serial - 1),
                            &format!("{} bumps", t.serial),
                            Some(t),
                        );
                        match bumped {
                            Ok(-2) => return Err(None),
                            Ok(_) => {}
                            Err(e) => outage.endure(e, t, core, deadline)?,
                        }
                        continue;
                    }
                    sleep = core.options.grace - age;
                } else if pttl >= 0 {
                    sleep = sleep.min(Duration::from_millis(pttl as u64) + LEASE_MARGIN);
                }
            }
            if let Some(d) = deadline {
                sleep = sleep.min(d.saturating_duration_since(now));
            }
            t.wait_signal(sleep);
        }
    }

    /// A snapshot of the queue of `resource`; `NotFound` when there is none.
    pub fn status(&self, resource: &str) -> Result<Status> {
        self.core().usable()?;
        validate_resource(resource)?;
        status::get(self.core(), resource)
    }

    /// Every resource with a queue (a dispenser key) under this prefix,
    /// sorted by name.
    pub fn resources(&self) -> Result<Vec<String>> {
        self.core().usable()?;
        status::resources(self.core())
    }

    /// Moves the indicator of `resource` past tickets whose presence key is
    /// missing (never back), announces it, and returns it.
    pub fn bump(&self, resource: &str) -> Result<u64> {
        let core = self.core();
        core.usable()?;
        validate_resource(resource)?;
        let keys = core.keys(resource);
        let indicator = core.bump(&keys, None, "", None)?;
        if indicator < 0 {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no such queue: \"{resource}\""),
            ));
        }
        Ok(indicator as u64)
    }

    /// Removes the queue of `resource` (dispenser and indicator) when nobody
    /// is in it after a bump. `Busy` while in use, `NotFound` when absent.
    pub fn reset(&self, resource: &str) -> Result<()> {
        match self.reset_queue(resource, None)? {
            ResetOutcome::Reset => Ok(()),
            ResetOutcome::NotFound => Err(Error::new(
                ErrorKind::NotFound,
                format!("no such queue: \"{resource}\""),
            )),
            ResetOutcome::Busy(n) => Err(Error::new(
                ErrorKind::Busy,
                format!("\"{resource}\" is in use by {n} user(s)"),
            )),
            ResetOutcome::Activity => Err(Error::new(
                ErrorKind::Busy,
                format!("activity detected for \"{resource}\""),
            )),
        }
    }

    /// Reset, atomically: when `expected_dispenser` is given and the
    /// dispenser is no longer that value, nothing is done (`Activity`).
    pub fn reset_queue(
        &self,
        resource: &str,
        expected_dispenser: Option<u64>,
    ) -> Result<ResetOutcome> {
        let core = self.core();
        core.usable()?;
        validate_resource(resource)?;
        let keys = core.keys(resource);
        let call = Call::new(
            &scripts::RESET,
            &[
                &keys.indicator,
                &keys.dispenser,
                &keys.withdrawn,
                &keys.incarnation,
            ],
        )
        .arg(&keys.presence_prefix)
        .arg(
            expected_dispenser
                .map(|d| d.to_string())
                .unwrap_or_default(),
        )
        .arg(&keys.external)
        .arg(&keys.internal)
        .arg(&keys.name)
        .arg(&keys.ticket_prefix);
        let reply: Vec<i64> = core.run(|c| call.invoke(c))?;
        Ok(match reply.as_slice() {
            [0] => ResetOutcome::Reset,
            [-1] => ResetOutcome::NotFound,
            [-2] => ResetOutcome::Activity,
            [-3, n] => ResetOutcome::Busy(*n as u64),
            other => return Err(Error::protocol(format!("unexpected reset reply {other:?}"))),
        })
    }

    /// The `external` channel of `resource`, where its log lines go.
    pub fn external_channel(&self, resource: &str) -> String {
        self.core().keys(resource).external
    }

    /// Opens a connection of its own (not from the pool), for tools that
    /// subscribe, such as `turn follow`.
    pub fn connect(&self) -> Result<Connection> {
        self.core().usable()?;
        self.core().pool.connect_pubsub(None)
    }
}

/// How an acquire that lost its ticket rides out Redis being unreachable
/// while it draws anew: it retries with a growing pause for as long as a
/// lease (from the loss) and its deadline allow.
struct Redraw {
    until: Instant,
    pause: Duration,
}

impl Redraw {
    fn new(lease: Duration) -> Redraw {
        let now = Instant::now();
        Redraw {
            until: now.checked_add(lease).unwrap_or(now),
            pause: Duration::ZERO,
        }
    }

    /// Sleeps before the next try, or gives `e` back when the time is up.
    fn pause(&mut self, e: Error, deadline: Option<Instant>) -> Result<()> {
        let now = Instant::now();
        let until = deadline.map_or(self.until, |d| d.min(self.until));
        if now >= until {
            return Err(e);
        }
        self.pause = (self.pause * 2).clamp(Duration::from_millis(50), Duration::from_secs(1));
        std::thread::sleep(self.pause.min(until - now));
        Ok(())
    }
}

/// The error of a try-lock whose draw was answered after its lease lapsed.
fn late_reply(resource: &str, serial: u64) -> Error {
    Error::new(
        ErrorKind::WouldBlock,
        format!(
            "\"{resource}\": the reply to ticket {serial} came after its lease lapsed (withdrawn)"
        ),
    )
}

/// The error of an acquire whose locker was closed (freed) meanwhile.
fn closed_during_wait(resource: &str) -> Error {
    Error::new(
        ErrorKind::Canceled,
        format!("the locker was closed while acquiring \"{resource}\" (the ticket was withdrawn)"),
    )
}

/// A ticket's nonce expected by the notifier, for as long as it waits.
struct Expected<'a> {
    notifier: &'a Notifier,
    nonce: String,
    /// The locker channel's subscription count before the draw.
    before: Option<u64>,
}

impl<'a> Expected<'a> {
    fn new(notifier: &'a Notifier, nonce: &str) -> Expected<'a> {
        let before = notifier.expect(nonce);
        Expected {
            notifier,
            nonce: nonce.to_string(),
            before,
        }
    }

    /// Attaches the drawn ticket. True when the locker's channel was
    /// subscribed before the draw and has stayed so, and no call for the
    /// ticket came yet: then the draw's reading still holds.
    fn attach(&self, t: &Arc<Ticket>) -> bool {
        let (after, called) = self.notifier.attach(&self.nonce, t);
        self.before.is_some() && after == self.before && !called
    }
}

impl Drop for Expected<'_> {
    fn drop(&mut self) {
        self.notifier.forget(&self.nonce);
    }
}

/// How a waiter rides out Redis being unreachable: it retries with a growing
/// pause while its ticket's lease may still hold and its deadline allows,
/// then gives up (a lapsed ticket is drawn anew, which reports the outage if
/// it goes on).
#[derive(Default)]
struct Outage {
    pause: Duration,
}

impl Outage {
    fn endure(
        &mut self,
        e: Error,
        t: &Ticket,
        core: &Core,
        deadline: Option<Instant>,
    ) -> std::result::Result<(), Option<Error>> {
        if !e.is_connection() {
            return Err(Some(e));
        }
        if t.lapsed(core.now_ms()) {
            return Err(None);
        }
        self.pause = (self.pause * 2).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut pause = self.pause;
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Some(e));
            }
            pause = pause.min(left);
        }
        t.wait_signal(pause);
        Ok(())
    }
}

/// A held lock. Release it with [`Lock::release`] to learn whether it was
/// still held; dropping it releases it too, ignoring the outcome.
pub struct Lock {
    core: Arc<Core>,
    ticket: Arc<Ticket>,
    released: bool,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("resource", &self.ticket.resource)
            .field("serial", &self.ticket.serial)
            .finish()
    }
}

impl Lock {
    fn new(core: Arc<Core>, ticket: Arc<Ticket>) -> Lock {
        Lock {
            core,
            ticket,
            released: false,
        }
    }

    /// The ticket number: strictly increasing per queue while its dispenser
    /// survives, so usable as a fencing token.
    pub fn serial(&self) -> u64 {
        self.ticket.serial
    }

    /// The fencing token: strictly greater than the token of every lock
    /// granted before it on this resource, also across a Redis restart
    /// without persistence (see the README's Guarantees for exactly what
    /// holds). Not the ticket number: [`Lock::serial`] is that.
    pub fn token(&self) -> u64 {
        self.ticket.token
    }

    /// The resource this lock is on.
    pub fn resource(&self) -> &str {
        &self.ticket.resource
    }

    /// The label given at acquire.
    pub fn label(&self) -> &str {
        &self.ticket.label
    }

    /// Ok while held; `Lost` once the heartbeat found the presence key gone
    /// or the indicator moved on, or the lease lapsed by the local clock.
    pub fn check(&self) -> Result<()> {
        if self.ticket.lapsed(self.core.now_ms()) {
            self.ticket.mark_lost();
        }
        if self.ticket.is_held() {
            Ok(())
        } else {
            Err(Error::lost(format!(
                "lock {} on \"{}\" was lost",
                self.ticket.serial, self.ticket.resource
            )))
        }
    }

    /// True once the lock is known lost.
    pub fn is_lost(&self) -> bool {
        self.check().is_err()
    }

    /// Gives the turn to the next ticket, in one round trip. `Lost` when the
    /// lock had been lost; then the indicator is left alone unless it still
    /// pointed at this ticket.
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.core.release(&self.ticket)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.core.release(&self.ticket);
        }
    }
}
