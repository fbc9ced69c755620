//! heartbeat: the leases of many tickets renewed in one round trip.

use std::collections::BTreeMap;
use std::sync::Arc;

use once_cell::sync::Lazy;
use redis::{RedisResult, Script};

use super::call::Confirm;
use super::lua::script;
use crate::connect::Link;
use crate::connect::cluster::{self, Router};
use crate::mode::Mode;
use crate::ticket::Ticket;

/// Tickets renewed by one script call (many calls go in one pipeline).
const CHUNK: usize = 500;

/// heartbeat: ARGV groups of 9: presence key, expire ms, mode ('h' held,
/// 's' held in a shared-mode queue, 'w' waiting), indicator key (the
/// holders key for 's'), serial, identity key, identity, incarnation key,
/// token base. Renews the presence and identity keys of each ticket that
/// is still ours (see `ours`). Returns one integer per ticket: 1 alive, 0
/// lost (not ours any more; presence key gone; or held and the indicator
/// is not the serial, or not among the holders of a shared-mode queue; or
/// waiting and the indicator passed the serial). A ticket that is not ours any more is left alone:
/// its keys may be a later ticket's.
static HEARTBEAT: Lazy<Script> = Lazy::new(|| {
    script(
        r#"
local out = {}
for i = 1, #ARGV, 9 do
  local ok = 0
  if ours(ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]) then
    ok = redis.call('PEXPIRE', ARGV[i], ARGV[i + 1])
    redis.call('PEXPIRE', ARGV[i + 5], ARGV[i + 1])
  end
  if ok == 1 and ARGV[i + 2] == 's' then
    ok = redis.call('HEXISTS', ARGV[i + 3], ARGV[i + 4])
  elseif ok == 1 then
    local ind = redis.pcall('GET', ARGV[i + 3])
    if type(ind) ~= 'string' then
      ok = 0
    elseif ARGV[i + 2] == 'h' then
      if ind ~= ARGV[i + 4] then ok = 0 end
    else
      local n = tonumber(ind)
      if n == nil or n > tonumber(ARGV[i + 4]) then ok = 0 end
    end
  end
  out[#out + 1] = ok
end
return out
"#,
    )
});

/// The script's argument group for one ticket (see `HEARTBEAT`).
fn renewal(cmd: &mut redis::Cmd, t: &Ticket) {
    let shared = t.mode != Mode::Plain;
    cmd.arg(t.keys.presence(t.serial))
        .arg(t.expire_ms())
        .arg(match (t.is_held(), shared) {
            (false, _) => "w",
            (true, false) => "h",
            (true, true) => "s",
        })
        .arg(if t.is_held() && shared {
            &t.keys.holders
        } else {
            &t.keys.indicator
        })
        .arg(t.serial)
        .arg(t.keys.ticket(t.serial))
        .arg(&t.identity)
        .arg(&t.keys.incarnation)
        .arg(&t.base);
}

/// Readies a new connection for [`renew`]: loads the script, which the
/// pipeline calls by its hash alone.
pub(crate) fn prepare_renewals(conn: &mut Link) -> RedisResult<()> {
    HEARTBEAT.load(conn).map(drop)
}

/// Readies a connection to a cluster node for [`renew_routed`].
pub(crate) fn prepare_node(conn: &mut Link) -> RedisResult<()> {
    prepare_renewals(conn)
}

/// Renews the leases of `batch` in one pipeline of script calls, CHUNK
/// tickets each, and `WAIT` after them when `confirm` asks for replicas:
/// per ticket, Some(true) when found alive (see `HEARTBEAT`), Some(false)
/// when lost, None when found alive but the replicas did not confirm the
/// renewal in time (not renewed: its lease on the local clock runs on).
/// On one server, over a connection to it alone (a cluster goes through
/// [`renew_routed`]).
pub(crate) fn renew(
    conn: &mut Link,
    batch: &[Arc<Ticket>],
    confirm: Option<Confirm>,
) -> RedisResult<Vec<Option<bool>>> {
    let mut pipe = redis::pipe();
    for chunk in batch.chunks(CHUNK) {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(HEARTBEAT.get_hash()).arg(0);
        for t in chunk {
            renewal(&mut cmd, t);
        }
        pipe.add_command(cmd);
    }
    let Some(confirm) = confirm else {
        let replies: Vec<Vec<i64>> = pipe.query(conn)?;
        return Ok(replies
            .into_iter()
            .flatten()
            .map(|ok| Some(ok == 1))
            .collect());
    };
    pipe.cmd("WAIT").arg(confirm.replicas).arg(confirm.wait_ms);
    let mut replies: Vec<redis::Value> = pipe.query(conn)?;
    let acked: i64 = match replies.pop() {
        Some(v) => redis::from_owned_redis_value(v)?,
        None => 0,
    };
    let confirmed = acked >= i64::from(confirm.replicas);
    let mut alive = Vec::with_capacity(batch.len());
    for reply in replies {
        let oks: Vec<i64> = redis::from_owned_redis_value(reply)?;
        alive.extend(oks.into_iter().map(|ok| match ok {
            1 if confirmed => Some(true),
            1 => None,
            _ => Some(false),
        }));
    }
    Ok(alive)
}

/// What a routed beat learned: per ticket, Some(alive) or None when
/// unsure (not renewed this time, not lost either); and its round trips.
pub(crate) struct Renewed {
    pub alive: Vec<Option<bool>>,
    pub round_trips: usize,
}

/// [`renew`] on a cluster: a script call per resource (CHUNK tickets at
/// most), routed by the slot of the resource's hash tag, in one pipeline
/// per master (see [`Router`]). Each call declares every key the script
/// touches (the same script, the same ARGV): Redis then answers ASK or
/// TRYAGAIN while the queue's slot is half migrated, rather than running
/// the script where some of its keys are missing and finding a live
/// ticket gone.
pub(crate) fn renew_routed(
    router: &mut Router,
    batch: &[Arc<Ticket>],
    confirm: Option<Confirm>,
) -> Renewed {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, t) in batch.iter().enumerate() {
        groups.entry(t.keys.indicator.as_str()).or_default().push(i);
    }
    let mut calls: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut members: Vec<&[usize]> = Vec::new();
    for (indicator, all) in &groups {
        for chunk in all.chunks(CHUNK) {
            let first = &batch[chunk[0]];
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(HEARTBEAT.get_hash())
                .arg(2 + 2 * chunk.len())
                .arg(*indicator)
                .arg(&first.keys.incarnation);
            for &i in chunk {
                let t = &batch[i];
                cmd.arg(t.keys.presence(t.serial))
                    .arg(t.keys.ticket(t.serial));
            }
            for &i in chunk {
                renewal(&mut cmd, &batch[i]);
            }
            calls.push((
                cluster::slot(indicator.as_bytes()),
                cmd.get_packed_command(),
            ));
            members.push(chunk);
        }
    }
    // A stalled master must not hold up the reading of the others'
    // replies past a third of the shortest lease (their renewals were sent
    // already; only their confirmation waits).
    let shortest = batch
        .iter()
        .map(|t| t.expire)
        .min()
        .unwrap_or(std::time::Duration::from_secs(1));
    let sent = router.send(
        &calls,
        shortest / 3,
        confirm.map(|c| (c.replicas, c.wait_ms)),
    );
    let mut alive = vec![None; batch.len()];
    for ((reply, unconfirmed), chunk) in sent.replies.into_iter().zip(sent.unconfirmed).zip(members)
    {
        let Some(reply) = reply else { continue };
        // A reply of another shape is unsure too.
        let Ok(oks) = redis::from_owned_redis_value::<Vec<i64>>(reply) else {
            continue;
        };
        if oks.len() != chunk.len() {
            continue;
        }
        for (&i, ok) in chunk.iter().zip(oks) {
            // Found alive but not confirmed: not renewed, not lost.
            alive[i] = match ok {
                1 if unconfirmed => None,
                1 => Some(true),
                _ => Some(false),
            };
        }
    }
    Renewed {
        alive,
        round_trips: sent.round_trips,
    }
}
