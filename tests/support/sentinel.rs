//! A master, a replica and three sentinels watching them as "mymaster",
//! all on free loopback ports.

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

/// A replicated pair under three sentinels, ready for a failover.
pub struct Sentinels {
    pub master: Redis,
    pub replica: Redis,
    pub sentinels: Vec<Redis>,
}

impl Sentinels {
    /// Starts them and waits until the replica is in sync and every
    /// sentinel sees a quorum and the replica.
    pub fn start() -> Sentinels {
        let master = Redis::start();
        let replica_of = master.port.to_string();
        let replica = Redis::start_with(&["--save", "", "--replicaof", "127.0.0.1", &replica_of]);
        assert!(
            eventually(Duration::from_secs(20), || {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut replica.conn())
                    .unwrap_or_default();
                info.contains("master_link_status:up")
            }),
            "the replica never synced"
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
                            .is_ok_and(|v| !v.is_empty())
                })
            }),
            "the sentinels never agreed"
        );
        Sentinels {
            master,
            replica,
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
