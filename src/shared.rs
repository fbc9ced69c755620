//! What every part of a locker shares: its options, its pool of command
//! connections, its clock, the fork generation it was made in, its closing
//! flag, the nonces of its tickets and the record of its background
//! threads' failures.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::connect::{Conn, Connector};
use crate::error::{Error, ErrorKind, Result};
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::options::{MinReplicas, Options};
use crate::pool::Pool;
use crate::sync::lock;

/// The longest a round trip made once the locker is closing may take, the
/// connection included (the command timeout if shorter): when Redis does
/// not answer within it (paused, stalled, unreachable), closing makes no
/// other round trip (the leases of its tickets run out by themselves).
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_millis(250);

/// The longest closing goes on releasing and withdrawing, all round trips
/// together (each bounded by [`CLOSE_TIMEOUT`]): on a server that answers
/// slowly, what is not released by then is left to its lease (reported
/// lost), so that closing stays quick.
pub(crate) const CLOSE_BUDGET: Duration = Duration::from_secs(1);

/// Resources whose key names a locker keeps ready (it forgets them all
/// when there are more).
const KEYS_CACHED: usize = 1024;

pub(crate) struct Core {
    pub options: Options,
    /// The replica confirmation in force: the options', or the default of
    /// the deployment (see [`Options::min_replicas`]).
    pub durable: MinReplicas,
    pub pool: Pool,
    /// What the locker counts of its work (`Locker::metrics`).
    pub metrics: Arc<Metrics>,
    /// The fork generation this locker was made in (see `fork.rs`).
    generation: u64,
    epoch: Instant,
    closed: AtomicBool,
    next_id: AtomicU64,
    /// The key names of recently locked resources, built once.
    /// Lock order: 5 (see `sync.rs`).
    named: Mutex<HashMap<String, Arc<Keys>>>,
    /// Keyed at random: makes the tickets' nonces.
    nonces: RandomState,
    /// Failures of the background threads (each restarted): how many, and
    /// the last one's text.
    /// Lock order: 5 (see `sync.rs`).
    faults: Mutex<(u64, String)>,
}

impl Core {
    /// Checks the options and connects to `url` once, so that a wrong
    /// address, password or user is reported here.
    pub fn new(url: &str, options: Options) -> Result<Core> {
        options.validate()?;
        let connector = Connector::open(url, options.tls.as_ref())?;
        let mut durable = options.min_replicas.unwrap_or(if connector.is_sentinel() {
            MinReplicas::sentinel_default()
        } else {
            MinReplicas::off()
        });
        if options.min_replicas.is_none() && durable.timeout >= options.command_timeout {
            // The deployment's default waits less than a command may take.
            durable.timeout = options.command_timeout / 2;
        }
        let metrics = Arc::new(Metrics::default());
        let pool = Pool::new(
            connector,
            options.pool_size,
            options.connect_timeout,
            options.command_timeout,
            metrics.clone(),
        );
        // A refused password or user is reported here, not at the first call.
        pool.check()?;
        Ok(Core {
            options,
            durable,
            pool,
            metrics,
            generation: crate::fork::generation(),
            epoch: Instant::now(),
            closed: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            named: Mutex::new(HashMap::new()),
            nonces: RandomState::new(),
            faults: Mutex::new((0, String::new())),
        })
    }

    /// The zero of this locker's clock (`now_ms`).
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

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
    pub fn shared_keys(&self, resource: &str) -> Arc<Keys> {
        let mut named = lock(&self.named);
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

    /// The closing flag itself, for the notifier thread, which watches it.
    pub fn closed_flag(&self) -> &AtomicBool {
        &self.closed
    }

    /// Sets the closing flag (the first step of closing: see
    /// `Engine::shutdown`).
    pub fn set_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub fn in_owner_process(&self) -> bool {
        crate::fork::generation() == self.generation
    }

    /// Ok when the locker may be used: in the process that made it, and
    /// not closed.
    pub fn usable(&self) -> Result<()> {
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
    /// next try repeats it: a draw's first ticket is then looked for and
    /// withdrawn (see [`Core::run_retried`]), a release answers `Lost`.)
    ///
    /// Once the locker is closing, each call is bounded as a whole by
    /// [`CLOSE_TIMEOUT`] (see [`Core::run_within`]), so that neither closing
    /// nor a wait it ends is held up by a server that does not answer.
    pub fn run<T>(&self, f: impl Fn(&mut Conn) -> redis::RedisResult<T>) -> Result<T> {
        self.run_retried(f).map(|(value, _)| value)
    }

    /// [`Core::run`], saying also whether `f` was sent again after a
    /// connection that broke (the server may have carried the first try
    /// out: a draw then looks for the ticket it may have made).
    pub fn run_retried<T>(
        &self,
        f: impl Fn(&mut Conn) -> redis::RedisResult<T>,
    ) -> Result<(T, bool)> {
        let command = self.options.command_timeout;
        if self.is_closed() {
            return self
                .run_within(CLOSE_TIMEOUT.min(command), f)
                .map(|value| (value, false));
        }
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
                Ok(value) => return Ok((value, tries > 0)),
                Err(e) => return Err(self.pool.failed_call(e, command)),
            }
        }
    }

    /// [`Core::run`] bounded as a whole by `limit`: the connection (an idle
    /// one is not checked with a PING of its own, a new one is opened
    /// within what is left), the request and its reply.
    pub fn run_within<T>(
        &self,
        limit: Duration,
        f: impl Fn(&mut Conn) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let command = self.options.command_timeout;
        let end = Instant::now() + limit;
        let left = || {
            end.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        };
        loop {
            let mut conn = self.pool.get_within(left())?;
            let within = left();
            let result = conn.run(|c| {
                c.set_timeouts(Some(within), within)?;
                let result = f(c);
                // A connection that failed is not used again; one that
                // answered goes back to the pool with its usual timeouts.
                if result.is_ok() {
                    c.set_timeouts(Some(command), command)?;
                }
                result
            });
            match result {
                // An idle connection the server had closed (a restart):
                // the server never saw it; another one, within the bound.
                Err(e)
                    if conn.reused
                        && Instant::now() < end
                        && (e.is_connection_dropped() || e.is_connection_refusal()) => {}
                Ok(value) => return Ok(value),
                Err(e) => return Err(self.pool.failed_call(e, within)),
            }
        }
    }

    /// A number unique to this locker (tickets' ids).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A nonce for a new ticket: this host's time in ms (hex; status reads
    /// it as the draw's time), a dot, then 64 random bits and a count,
    /// unique to it.
    pub fn nonce(&self) -> String {
        let n = self.next_id();
        format!("{:x}.{:016x}{n:x}", unix_ms(), self.nonces.hash_one(n))
    }

    /// Records that a background thread failed and was restarted.
    pub fn fault(&self, text: String) {
        let mut faults = lock(&self.faults);
        faults.0 += 1;
        faults.1 = text;
    }

    /// Ok while the background threads never failed; else a `Panic` error
    /// saying how many failures there were and what the last one was.
    pub fn health(&self) -> Result<()> {
        let faults = lock(&self.faults);
        if faults.0 == 0 {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Panic,
            format!("{} background failure(s); the last: {}", faults.0, faults.1),
        ))
    }
}

/// This host's clock in ms since 1970: the time our scripts record with a
/// grant (`P:R:granted`) and a draw (its nonce begins with it, in hex), so
/// that status can tell how long a ticket has held or waited (hosts kept
/// in time agree within milliseconds).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
