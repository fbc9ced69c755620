//! Where connections come from: a Redis URL (TCP, TLS, Unix socket), a set
//! of Sentinels naming the current master (followed: see `connect/sentinel.rs`),
//! or a Redis Cluster. Every connection is a [`Link`] (see `link.rs`: an
//! interrupted system call is retried there, never reported).

pub(crate) mod cluster;
mod link;
mod sentinel;
mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConnection};
use redis::{Cmd, ConnectionAddr, ConnectionInfo, ConnectionLike, RedisResult, Value};

pub(crate) use link::Link;

use crate::error::{Error, Result};
use crate::options::Tls;
use cluster::{Prepare, Router};
use sentinel::Sentinel;

pub(crate) enum Connector {
    Direct(Server),
    Sentinel(Sentinel),
    Cluster {
        client: ClusterClient,
        /// The seed nodes, for pubsub and for scanning every master.
        seeds: Vec<Server>,
        /// The seed asked first next time: each new pubsub connection
        /// starts at the next one, so that a node that accepts but never
        /// answers (a stopped replica) is not picked again and again.
        next_seed: AtomicUsize,
        auth: (Option<String>, Option<String>),
    },
}

/// One server named by a URL, and the TLS configuration of `rediss://`.
pub(crate) struct Server {
    info: ConnectionInfo,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Server {
    fn plain(info: ConnectionInfo) -> Server {
        Server { info, tls: None }
    }

    pub fn get_connection_info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// A new connection, within `timeout`.
    fn connect(&self, timeout: Duration) -> RedisResult<Link> {
        Link::connect(&self.info, self.tls.as_ref(), Some(timeout))
    }
}

/// A command connection: to one server, or to a cluster (which routes each
/// command by its first key, over [`Link`]s too).
pub(crate) enum Conn {
    Single(Link),
    Cluster(Box<ClusterConnection<Link>>),
}

impl Conn {
    pub fn set_timeouts(&self, read: Option<Duration>, write: Duration) -> RedisResult<()> {
        match self {
            Conn::Single(c) => {
                c.set_read_timeout(read)?;
                c.set_write_timeout(Some(write))
            }
            Conn::Cluster(c) => {
                c.set_read_timeout(read)?;
                c.set_write_timeout(Some(write))
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_command(cmd),
            Conn::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Conn::Single(c) => c.check_connection(),
            Conn::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Conn::Single(c) => c.is_open(),
            Conn::Cluster(c) => c.is_open(),
        }
    }
}

const SCHEMES: &str =
    "redis://, rediss://, redis+unix://, unix://, redis+sentinel://, redis+cluster://";

impl Connector {
    /// Parses `url`; errors never repeat the URL (it may hold a password).
    pub fn open(url: &str, tls: Option<&Tls>) -> Result<Connector> {
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
        if tls.is_some() && matches!(scheme, "redis+sentinel" | "redis+cluster") {
            // Never plain text where the user asked for TLS.
            return Err(Error::invalid(format!(
                "TLS is not offered for {scheme}:// URLs yet; TLS files need a rediss:// URL"
            )));
        }
        match scheme {
            "redis" | "rediss" | "redis+unix" | "unix" => {}
            "redis+sentinel" => return sentinel(url),
            "redis+cluster" => return cluster(url),
            _ => {
                return Err(Error::invalid(format!(
                    "unsupported redis URL scheme {scheme:?}; use one of {SCHEMES}"
                )));
            }
        }
        if tls.is_some() && scheme != "rediss" {
            return Err(Error::invalid(
                "TLS files are given but the URL is not rediss://",
            ));
        }
        check_query(url, scheme)?;
        let info: redis::ConnectionInfo = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| {
                Error::invalid(format!(
                    "invalid redis URL: {}",
                    e.detail().unwrap_or("cannot parse it")
                ))
            })?;
        check_info(&info)?;
        let tls = match &info.addr {
            ConnectionAddr::TcpTls { insecure, .. } => Some(tls::config(tls, *insecure)?),
            _ => None,
        };
        Ok(Connector::Direct(Server { info, tls }))
    }

    /// Where connections go, for error messages (never the user or the
    /// password): the server's host:port or socket path; the master (its
    /// address once learned) and the sentinels; the cluster's seed nodes.
    pub fn address(&self) -> String {
        let addr = |a: &ConnectionAddr| match a {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. }
                if host.contains(':') && !host.starts_with('[') =>
            {
                format!("[{host}]:{port}")
            }
            a => a.to_string(),
        };
        match self {
            Connector::Direct(client) => addr(&client.get_connection_info().addr),
            Connector::Sentinel(sentinel) => sentinel.address(),
            Connector::Cluster { seeds, .. } => format!(
                "the cluster nodes {}",
                seeds
                    .iter()
                    .map(|s| addr(&s.get_connection_info().addr))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// True for a set of Sentinels naming the master.
    pub fn is_sentinel(&self) -> bool {
        matches!(self, Connector::Sentinel(_))
    }

    /// The master's epoch (see `connect/sentinel.rs`): it grows when a Sentinel set
    /// names another master; always 0 otherwise. Read it before connecting:
    /// a connection made under an earlier epoch is to be retired.
    pub fn epoch(&self) -> u64 {
        match self {
            Connector::Sentinel(s) => s.epoch(),
            _ => 0,
        }
    }

    /// Looks at the sentinels without blocking longer than an ask of
    /// `timeout` (the notifier thread's, often); true when the master
    /// changed. Nothing to do otherwise.
    pub fn watch_master(&self, timeout: Duration) -> bool {
        match self {
            Connector::Sentinel(s) => s.watch(timeout),
            _ => false,
        }
    }

    /// Asks the sentinels now (a master that answered in a way only an
    /// old master would); nothing to do otherwise.
    pub fn ask_master(&self, timeout: Duration) {
        if let Connector::Sentinel(s) = self {
            let _ = s.ask(timeout);
        }
    }

    /// True for a Redis Cluster (keys get a hash tag per resource).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Connector::Cluster { .. })
    }

    /// Per-master pipelines over the cluster (the heartbeat's); None for
    /// one server. Connects lazily, at its first send.
    pub fn router(
        &self,
        connect_timeout: Duration,
        read_timeout: Option<Duration>,
        write_timeout: Duration,
        prepare: Prepare,
    ) -> Option<Router> {
        let Connector::Cluster { seeds, auth, .. } = self else {
            return None;
        };
        Some(Router::new(
            seeds.iter().map(|s| s.info.clone()).collect(),
            auth.clone(),
            connect_timeout,
            read_timeout,
            write_timeout,
            prepare,
        ))
    }

    /// A new command connection (to the current master with Sentinel).
    pub fn connect(&self, timeout: Duration) -> RedisResult<Conn> {
        match self {
            Connector::Cluster { client, .. } => client
                .get_generic_connection::<Link>()
                .map(|c| Conn::Cluster(Box::new(c))),
            _ => self.connect_one(timeout).map(Conn::Single),
        }
    }

    /// A new connection to one server, for pubsub: the server itself, the
    /// current master, or the first cluster node that answers (a message
    /// published on any cluster node reaches subscribers on every node).
    pub fn connect_one(&self, timeout: Duration) -> RedisResult<Link> {
        match self {
            Connector::Direct(server) => server.connect(timeout),
            Connector::Sentinel(sentinel) => sentinel.connect(timeout),
            Connector::Cluster {
                seeds, next_seed, ..
            } => {
                let mut last = None;
                let first = next_seed.fetch_add(1, Ordering::Relaxed);
                for i in 0..seeds.len() {
                    let seed = &seeds[(first + i) % seeds.len()];
                    match seed.connect(timeout) {
                        Ok(c) => return Ok(c),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| (redis::ErrorKind::IoError, "no cluster node").into()))
            }
        }
    }

    /// Connections to every master of the cluster (for SCAN); the one
    /// server otherwise.
    pub fn connect_masters(&self, timeout: Duration) -> RedisResult<Vec<Link>> {
        let Connector::Cluster { auth, .. } = self else {
            return Ok(vec![self.connect_one(timeout)?]);
        };
        let mut any = self.connect_one(timeout)?;
        let slots: Vec<Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut any)?;
        let mut masters: Vec<(String, u16)> = Vec::new();
        for range in slots {
            let Value::Array(parts) = range else { continue };
            let Some(Value::Array(node)) = parts.get(2) else {
                continue;
            };
            let host: String = redis::from_redis_value(&node[0])?;
            let port: u16 = redis::from_redis_value(&node[1])?;
            if !masters.contains(&(host.clone(), port)) {
                masters.push((host, port));
            }
        }
        masters
            .into_iter()
            .map(|(host, port)| {
                let info = redis::ConnectionInfo {
                    addr: ConnectionAddr::Tcp(host, port),
                    redis: redis::RedisConnectionInfo {
                        username: auth.0.clone(),
                        password: auth.1.clone(),
                        ..Default::default()
                    },
                };
                Link::connect(&info, None, Some(timeout))
            })
            .collect()
    }
}

/// The query parameters a URL to one server may have: unknown ones are
/// refused rather than ignored (a `password=` the parser would skip, say).
/// Only the parameter's name is said, never its value.
fn check_query(url: &str, scheme: &str) -> Result<()> {
    let known: &[&str] = match scheme {
        "redis+unix" | "unix" => &["db", "user", "pass", "protocol"],
        _ => &["protocol"],
    };
    let Some((_, query)) = url.split_once('?') else {
        return Ok(());
    };
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        if !known.contains(&name) {
            return Err(Error::invalid(format!(
                "invalid redis URL: unknown parameter {:?} (a {scheme}:// URL takes {})",
                percent_decode(name),
                known
                    .iter()
                    .map(|k| format!("{k}="))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

/// What the redis crate parses but no server can be: port 0 (nothing
/// listens there) and a negative database number.
fn check_info(info: &redis::ConnectionInfo) -> Result<()> {
    match &info.addr {
        ConnectionAddr::Tcp(_, 0) | ConnectionAddr::TcpTls { port: 0, .. } => {
            return Err(Error::invalid("invalid redis URL: the port is 0"));
        }
        _ => {}
    }
    if info.redis.db < 0 {
        return Err(Error::invalid(
            "invalid redis URL: the database number is negative",
        ));
    }
    Ok(())
}

/// The parts of `SCHEME://[user:password@]host:port[,host:port...][/PATH]`
/// (user and password percent-decoded).
struct Nodes<'a> {
    user: Option<String>,
    password: Option<String>,
    hosts: Vec<(String, u16)>,
    path: Option<&'a str>,
}

fn nodes<'a>(url: &'a str, scheme: &str, what: &str) -> Result<Nodes<'a>> {
    let rest = &url[scheme.len()..];
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((a, r)) => (Some(a), r),
        None => (None, rest),
    };
    if rest.contains(['?', '#']) {
        // Refused rather than read into a name or a port.
        return Err(Error::invalid(format!(
            "a {scheme} URL takes no parameters (nothing after '?' or '#')"
        )));
    }
    let (hosts, path) = match rest.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    if hosts.is_empty() {
        return Err(Error::invalid(format!(
            "a {scheme} URL needs host:port of some {what}s"
        )));
    }
    let (user, password) = match auth {
        Some(a) => {
            let (u, p) = a.split_once(':').unwrap_or((a, ""));
            (
                (!u.is_empty()).then(|| percent_decode(u)),
                (!p.is_empty()).then(|| percent_decode(p)),
            )
        }
        None => (None, None),
    };
    let hosts = hosts
        .split(',')
        .map(|host| {
            let (h, p) = host
                .rsplit_once(':')
                .ok_or_else(|| Error::invalid(format!("each {what} needs host:port")))?;
            let port: u16 = p
                .parse()
                .map_err(|_| Error::invalid(format!("a {what}'s port is not a number")))?;
            if port == 0 {
                return Err(Error::invalid(format!("a {what}'s port is 0")));
            }
            Ok((h.to_string(), port))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Nodes {
        user,
        password,
        hosts,
        path,
    })
}

/// `redis+sentinel://[user:password@]host:port[,host:port...]/MASTER[/DB]`:
/// the user and password are the master's; the Sentinels are asked without.
fn sentinel(url: &str) -> Result<Connector> {
    let n = nodes(url, "redis+sentinel://", "sentinel")?;
    let mut parts = n.path.unwrap_or("").split('/');
    let master = parts.next().unwrap_or("");
    if master.is_empty() {
        return Err(Error::invalid(
            "a redis+sentinel:// URL needs /MASTER, the master's name, after the hosts",
        ));
    }
    let db: i64 = match parts.next() {
        None | Some("") => 0,
        Some(d) => d.parse().ok().filter(|d| *d >= 0).ok_or_else(|| {
            Error::invalid("the database in the redis+sentinel:// URL is not a number")
        })?,
    };
    let redis = redis::RedisConnectionInfo {
        db,
        username: n.user,
        password: n.password,
        ..Default::default()
    };
    Ok(Connector::Sentinel(Sentinel::new(
        n.hosts,
        master.to_string(),
        redis,
    )))
}

/// `redis+cluster://[user:password@]host:port[,host:port...]`: seed nodes
/// of a Redis Cluster (database 0, the only one a cluster has).
fn cluster(url: &str) -> Result<Connector> {
    let n = nodes(url, "redis+cluster://", "cluster node")?;
    if n.path.is_some_and(|p| !p.is_empty()) {
        return Err(Error::invalid(
            "a redis+cluster:// URL takes no path: a cluster has database 0 only",
        ));
    }
    let infos: Vec<redis::ConnectionInfo> = n
        .hosts
        .into_iter()
        .map(|(h, p)| redis::ConnectionInfo {
            addr: ConnectionAddr::Tcp(h, p),
            redis: redis::RedisConnectionInfo {
                username: n.user.clone(),
                password: n.password.clone(),
                ..Default::default()
            },
        })
        .collect();
    let seeds = infos.iter().cloned().map(Server::plain).collect();
    let mut builder = ClusterClientBuilder::new(infos);
    if let Some(u) = &n.user {
        builder = builder.username(u.clone());
    }
    if let Some(p) = &n.password {
        builder = builder.password(p.clone());
    }
    let client = builder
        .build()
        .map_err(|_| Error::invalid("invalid cluster settings"))?;
    Ok(Connector::Cluster {
        client,
        seeds,
        next_seed: AtomicUsize::new(0),
        auth: (n.user, n.password),
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(
                std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                16,
            )
        {
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> Error {
        match Connector::open(url, None) {
            Ok(_) => panic!("{url} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn bad_urls_are_invalid_and_never_show_the_password() {
        for url in [
            "http://u:sekret@h:1/0",
            "redis://u:sekret@h:notaport/0",
            "redis://u:sekret@h:6379/notadb",
            "redis+sentinel://u:sekret@h:1",
            "redis+sentinel://u:sekret@h:x/m",
            "redis+sentinel://u:sekret@h:1/m/x",
            "redis+cluster://u:sekret@h:x",
            "redis+cluster://u:sekret@",
            "redis://u:sekret@127.0.0.1:0/0",
            "redis://u:sekret@127.0.0.1:0",
            "redis://u:sekret@[::1]:0/0",
            "rediss://u:sekret@127.0.0.1:0/0",
            "redis://u:sekret@127.0.0.1:6379/-1",
            "redis+unix:///tmp/redis.sock?db=-1",
            "unix:///tmp/redis.sock?password=sekret",
            "redis+unix:///tmp/redis.sock?db=1&passwd=sekret",
            "redis://u:sekret@h:1/0?password=sekret",
            "redis+sentinel://u:sekret@h:0/m",
            "redis+sentinel://u:sekret@h:1/m/-1",
            "redis+cluster://u:sekret@h:1,h:0",
            "redis+cluster://u:sekret@h:1/3",
            "redis+cluster://u:sekret@h:1?foo=bar",
            "redis+sentinel://u:sekret@h:1/mymaster?foo=1",
            "redis+sentinel://u:sekret@h:1/mymaster#x",
        ] {
            let e = err(url);
            assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument, "{url}");
            assert!(!e.message().contains("sekret"), "{url}: {}", e.message());
        }
    }

    #[test]
    fn good_urls_parse() {
        for url in [
            "redis://127.0.0.1:6379/0",
            "redis://user:pw@localhost:1/2",
            "rediss://localhost:6380/0",
            "redis+unix:///tmp/redis.sock?db=1",
            "unix:///tmp/redis.sock",
            "unix:///tmp/redis.sock?user=u&pass=p&db=2",
            "redis://127.0.0.1:6379/0?protocol=2",
            "redis+sentinel://a:1,b:2/mymaster/3",
            "redis+cluster://u:p@a:1,b:2",
        ] {
            assert!(Connector::open(url, None).is_ok(), "{url}");
        }
        assert_eq!(percent_decode("p%40ss%20w"), "p@ss w");
    }
}
