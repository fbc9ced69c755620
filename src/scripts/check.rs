//! check: a waiter re-reads its queue, and takes its turn when it came.

use once_cell::sync::Lazy;
use redis::Script;

use super::call::{Call, Confirm, protocol};
use super::lua::script;
use super::reading::{Holder, Reading};
use crate::error::Result;
use crate::shared::Core;
use crate::ticket::Ticket;

/// The code of a check that was granted the lock.
const GRANTED: i64 = -3;

/// Dead tickets a check steps over at most, looking for the one to watch.
const WALK: u64 = 10_000;

/// check: KEYS indicator, incarnation, withdrawn; ARGV presence prefix,
/// serial, external, resource, ticket prefix, ticket identity, token base,
/// '1' to record dead tickets passed over as withdrawn ('' not to: they
/// were not seen missing for a grace yet, so they may be turn 1.0 ones
/// whose key is not set yet).
/// Returns {indicator, -3} when granted now ("N started" said); {-1, -2}
/// when the ticket is not ours any more (its identity key is gone or names
/// another ticket, or the queue's incarnation changed: the queue vanished,
/// or a later ticket took the serial) or the queue is gone; {indicator, -2}
/// when the indicator reached or passed the serial but the presence key is
/// gone. Otherwise {indicator, pttl, watched, ours}: the nearest ticket
/// ahead that has a presence key (or the one at the indicator, pttl -2,
/// when every ticket from there on is gone; then 2 instead of 0 when it is
/// recorded withdrawn), its pttl, and 1 when it is one
/// of ours in this incarnation and every ticket stepped over is recorded
/// withdrawn (else a turn 1.0 ticket may be among them, whose release
/// only `internal` announces). Past WALK dead tickets in a row the walk
/// stops and answers the ticket at the indicator instead.
///
/// A grant is a hand-off's third script, so the granting path reads all it
/// needs with one MGET. It does not renew the lease: the heartbeat renews
/// waiting tickets as it does held ones.
static CHECK: Lazy<Script> = Lazy::new(|| {
    script(
        &r#"
local got = redis.call('MGET', ARGV[5] .. ARGV[2], KEYS[2], KEYS[1], ARGV[1] .. ARGV[2])
if got[1] ~= ARGV[6] or base_of(got[2]) ~= ARGV[7] then return {-1, -2} end
local v = got[3]
if v == false then return {-1, -2} end
if not string.match(v, '^%d+$') or #v > 16 or tonumber(v) > 9007199254740991 then
  return redis.error_reply('TURNPROTO ' .. KEYS[1] .. ' is not a serial number')
end
local ind = tonumber(v)
local n = tonumber(ARGV[2])
if ind == n then
  if got[4] == false then return {ind, -2} end
  -- A write (the same value), so that a WAIT after this script covers
  -- every write that made this grant (the release before it included).
  redis.call('SET', KEYS[1], v)
  say(ARGV[3], ARGV[4], ARGV[2] .. ' started')
  return {ind, -3}
end
if ind > n then return {ind, -2} end
-- A ticket stepped over that is neither recorded nor withdrawn may be a
-- turn 1.0 one whose key is not set yet: whoever releases to it then, its
-- own release will say so on `internal` only.
local unsure = false
local added = false
local function watch(p, pttl)
  local mine = 0
  if pttl ~= -2 and not unsure and callee(redis.pcall('GET', ARGV[5] .. fmt(p)), ARGV[7]) then
    mine = 1
  end
  return {ind, pttl, p, mine}
end
local p = n - 1
local stop = math.max(ind, n - WALK)
while true do
  local ps = fmt(p)
  local pttl = redis.call('PTTL', ARGV[1] .. ps)
  if pttl ~= -2 then return watch(p, pttl) end
  if p == ind then
    -- Dead or withdrawn at the indicator (a turn 1.0 release does not
    -- skip withdrawn tickets): 2 when recorded withdrawn, gone for sure.
    local gone = 0
    if redis.call('SISMEMBER', KEYS[3], ps) == 1 then gone = 2 end
    return {ind, -2, p, gone}
  end
  if p <= stop then return watch(ind, redis.call('PTTL', ARGV[1] .. fmt(ind))) end
  if ARGV[8] == '1' then
    if redis.call('SADD', KEYS[3], ps) == 1 and not added then
      redis.call('PEXPIRE', KEYS[3], 600000)
      added = true
    end
  elseif not unsure and redis.call('SISMEMBER', KEYS[3], ps) == 0 then
    unsure = true
  end
  p = p - 1
end
"#
        .replace("WALK", &WALK.to_string()),
    )
});

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checked {
    /// The ticket has its turn now: "N started" was said.
    Granted,
    /// The ticket is not ours any more, its queue is gone, or the indicator
    /// reached or passed it without granting it (its presence key is gone).
    Lost,
    /// Another ticket comes first.
    Waiting(Reading),
}

/// Checks whether `t` has its turn, and what it should watch until then;
/// with `record`, the dead tickets it steps over are recorded as withdrawn
/// (so that a release passes them). One round trip. When the locker asks
/// for replicas, a grant they do not confirm in time is an error (a
/// refusal: the waiter rides it out and checks again).
pub(crate) fn check(core: &Core, t: &Ticket, record: bool) -> Result<Checked> {
    let call = Call::new(
        &CHECK,
        &[&t.keys.indicator, &t.keys.incarnation, &t.keys.withdrawn],
    )
    .arg(&t.keys.presence_prefix)
    .arg(t.serial)
    .arg(&t.keys.external)
    .arg(&t.keys.name)
    .arg(&t.keys.ticket_prefix)
    .arg(&t.identity)
    .arg(&t.base)
    .arg(if record { "1" } else { "" });
    run(core, t, &call)
}

/// Runs a check `call` of `t` (a plain one, or a shared-mode one: their
/// replies have one shape), with the replica confirmation the locker asks
/// for: a grant they do not confirm in time is an error.
pub(super) fn run(core: &Core, t: &Ticket, call: &Call) -> Result<Checked> {
    let confirm = Confirm::of(core, t.expire);
    let (reply, confirmed): (Vec<i64>, bool) = core.run(|c| call.invoke_confirmed(c, confirm))?;
    let checked = decode(&reply, t.serial)?;
    if checked == Checked::Granted
        && !confirmed
        && let Some(confirm) = confirm
    {
        return Err(confirm.missed(&format!(
            "the grant of ticket {} on \"{}\"",
            t.serial, t.resource
        )));
    }
    Ok(checked)
}

/// Confirms the call of `t` (its nonce came: a release or bump set the
/// indicator to it and said "N started"): true when, in one atomic read,
/// its identity key still holds its identity, the queue's incarnation has
/// its base, the indicator shows its serial and its presence key exists.
/// No script: a hand-off costs the release and this one read. False means
/// the message was stale or the ticket is gone; a [`check`] tells which.
/// When the locker asks for replicas, the grant is a [`check`] instead
/// (it writes, so that its `WAIT` covers the release that called).
pub(crate) fn confirm(core: &Core, t: &Ticket) -> Result<bool> {
    if core.durable.is_on() {
        return Ok(check(core, t, false)? == Checked::Granted);
    }
    let keys = [
        t.keys.ticket(t.serial),
        t.keys.incarnation.clone(),
        t.keys.indicator.clone(),
        t.keys.presence(t.serial),
    ];
    let got: Vec<Option<String>> = core.run(|c| redis::cmd("MGET").arg(&keys[..]).query(c))?;
    Ok(confirmed(&got, t))
}

/// True when every one of the plain `tickets` (held by this locker, on
/// one server, no replicas asked for) still holds in Redis, as [`confirm`]
/// tells it: their MGETs in one pipelined round trip.
pub(crate) fn still_held(core: &Core, tickets: &[&Ticket]) -> Result<bool> {
    if tickets.is_empty() {
        return Ok(true);
    }
    let mut pipe = redis::pipe();
    for t in tickets {
        pipe.cmd("MGET")
            .arg(t.keys.ticket(t.serial))
            .arg(&t.keys.incarnation)
            .arg(&t.keys.indicator)
            .arg(t.keys.presence(t.serial));
    }
    let replies: Vec<Vec<Option<String>>> = core.run(|c| pipe.query(c))?;
    Ok(replies.len() == tickets.len()
        && replies
            .iter()
            .zip(tickets)
            .all(|(got, t)| confirmed(got, t)))
}

/// Reads [`confirm`]'s MGET reply.
fn confirmed(got: &[Option<String>], t: &Ticket) -> bool {
    matches!(got, [Some(id), Some(inc), Some(ind), Some(_)]
        if ours(t, id, inc) && *ind == t.serial.to_string())
}

/// True when identity key value `id` and incarnation value `inc` (as read
/// together) say that `t` is still this locker's ticket of this queue.
pub(super) fn ours(t: &Ticket, id: &str, inc: &str) -> bool {
    id == t.identity && inc.split_once(' ').is_some_and(|(b, _)| b == t.base)
}

/// Reads a check's reply for ticket `serial`.
fn decode(reply: &[i64], serial: u64) -> Result<Checked> {
    let (indicator, code, watched, mine) = match *reply {
        [indicator, code] => (indicator, code, None, 0),
        [indicator, code, watched, mine] => (indicator, code, Some(watched), mine),
        _ => {
            return Err(protocol("a check answered a reply of the wrong shape", "").into());
        }
    };
    if code == GRANTED {
        return Ok(Checked::Granted);
    }
    if indicator < 0 || indicator as u64 >= serial {
        return Ok(Checked::Lost);
    }
    let indicator = indicator as u64;
    let watched = match watched.map(u64::try_from) {
        Some(Ok(w)) if w >= indicator && w < serial => w,
        _ => return Err(protocol("a check named a ticket outside the queue", "").into()),
    };
    let holder = match Holder::from_pttl(code) {
        Holder::Missing if mine == 2 => Holder::Withdrawn,
        holder => holder,
    };
    Ok(Checked::Waiting(Reading {
        indicator,
        watched,
        holder,
        ours: mine == 1,
    }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn waiting(indicator: u64, watched: u64, holder: Holder, ours: bool) -> Checked {
        Checked::Waiting(Reading {
            indicator,
            watched,
            holder,
            ours,
        })
    }

    #[test]
    fn a_check_reads_granted_lost_and_waiting() {
        assert_eq!(decode(&[5, -3], 5).unwrap(), Checked::Granted);
        assert_eq!(decode(&[-1, -2], 5).unwrap(), Checked::Lost);
        assert_eq!(decode(&[5, -2], 5).unwrap(), Checked::Lost);
        assert_eq!(decode(&[6, -2], 5).unwrap(), Checked::Lost);
        assert_eq!(
            decode(&[2, 1500, 4, 1], 5).unwrap(),
            waiting(2, 4, Holder::Expires(Duration::from_millis(1500)), true)
        );
        assert_eq!(
            decode(&[4, -2, 4, 0], 5).unwrap(),
            waiting(4, 4, Holder::Missing, false)
        );
        assert_eq!(
            decode(&[4, -2, 4, 2], 5).unwrap(),
            waiting(4, 4, Holder::Withdrawn, false)
        );
        assert_eq!(
            decode(&[3, -1, 4, 0], 5).unwrap(),
            waiting(3, 4, Holder::NoExpiry, false)
        );
    }

    #[test]
    fn a_call_is_confirmed_only_by_its_identity_incarnation_indicator_and_presence() {
        let keys = std::sync::Arc::new(crate::keys::Keys::new("turn", "r"));
        let t = Ticket::for_test(&keys, 1, 5, 10_000, 0);
        let id = Some(t.identity.clone());
        let inc = Some(format!("{} 5", t.base));
        let s = |v: &str| Some(v.to_string());
        assert!(confirmed(&[id.clone(), inc.clone(), s("5"), s("x")], &t));
        assert!(!confirmed(&[s("other"), inc.clone(), s("5"), s("x")], &t));
        assert!(!confirmed(&[id.clone(), s("7 5"), s("5"), s("x")], &t));
        assert!(!confirmed(&[id.clone(), None, s("5"), s("x")], &t));
        assert!(!confirmed(&[id.clone(), inc.clone(), s("6"), s("x")], &t));
        assert!(!confirmed(&[id.clone(), inc.clone(), s("05"), s("x")], &t));
        assert!(!confirmed(&[id.clone(), inc.clone(), s("5"), None], &t));
        assert!(!confirmed(&[None, None, None, None], &t));
        assert!(!confirmed(&[], &t));
    }

    #[test]
    fn a_check_naming_a_ticket_outside_the_queue_is_a_protocol_error() {
        assert!(decode(&[2, 100, 1, 0], 5).is_err());
        assert!(decode(&[2, 100, 5, 0], 5).is_err());
        assert!(decode(&[2, 100], 5).is_err());
        assert!(decode(&[2], 5).is_err());
    }
}
