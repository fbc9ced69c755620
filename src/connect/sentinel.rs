//! Following the master of a Sentinel set.
//!
//! The master's address is asked of the sentinels at every new connection
//! and learned; each time it changes, the master's *epoch* grows, and every
//! connection made under an earlier epoch is retired by its user (the pool,
//! the heartbeat, the notifier): so every part of a locker talks to the
//! same master. An old master can go on accepting writes for seconds after
//! a failover (Sentinel demotes it later); lockers that kept talking to it
//! would hold a queue of their own.
//!
//! Changes are learned three ways: a new connection's ask; the sentinels'
//! `+switch-master` messages, read without blocking by the notifier thread
//! ([`Sentinel::watch`]) from a subscription to one sentinel; and an ask on
//! a schedule, in case a message is lost.
//!
//! Written here rather than with the redis crate's `SentinelClient`, whose
//! blocking client asks the sentinels without a timeout and does not say
//! which master it chose.

use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::{ConnectionAddr, ConnectionInfo, RedisConnectionInfo, RedisResult};

use super::link::Link;
use crate::sync::lock;

/// How often the sentinels are asked when no message came.
const ASK_EVERY: Duration = Duration::from_secs(1);
/// How soon the subscription to a sentinel is tried again after it failed.
const RESUBSCRIBE: Duration = Duration::from_millis(500);
/// The least time between two reads of the subscription.
const READ_EVERY: Duration = Duration::from_millis(50);

pub(crate) struct Sentinel {
    sentinels: Vec<(String, u16)>,
    name: String,
    /// The master's database, user and password.
    redis: RedisConnectionInfo,
    /// The master as last learned.
    /// Lock order: 5 (see `sync.rs`).
    known: Mutex<Option<(String, u16)>>,
    epoch: AtomicU64,
    /// The sentinel that answered last (asked first next time).
    first: AtomicU64,
    /// Lock order: 5 (see `sync.rs`).
    watch: Mutex<SwitchWatch>,
}

/// The notifier thread's watch on the sentinels.
struct SwitchWatch {
    /// A subscription to `+switch-master` on one sentinel, non-blocking.
    sub: Option<TcpStream>,
    next_subscribe: Instant,
    next_read: Instant,
    next_ask: Instant,
}

impl Sentinel {
    pub fn new(sentinels: Vec<(String, u16)>, name: String, redis: RedisConnectionInfo) -> Self {
        let now = Instant::now();
        Sentinel {
            sentinels,
            name,
            redis,
            known: Mutex::new(None),
            epoch: AtomicU64::new(0),
            first: AtomicU64::new(0),
            watch: Mutex::new(SwitchWatch {
                sub: None,
                next_subscribe: now,
                next_read: now,
                next_ask: now + ASK_EVERY,
            }),
        }
    }

    /// The master's epoch: it grows each time the master's address
    /// changes. A connection made under an earlier epoch is retired.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn known(&self) -> MutexGuard<'_, Option<(String, u16)>> {
        lock(&self.known)
    }

    /// Takes `addr` as the master; true when it changed (the epoch grew).
    fn learn(&self, addr: &(String, u16)) -> bool {
        let mut known = self.known();
        if known.as_ref() == Some(addr) {
            return false;
        }
        let first = known.is_none();
        *known = Some(addr.clone());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        !first
    }

    /// Asks the sentinels in turn for the master's address (each within
    /// `timeout`) and learns it.
    pub fn ask(&self, timeout: Duration) -> RedisResult<(String, u16)> {
        let n = self.sentinels.len();
        let first = self.first.load(Ordering::Relaxed) as usize % n.max(1);
        // What each sentinel answered, for the error: "HOST:PORT: why; ...".
        let mut tried = Vec::with_capacity(n);
        let mut unknown = false;
        for i in 0..n {
            let k = (first + i) % n;
            let (host, port) = &self.sentinels[k];
            let info = ConnectionInfo {
                addr: ConnectionAddr::Tcp(host.clone(), *port),
                redis: RedisConnectionInfo::default(),
            };
            let asked = Link::connect(&info, None, Some(timeout)).and_then(|mut c| {
                c.set_read_timeout(Some(timeout))?;
                c.set_write_timeout(Some(timeout))?;
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(&self.name)
                    .query::<Option<(String, u16)>>(&mut c)
            });
            match asked {
                Ok(Some(addr)) => {
                    self.first.store(k as u64, Ordering::Relaxed);
                    self.learn(&addr);
                    return Ok(addr);
                }
                Ok(None) => {
                    unknown = true;
                    tried.push(format!(
                        "{}: no master named {:?}",
                        host_port(host, *port),
                        self.name
                    ));
                }
                Err(e) => tried.push(format!("{}: {e}", host_port(host, *port))),
            }
        }
        let tried = tried.join("; ");
        Err(if unknown {
            (
                redis::ErrorKind::MasterDown,
                "no sentinel knows the master",
                tried,
            )
                .into()
        } else {
            (redis::ErrorKind::IoError, "no sentinel answered", tried).into()
        })
    }

    /// Where connections go, for error messages: the master (its address
    /// once learned) and the sentinels that are asked for it.
    pub fn address(&self) -> String {
        let sentinels = self
            .sentinels
            .iter()
            .map(|(h, p)| host_port(h, *p))
            .collect::<Vec<_>>()
            .join(", ");
        match self.known().as_ref() {
            Some((host, port)) => format!(
                "{}, the master {:?} named by the sentinels {sentinels}",
                host_port(host, *port),
                self.name
            ),
            None => format!("the master {:?} of the sentinels {sentinels}", self.name),
        }
    }

    /// A new connection to the master the sentinels name now. (Its user
    /// reads the epoch before calling: a change learned meanwhile retires
    /// it.)
    pub fn connect(&self, timeout: Duration) -> RedisResult<Link> {
        let (host, port) = self.ask(timeout)?;
        let info = ConnectionInfo {
            addr: ConnectionAddr::Tcp(host, port),
            redis: self.redis.clone(),
        };
        let mut conn = Link::connect(&info, None, Some(timeout))?;
        conn.set_read_timeout(Some(timeout))?;
        // A replica being promoted, or an old master being demoted, is not
        // the master yet.
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn)?;
        let is_master = matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master");
        if !is_master {
            return Err(redis::RedisError::from((
                redis::ErrorKind::MasterDown,
                "the server the sentinels name is not a master yet",
            )));
        }
        Ok(conn)
    }

    /// The notifier thread's look at the sentinels, which never blocks
    /// longer than an ask: reads the `+switch-master` subscription when
    /// something came, and asks the sentinels on news or on schedule.
    /// True when the master changed.
    pub fn watch(&self, timeout: Duration) -> bool {
        let mut watch = lock(&self.watch);
        let now = Instant::now();
        let mut news = false;
        if watch.sub.is_none() && now >= watch.next_subscribe {
            watch.sub = self.subscribe(timeout);
            watch.next_subscribe = now + RESUBSCRIBE;
            // Messages may have been missed while not subscribed.
            news = true;
        }
        if now >= watch.next_read {
            watch.next_read = now + READ_EVERY;
            if let Some(sub) = watch.sub.as_mut() {
                let mut buf = [0u8; 4096];
                loop {
                    match sub.read(&mut buf) {
                        Ok(0) => {
                            watch.sub = None;
                            news = true;
                            break;
                        }
                        Ok(_) => news = true,
                        Err(e) if e.kind() == IoKind::WouldBlock => break,
                        Err(e) if e.kind() == IoKind::Interrupted => {}
                        Err(_) => {
                            watch.sub = None;
                            news = true;
                            break;
                        }
                    }
                }
            }
        }
        if !news && now < watch.next_ask {
            return false;
        }
        watch.next_ask = now + ASK_EVERY;
        drop(watch);
        let before = self.epoch();
        let _ = self.ask(timeout);
        self.epoch() != before
    }

    /// Subscribes to `+switch-master` on the first sentinel that accepts.
    fn subscribe(&self, timeout: Duration) -> Option<TcpStream> {
        const SUBSCRIBE: &[u8] = b"*2\r\n$9\r\nSUBSCRIBE\r\n$14\r\n+switch-master\r\n";
        for (host, port) in &self.sentinels {
            let Ok(addrs) = (host.as_str(), *port).to_socket_addrs() else {
                continue;
            };
            for addr in addrs {
                let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
                    continue;
                };
                if s.set_write_timeout(Some(timeout)).is_ok()
                    && s.write_all(SUBSCRIBE).is_ok()
                    && s.set_nonblocking(true).is_ok()
                {
                    return Some(s);
                }
            }
        }
        None
    }
}

/// `host:port`, an IPv6 host in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Sentinel {
        Sentinel::new(
            vec![("127.0.0.1".to_string(), 1)],
            "m".to_string(),
            RedisConnectionInfo::default(),
        )
    }

    #[test]
    fn the_epoch_grows_when_the_master_changes_and_only_then() {
        let s = set();
        let a = ("10.0.0.1".to_string(), 6379);
        let b = ("10.0.0.2".to_string(), 6379);
        assert_eq!(s.epoch(), 0);
        // The first master learned is no change, but starts epoch 1.
        assert!(!s.learn(&a));
        assert_eq!(s.epoch(), 1);
        assert!(!s.learn(&a));
        assert_eq!(s.epoch(), 1);
        assert!(s.learn(&b));
        assert_eq!(s.epoch(), 2);
        // Back to the first one (a sentinel that lags): a change again.
        assert!(s.learn(&a));
        assert_eq!(s.epoch(), 3);
    }

    #[test]
    fn the_address_names_the_sentinels_and_then_the_master() {
        let s = Sentinel::new(
            vec![("127.0.0.1".to_string(), 1), ("[::1]".to_string(), 2)],
            "m".to_string(),
            RedisConnectionInfo::default(),
        );
        assert_eq!(
            s.address(),
            "the master \"m\" of the sentinels 127.0.0.1:1, [::1]:2"
        );
        s.learn(&("::1".to_string(), 6379));
        assert_eq!(
            s.address(),
            "[::1]:6379, the master \"m\" named by the sentinels 127.0.0.1:1, [::1]:2"
        );
    }

    #[test]
    fn no_sentinel_that_answers_is_an_error_not_a_hang() {
        // Port 1 on loopback refuses at once.
        let s = set();
        let e = s.ask(Duration::from_millis(200)).unwrap_err();
        assert!(
            e.to_string().contains("127.0.0.1:1: Connection refused"),
            "{e}"
        );
        assert!(s.ask(Duration::from_millis(200)).is_err());
        assert!(s.connect(Duration::from_millis(200)).is_err());
        assert!(!s.watch(Duration::from_millis(200)));
        assert_eq!(s.epoch(), 0);
    }
}
