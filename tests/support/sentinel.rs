//! A master, a replica (or more) and three sentinels watching them as
//! "mymaster", all on free loopback ports.

use std::time::Duration;

use super::{Redis, eventually};

/// A sentinel watching the master on port `master` as "mymaster" (quorum
/// 2, down after 2 s: with 1 s, a sentinel on a loaded machine that has
/// not yet heard from a master it just promoted calls it down and fails
/// back; see [`Unrest`]).
pub fn sentinel(master: u16) -> Redis {
    Redis::start_custom(
        &["{dir}/sentinel.conf"],
        &["--sentinel"],
        false,
        move |_, dir| {
            std::fs::write(
                dir.join("sentinel.conf"),
                format!(
                    "sentinel monitor mymaster 127.0.0.1 {master} 2\n\
                     sentinel down-after-milliseconds mymaster 2000\n\
                     sentinel failover-timeout mymaster 5000\n\
                     sentinel parallel-syncs mymaster 1\n"
                ),
            )
            .unwrap();
        },
    )
}

/// The master's port as sentinel `s` sees it.
pub fn master_port(s: &Redis) -> Option<u16> {
    let (_, port): (String, u16) = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg("mymaster")
        .query(&mut s.conn())
        .ok()?;
    Some(port)
}

/// A replicated master under three sentinels, ready for a failover.
pub struct Sentinels {
    pub master: Redis,
    /// The replica Sentinel promotes in a failover.
    pub replica: Redis,
    /// Replicas beyond the first (see [`Sentinels::start_with_replicas`]),
    /// with a worse `replica-priority`, so that Sentinel promotes
    /// `replica`; empty for [`Sentinels::start`].
    pub more: Vec<Redis>,
    pub sentinels: Vec<Redis>,
}

/// True when `r` replicates the server on `master` and its link is up.
pub fn synced_to(r: &Redis, master: u16) -> bool {
    replication(r).is_some_and(|info| {
        info.contains("master_link_status:up")
            && info
                .lines()
                .any(|l| l.trim() == format!("master_port:{master}"))
    })
}

impl Sentinels {
    /// Starts them (one replica) and waits until the replica is in sync
    /// and every sentinel sees a quorum and the replica.
    pub fn start() -> Sentinels {
        Sentinels::start_set(1, &[])
    }

    /// Like [`Sentinels::start`] with `n` replicas (at least 1), every
    /// server syncing at once (`repl-diskless-sync-delay 0`, as after
    /// [`Sentinels::sync_at_once`]). The replicas beyond the first (in
    /// `more`) have `replica-priority` 200 (the first has Redis's default,
    /// 100), so that a failover promotes `replica` and the helpers naming
    /// it hold. Returns once every replica is in sync and every sentinel
    /// sees a quorum and all `n` replicas.
    pub fn start_with_replicas(n: usize) -> Sentinels {
        assert!(n >= 1, "a Sentinel set needs a replica");
        Sentinels::start_set(n, &["--repl-diskless-sync-delay", "0"])
    }

    /// `n` replicas; `extra`: arguments of every server.
    fn start_set(n: usize, extra: &[&str]) -> Sentinels {
        let mut master_args = vec!["--save", "", "--appendonly", "no"];
        master_args.extend_from_slice(extra);
        let master = Redis::start_with(&master_args);
        let replica_of = master.port.to_string();
        let replica_args = |priority: &'static str| {
            let mut args = vec![
                "--save",
                "",
                "--replicaof",
                "127.0.0.1",
                &replica_of,
                "--replica-priority",
                priority,
            ];
            args.extend_from_slice(extra);
            args
        };
        let replica = Redis::start_with(&replica_args("100"));
        let more: Vec<Redis> = (1..n)
            .map(|_| Redis::start_with(&replica_args("200")))
            .collect();
        assert!(
            eventually(Duration::from_secs(20), || {
                std::iter::once(&replica)
                    .chain(&more)
                    .all(|r| synced_to(r, master.port))
            }),
            "the replicas never synced"
        );
        let sentinels: Vec<Redis> = (0..3).map(|_| sentinel(master.port)).collect();
        assert!(
            eventually(Duration::from_secs(30), || {
                sentinels.iter().all(|s| {
                    redis::cmd("SENTINEL")
                        .arg("CKQUORUM")
                        .arg("mymaster")
                        .query::<String>(&mut s.conn())
                        .is_ok()
                        && redis::cmd("SENTINEL")
                            .arg("REPLICAS")
                            .arg("mymaster")
                            .query::<Vec<redis::Value>>(&mut s.conn())
                            .is_ok_and(|v| v.len() >= n)
                })
            }),
            "the sentinels never agreed"
        );
        Sentinels {
            master,
            replica,
            more,
            sentinels,
        }
    }

    /// The `redis+sentinel://` URL of the set.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/mymaster/0", hosts.join(","))
    }

    /// Kills the master and waits (at most `limit`) until the first
    /// sentinel names the replica as master; true when it did.
    pub fn fail_over(&mut self, limit: Duration) -> bool {
        self.master.kill();
        let replica = self.replica.port;
        eventually(limit, || master_port(&self.sentinels[0]) == Some(replica))
    }
}

/// The `role` a server's `INFO replication` shows ("master" or "slave");
/// None when it does not answer within 2 s.
pub fn role(r: &Redis) -> Option<String> {
    replication(r)?
        .lines()
        .find_map(|l| l.strip_prefix("role:"))
        .map(|r| r.trim().to_string())
}

/// `INFO replication` of `r`; None when it does not answer within 2 s.
fn replication(r: &Redis) -> Option<String> {
    let mut c = conn_within(r.port, Duration::from_secs(2))?;
    redis::cmd("INFO").arg("replication").query(&mut c).ok()
}

/// True when `r` is a master with a replica in sync (`state=online`).
pub fn has_replica_online(r: &Redis) -> bool {
    replication(r).is_some_and(|info| {
        info.contains("role:master")
            && info
                .lines()
                .any(|l| l.starts_with("slave") && l.contains("state=online"))
    })
}

impl Sentinels {
    /// True when every sentinel names the server on `port` as master.
    pub fn all_name(&self, port: u16) -> bool {
        self.sentinels.iter().all(|s| master_port(s) == Some(port))
    }

    /// Waits (at most `limit`) until every sentinel names the replica as
    /// master; true when they do.
    pub fn switched(&self, limit: Duration) -> bool {
        let replica = self.replica.port;
        eventually(limit, || self.all_name(replica))
    }

    /// Asks the first sentinel for a planned failover (`SENTINEL FAILOVER
    /// mymaster`), asking again while it answers an error (no replica fit
    /// to promote yet, a failover in progress) for at most 20 s. The master
    /// stays up: Sentinel demotes it later (about 10 s after the switch).
    pub fn planned_failover(&self) {
        let mut last = String::new();
        let ok = eventually(Duration::from_secs(20), || {
            match redis::cmd("SENTINEL")
                .arg("FAILOVER")
                .arg("mymaster")
                .query::<String>(&mut self.sentinels[0].conn())
            {
                Ok(_) => true,
                Err(e) => {
                    last = e.to_string();
                    std::thread::sleep(Duration::from_millis(200));
                    false
                }
            }
        });
        assert!(ok, "SENTINEL FAILOVER refused: {last}");
    }

    /// Makes every server start a full sync at once
    /// (`repl-diskless-sync-delay 0`; Redis 7 waits 5 s by default for
    /// more replicas): a demoted master is in sync with the new one a
    /// moment after it is told to replicate, not 5 s later.
    pub fn sync_at_once(&self) {
        for r in [&self.master, &self.replica].into_iter().chain(&self.more) {
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("repl-diskless-sync-delay")
                .arg("0")
                .query(&mut r.conn())
                .unwrap();
        }
    }

    /// Tells the old master (after a switch) to replicate the new one, as
    /// Sentinel does about 10 s after the switch, or an operator at once.
    pub fn demote_old_master(&self) {
        let _: () = redis::cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(self.replica.port)
            .query(&mut self.master.conn())
            .unwrap();
    }
}

/// Watches a Sentinel set for unrest the test did not cause, and records
/// it as a fault ("sentinel unrest") in a history, so that the checker's
/// recovery bound counts from the end of every failover, planned or not.
///
/// On a loaded machine Sentinel fails over on its own: a sentinel that
/// has not heard from a freshly promoted master within its
/// `down-after-milliseconds` calls it down and promotes the old master
/// back, and the master it left keeps taking writes until Sentinel
/// demotes it about 10 s later. Nobody can be granted across such a
/// failover (grants wait for a replica), and a test that ended its own
/// fault before it would see waiters stranded that are not.
///
/// The set is calm when every sentinel names the same master, none sees
/// it down or is failing it over, and that server is a master (with a
/// replica in sync, when `replica_needed`: grants wait for one by
/// default). Stopped (ending an open fault) when dropped.
pub struct Unrest {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// When the set last became calm (`now_ns`), 0 while it is not.
    calm_since: std::sync::Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sentinels {
    /// Starts watching for unrest (see [`Unrest`]), recording it in
    /// `history`. Call it once the set is calm (after `start`).
    pub fn record_unrest(&self, history: &super::history::History, replica_needed: bool) -> Unrest {
        use super::history::Sink as _;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let calm_since = Arc::new(AtomicU64::new(super::now_ns()));
        let sentinels: Vec<u16> = self.sentinels.iter().map(|s| s.port).collect();
        let history = history.clone();
        let thread = std::thread::spawn({
            let (stop, calm_since) = (stop.clone(), calm_since.clone());
            move || {
                let mut open = false;
                while !stop.load(Ordering::Acquire) {
                    let calm = is_calm(&sentinels, replica_needed);
                    if calm == open {
                        if calm {
                            history.fault_end("sentinel unrest");
                            calm_since.store(super::now_ns(), Ordering::Release);
                        } else {
                            history.fault_start("sentinel unrest");
                            calm_since.store(0, Ordering::Release);
                        }
                        open = !calm;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                if open {
                    history.fault_end("sentinel unrest");
                }
            }
        });
        Unrest {
            stop,
            calm_since,
            thread: Some(thread),
        }
    }
}

impl Unrest {
    /// Waits (at most `limit`) until the set is calm; returns since when
    /// (`now_ns`), or None when it never was within `limit`.
    pub fn wait_calm(&self, limit: Duration) -> Option<u64> {
        let mut since = None;
        eventually(limit, || {
            let t = self.calm_since.load(std::sync::atomic::Ordering::Acquire);
            since = (t != 0).then_some(t);
            since.is_some()
        });
        since
    }
}

impl Unrest {
    /// Stops watching, ending an open fault (before a history is checked).
    pub fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Unrest {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A connection to the server on `port` whose connect, reads and writes
/// each give up after `limit` (never hang on a stopped server).
fn conn_within(port: u16, limit: Duration) -> Option<redis::Connection> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .ok()?
        .get_connection_with_timeout(limit)
        .ok()?;
    c.set_read_timeout(Some(limit)).ok()?;
    c.set_write_timeout(Some(limit)).ok()?;
    Some(c)
}

/// See [`Unrest`].
fn is_calm(sentinels: &[u16], replica_needed: bool) -> bool {
    let mut named = None;
    for &s in sentinels {
        let Some(mut c) = conn_within(s, Duration::from_millis(500)) else {
            return false;
        };
        let Ok(fields) = redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg("mymaster")
            .query::<Vec<String>>(&mut c)
        else {
            return false;
        };
        let field = |name: &str| {
            fields
                .chunks(2)
                .find(|kv| kv[0] == name)
                .and_then(|kv| kv.get(1).cloned())
        };
        if field("flags").as_deref() != Some("master") {
            return false;
        }
        let port = field("port").and_then(|p| p.parse::<u16>().ok());
        if port.is_none() || named.is_some_and(|n| Some(n) != port) {
            return false;
        }
        named = port;
    }
    let Some(mut c) = named.and_then(|p| conn_within(p, Duration::from_millis(500))) else {
        return false;
    };
    let Ok(info) = redis::cmd("INFO")
        .arg("replication")
        .query::<String>(&mut c)
    else {
        return false;
    };
    info.contains("role:master")
        && (!replica_needed
            || info
                .lines()
                .any(|l| l.starts_with("slave") && l.contains("state=online")))
}
