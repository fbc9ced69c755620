//! check of a shared-mode ticket: admission runs, and the ticket learns
//! whether it holds and what to watch until then.

use once_cell::sync::Lazy;
use redis::Script;

use super::super::check::{Checked, ours, run};
use super::{Ask, call, script};
use crate::error::Result;
use crate::shared::Core;
use crate::ticket::Ticket;

/// check: the declared keys and first arguments of [`super::NAMES`]; ARGV
/// 7 serial, 8 identity, 9 token base, 10 the ticket's lease in ms (a
/// ticket that is not ours and misses its key is passed once seen missing
/// that long, see `admit`), 11 NOW.
/// Returns {-1, -2} when the ticket is not ours any more (its identity
/// gone or another's, the incarnation changed, or its presence key gone);
/// {indicator, -3} when it holds (admitted by an earlier script, or now:
/// then "N started" is said); else {indicator, least lease left ahead,
/// watched serial, 1 if ours} (see `watch`). A grant writes (the admitted
/// serial, the same value), so that a `WAIT` after it covers the writes
/// that made it.
static CHECK: Lazy<Script> = Lazy::new(|| {
    script(
        r#"
local n, s = tonumber(ARGV[7]), ARGV[7]
local got = redis.call('MGET', T_PREFIX .. s, K_INC, K_IND, P_PREFIX .. s, K_DISP, K_ADM)
if got[1] ~= ARGV[8] or base_of(got[2]) ~= ARGV[9] or got[4] == false then return {-1, -2} end
local ind = serial(got[3], K_IND)
local disp = serial(got[5], K_DISP)
if ind == nil or disp == nil then return {-1, -2} end
if redis.call('HEXISTS', K_HOLD, s) == 1 then
  if got[6] then redis.call('SET', K_ADM, got[6]) end
  return {ind, -3}
end
local head, t, holders, now, unknown = admit(disp, ind, ARGV[9], tonumber(ARGV[10]), n, nil, got[6])
if now then
  redis.call('PUBLISH', EXTERNAL, NAME .. ': ' .. s .. ' started')
  return {head, -3}
end
if t <= n then
  local watched, pttl, mine = watch(n, t, holders, ARGV[9], unknown)
  return {head, pttl, watched, mine}
end
return {-1, -2}
"#,
    )
});

/// Checks whether shared-mode ticket `t` (asking `ask`) holds, admitting
/// what fits first, and what it should watch until then. One round trip.
/// (`_record` is the plain check's: here a ticket that is not ours and
/// misses its key is passed once seen missing for a lease, whoever
/// checks.) When the locker asks for replicas, a grant they do not confirm
/// in time is an error (a refusal).
pub(crate) fn check(core: &Core, t: &Ticket, ask: &Ask, _record: bool) -> Result<Checked> {
    let call = call(&CHECK, &t.keys, ask)
        .arg(t.serial)
        .arg(&t.identity)
        .arg(&t.base)
        .arg(t.expire_ms())
        .arg(crate::shared::unix_ms());
    run(core, t, &call)
}

/// Confirms the call of shared-mode ticket `t` (its nonce came: an
/// admission called it): true when, in one atomic read, it is among the
/// holders, its identity key still holds its identity, the queue's
/// incarnation has its base and its presence key exists. No script: the
/// reads are a transaction (`MULTI`, `HEXISTS`, `MGET`, `EXEC`) in one
/// round trip, so an admission costs the script that made it and this
/// read. A queue made anew has another base, so a holder of another queue
/// with the same serial does not match. False means the message was stale
/// or the ticket is gone; a [`check`] tells which. A [`check`] confirms
/// instead on a Redis Cluster (whose connection runs no transaction) and
/// when the locker asks for replicas (it writes, so that its `WAIT`
/// covers the admission that called).
pub(crate) fn confirm(core: &Core, t: &Ticket, ask: &Ask) -> Result<bool> {
    if core.durable.is_on() || core.pool.is_cluster() {
        return Ok(check(core, t, ask, false)? == Checked::Granted);
    }
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("HEXISTS")
        .arg(&t.keys.holders)
        .arg(t.serial)
        .cmd("MGET")
        .arg(t.keys.ticket(t.serial))
        .arg(&t.keys.incarnation)
        .arg(t.keys.presence(t.serial));
    let (holder, got): (bool, Vec<Option<String>>) = core.run(|c| pipe.query(c))?;
    Ok(holder && matches!(&got[..], [Some(id), Some(inc), Some(_)] if ours(t, id, inc)))
}
