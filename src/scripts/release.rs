//! release / abandon: a ticket leaves its queue.

use once_cell::sync::Lazy;
use redis::Script;

use crate::error::Result;
use crate::shared::Core;
use crate::ticket::Ticket;

use super::call::{Call, Confirm};

/// release / abandon: KEYS indicator, withdrawn, dispenser, incarnation,
/// granted (set to the next ticket, expiring in a day: its time to live
/// tells how long ago the grant was made);
/// ARGV presence prefix, serial, label, external, internal, resource, mode
/// ('release' or 'abandon'), ticket prefix, ticket identity, token base.
/// Does nothing at all unless the ticket is still ours: its identity key
/// holds its identity and the queue's incarnation has its token base (a
/// ticket of a vanished queue, or one whose serial a later ticket took,
/// touches nothing). Else deletes the presence and identity keys; only
/// when the indicator is this serial it moves the indicator on and calls
/// the next ticket. It passes over tickets withdrawn (timeout, cancel,
/// try-lock, or found dead by the waiter behind them) whose presence key is
/// gone. The next ticket, when it is ours (its identity names this
/// incarnation), is called on its locker's channel with its nonce, which
/// wakes that waiter alone, and "N started" is said for it (it confirms its
/// turn with a plain read, see `confirm`); turn 1.0's message on `internal`
/// and "granted" are published in every case. An abandoned ticket the
/// indicator has not reached is recorded as withdrawn (a set that expires
/// ten minutes after its last addition). The withdrawn set is consulted
/// only for tickets the dispenser has handed out: past it nobody waits,
/// and an entry left over from before a turn 1.0 `reset` cannot pass a
/// ticket drawn afterwards.
/// Returns 2 x moved (0/1) + presence key existed (0/1).
///
/// Every hand-off pays for this script, so it reads what it needs with one
/// MGET (its identity, the incarnation, the indicator, the dispenser and
/// the next ticket's identity) and is written out without the helpers.
static RELEASE: Lazy<Script> = Lazy::new(|| {
    Script::new(
        r#"
local n = tonumber(ARGV[2])
local tkey = ARGV[8] .. ARGV[2]
local got = redis.call('MGET', tkey, KEYS[4], KEYS[1], KEYS[3], ARGV[8] .. string.format('%d', n + 1))
if got[1] ~= ARGV[9] then return 0 end
local inc = got[2]
if type(inc) ~= 'string' or string.sub(inc, 1, #ARGV[10] + 1) ~= ARGV[10] .. ' ' then return 0 end
local present = redis.call('DEL', tkey, ARGV[1] .. ARGV[2]) - 1
local v = got[3]
local ind = nil
if v ~= false then
  if not string.match(v, '^%d+$') or #v > 16 or tonumber(v) > 9007199254740991 then
    return redis.error_reply('TURNPROTO ' .. KEYS[1] .. ' is not a serial number')
  end
  ind = tonumber(v)
end
local abandon = ARGV[7] == 'abandon'
if abandon then
  redis.call('PUBLISH', ARGV[4], ARGV[6] .. ': ' .. ARGV[2] .. ' canceled')
end
if ind ~= n then
  if abandon and ind ~= nil and ind < n then
    redis.call('SADD', KEYS[2], ARGV[2])
    redis.call('PEXPIRE', KEYS[2], 600000)
    -- The waiter behind, when ours, watched this ticket: it reads the
    -- queue again (the ticket it must watch now may be a turn 1.0 one,
    -- whose release only `internal` announces).
    local id = got[5]
    if type(id) == 'string' then
      local a = string.find(id, ' ', 1, true)
      local b = a and string.find(id, ' ', a + 1, true)
      if b and string.sub(id, a + 1, b - 1) == ARGV[10] then
        redis.call('PUBLISH', string.sub(id, b + 1), string.sub(id, 1, a - 1))
      end
    end
  end
  return present
end
if not abandon then
  redis.call('PUBLISH', ARGV[4], ARGV[6] .. ': ' .. ARGV[2] .. ' completed by "' .. ARGV[3] .. '"')
end
local t = n + 1
local s = string.format('%d', t)
local disp = nil
if type(got[4]) == 'string' and string.match(got[4], '^%d+$') and #got[4] <= 16 then
  disp = tonumber(got[4])
end
local id = got[5]
local nonce, channel = nil, nil
while disp ~= nil and t <= disp do
  -- id is `NONCE BASE CHANNEL` for a ticket of ours in this incarnation.
  nonce = nil
  if type(id) == 'string' then
    local a = string.find(id, ' ', 1, true)
    local b = a and string.find(id, ' ', a + 1, true)
    if b and string.sub(id, a + 1, b - 1) == ARGV[10] then
      nonce = string.sub(id, 1, a - 1)
      channel = string.sub(id, b + 1)
    end
  end
  if nonce or redis.call('SREM', KEYS[2], s) == 0 or redis.call('EXISTS', ARGV[1] .. s) == 1 then
    break
  end
  t = t + 1
  s = string.format('%d', t)
  id = redis.pcall('GET', ARGV[8] .. s)
end
redis.call('SET', KEYS[1], s)
if disp ~= nil and t <= disp then redis.call('SET', KEYS[5], s, 'PX', 86400000) end
if nonce then redis.call('PUBLISH', channel, nonce) end
redis.call('PUBLISH', ARGV[5], ARGV[1] .. s)
redis.call('PUBLISH', ARGV[4], ARGV[6] .. ': ' .. s .. ' granted')
if nonce then redis.call('PUBLISH', ARGV[4], ARGV[6] .. ': ' .. s .. ' started') end
return 2 + present
"#,
    )
});

/// Why a ticket leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// It held the lock: "N completed by LABEL".
    Release,
    /// It gives up (timeout, cancel, failure, closing): "N canceled"; a
    /// ticket the indicator has not reached is noted as withdrawn.
    Abandon,
}

/// What became of a ticket that left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Left {
    /// The indicator showed the ticket and was moved on.
    pub moved: bool,
    /// Its presence key still existed.
    pub present: bool,
    /// Enough replicas have the release (always when none are asked for,
    /// and for a withdrawal, which waits for none): when false, the
    /// confirmation this asked for (see [`Confirm::missed`]).
    pub unconfirmed: Option<Confirm>,
}

impl Left {
    fn from_code(code: i64) -> Left {
        Left {
            moved: code & 2 != 0,
            present: code & 1 != 0,
            unconfirmed: None,
        }
    }
}

/// Takes `t` out of its queue: one round trip. A release (not a
/// withdrawal) waits for the replicas the locker asks for, in the same
/// round trip, unless `confirm` is false (closing: what the replicas say
/// would change nothing, and closing must be quick).
pub(crate) fn release(core: &Core, t: &Ticket, mode: Mode, confirm: bool) -> Result<Left> {
    let call = Call::new(
        &RELEASE,
        &[
            &t.keys.indicator,
            &t.keys.withdrawn,
            &t.keys.dispenser,
            &t.keys.incarnation,
            &t.keys.granted,
        ],
    )
    .arg(&t.keys.presence_prefix)
    .arg(t.serial)
    .arg(&t.label)
    .arg(&t.keys.external)
    .arg(&t.keys.internal)
    .arg(&t.keys.name)
    .arg(match mode {
        Mode::Release => "release",
        Mode::Abandon => "abandon",
    })
    .arg(&t.keys.ticket_prefix)
    .arg(&t.identity)
    .arg(&t.base);
    run(core, t, &call, mode, confirm)
}

/// Runs a release `call` of `t` (a plain one, or a shared-mode one: their
/// replies have one shape); a release waits for the replicas unless
/// `confirm` is false.
pub(super) fn run(core: &Core, t: &Ticket, call: &Call, mode: Mode, confirm: bool) -> Result<Left> {
    let confirm = match mode {
        Mode::Release if confirm => Confirm::of(core, t.expire),
        _ => None,
    };
    let (code, confirmed): (i64, bool) = core.run(|c| call.invoke_confirmed(c, confirm))?;
    Ok(Left {
        unconfirmed: confirm.filter(|_| !confirmed),
        ..Left::from_code(code)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_reads_moved_and_present() {
        let left = |moved, present| Left {
            moved,
            present,
            unconfirmed: None,
        };
        assert_eq!(Left::from_code(0), left(false, false));
        assert_eq!(Left::from_code(1), left(false, true));
        assert_eq!(Left::from_code(2), left(true, false));
        assert_eq!(Left::from_code(3), left(true, true));
    }
}
