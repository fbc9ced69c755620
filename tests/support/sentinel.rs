//! A master, a replica (or more) and three sentinels watching them as
//! "mymaster", all on free loopback ports.

use std::time::Duration;

use super::{Redis, eventually};

/// A sentinel watching the master on port `master` as "mymaster" (quorum
/// 2, down after 1 s).
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
                     sentinel down-after-milliseconds mymaster 1000\n\
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
/// Never ask a stopped server (see [`role`]).
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
/// None when it does not answer. Never ask a stopped server: the
/// connection has no read timeout.
pub fn role(r: &Redis) -> Option<String> {
    replication(r)?
        .lines()
        .find_map(|l| l.strip_prefix("role:"))
        .map(|r| r.trim().to_string())
}

/// `INFO replication` of `r`; None when it does not answer within 2 s to
/// connect (never ask a stopped server: the read has no timeout).
fn replication(r: &Redis) -> Option<String> {
    let mut c = redis::Client::open(r.url())
        .ok()?
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
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
