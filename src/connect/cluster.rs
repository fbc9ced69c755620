//! Pipelines routed by slot over a Redis Cluster, for the heartbeat: one
//! connection per master and one pipeline per master per round, written to
//! every master before any reply is read (so a beat costs about one round
//! trip, whatever the number of masters), MOVED and ASK followed in a next
//! round of pipelines, and every other doubt answered as "unsure" for the
//! commands it touched, never as a wrong reply.
//!
//! Hand-written rather than the redis crate's `ClusterPipeline` (0.32): that
//! one also writes a pipeline per node before reading, but one unreachable
//! master fails the whole pipeline (so no lock of any master would be
//! renewed while one master fails over), and each command answered MOVED or
//! ASK is sent again alone, one round trip each (a failover moving a third
//! of 10,000 queues would cost thousands of round trips in one beat).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::{ConnectionAddr, ConnectionInfo, RedisError, Value};

use super::link::Link;

/// Slots of a Redis Cluster.
const SLOTS: usize = 16384;
/// Rounds of redirects followed in one send (a slot moved, then asked).
const ROUNDS: usize = 3;

/// The slot of a key: CRC16 (XMODEM) of its hash tag (the text between the
/// first `{` and the next `}`, when not empty) or of the whole key.
pub(crate) fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS as u16
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Readies a new connection to a node (loads the scripts it will call).
pub(crate) type Prepare = fn(&mut Link) -> redis::RedisResult<()>;

/// What [`Router::send`] got back.
pub(crate) struct Sent {
    /// The reply of each command, in order; None when unsure (its node
    /// could not be reached, its slot is moving or the cluster is down, a
    /// redirect led to another redirect too often).
    pub replies: Vec<Option<Value>>,
    /// Per command: its node's `WAIT` (see [`Router::send`]) answered fewer
    /// replicas than asked for, or never came: its write is not confirmed.
    pub unconfirmed: Vec<bool>,
    /// Pipelines written and read (one per master per round) and other
    /// requests made (slot table reads, script loads).
    pub round_trips: usize,
}

/// Where a round writes what it learned: each command's reply, whether
/// its write is unconfirmed, and the commands for the next round.
type Results<'a> = (
    &'a mut [Option<Value>],
    &'a mut [bool],
    &'a mut Vec<(usize, Target)>,
);

/// Where a command goes in a round.
#[derive(Clone)]
enum Target {
    /// To the master of its slot.
    Slot,
    /// To this node, after ASKING (a slot being migrated).
    Ask(String),
}

/// The heartbeat's connections to a cluster: one per master, and the map
/// of slots to masters.
pub(crate) struct Router {
    /// The seed nodes, asked for the slot table when no master answers.
    seeds: Vec<ConnectionInfo>,
    auth: (Option<String>, Option<String>),
    connect_timeout: Duration,
    read_timeout: Option<Duration>,
    write_timeout: Duration,
    prepare: Prepare,
    /// The master of each slot, as an index into `nodes`.
    owner: Vec<Option<u16>>,
    /// Node addresses, `host:port`.
    nodes: Vec<String>,
    /// The slot table is to be read again before the next send.
    stale: bool,
    conns: HashMap<String, Link>,
    /// While a `send` runs: when it must be done reading.
    deadline: Option<Instant>,
    /// While a `send` runs: `WAIT replicas ms` ends each node's pipeline.
    wait: Option<(u32, u64)>,
}

impl Router {
    pub fn new(
        seeds: Vec<ConnectionInfo>,
        auth: (Option<String>, Option<String>),
        connect_timeout: Duration,
        read_timeout: Option<Duration>,
        write_timeout: Duration,
        prepare: Prepare,
    ) -> Router {
        Router {
            seeds,
            auth,
            connect_timeout,
            read_timeout,
            write_timeout,
            prepare,
            owner: vec![None; SLOTS],
            nodes: Vec::new(),
            stale: true,
            deadline: None,
            wait: None,
            conns: HashMap::new(),
        }
    }

    fn info(&self, addr: &str) -> Option<ConnectionInfo> {
        let (host, port) = addr.rsplit_once(':')?;
        Some(ConnectionInfo {
            addr: ConnectionAddr::Tcp(host.to_string(), port.parse().ok()?),
            redis: redis::RedisConnectionInfo {
                username: self.auth.0.clone(),
                password: self.auth.1.clone(),
                ..Default::default()
            },
        })
    }

    /// How long one connect or one side request (a connection readied,
    /// the slot table read) may wait during a `send`: a quarter of what is
    /// left of its budget, so that a stalled node leaves time for the
    /// others; the configured timeouts otherwise.
    fn slice(&self, configured: Duration) -> Duration {
        match self.deadline {
            Some(d) => configured
                .min(d.saturating_duration_since(Instant::now()) / 4)
                .max(Duration::from_millis(1)),
            None => configured,
        }
    }

    fn open(&self, info: ConnectionInfo) -> redis::RedisResult<Link> {
        let read = self.read_timeout.unwrap_or(Duration::from_secs(3600));
        let mut c = Link::connect(&info, None, Some(self.slice(self.connect_timeout)))?;
        c.set_read_timeout(Some(self.slice(read)))?;
        c.set_write_timeout(Some(self.write_timeout))?;
        (self.prepare)(&mut c)?;
        c.set_read_timeout(self.read_timeout)?;
        Ok(c)
    }

    /// The connection to `addr`, opened (and readied) when there is none.
    fn conn(&mut self, addr: &str, round_trips: &mut usize) -> Option<&mut Link> {
        if !self.conns.contains_key(addr) {
            let info = self.info(addr)?;
            let c = self.open(info).ok()?;
            *round_trips += 2;
            self.conns.insert(addr.to_string(), c);
        }
        self.conns.get_mut(addr)
    }

    fn node_index(&mut self, addr: &str) -> u16 {
        match self.nodes.iter().position(|n| n == addr) {
            Some(i) => i as u16,
            None => {
                self.nodes.push(addr.to_string());
                (self.nodes.len() - 1) as u16
            }
        }
    }

    /// Reads the slot table (CLUSTER SLOTS) from a master already
    /// connected, else from a seed; keeps the connections of masters only.
    fn refresh(&mut self, round_trips: &mut usize) -> bool {
        let mut table = None;
        let known: Vec<String> = self.conns.keys().cloned().collect();
        let read = self.read_timeout.unwrap_or(Duration::from_secs(3600));
        for addr in known {
            let limit = self.slice(read);
            let Some(c) = self.conns.get_mut(&addr) else {
                continue;
            };
            *round_trips += 1;
            let _ = c.set_read_timeout(Some(limit));
            let answer = redis::cmd("CLUSTER").arg("SLOTS").query::<Value>(c);
            let _ = c.set_read_timeout(self.read_timeout);
            match answer {
                Ok(v) => {
                    let host = addr.rsplit_once(':').map_or("", |(h, _)| h).to_string();
                    table = Some((v, host));
                    break;
                }
                Err(_) => {
                    self.conns.remove(&addr);
                }
            }
        }
        if table.is_none() {
            for seed in self.seeds.clone() {
                let host = match &seed.addr {
                    ConnectionAddr::Tcp(h, _) => h.clone(),
                    _ => String::new(),
                };
                let Ok(mut c) = Link::connect(&seed, None, Some(self.slice(self.connect_timeout)))
                else {
                    continue;
                };
                let _ = c.set_read_timeout(Some(self.slice(read)));
                *round_trips += 2;
                if let Ok(v) = redis::cmd("CLUSTER").arg("SLOTS").query::<Value>(&mut c) {
                    table = Some((v, host));
                    break;
                }
            }
        }
        let Some((Value::Array(ranges), asked)) = table else {
            return false;
        };
        let mut owner = vec![None; SLOTS];
        self.nodes.clear();
        for range in ranges {
            let Value::Array(parts) = range else { continue };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(node))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                continue;
            };
            let host = match node.first() {
                Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
                Some(Value::SimpleString(h)) => h.clone(),
                _ => continue,
            };
            let Some(Value::Int(port)) = node.get(1) else {
                continue;
            };
            // An unknown endpoint ("" or "?") is the node that answered.
            let host = if host.is_empty() || host == "?" {
                asked.clone()
            } else {
                host
            };
            let i = self.node_index(&format!("{host}:{port}"));
            for s in (*start).max(0)..=(*end).min(SLOTS as i64 - 1) {
                owner[s as usize] = Some(i);
            }
        }
        self.owner = owner;
        let nodes = &self.nodes;
        self.conns.retain(|addr, _| nodes.contains(addr));
        self.stale = false;
        true
    }

    /// Sends `commands` (each a packed command and the slot of its keys):
    /// a pipeline per master, all written before any is read, then the
    /// redirected ones again the same way. Replies are read for `budget` at
    /// most in all: a master that has not answered by then counts as
    /// unreachable (its connection is dropped), so that one stalled master
    /// does not delay the reading of the others'. See [`Sent`].
    ///
    /// With `wait` (replicas, ms), each node's pipeline ends with `WAIT`:
    /// the commands of a node whose replicas did not confirm are marked in
    /// [`Sent::unconfirmed`].
    pub fn send(
        &mut self,
        commands: &[(u16, Vec<u8>)],
        budget: Duration,
        wait: Option<(u32, u64)>,
    ) -> Sent {
        let deadline = Instant::now() + budget;
        self.deadline = Some(deadline);
        self.wait = wait;
        let sent = self.send_until(commands, deadline);
        self.deadline = None;
        self.wait = None;
        sent
    }

    fn send_until(&mut self, commands: &[(u16, Vec<u8>)], deadline: Instant) -> Sent {
        let mut replies: Vec<Option<Value>> = vec![None; commands.len()];
        let mut unconfirmed = vec![false; commands.len()];
        let mut round_trips = 0;
        if self.stale && !self.refresh(&mut round_trips) {
            return Sent {
                replies,
                unconfirmed,
                round_trips,
            };
        }
        let mut pending: Vec<(usize, Target)> =
            (0..commands.len()).map(|i| (i, Target::Slot)).collect();
        for _ in 0..ROUNDS {
            if pending.is_empty() {
                break;
            }
            if self.stale {
                self.refresh(&mut round_trips);
            }
            // A pipeline per node: the commands' indices, and whether each
            // is sent after ASKING.
            let mut groups: Vec<(String, Vec<(usize, bool)>)> = Vec::new();
            for (i, target) in pending.drain(..) {
                let (addr, asking) = match target {
                    Target::Ask(addr) => (addr, true),
                    Target::Slot => match self.owner[commands[i].0 as usize] {
                        Some(n) => (self.nodes[n as usize].clone(), false),
                        None => {
                            // No master known: unsure; read the table again.
                            self.stale = true;
                            continue;
                        }
                    },
                };
                match groups.iter_mut().find(|(a, _)| *a == addr) {
                    Some((_, members)) => members.push((i, asking)),
                    None => groups.push((addr, vec![(i, asking)])),
                }
            }
            let mut next = Vec::new();
            self.round(
                commands,
                &groups,
                (&mut replies, &mut unconfirmed, &mut next),
                &mut round_trips,
                deadline,
            );
            pending = next;
        }
        Sent {
            replies,
            unconfirmed,
            round_trips,
        }
    }

    /// One round: writes every node's pipeline, then reads each.
    fn round(
        &mut self,
        commands: &[(u16, Vec<u8>)],
        groups: &[(String, Vec<(usize, bool)>)],
        (replies, unconfirmed, next): Results<'_>,
        round_trips: &mut usize,
        deadline: Instant,
    ) {
        const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";
        let mut written = Vec::with_capacity(groups.len());
        for (addr, members) in groups {
            let mut buf =
                Vec::with_capacity(members.iter().map(|&(i, _)| commands[i].1.len()).sum());
            for &(i, asking) in members {
                if asking {
                    buf.extend_from_slice(ASKING);
                }
                buf.extend_from_slice(&commands[i].1);
            }
            if let Some((replicas, ms)) = self.wait {
                buf.extend_from_slice(
                    &redis::cmd("WAIT")
                        .arg(replicas)
                        .arg(ms)
                        .get_packed_command(),
                );
            }
            let Some(c) = self.conn(addr, round_trips) else {
                // Unreachable: unsure, and the table may have changed.
                self.stale = true;
                continue;
            };
            if c.send_packed_command(&buf).is_err() {
                self.conns.remove(addr);
                self.stale = true;
                continue;
            }
            written.push((addr, members));
        }
        for (addr, members) in written {
            *round_trips += 1;
            let mut reload = false;
            let mut broken = false;
            let mut moved: Vec<(String, u16)> = Vec::new();
            let Some(c) = self.conns.get_mut(addr.as_str()) else {
                continue;
            };
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            let limit = self.read_timeout.map_or(left, |r| r.min(left));
            if c.set_read_timeout(Some(limit)).is_err() {
                broken = true;
            }
            for &(i, asking) in members.iter() {
                if broken {
                    break;
                }
                if asking && !matches!(c.recv_response(), Ok(Value::Okay)) {
                    broken = true;
                    break;
                }
                let reply = match c.recv_response() {
                    Ok(v) => v,
                    Err(_) => {
                        broken = true;
                        break;
                    }
                };
                let Value::ServerError(e) = reply else {
                    replies[i] = Some(reply);
                    continue;
                };
                let e = RedisError::from(e);
                match e.kind() {
                    redis::ErrorKind::Moved => {
                        if let Some(to) = redirect(&e, addr) {
                            moved.push(to);
                            next.push((i, Target::Slot));
                        }
                    }
                    redis::ErrorKind::Ask => {
                        if let Some((to, _)) = redirect(&e, addr) {
                            next.push((i, Target::Ask(to)));
                        }
                    }
                    redis::ErrorKind::NoScriptError => {
                        reload = true;
                        next.push((i, Target::Slot));
                    }
                    // TRYAGAIN (a slot half migrated), CLUSTERDOWN,
                    // LOADING, any other error: unsure this time.
                    _ => {}
                }
            }
            if let Some((replicas, _)) = self.wait {
                // The node's WAIT: the writes of this pipeline count only
                // when enough replicas have them.
                let acked = if broken {
                    None
                } else {
                    match c.recv_response() {
                        Ok(Value::Int(n)) => Some(n),
                        Ok(_) => None,
                        Err(_) => {
                            broken = true;
                            None
                        }
                    }
                };
                if acked.is_none_or(|n| n < i64::from(replicas)) {
                    for &(i, _) in members.iter() {
                        unconfirmed[i] = true;
                    }
                }
            }
            for (to, slot) in moved {
                if slot as usize >= SLOTS {
                    continue;
                }
                let n = self.node_index(&to);
                self.owner[slot as usize] = Some(n);
                // The rest of the table may have moved too.
                self.stale = true;
            }
            if broken {
                // The rest of this pipeline is unsure; the connection is
                // out of step: open another next time.
                self.conns.remove(addr.as_str());
                self.stale = true;
                continue;
            }
            if let Some(c) = self.conns.get_mut(addr.as_str()) {
                let _ = c.set_read_timeout(self.read_timeout);
            }
            if reload {
                *round_trips += 1;
                let prepare = self.prepare;
                if let Some(c) = self.conns.get_mut(addr.as_str())
                    && prepare(c).is_err()
                {
                    self.conns.remove(addr.as_str());
                }
            }
        }
    }
}

/// The node and slot a MOVED or ASK names; a node without a host (a
/// cluster announcing unknown endpoints) is on the host of the node that
/// answered.
fn redirect(e: &RedisError, from: &str) -> Option<(String, u16)> {
    let (to, slot) = e.redirect_node()?;
    let to = if to.starts_with(':') {
        let host = from.rsplit_once(':').map_or("", |(h, _)| h);
        format!("{host}{to}")
    } else {
        to.to_string()
    };
    Some((to, slot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_hashes_to_the_slot_redis_gives_it() {
        // Values of CLUSTER KEYSLOT.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"123456789"), 12739);
        assert_eq!(slot(b""), 0);
    }

    #[test]
    fn keys_with_one_hash_tag_share_a_slot() {
        assert_eq!(slot(b"turn:{r}:indicator"), slot(b"turn:{r}:serial:7"));
        assert_eq!(slot(b"turn:{r}:indicator"), slot(b"r"));
        // Only the first tag counts; an empty one does not.
        assert_eq!(slot(b"a{b}{c}"), slot(b"b"));
        assert_eq!(slot(b"a{}{c}"), crc16(b"a{}{c}") % 16384);
        assert_eq!(slot(b"a{b"), crc16(b"a{b") % 16384);
    }

    #[test]
    fn a_redirect_without_a_host_is_on_the_host_that_answered() {
        let e = RedisError::from((redis::ErrorKind::Moved, "moved", "3999 :6381".to_string()));
        assert_eq!(
            redirect(&e, "10.0.0.1:7000"),
            Some(("10.0.0.1:6381".to_string(), 3999))
        );
        let e = RedisError::from((redis::ErrorKind::Ask, "ask", "12 10.0.0.2:7001".to_string()));
        assert_eq!(
            redirect(&e, "10.0.0.1:7000"),
            Some(("10.0.0.2:7001".to_string(), 12))
        );
    }
}
