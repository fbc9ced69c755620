//! Where connections come from: a Redis URL (TCP, TLS, Unix socket) or a
//! set of Sentinels naming the current master, asked anew at every connect
//! so that a failover is followed by reconnecting.

use std::sync::Mutex;
use std::time::Duration;

use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, Connection, ConnectionAddr, TlsCertificates};

use crate::error::{Error, Result};
use crate::options::Tls;

pub(crate) enum Connector {
    Direct(Client),
    Sentinel(Mutex<SentinelClient>),
}

const SCHEMES: &str = "redis://, rediss://, redis+unix://, unix://, redis+sentinel://";

impl Connector {
    /// Parses `url`; errors never repeat the URL (it may hold a password).
    pub fn open(url: &str, tls: Option<&Tls>) -> Result<Connector> {
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
        match scheme {
            "redis" | "rediss" | "redis+unix" | "unix" => {}
            "redis+sentinel" => return sentinel(url),
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
        let info: redis::ConnectionInfo = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| {
                Error::invalid(format!(
                    "invalid redis URL: {}",
                    e.detail().unwrap_or("cannot parse it")
                ))
            })?;
        let client = match tls {
            Some(files) => Client::build_with_tls(info, certificates(files)?),
            None => Client::open(info),
        }
        .map_err(|e| {
            Error::invalid(format!(
                "invalid redis settings: {}",
                e.detail().unwrap_or("unusable")
            ))
        })?;
        Ok(Connector::Direct(client))
    }

    /// A new connection to the server (the current master with Sentinel).
    pub fn connect(&self, timeout: Duration) -> redis::RedisResult<Connection> {
        match self {
            Connector::Direct(client) => client.get_connection_with_timeout(timeout),
            Connector::Sentinel(sentinel) => {
                let client = sentinel
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_client()?;
                client.get_connection_with_timeout(timeout)
            }
        }
    }
}

fn read(path: &Option<std::path::PathBuf>, what: &str) -> Result<Option<Vec<u8>>> {
    match path {
        None => Ok(None),
        Some(p) => std::fs::read(p).map(Some).map_err(|e| {
            Error::invalid(format!("cannot read the TLS {what} {}: {e}", p.display()))
        }),
    }
}

fn certificates(tls: &Tls) -> Result<TlsCertificates> {
    let root_cert = read(&tls.ca_file, "CA file")?;
    let cert = read(&tls.cert_file, "certificate file")?;
    let key = read(&tls.key_file, "key file")?;
    let client_tls = match (cert, key) {
        (Some(client_cert), Some(client_key)) => Some(redis::ClientTlsConfig {
            client_cert,
            client_key,
        }),
        (None, None) => None,
        _ => {
            return Err(Error::invalid(
                "a TLS client certificate needs its key, and the other way round",
            ));
        }
    };
    Ok(TlsCertificates {
        client_tls,
        root_cert,
    })
}

/// `redis+sentinel://[user:password@]host:port[,host:port...]/MASTER[/DB]`:
/// the user and password are the master's; the Sentinels are asked without.
fn sentinel(url: &str) -> Result<Connector> {
    let rest = &url["redis+sentinel://".len()..];
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((a, r)) => (Some(a), r),
        None => (None, rest),
    };
    let (hosts, path) = rest
        .split_once('/')
        .ok_or_else(|| Error::invalid("a redis+sentinel:// URL needs /MASTER after the hosts"))?;
    let mut parts = path.split('/');
    let master = parts.next().unwrap_or("");
    if master.is_empty() {
        return Err(Error::invalid(
            "a redis+sentinel:// URL needs the master's name",
        ));
    }
    let db: i64 = match parts.next() {
        None | Some("") => 0,
        Some(d) => d.parse().ok().filter(|d| *d >= 0).ok_or_else(|| {
            Error::invalid("the database in the redis+sentinel:// URL is not a number")
        })?,
    };
    let mut addrs = Vec::new();
    for host in hosts.split(',') {
        let (h, p) = host
            .rsplit_once(':')
            .ok_or_else(|| Error::invalid("each sentinel needs host:port"))?;
        let port: u16 = p
            .parse()
            .map_err(|_| Error::invalid("a sentinel port is not a number"))?;
        addrs.push(ConnectionAddr::Tcp(h.to_string(), port));
    }
    let mut builder =
        SentinelClientBuilder::new(addrs, master.to_string(), SentinelServerType::Master)
            .map_err(|_| Error::invalid("invalid sentinel settings"))?
            .set_client_to_redis_db(db);
    if let Some(auth) = auth {
        let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
        let decode = |s: &str| percent_decode(s);
        if !user.is_empty() {
            builder = builder.set_client_to_redis_username(decode(user));
        }
        if !password.is_empty() {
            builder = builder.set_client_to_redis_password(decode(password));
        }
    }
    let client = builder
        .build()
        .map_err(|_| Error::invalid("invalid sentinel settings"))?;
    Ok(Connector::Sentinel(Mutex::new(client)))
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
        ] {
            let e = err(url);
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{url}");
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
            "redis+sentinel://a:1,b:2/mymaster/3",
        ] {
            assert!(Connector::open(url, None).is_ok(), "{url}");
        }
        assert_eq!(percent_decode("p%40ss%20w"), "p@ss w");
    }
}
