//! bump: the indicator steps past dead tickets.

use once_cell::sync::Lazy;
use redis::Script;

use super::call::{Call, Confirm, protocol};
use super::lua::{CHECK_NUM, FIRST_LIVE, script};
use super::reading::Holder;
use crate::error::Result;
use crate::keys::Keys;
use crate::shared::Core;
use crate::ticket::Ticket;

/// bump (the tool's): KEYS indicator, dispenser, incarnation; ARGV
/// presence prefix, external, internal, resource, ticket prefix.
/// Moves the indicator forward past tickets up to the dispenser whose
/// presence key is missing, never back, and announces the result (as turn
/// 1.0 does, also when it did not move). Returns the indicator, -1 when
/// there is no queue.
static BUMP: Lazy<Script> = Lazy::new(|| {
    script(&format!(
        "{CHECK_NUM}{FIRST_LIVE}{}",
        r#"
local ind = num(KEYS[1])
if bad(ind) then return ind end
local disp = num(KEYS[2])
if bad(disp) then return disp end
if ind == nil or disp == nil then return -1 end
local t = first_live(ARGV[1], ind, disp)
announce(KEYS[1], KEYS[3], ARGV[1], ARGV[5], ARGV[3], ARGV[2], ARGV[4], t, disp)
return t
"#
    ))
});

/// pass: KEYS indicator, dispenser, incarnation, withdrawn; ARGV presence
/// prefix, the passing ticket's serial, external, internal, resource,
/// ticket prefix, the passing ticket's identity key, identity and token
/// base, '1' when every ticket missing its presence key counts as dead
/// ('' while the passing ticket is younger than the grace: then only those
/// recorded withdrawn do, and the one our scripts granted longer than the
/// grace ago (`P:R:granted`), since a missing key may be a turn 1.0
/// ticket's that is not set yet), the grace in ms (how long ago a grant
/// was made is a day less `granted`'s time to live: the server's clock).
/// A waiter's bump: only when the ticket at the indicator is dead (or
/// withdrawn), it moves the indicator forward past it and the dead tickets
/// after it, up to the passing ticket at most, never past a ticket with a
/// presence key; says "N bumps" and announces the result (on `internal`,
/// turn 1.0's message, and to our ticket called by its nonce). Nothing is
/// done, and nothing said, while the ticket at the indicator is alive: so
/// a bump is made once however many waiters try it.
/// Returns {-2, 0} when the passing ticket is not ours any more, {-1, 0}
/// when there is no queue or the indicator reached the passing ticket,
/// {1, pttl} when the ticket at the indicator has its presence key (pttl
/// -1 when it has no expiry), {2, 0} when it is missing but not to be
/// passed yet, {0, t} when the indicator was moved to t. Past 10,000 dead
/// tickets in a row it stops (a gap written by hand must not block Redis):
/// a later call goes on.
static PASS: Lazy<Script> = Lazy::new(|| {
    script(&format!(
        "{CHECK_NUM}{}",
        r#"
if not ours(ARGV[7], ARGV[8], KEYS[3], ARGV[9]) then return {-2, 0} end
local ind = num(KEYS[1])
if bad(ind) then return ind end
local disp = num(KEYS[2])
if bad(disp) then return disp end
local n = tonumber(ARGV[2])
if ind == nil or disp == nil or ind >= n then return {-1, 0} end
local any = ARGV[10] == '1'
local gkey = string.sub(KEYS[1], 1, #KEYS[1] - 9) .. 'granted'
local gs = redis.call('GET', gkey)
local gpttl = gs and redis.call('PTTL', gkey) or -2
local function gone(s)
  if redis.call('EXISTS', ARGV[1] .. s) == 1 then return false end
  if any or redis.call('SISMEMBER', KEYS[4], s) == 1 then return true end
  -- Granted by one of our scripts longer than the grace ago: not a turn
  -- 1.0 ticket whose key is not set yet, but a dead holder.
  return gs == s and gpttl >= 0 and 86400000 - gpttl > tonumber(ARGV[11])
end
local pttl = redis.call('PTTL', ARGV[1] .. fmt(ind))
if pttl ~= -2 then return {1, pttl} end
if not gone(fmt(ind)) then return {2, 0} end
local t = ind + 1
local stop = math.min(n - 1, ind + 9999)
while t <= stop and gone(fmt(t)) do t = t + 1 end
say(ARGV[3], ARGV[5], ARGV[2] .. ' bumps')
announce(KEYS[1], KEYS[3], ARGV[1], ARGV[6], ARGV[4], ARGV[3], ARGV[5], t, disp)
return {0, t}
"#
    ))
});

/// What a bump answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bumped {
    /// The indicator now shows this ticket.
    To(u64),
    /// There is no such queue (for a waiter's bump: or the indicator
    /// reached the waiter's ticket meanwhile; a check tells what came of
    /// it).
    NoQueue,
    /// The bumping ticket is not ours any more: nothing was touched.
    NotOurs,
}

/// The tool's bump: past every dead ticket up to the dispenser, saying
/// nothing first.
pub(crate) fn bump(core: &Core, keys: &Keys) -> Result<Bumped> {
    let call = Call::new(
        &BUMP,
        &[&keys.indicator, &keys.dispenser, &keys.incarnation],
    )
    .arg(&keys.presence_prefix)
    .arg(&keys.external)
    .arg(&keys.internal)
    .arg(&keys.name)
    .arg(&keys.ticket_prefix);
    let reply: i64 = core.run(|c| call.invoke(c))?;
    Ok(decode(reply)?)
}

/// A waiter's bump past a dead ticket at the indicator (and the dead ones
/// after it) for `t`, which must be ours still; `past_grace`: `t` is older
/// than the grace, so every ticket ahead of it missing its presence key is
/// dead (else only those recorded withdrawn are passed). One round trip.
///
/// `Ok(Bumped)` when it acted: the indicator moved (to `t` itself: its
/// turn, "N started" said), or there was nothing to do for `t` (`NoQueue`,
/// `NotOurs`). `Err(holder)` when the ticket at the indicator was left
/// alone, as it was found: alive (`Expires`, `NoExpiry`), or missing but
/// not to be passed before the grace (`Missing`).
///
/// When the locker asks for replicas, a bump that reaches `t` grants it:
/// a grant they do not confirm in time is an error (a refusal).
pub(crate) fn bump_before(
    core: &Core,
    t: &Ticket,
    past_grace: bool,
) -> Result<std::result::Result<Bumped, Holder>> {
    let keys = &t.keys;
    let call = Call::new(
        &PASS,
        &[
            &keys.indicator,
            &keys.dispenser,
            &keys.incarnation,
            &keys.withdrawn,
        ],
    )
    .arg(&keys.presence_prefix)
    .arg(t.serial)
    .arg(&keys.external)
    .arg(&keys.internal)
    .arg(&keys.name)
    .arg(&keys.ticket_prefix)
    .arg(keys.ticket(t.serial))
    .arg(&t.identity)
    .arg(&t.base)
    .arg(if past_grace { "1" } else { "" })
    .arg(core.options.grace.as_millis() as u64);
    let confirm = Confirm::of(core, t.expire);
    let (reply, confirmed): (Vec<i64>, bool) = core.run(|c| call.invoke_confirmed(c, confirm))?;
    let passed = decode_pass(&reply)?;
    if let Some(confirm) = confirm
        && passed == Ok(Bumped::To(t.serial))
        && !confirmed
    {
        return Err(confirm.missed(&format!(
            "the grant of ticket {} on \"{}\"",
            t.serial, t.resource
        )));
    }
    Ok(passed)
}

/// Reads a waiter's bump reply.
fn decode_pass(reply: &[i64]) -> redis::RedisResult<std::result::Result<Bumped, Holder>> {
    match *reply {
        [0, t] if t >= 0 => Ok(Ok(Bumped::To(t as u64))),
        [1, pttl] if pttl >= -1 => Ok(Err(Holder::from_pttl(pttl))),
        [2, _] => Ok(Err(Holder::Missing)),
        [-1, _] => Ok(Ok(Bumped::NoQueue)),
        [-2, _] => Ok(Ok(Bumped::NotOurs)),
        _ => Err(protocol("a waiter's bump answered", &format!("{reply:?}"))),
    }
}

fn decode(reply: i64) -> redis::RedisResult<Bumped> {
    match reply {
        -1 => Ok(Bumped::NoQueue),
        -2 => Ok(Bumped::NotOurs),
        n if n >= 0 => Ok(Bumped::To(n as u64)),
        n => Err(protocol("a bump answered", &n.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bump_reads_the_indicator_and_the_refusals() {
        assert_eq!(decode(0).unwrap(), Bumped::To(0));
        assert_eq!(decode(42).unwrap(), Bumped::To(42));
        assert_eq!(decode(-1).unwrap(), Bumped::NoQueue);
        assert_eq!(decode(-2).unwrap(), Bumped::NotOurs);
        assert!(decode(-3).is_err());
    }

    #[test]
    fn a_waiters_bump_reads_a_move_a_live_head_and_a_head_kept_for_the_grace() {
        use std::time::Duration;
        assert_eq!(decode_pass(&[0, 7]).unwrap(), Ok(Bumped::To(7)));
        assert_eq!(
            decode_pass(&[1, 1500]).unwrap(),
            Err(Holder::Expires(Duration::from_millis(1500)))
        );
        assert_eq!(decode_pass(&[1, -1]).unwrap(), Err(Holder::NoExpiry));
        assert_eq!(decode_pass(&[2, 0]).unwrap(), Err(Holder::Missing));
        assert_eq!(decode_pass(&[-1, 0]).unwrap(), Ok(Bumped::NoQueue));
        assert_eq!(decode_pass(&[-2, 0]).unwrap(), Ok(Bumped::NotOurs));
        assert!(decode_pass(&[1, -2]).is_err());
        assert!(decode_pass(&[0, -1]).is_err());
        assert!(decode_pass(&[3, 0]).is_err());
        assert!(decode_pass(&[0]).is_err());
    }
}
