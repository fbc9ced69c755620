//! A Redis Cluster of masters on free loopback ports, each node reached
//! through a fault proxy whose port it announces (`cluster-announce-ip`
//! and `cluster-announce-port`), so that clients, the slot table they read
//! and the redirects they follow all cross the proxies.

use std::process::Command;
use std::time::Duration;

use super::proxy::Proxy;
use super::{Redis, eventually};

pub struct Cluster {
    pub nodes: Vec<Redis>,
    /// `proxies[i]` forwards to `nodes[i]`.
    pub proxies: Vec<Proxy>,
}

impl Cluster {
    /// Starts `masters` masters (no replicas), the slots spread evenly.
    pub fn start(masters: usize) -> Cluster {
        Cluster::start_with_replicas(masters, 0)
    }

    /// Starts `masters` masters with `replicas` replicas each (every node
    /// behind its proxy), the slots spread evenly.
    pub fn start_with_replicas(masters: usize, replicas: usize) -> Cluster {
        let nodes: Vec<Redis> = (0..masters * (1 + replicas))
            .map(|_| {
                Redis::start_with(&[
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "{dir}/nodes.conf",
                ])
            })
            .collect();
        let proxies: Vec<Proxy> = nodes.iter().map(|n| Proxy::start(n.port)).collect();
        for (n, p) in nodes.iter().zip(&proxies) {
            let mut c = n.conn();
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("cluster-announce-ip")
                .arg("127.0.0.1")
                .arg("cluster-announce-port")
                .arg(p.port)
                .query(&mut c)
                .expect("the node takes the proxy's port to announce");
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .arg("--cluster-replicas")
            .arg(replicas.to_string())
            .arg("--cluster-yes")
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Cluster { nodes, proxies };
        // Up, every node names `masters` masters by their proxies, and
        // every replica is in sync.
        assert!(
            eventually(Duration::from_secs(30), || {
                cluster.nodes.iter().all(|n| {
                    let mut c = n.conn();
                    let ok = redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query::<String>(&mut c)
                        .is_ok_and(|i| i.contains("cluster_state:ok"));
                    let mut ports = cluster.slot_ports(&mut c);
                    ports.sort();
                    ports.dedup();
                    let synced = redis::cmd("INFO")
                        .arg("replication")
                        .query::<String>(&mut c)
                        .is_ok_and(|i| {
                            i.contains("role:master") || i.contains("master_link_status:up")
                        });
                    ok && synced
                        && ports.len() == masters
                        && ports
                            .iter()
                            .all(|port| cluster.proxies.iter().any(|p| p.port == *port))
                })
            }),
            "the cluster came up, announcing its proxies"
        );
        cluster
    }

    /// The ports CLUSTER SLOTS names as masters, asked of `c`.
    fn slot_ports(&self, c: &mut redis::Connection) -> Vec<u16> {
        let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(c)
            .unwrap_or_default();
        slots
            .into_iter()
            .filter_map(|range| match range {
                redis::Value::Array(parts) => match parts.get(2) {
                    Some(redis::Value::Array(node)) => {
                        redis::from_redis_value::<u16>(node.get(1)?).ok()
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    /// A `redis+cluster://` URL naming every node by its proxy.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .proxies
            .iter()
            .map(|p| format!("127.0.0.1:{}", p.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Latency of every proxy, each way.
    pub fn latency(&self, each_way: Duration) {
        for p in &self.proxies {
            p.latency(each_way, Duration::ZERO);
        }
    }

    /// The node id of `nodes[i]`.
    pub fn id(&self, i: usize) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.nodes[i].conn())
            .unwrap()
    }

    /// The indices of the replicas of `nodes[master]`.
    pub fn replicas_of(&self, master: usize) -> Vec<usize> {
        let id = self.id(master);
        let listed: Vec<String> = redis::cmd("CLUSTER")
            .arg("REPLICAS")
            .arg(&id)
            .query(&mut self.nodes[master].conn())
            .unwrap();
        // Each line: id addr:port@bus flags master-id ...; addr:port is
        // the proxy's.
        listed
            .iter()
            .filter_map(|line| {
                let addr = line.split(' ').nth(1)?;
                let port: u16 = addr.split('@').next()?.rsplit_once(':')?.1.parse().ok()?;
                self.proxies.iter().position(|p| p.port == port)
            })
            .collect()
    }

    /// The index of the node that owns `slot`.
    pub fn owner(&self, slot: u16) -> usize {
        let mut c = self.nodes[0].conn();
        let slots: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut c).unwrap();
        for range in slots {
            let redis::Value::Array(parts) = range else {
                continue;
            };
            let start: u16 = redis::from_redis_value(&parts[0]).unwrap();
            let end: u16 = redis::from_redis_value(&parts[1]).unwrap();
            if (start..=end).contains(&slot) {
                let redis::Value::Array(node) = &parts[2] else {
                    continue;
                };
                let port: u16 = redis::from_redis_value(&node[1]).unwrap();
                return self.proxies.iter().position(|p| p.port == port).unwrap();
            }
        }
        panic!("no owner for slot {slot}");
    }
}
