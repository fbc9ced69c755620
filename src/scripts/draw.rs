//! draw: a new ticket, and the queue as it stands.

use once_cell::sync::Lazy;
use redis::{FromRedisValue, RedisResult, Script, Value};

use super::call::{Call, Confirm, protocol};
use super::kind::wrong_kind;
use super::reading::{Holder, Reading};
use crate::error::Result;
use crate::shared::Core;
use crate::ticket::Draw;

/// draw: KEYS dispenser, indicator, incarnation, kind, granted; ARGV
/// presence prefix,
/// label, expire ms, external channel, resource, 'clock' to seed a new
/// queue from the server's clock ('' for turn 1.0's 1), ticket prefix,
/// nonce, withdrawn set (in the queue's slot), the locker's channel (a
/// grant at once is recorded in `granted`, see `release`).
/// Returns {serial, base} when the lock was granted right away, else
/// {serial, base, indicator, pttl of the previous ticket's presence key,
/// 1 if that ticket is ours (drawn in this incarnation) else 0}; see
/// [`Drawn`].
///
/// Bootstrap: INCR answering 1 means the dispenser was missing (or 0, as
/// turn 1.0's MSETNX leaves it); when the indicator is missing too, the
/// queue is new: the indicator becomes 1 (what MSETNX of dispenser 0 and
/// indicator 1 followed by INCR leaves), or with 'clock' both become the
/// server time in microseconds.
///
/// Identity: beside the presence key (whose value stays the label, for
/// turn 1.0) the draw writes the ticket's identity key, `NONCE BASE
/// CHANNEL`, with the same lease; every later step for this ticket compares
/// it, and a release calls the next ticket on CHANNEL with NONCE only when
/// BASE is the queue's.
///
/// Fencing tokens: token = base + serial, never above the server time in
/// microseconds. The incarnation key holds the base and the highest serial
/// drawn here. The base stays while serials grow one by one (a draw takes
/// more than a microsecond, so the token stays below the clock without
/// asking for the time). A draw takes a new base, making its token the
/// server time (or the last token + 1 if that is higher), when the key is
/// missing (a new queue, a restart without persistence, FLUSHDB, our
/// reset), when its serial is not above the highest (the dispenser went
/// back: a turn 1.0 reset, a queue made anew; the withdrawn set, now stale,
/// is deleted), or when the token would pass the clock (the serial jumped:
/// turn 1.0 draws in between, or an indicator past the dispenser). So a new
/// incarnation's first token, the server time, is above every earlier
/// token, as long as the server clock does not go back.
///
/// A queue of shared modes (its kind key set, see `Keys::kind`) answers
/// `TURNKIND KIND`: a plain lock does not take part in it.
///
/// Draw and release are every lock's two round trips, so they are written
/// out without the shared helpers (no closures to build per call): the
/// `protocol floor` line of the benchmark measures what is left.
static DRAW: Lazy<Script> = Lazy::new(|| {
    Script::new(&format!(
        r#"
local K_DISP, K_IND, K_INC, K_KIND = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local CLOCK, T_PREFIX, FORGET = ARGV[6] == 'clock', ARGV[7], {{ARGV[9], KEYS[5]}}
local EXTRA, JUMP = {{K_KIND}}, true
local function on_read(got, n, made)
  local kind = got[4]
  if not kind then return nil end
  if not made then
    -- A queue of shared modes refuses a plain draw, unless turn 1.0
    -- clients made it anew (their reset deletes the dispenser and
    -- indicator alone): its dispenser went back below the highest serial
    -- our draws took.
    local top = tonumber(string.match(got[2] or '', ' (%d+)$'))
    if top == nil or n - 1 >= top then
      redis.call('DECR', K_DISP)
      return redis.error_reply('TURNKIND ' .. kind)
    end
  end
  -- Left by a queue of shared modes that is gone.
  redis.call('DEL', K_KIND)
  return nil
end
{NEW_SERIAL}
redis.call('SET', ARGV[1] .. s, ARGV[2], 'PX', ARGV[3])
redis.call('SET', T_PREFIX .. s, ARGV[8] .. ' ' .. bs .. ' ' .. ARGV[10], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5] .. ': ' .. s .. ' assigned to "' .. ARGV[2] .. '"')
if ind == n then
  redis.call('SET', KEYS[5], s, 'PX', 86400000)
  redis.call('PUBLISH', ARGV[4], ARGV[5] .. ': ' .. s .. ' started')
  return {{n, base}}
end
-- The ticket before this one: its lease, and whether it is ours (its
-- identity names this incarnation), so the waiter knows what to watch.
local mine = 0
if type(prev) == 'string' then
  local a = string.find(prev, ' ', 1, true)
  local b = a and string.find(prev, ' ', a + 1, true)
  if b and string.sub(prev, a + 1, b - 1) == bs then mine = 1 end
end
return {{n, base, ind, redis.call('PTTL', ARGV[1] .. string.format('%d', n - 1)), mine}}
"#
    ))
});

/// The draw of a serial, shared by the plain draw and the draw of a
/// shared-mode queue: INCR of the dispenser K_DISP (bootstrapping a new
/// queue with the indicator K_IND), the indicator read, and the token
/// base of the queue's incarnation K_INC (see `DRAW`). Expects the locals
/// K_DISP, K_IND, K_INC, CLOCK (seed a new queue from the server's
/// clock), T_PREFIX (the identity keys' prefix), FORGET (the keys to
/// delete when the queue was made anew under them), EXTRA (more keys to
/// read), JUMP (take the indicator's serial when it is past the
/// dispenser: a plain queue's turn is the indicator's; a shared-mode
/// queue admits from its admitted serial, and its admission puts the
/// indicator back) and the function `on_read(got, n, made)`, called with the MGET of
/// the indicator, the incarnation, ticket n - 1's identity and EXTRA
/// (`made`: this draw made the queue), whose error reply, if any, is the
/// script's. Leaves n, s (its text), ind, base, bs (its text, written to
/// K_INC), prev (the identity value of ticket n - 1) and forgot (FORGET
/// was deleted).
pub(super) const NEW_SERIAL: &str = r#"
local n = redis.call('INCR', K_DISP)
if n > 9007199254740991 then
  return redis.error_reply('TURNPROTO ' .. K_DISP .. ' is past 2^53')
end
local made = false
if n == 1 and redis.call('EXISTS', K_IND) == 0 then
  made = true
  if CLOCK then
    local t = redis.call('TIME')
    n = tonumber(t[1]) * 1000000 + tonumber(t[2])
    redis.call('SET', K_DISP, string.format('%d', n))
  end
  redis.call('SET', K_IND, string.format('%d', n))
end
local got = redis.call('MGET', K_IND, K_INC, T_PREFIX .. string.format('%d', n - 1), unpack(EXTRA))
local refused = on_read(got, n, made)
if refused then return refused end
local v = got[1]
if v == false then
  return redis.error_reply('TURNPROTO ' .. K_IND .. ' is missing while ' .. K_DISP .. ' exists')
end
if not string.match(v, '^%d+$') or #v > 16 or tonumber(v) > 9007199254740991 then
  return redis.error_reply('TURNPROTO ' .. K_IND .. ' is not a serial number')
end
local ind = tonumber(v)
if ind > n and JUMP then
  -- The indicator is past the dispenser (a turn 1.0 release into a queue
  -- made anew, or a value written by hand): the serials up to it were never
  -- drawn. Take the indicator's.
  n = ind
  redis.call('SET', K_DISP, v)
end
local s = string.format('%d', n)
local base, top
local inc = got[2]
if inc then
  local sp = string.find(inc, ' ', 1, true)
  if sp then
    base = tonumber(string.sub(inc, 1, sp - 1))
    top = tonumber(string.sub(inc, sp + 1))
  end
end
local forgot = false
local fresh = base == nil or top == nil or n <= top
local now = nil
if not fresh and n ~= top + 1 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  fresh = base + n > now
end
if fresh then
  -- A new incarnation, a dispenser that went back, or a serial that
  -- jumped: the token becomes the server time, and stays above the last
  -- one.
  if now == nil then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  local token = now
  if base ~= nil and top ~= nil and base + top + 1 > token then token = base + top + 1 end
  if base ~= nil and top ~= nil and n <= top then
    -- The queue was made anew under the withdrawn set (and the other
    -- records of its tickets): forget them.
    redis.call('DEL', unpack(FORGET))
    forgot = true
  end
  base = token - n
end
local bs = string.format('%d', base)
redis.call('SET', K_INC, bs .. ' ' .. s)
local prev = got[3]
"#;

/// What a draw answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drawn {
    pub serial: u64,
    /// The fencing token: the incarnation's base + the serial.
    pub token: u64,
    pub turn: Turn,
    /// Enough replicas have the draw (always, when none are asked for):
    /// a grant counts only then.
    pub confirmed: bool,
    /// The draw was sent again after a connection that broke: the first
    /// try may have made a ticket too (with the same nonce).
    pub retried: bool,
}

/// Whether a draw or check found its ticket's turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// The indicator shows the ticket: the lock is held.
    Granted,
    /// Another ticket comes first.
    Waiting(Reading),
}

/// Draws a ticket for `draw` (its keys, label, lease and identity): one
/// round trip (with `WAIT` in it when the locker asks for replicas).
pub(crate) fn draw(core: &Core, draw: &Draw) -> Result<Drawn> {
    let keys = &draw.keys;
    let call = Call::new(
        &DRAW,
        &[
            &keys.dispenser,
            &keys.indicator,
            &keys.incarnation,
            &keys.kind,
            &keys.granted,
        ],
    )
    .arg(&keys.presence_prefix)
    .arg(&draw.label)
    .arg(draw.expire.as_millis() as u64)
    .arg(&keys.external)
    .arg(&keys.name)
    .arg(if core.options.clock_serials {
        "clock"
    } else {
        ""
    })
    .arg(&keys.ticket_prefix)
    .arg(&draw.nonce)
    .arg(&keys.withdrawn)
    .arg(&draw.channel);
    let confirm = Confirm::of(core, draw.expire);
    let ((mut drawn, confirmed), retried): ((Drawn, bool), bool) = core
        .run_retried(|c| call.invoke_confirmed(c, confirm))
        .map_err(|e| wrong_kind(e, &draw.resource, draw.mode))?;
    drawn.confirmed = confirmed;
    drawn.retried = retried;
    Ok(drawn)
}

impl FromRedisValue for Drawn {
    fn from_redis_value(v: &Value) -> RedisResult<Drawn> {
        let reply: Vec<i64> = FromRedisValue::from_redis_value(v)?;
        let (serial, base, turn) = match reply.as_slice() {
            [serial, base] => (*serial, *base, Turn::Granted),
            [serial, base, indicator, pttl, mine, ..] if reply.len() <= 6 => {
                let indicator = u64::try_from(*indicator).map_err(|_| {
                    protocol("a draw read an indicator below 0", &indicator.to_string())
                })?;
                let reading = Reading {
                    indicator,
                    // The ticket before it (a plain draw), or the one named
                    // (a shared-mode draw).
                    watched: match reply.get(5) {
                        Some(&w) => u64::try_from(w).map_err(|_| {
                            protocol("a draw named a ticket below 0", &w.to_string())
                        })?,
                        None => u64::try_from(*serial).unwrap_or(0).saturating_sub(1),
                    },
                    holder: Holder::from_pttl(*pttl),
                    ours: *mine == 1,
                };
                (*serial, *base, Turn::Waiting(reading))
            }
            _ => return Err(protocol("a draw answered a reply of the wrong shape", "")),
        };
        // A dispenser below 0 (written by someone else) would draw one.
        let serial = u64::try_from(serial)
            .ok()
            .filter(|&s| s > 0)
            .ok_or_else(|| protocol("the dispenser drew a serial below 1", &serial.to_string()))?;
        let token = base
            .checked_add(serial as i64)
            .and_then(|t| u64::try_from(t).ok())
            .filter(|&t| t > 0)
            .ok_or_else(|| protocol("the incarnation gave a token below 1", &base.to_string()))?;
        Ok(Drawn {
            serial,
            token,
            turn,
            confirmed: true,
            retried: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ints(v: &[i64]) -> Value {
        Value::Array(v.iter().map(|&n| Value::Int(n)).collect())
    }

    #[test]
    fn a_draw_reads_the_granted_pair_and_the_waiting_quintuple() {
        let granted = Drawn::from_redis_value(&ints(&[7, 100])).unwrap();
        assert_eq!((granted.serial, granted.token), (7, 107));
        assert_eq!(granted.turn, Turn::Granted);
        let waiting = Drawn::from_redis_value(&ints(&[9, -2, 7, 2500, 1])).unwrap();
        assert_eq!((waiting.serial, waiting.token), (9, 7));
        assert_eq!(
            waiting.turn,
            Turn::Waiting(Reading {
                indicator: 7,
                watched: 8,
                holder: Holder::Expires(Duration::from_millis(2500)),
                ours: true,
            })
        );
        assert!(Drawn::from_redis_value(&ints(&[-4, 100])).is_err());
        assert!(Drawn::from_redis_value(&ints(&[4, -4])).is_err());
        assert!(Drawn::from_redis_value(&ints(&[4])).is_err());
        assert!(Drawn::from_redis_value(&Value::Int(7)).is_err());
        assert!(Drawn::from_redis_value(&Value::Nil).is_err());
    }

    #[test]
    fn a_waiting_draw_reads_the_previous_tickets_presence_key() {
        let holder = |pttl| match Drawn::from_redis_value(&ints(&[9, 0, 7, pttl, 0]))
            .unwrap()
            .turn
        {
            Turn::Waiting(r) => r.holder,
            Turn::Granted => panic!("granted"),
        };
        assert_eq!(holder(-2), Holder::Missing);
        assert_eq!(holder(-1), Holder::NoExpiry);
        assert_eq!(holder(0), Holder::Expires(Duration::ZERO));
        assert!(Drawn::from_redis_value(&ints(&[9, 0, -1, 10, 0])).is_err());
        assert!(Drawn::from_redis_value(&ints(&[9, 0, 7, 10])).is_err());
    }
}
