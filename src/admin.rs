//! The tools' operations on queues, beside locking: snapshots, discovery
//! of every queue under the prefix, bump, reset and following the log
//! lines. Behind the `Locker` methods of the same names.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::keys::{glob_escape, resource_of_dispenser, validate_resource};
use crate::scripts::{self, Bumped, Reset};
use crate::shared::Core;
use crate::status::Status;

/// How long a follow waits for a line before it calls back without one.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// What became of a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetOutcome {
    /// The dispenser and indicator were removed.
    Reset,
    /// There is no such queue.
    NotFound,
    /// The queue holds this many tickets (holder and waiters) after a bump.
    Busy(u64),
    /// The dispenser moved since it was read: someone drew a ticket.
    Activity,
}

/// One log line of a queue, as published on its `external` channel (by
/// this library or by turn 1.0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The resource whose channel carried the line.
    pub resource: String,
    /// The line as published, `RESOURCE: TEXT` (such as `printer: 5
    /// started`); invalid UTF-8 is replaced.
    pub text: String,
}

fn not_found(resource: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("no such queue: \"{resource}\""),
    )
}

pub(crate) fn status(core: &Core, resource: &str) -> Result<Status> {
    let keys = core.keys(resource);
    scripts::status(core, &keys, resource)?.ok_or_else(|| not_found(resource))
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

pub(crate) fn bump(core: &Core, resource: &str) -> Result<u64> {
    let keys = core.keys(resource);
    match scripts::bump(core, &keys)? {
        Bumped::To(indicator) => Ok(indicator),
        Bumped::NoQueue | Bumped::NotOurs => Err(not_found(resource)),
    }
}

pub(crate) fn reset(core: &Core, resource: &str) -> Result<()> {
    match reset_queue(core, resource, None)? {
        ResetOutcome::Reset => Ok(()),
        ResetOutcome::NotFound => Err(not_found(resource)),
        ResetOutcome::Busy(n) => Err(Error::new(
            ErrorKind::Busy,
            format!("\"{resource}\" is in use by {n} user(s)"),
        )),
        ResetOutcome::Activity => Err(Error::new(
            ErrorKind::Busy,
            format!("activity detected for \"{resource}\""),
        )),
    }
}

pub(crate) fn reset_queue(
    core: &Core,
    resource: &str,
    expected_dispenser: Option<u64>,
) -> Result<ResetOutcome> {
    let keys = core.keys(resource);
    Ok(match scripts::reset(core, &keys, expected_dispenser)? {
        Reset::Done => ResetOutcome::Reset,
        Reset::NoQueue => ResetOutcome::NotFound,
        Reset::Activity => ResetOutcome::Activity,
        Reset::Busy(n) => ResetOutcome::Busy(n),
    })
}

/// Subscribes to the `external` channels of `resources` on a connection
/// of its own and hands each line to `f`, and `None` after each
/// [`FOLLOW_POLL`] without one, until `f` breaks or the connection fails.
pub(crate) fn follow(
    core: &Core,
    resources: &[String],
    mut f: impl FnMut(Option<LogLine>) -> ControlFlow<()>,
) -> Result<()> {
    let mut channels = Vec::with_capacity(resources.len());
    let mut named = HashMap::with_capacity(resources.len());
    for r in resources {
        validate_resource(r)?;
        let channel = core.keys(r).external;
        named.insert(channel.clone(), r.clone());
        channels.push(channel);
    }
    let mut conn = core.pool.connect_one(None)?;
    let mut pubsub = conn.as_pubsub();
    pubsub.subscribe(&channels)?;
    pubsub.set_read_timeout(Some(FOLLOW_POLL))?;
    loop {
        let line = match pubsub.get_message() {
            Ok(msg) => Some(LogLine {
                resource: named
                    .get(msg.get_channel_name())
                    .cloned()
                    .unwrap_or_default(),
                text: String::from_utf8_lossy(msg.get_payload_bytes()).into_owned(),
            }),
            Err(e) if crate::error::is_retryable_read(&e) => None,
            Err(e) => return Err(e.into()),
        };
        if f(line).is_break() {
            return Ok(());
        }
    }
}
