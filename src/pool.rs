//! A bounded pool of Redis command connections.
//!
//! Hand-written rather than r2d2 because r2d2 runs its own background
//! threads, and a locker promises exactly two (heartbeat and notifier); the
//! pool also has to honour the connect and command timeouts of the options.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::connect::cluster::{Prepare, Router};
use crate::connect::{Conn, Connector, Link};

use crate::error::{Error, ErrorKind, Result};
use crate::metrics::Metrics;
use crate::sync::{lock, wait_timeout};

/// Why a server turned a connection away, when it did.
enum Refused {
    /// AUTH failed (WRONGPASS, or a password for a server without one).
    Credentials,
    /// The server wants a password and none was given (NOAUTH).
    NoPassword,
    /// The user may not run a command (NOPERM).
    Permission,
}

/// The server's refusal of the credentials or of the user in `e`: from the
/// redis crate's kind and the server's code, or from its words where the
/// crate wrapped the reply (a refused SELECT, a cluster's seeds).
fn refused(e: &redis::RedisError) -> Option<Refused> {
    let text = e.to_string();
    let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
    if e.kind() == redis::ErrorKind::AuthenticationFailed
        || e.code() == Some("WRONGPASS")
        || has(&["WRONGPASS", "Password authentication failed"])
    {
        Some(Refused::Credentials)
    } else if e.code() == Some("NOAUTH")
        || has(&["NOAUTH", "Authentication required", "unauthenticated"])
    {
        Some(Refused::NoPassword)
    } else if e.code() == Some("NOPERM") || has(&["NOPERM", "no permissions to run"]) {
        Some(Refused::Permission)
    } else {
        None
    }
}

/// `e` in words: the system's for a network error, the server's reply,
/// or the redis crate's description and detail (without its kind's name).
fn words(e: &redis::RedisError) -> String {
    if e.kind() == redis::ErrorKind::ExtensionError || (e.is_io_error() && e.detail().is_none()) {
        return e.to_string();
    }
    #[allow(deprecated)]
    let what = std::error::Error::description(e).trim_end_matches('.');
    match e.detail() {
        Some(detail) => format!("{what}: {detail}"),
        None => what.to_string(),
    }
}

/// Connections idle longer than this are checked with PING before use, so
/// that a restarted server costs a reconnect rather than a failed call.
const STALE_AFTER: Duration = Duration::from_secs(5);

pub(crate) struct Pool {
    /// The locker's counters (a broken connection counts).
    metrics: Arc<Metrics>,
    connector: Connector,
    max: usize,
    connect_timeout: Duration,
    command_timeout: Duration,
    /// Lock order: 5 (see `sync.rs`).
    state: Mutex<PoolState>,
    available: Condvar,
}

struct PoolState {
    /// Idle connections, when each went idle, and the master's epoch each
    /// was made under (see `connect/sentinel.rs`).
    idle: Vec<(Conn, Instant, u64)>,
    total: usize,
    closed: bool,
    /// Threads waiting for a connection (notify only when there are some).
    waiting: usize,
}

/// A connection checked out of the pool; it goes back on drop unless it was
/// marked broken.
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    broken: bool,
    /// Taken from the idle list (rather than connected just now).
    pub reused: bool,
    /// The master's epoch it was made under.
    epoch: u64,
}

impl Pool {
    pub fn new(
        connector: Connector,
        max: usize,
        connect_timeout: Duration,
        command_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Pool {
        Pool {
            metrics,
            connector,
            max: max.max(1),
            connect_timeout,
            command_timeout,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                total: 0,
                closed: false,
                waiting: 0,
            }),
            available: Condvar::new(),
        }
    }

    fn open(&self, connect_timeout: Duration, read_timeout: Option<Duration>) -> Result<Conn> {
        let conn = self
            .connector
            .connect(connect_timeout)
            .map_err(|e| self.failed(&e))?;
        conn.set_timeouts(read_timeout, self.command_timeout)?;
        Ok(conn)
    }

    /// The master's epoch (see `connect/sentinel.rs`; always 0 but with Sentinel):
    /// read before connecting, a connection made under an earlier epoch
    /// is retired.
    pub fn epoch(&self) -> u64 {
        self.connector.epoch()
    }

    /// Looks at the sentinels (the notifier thread's, often): when the
    /// master changed, the idle connections are closed now (the ones in
    /// use are when they come back) and true is answered.
    pub fn watch_master(&self) -> bool {
        // An ask blocks this thread: a sentinel that does not answer soon
        // is passed for the next.
        let timeout = self.connect_timeout.min(Duration::from_millis(500));
        if !self.connector.watch_master(timeout) {
            return false;
        }
        self.retire();
        true
    }

    /// Asks the sentinels now (after an answer only an old master would
    /// give); closes the idle connections when the master changed.
    pub fn ask_master(&self) {
        let before = self.epoch();
        self.connector.ask_master(self.connect_timeout);
        if self.epoch() != before {
            self.retire();
        }
    }

    /// Closes the idle connections made under an earlier epoch.
    fn retire(&self) {
        let epoch = self.epoch();
        let mut state = lock(&self.state);
        let before = state.idle.len();
        state.idle.retain(|(_, _, e)| *e == epoch);
        state.total -= before - state.idle.len();
        self.available.notify_all();
    }

    /// Opens a connection to one server (the server, the master, a cluster
    /// node), outside the pool's count: for pubsub (the notifier, `turn
    /// follow`) and for the heartbeat's renewals on a server that is not a
    /// cluster.
    pub fn connect_one(&self, read_timeout: Option<Duration>) -> Result<Link> {
        let conn = self
            .connector
            .connect_one(self.connect_timeout)
            .map_err(|e| self.failed(&e))?;
        conn.set_read_timeout(read_timeout)?;
        conn.set_write_timeout(Some(self.command_timeout))?;
        Ok(conn)
    }

    /// Connections to every master (for SCAN over a cluster).
    pub fn connect_masters(&self) -> Result<Vec<Link>> {
        self.connector
            .connect_masters(self.connect_timeout)
            .map_err(|e| self.failed(&e))
    }

    /// Checks a connection out and says PING, so that a wrong address,
    /// password or user is reported when the locker is made. Only a
    /// refused password or command fails the PING: a server that refuses
    /// for now (loading, say) or answers late is left to the first call,
    /// as before.
    pub fn check(&self) -> Result<()> {
        let mut conn = self.get()?;
        match conn.run(|c| redis::cmd("PING").query::<redis::Value>(c)) {
            Err(e) if refused(&e).is_some() => Err(self.failed(&e)),
            // A cluster URL whose seeds are no cluster (or none answers):
            // connecting to each says why.
            Err(e) if e.kind() == redis::ErrorKind::ClusterConnectionNotFound => {
                drop(conn);
                Err(self
                    .connect_masters()
                    .err()
                    .unwrap_or_else(|| self.failed(&e)))
            }
            _ => Ok(()),
        }
    }

    /// A call that failed on a connection made: a connection error says
    /// where (the address: never the password) and, for a reply that did
    /// not come, how long it was waited for. Other errors are the reply's.
    pub fn failed_call(&self, e: redis::RedisError, waited: Duration) -> Error {
        if matches!(
            refused(&e),
            Some(Refused::Credentials | Refused::NoPassword)
        ) {
            // A new connection refused: said as connecting says it.
            return self.failed(&e);
        }
        let timed_out = e.is_timeout();
        let dropped = e.is_connection_dropped();
        let error = Error::from(e);
        if error.kind() != ErrorKind::Connection || error.is_refusal() {
            return error;
        }
        let at = self.connector.address();
        if timed_out {
            return Error::unanswered(format!(
                "redis at {at} did not answer within {} ms",
                waited.as_millis()
            ));
        }
        let text = error.message();
        let text = format!(
            "redis at {at}: {}",
            text.strip_prefix("redis: ").unwrap_or(text)
        );
        if dropped {
            Error::unanswered(text)
        } else {
            Error::connection(text)
        }
    }

    /// A failed connection as the user sees it: what failed, where (the
    /// address: never the password) and why.
    fn failed(&self, e: &redis::RedisError) -> Error {
        let at = self.connector.address();
        Error::connection(match refused(e) {
            Some(Refused::Credentials) => format!(
                "authentication failed at {at}: the server refused the password (an \
                 incorrect one, an unknown or disabled user, or a password for a server \
                 that has none)"
            ),
            Some(Refused::NoPassword) => format!(
                "authentication failed at {at}: the server requires a password and none \
                 was given"
            ),
            Some(Refused::Permission) => format!(
                "permission denied at {at}: the server's ACL refuses this user a command \
                 the library needs ({}); see the README's ACL rule",
                words(e)
            ),
            None => format!("cannot connect to redis at {at}: {}", words(e)),
        })
    }

    /// The heartbeat's per-master pipelines over a cluster; None for one
    /// server (see [`Router`]).
    pub fn router(&self, read_timeout: Option<Duration>, prepare: Prepare) -> Option<Router> {
        self.connector.router(
            self.connect_timeout,
            read_timeout,
            self.command_timeout,
            prepare,
        )
    }

    /// True for a set of Sentinels naming the master.
    pub fn is_sentinel(&self) -> bool {
        self.connector.is_sentinel()
    }

    /// True for a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.connector.is_cluster()
    }

    /// Checks a connection out, opening one when none is idle and the pool
    /// is below its bound, or waiting (at most the command timeout) for one.
    pub fn get(&self) -> Result<Pooled<'_>> {
        self.take(None)
    }

    /// Checks a connection out within `limit`, all included: an idle one
    /// is not checked with a PING (the caller's command, under timeouts of
    /// its own, is the check), a new one is opened within it, and a free
    /// one is waited for that long at most (for closing, which must stay
    /// quick whatever the server does).
    pub fn get_within(&self, limit: Duration) -> Result<Pooled<'_>> {
        self.take(Some(limit))
    }

    fn take(&self, limit: Option<Duration>) -> Result<Pooled<'_>> {
        let started = Instant::now();
        // Set when the first wait begins: a free connection costs no clock.
        let mut deadline: Option<Instant> = limit.map(|l| started + l);
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return Err(Error::connection("the locker is closed"));
            }
            if let Some((mut conn, since, epoch)) = state.idle.pop() {
                drop(state);
                if epoch != self.epoch()
                    || (limit.is_none()
                        && since.elapsed() >= STALE_AFTER
                        && !redis::ConnectionLike::check_connection(&mut conn))
                {
                    self.discard_one();
                    state = lock(&self.state);
                    continue;
                }
                return Ok(Pooled {
                    pool: self,
                    conn: Some(conn),
                    broken: false,
                    reused: true,
                    epoch,
                });
            }
            if state.total < self.max {
                state.total += 1;
                drop(state);
                let epoch = self.epoch();
                let connect_timeout = match limit {
                    Some(l) => self
                        .connect_timeout
                        .min(l.saturating_sub(started.elapsed()))
                        .max(Duration::from_millis(1)),
                    None => self.connect_timeout,
                };
                return match self.open(connect_timeout, Some(self.command_timeout)) {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                        broken: false,
                        reused: false,
                        epoch,
                    }),
                    Err(e) => {
                        self.discard_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            let deadline = *deadline.get_or_insert_with(|| {
                now.checked_add(self.command_timeout)
                    .unwrap_or_else(|| now + Duration::from_secs(86_400))
            });
            if now >= deadline {
                return Err(Error::connection(format!(
                    "no redis connection became free within {} ms (pool size {})",
                    limit.unwrap_or(self.command_timeout).as_millis(),
                    self.max
                )));
            }
            state.waiting += 1;
            state = wait_timeout(&self.available, state, deadline - now);
            state.waiting -= 1;
        }
    }

    fn discard_one(&self) {
        let mut state = lock(&self.state);
        state.total -= 1;
        if state.waiting > 0 {
            self.available.notify_one();
        }
    }

    /// After a broken connection, the idle ones are likely broken too (the
    /// server went away): drop them all.
    fn discard_idle(&self) {
        let mut state = lock(&self.state);
        let n = state.idle.len();
        state.idle.clear();
        state.total -= n;
        self.available.notify_all();
    }

    /// Closes every idle connection and refuses further use.
    pub fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        let n = state.idle.len();
        state.idle.clear();
        state.total -= n;
        self.available.notify_all();
    }
}

impl Pooled<'_> {
    /// Runs `f` on the connection; an error from the network marks the
    /// connection broken so it is not reused.
    pub fn run<T>(
        &mut self,
        f: impl FnOnce(&mut Conn) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let conn = self.conn.as_mut().expect("connection present until drop");
        let result = f(conn);
        if let Err(e) = &result
            && crate::error::is_connection_error(e)
        {
            self.broken = true;
        }
        result
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let conn = self.conn.take();
        if !self.broken && self.epoch != self.pool.epoch() {
            // Made for a master that is not the master any more.
            drop(conn);
            self.pool.discard_one();
            return;
        }
        if self.broken {
            drop(conn);
            self.pool.metrics.reconnection();
            self.pool.discard_one();
            self.pool.discard_idle();
            return;
        }
        let mut state = lock(&self.pool.state);
        if let Some(conn) = conn {
            if state.closed {
                state.total -= 1;
            } else {
                state.idle.push((conn, Instant::now(), self.epoch));
            }
        }
        if state.waiting > 0 {
            self.pool.available.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error a server's reply `-TEXT` makes.
    fn reply(text: &str) -> redis::RedisError {
        redis::parse_redis_value(format!("-{text}\r\n").as_bytes())
            .and_then(|v| v.extract_error())
            .expect_err("an error reply")
    }

    #[test]
    fn a_refused_password_a_missing_one_and_a_refused_user_are_told_apart() {
        let credentials = [
            reply("WRONGPASS invalid username-password pair or user is disabled."),
            (
                redis::ErrorKind::AuthenticationFailed,
                "Password authentication failed",
            )
                .into(),
        ];
        for e in &credentials {
            assert!(matches!(refused(e), Some(Refused::Credentials)), "{e}");
        }
        for e in [
            reply("NOAUTH Authentication required."),
            reply("ERR Protocol error: unauthenticated multibulk length"),
            (
                redis::ErrorKind::ResponseError,
                "Redis server refused to switch database",
                "Authentication required.".to_string(),
            )
                .into(),
        ] {
            assert!(matches!(refused(&e), Some(Refused::NoPassword)), "{e}");
        }
        let e = reply("NOPERM User u has no permissions to run the 'ping' command");
        assert!(matches!(refused(&e), Some(Refused::Permission)), "{e}");
        assert_eq!(
            words(&e),
            "NOPERM: User u has no permissions to run the 'ping' command"
        );
        for e in [
            reply("LOADING Redis is loading the dataset in memory"),
            reply("ERR unknown command"),
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
        ] {
            assert!(refused(&e).is_none(), "{e}");
        }
    }

    #[test]
    fn words_leave_out_the_redis_crates_kind_names() {
        let e: redis::RedisError = (
            redis::ErrorKind::IoError,
            "It failed to check startup nodes.",
            "Failed to connect to each cluster node (h:1: refused)".to_string(),
        )
            .into();
        assert_eq!(
            words(&e),
            "It failed to check startup nodes: Failed to connect to each cluster node (h:1: refused)"
        );
        let e: redis::RedisError = (
            redis::ErrorKind::MasterDown,
            "the server the sentinels name is not a master yet",
        )
            .into();
        assert_eq!(
            words(&e),
            "the server the sentinels name is not a master yet"
        );
    }
}
