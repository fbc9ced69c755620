//! draw of a shared-mode queue: a new ticket with its weight, admitted at
//! once when it fits.

use once_cell::sync::Lazy;
use redis::Script;

use super::super::call::Confirm;
use super::super::draw::{Drawn, NEW_SERIAL};
use super::super::kind::wrong_kind;
use super::{Ask, call, script};
use crate::error::Result;
use crate::shared::Core;
use crate::ticket::Draw;

/// draw: the declared keys and first arguments of [`super::NAMES`]; ARGV
/// 7 label, 8 expire ms, 9 'clock' to seed a new queue from the server's
/// clock, 10 nonce, 11 the locker's channel, 12 the kind, 13 the weight,
/// 14 NOW.
///
/// A queue that exists with another kind (a plain queue has no kind key;
/// an indicator alone, with no dispenser, is no queue)
/// answers `TURNKIND KIND` and is left alone; a new queue takes this
/// kind. The serial, identity and token are the plain draw's (`NEW_SERIAL`).
/// Admission runs (`admit`, with the ticket's weight); a ticket not
/// admitted has its weight recorded. Returns {serial, base} when admitted now ("N started"
/// said), else {serial, base, indicator, least lease left ahead, 1 if
/// ours, watched serial} (see `watch`).
static DRAW: Lazy<Script> = Lazy::new(|| {
    script(&format!(
        r#"
local CLOCK, FORGET = ARGV[9] == 'clock', {{K_ADM, K_HOLD, K_WEIGHTS, K_SINCE}}
local EXTRA, JUMP = {{K_KIND, K_ADM}}, false
local adm = nil
local function on_read(got, n, made)
  -- No ticket was ever drawn (the dispenser was missing) and no kind is
  -- set: an indicator alone, left by a turn 1.0 client's release after
  -- the queue was deleted, makes no plain queue. Made here.
  if not made and n == 1 and got[4] == false then made = true end
  if made then
    -- A new queue, of this kind; what an earlier one left goes.
    redis.call('DEL', K_ADM, K_HOLD, K_WEIGHTS, K_SINCE)
    redis.call('SET', K_KIND, ARGV[12])
    adm = false
  elseif got[4] ~= ARGV[12] then
    redis.call('DECR', K_DISP)
    return redis.error_reply('TURNKIND ' .. (got[4] or 'plain'))
  else
    adm = got[5]
  end
  return nil
end
{NEW_SERIAL}
redis.call('SET', P_PREFIX .. s, ARGV[7], 'PX', ARGV[8])
redis.call('SET', T_PREFIX .. s, ARGV[10] .. ' ' .. bs .. ' ' .. ARGV[11], 'PX', ARGV[8])
redis.call('PUBLISH', EXTERNAL, NAME .. ': ' .. s .. ' assigned to "' .. ARGV[7] .. '"')
if forgot then adm = false end
local head, t, holders, now, unknown = admit(n, ind, bs, tonumber(ARGV[8]), n, tonumber(ARGV[13]), adm)
if now then
  redis.call('PUBLISH', EXTERNAL, NAME .. ': ' .. s .. ' started')
  return {{n, base}}
end
redis.call('HSET', K_WEIGHTS, s, ARGV[13])
local watched, pttl, mine = watch(n, t, holders, bs, unknown)
return {{n, base, head, pttl, mine, watched}}
"#
    ))
});

/// Draws a ticket of a shared-mode queue for `draw`, asking `ask`: one
/// round trip (with `WAIT` in it when the locker asks for replicas).
pub(crate) fn draw(core: &Core, draw: &Draw, ask: &Ask) -> Result<Drawn> {
    let keys = &draw.keys;
    let call = call(&DRAW, keys, ask)
        .arg(&draw.label)
        .arg(draw.expire.as_millis() as u64)
        .arg(if core.options.clock_serials {
            "clock"
        } else {
            ""
        })
        .arg(&draw.nonce)
        .arg(&draw.channel)
        .arg(&ask.kind)
        .arg(ask.weight)
        .arg(crate::shared::unix_ms());
    let confirm = Confirm::of(core, draw.expire);
    let ((mut drawn, confirmed), retried): ((Drawn, bool), bool) = core
        .run_retried(|c| call.invoke_confirmed(c, confirm))
        .map_err(|e| wrong_kind(e, &draw.resource, draw.mode))?;
    drawn.confirmed = confirmed;
    drawn.retried = retried;
    Ok(drawn)
}
