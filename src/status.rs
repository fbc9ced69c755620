//! Snapshots of queues, and discovery of every queue under a prefix.

use crate::error::{Error, ErrorKind, Result};
use crate::keys::{glob_escape, parse_serial, resource_of_dispenser};
use crate::locker::Core;
use crate::scripts::{self, Call};

/// The most tickets one status reports (from the indicator on).
pub const MAX_STATUS_TICKETS: u64 = 100_000;

/// One live ticket in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketInfo {
    /// The ticket's serial number.
    pub serial: u64,
    /// Its label (the value of its presence key; invalid UTF-8 replaced).
    pub label: String,
}

/// A snapshot of one queue, read atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The resource.
    pub resource: String,
    /// The serial whose turn it is.
    pub indicator: u64,
    /// The last serial handed out.
    pub dispenser: u64,
    /// Live tickets (presence key present) from the indicator to the
    /// dispenser, ascending: the holder (if alive) first, then the waiters.
    pub tickets: Vec<TicketInfo>,
}

impl Status {
    /// Tickets drawn and not yet passed: dispenser - indicator + 1 (turn
    /// 1.0's "queue size"; dead tickets count until bumped).
    pub fn size(&self) -> u64 {
        (self.dispenser + 1).saturating_sub(self.indicator)
    }
}

fn number(bytes: &[u8], what: &str) -> Result<u64> {
    parse_serial(bytes).ok_or_else(|| Error::protocol(format!("{what} is not a serial number")))
}

pub(crate) fn get(core: &Core, resource: &str) -> Result<Status> {
    let keys = core.keys(resource);
    let call = Call::new(&scripts::STATUS, &[&keys.indicator, &keys.dispenser])
        .arg(&keys.presence_prefix)
        .arg(MAX_STATUS_TICKETS);
    let reply: Vec<Vec<u8>> = core.run(|c| call.invoke(c))?;
    if reply.is_empty() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("no such queue: \"{resource}\""),
        ));
    }
    if reply.len() < 2 || !reply.len().is_multiple_of(2) {
        return Err(Error::protocol("malformed status reply"));
    }
    let indicator = number(&reply[0], "the indicator")?;
    let dispenser = number(&reply[1], "the dispenser")?;
    let tickets = reply[2..]
        .chunks(2)
        .map(|pair| {
            Ok(TicketInfo {
                serial: number(&pair[0], "a serial")?,
                label: String::from_utf8_lossy(&pair[1]).into_owned(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Status {
        resource: resource.to_string(),
        indicator,
        dispenser,
        tickets,
    })
}

pub(crate) fn resources(core: &Core) -> Result<Vec<String>> {
    let prefix = &core.options.prefix;
    let cluster = core.pool.is_cluster();
    // On a cluster, queues are P:{R}:dispenser, spread over every master.
    let pattern = if cluster {
        format!("{}:{{*}}:dispenser", glob_escape(prefix))
    } else {
        format!("{}:*:dispenser", glob_escape(prefix))
    };
    let mut keys: Vec<Vec<u8>> = Vec::new();
    if cluster {
        for mut c in core.pool.connect_masters()? {
            keys.extend(scan(&mut c, &pattern)?);
        }
    } else {
        keys = core.run(|c| scan(c, &pattern))?;
    }
    let mut found: Vec<String> = keys
        .iter()
        .filter_map(|k| std::str::from_utf8(k).ok())
        .filter_map(|k| resource_of_dispenser(prefix, k))
        .filter_map(|r| {
            if cluster {
                r.strip_prefix('{')?.strip_suffix('}')
            } else {
                Some(r)
            }
        })
        .map(str::to_string)
        .collect();
    found.sort();
    found.dedup();
    Ok(found)
}

fn scan(c: &mut dyn redis::ConnectionLike, pattern: &str) -> redis::RedisResult<Vec<Vec<u8>>> {
    let mut cursor: u64 = 0;
    let mut out = Vec::new();
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(c)?;
        out.extend(batch);
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}
