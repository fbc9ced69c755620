//! The protocol's state changes, each one server-side Lua script (EVALSHA,
//! falling back to EVAL), so that each is one round trip and atomic.
//!
//! Texts published on the `external` channel are those of turn 1.0, so that
//! `turn follow` looks the same whichever client acted. Serials are formatted
//! with `%d` so that large numbers never print in exponent form.

use once_cell::sync::Lazy;
use redis::{ConnectionLike, FromRedisValue, RedisResult, Script, ToRedisArgs, Value};

/// One EVALSHA of a script, written straight into one command buffer: the
/// declared keys, then the arguments. Built once and run as often as needed
/// (a retry sends the same bytes); loads the script when Redis answers
/// NOSCRIPT (a restarted or flushed server) and sends it again.
pub(crate) struct Call {
    script: &'static Script,
    cmd: redis::Cmd,
}

impl Call {
    pub fn new(script: &'static Script, keys: &[&str]) -> Call {
        let mut cmd = redis::Cmd::with_capacity(3 + keys.len() + 8, 256);
        cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys.len());
        for key in keys {
            cmd.arg(*key);
        }
        Call { script, cmd }
    }

    pub fn arg<T: ToRedisArgs>(mut self, arg: T) -> Call {
        self.cmd.arg(arg);
        self
    }

    pub fn invoke<T: FromRedisValue>(&self, con: &mut dyn ConnectionLike) -> RedisResult<T> {
        match self.cmd.query(con) {
            Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
                self.script.load(con)?;
                self.cmd.query(con)
            }
            result => result,
        }
    }
}

/// Shared helpers, prepended to every script but draw and release.
const HELPERS: &str = r#"
local function fmt(n) return string.format('%d', n) end
local function num(key)
  local v = redis.call('GET', key)
  if v == false then return nil end
  if not string.match(v, '^%d+$') or #v > 16 or tonumber(v) > 9007199254740991 then
    return redis.error_reply('TURNPROTO ' .. key .. ' is not a serial number')
  end
  return tonumber(v)
end
-- True when ticket key tkey still holds this ticket's identity, in the
-- incarnation whose token base it was drawn with.
local function ours(tkey, identity, ikey, base)
  if redis.call('GET', tkey) ~= identity then return false end
  local inc = redis.call('GET', ikey)
  return inc ~= false and string.sub(inc, 1, #base + 1) == base .. ' '
end
local function say(channel, resource, text)
  redis.call('PUBLISH', channel, resource .. ': ' .. text)
end
-- Moves the indicator to t and calls t: on `internal` (turn 1.0's message),
-- and, when t is one of ours (drawn: not past the dispenser), on its
-- locker's channel with its nonce, which wakes that waiter alone.
local function announce(ind_key, prefix, ticket_prefix, internal, external, resource, t, disp)
  local s = fmt(t)
  redis.call('SET', ind_key, s)
  local id = false
  if t <= disp then id = redis.call('GET', ticket_prefix .. s) end
  if id then
    local sp = string.find(id, ' ', 1, true)
    if sp then redis.call('PUBLISH', string.sub(id, sp + 1), string.sub(id, 1, sp - 1)) end
  end
  redis.call('PUBLISH', internal, prefix .. s)
  redis.call('PUBLISH', external, resource .. ': ' .. s .. ' granted')
end
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{HELPERS}{body}"))
}

/// For bump and reset only (kept out of the hot scripts): the first ticket
/// from `t` to `limit` whose presence key exists, or limit + 1; looking at
/// 10,000 tickets at most (a gap written by hand must not block Redis): it
/// then answers the next one to look at, and a later call goes on.
const FIRST_LIVE: &str = r#"
local function first_live(prefix, t, limit)
  local stop = math.min(limit, t + 9999)
  while t <= stop and redis.call('EXISTS', prefix .. fmt(t)) == 0 do t = t + 1 end
  return t
end
"#;

/// A wrong-shaped value read by `num` comes back as an error table.
const CHECK_NUM: &str = r#"
local function bad(x) return type(x) == 'table' end
"#;

/// draw: KEYS dispenser, indicator, incarnation; ARGV presence prefix,
/// label, expire ms, external channel, resource, 'clock' to seed a new
/// queue from the server's clock ('' for turn 1.0's 1), ticket prefix,
/// ticket identity (`NONCE CHANNEL`), withdrawn set (in the queue's slot).
/// Returns {serial, base} when the lock was granted right away, else
/// {serial, base, indicator, pttl of the indicator's presence key}; see
/// [`Drawn`].
///
/// Bootstrap: INCR answering 1 means the dispenser was missing (or 0, as
/// turn 1.0's MSETNX leaves it); when the indicator is missing too, the
/// queue is new: the indicator becomes 1 (what MSETNX of dispenser 0 and
/// indicator 1 followed by INCR leaves), or with 'clock' both become the
/// server time in microseconds.
///
/// Identity: beside the presence key (whose value stays the label, for
/// turn 1.0) the draw writes the ticket's identity key with the same
/// lease; every later step for this ticket compares it.
///
/// Fencing tokens: token = base + serial, never above the server time in
/// microseconds. The incarnation key holds the base and the highest serial
/// drawn here. The base stays while serials grow one by one (fewer than one
/// draw per microsecond keeps the token below the clock). A draw takes a
/// new base, making its token the server time (or the last token + 1 if
/// that is higher), when the key is missing (a new queue, a restart without
/// persistence, FLUSHDB, our reset), when its serial is not above the
/// highest (the dispenser went back: a turn 1.0 reset, a queue made anew;
/// the withdrawn set, now stale, is deleted), or when the token would pass
/// the clock (the serial jumped to an indicator past the dispenser). So a
/// new incarnation's first token, the server time, is above every earlier
/// token, as long as the server clock does not go back.
///
/// Draw and release are every lock's two round trips, so they are written
/// out without the shared helpers (no closures to build per call): the
/// `protocol floor` line of the benchmark measures what is left.
pub(crate) static DRAW: Lazy<Script> = Lazy::new(|| {
    Script::new(
        r#"
if redis.replicate_commands then redis.replicate_commands() end
local clock = ARGV[6] == 'clock'
local n = redis.call('INCR', KEYS[1])
if n > 9007199254740991 then
  return redis.error_reply('TURNPROTO ' .. KEYS[1] .. ' is past 2^53')
end
if n == 1 and redis.call('EXISTS', KEYS[2]) == 0 then
  if clock then
    local t = redis.call('TIME')
    n = tonumber(t[1]) * 1000000 + tonumber(t[2])
    redis.call('SET', KEYS[1], string.format('%d', n))
  end
  redis.call('SET', KEYS[2], string.format('%d', n))
end
local v = redis.call('GET', KEYS[2])
if v == false then
  return redis.error_reply('TURNPROTO ' .. KEYS[2] .. ' is missing while ' .. KEYS[1] .. ' exists')
end
if not string.match(v, '^%d+$') or #v > 16 or tonumber(v) > 9007199254740991 then
  return redis.error_reply('TURNPROTO ' .. KEYS[2] .. ' is not a serial number')
end
local ind = tonumber(v)
if ind > n then
  -- The indicator is past the dispenser (a turn 1.0 release into a queue
  -- made anew, or a value written by hand): the serials up to it were never
  -- drawn. Take the indicator's.
  n = ind
  redis.call('SET', KEYS[1], v)
end
local s = string.format('%d', n)
redis.call('SET', ARGV[1] .. s, ARGV[2], 'PX', ARGV[3])
redis.call('SET', ARGV[7] .. s, ARGV[8], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5] .. ': ' .. s .. ' assigned to "' .. ARGV[2] .. '"')
local base, top
local inc = redis.call('GET', KEYS[3])
if inc then
  local sp = string.find(inc, ' ', 1, true)
  if sp then
    base = tonumber(string.sub(inc, 1, sp - 1))
    top = tonumber(string.sub(inc, sp + 1))
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if base == nil or top == nil or n <= top or base + n > now then
  -- A new incarnation, a dispenser that went back, or a serial that
  -- jumped (to the indicator): the token becomes the server time, and
  -- stays above the last one.
  local token = now
  if base ~= nil and top ~= nil and base + top + 1 > token then token = base + top + 1 end
  if base ~= nil and n <= top then
    -- The queue was made anew under the withdrawn set: forget it.
    redis.call('DEL', ARGV[9])
  end
  base = token - n
end
redis.call('SET', KEYS[3], string.format('%d %d', base, n))
if ind == n then
  redis.call('PUBLISH', ARGV[4], ARGV[5] .. ': ' .. s .. ' started')
  return {n, base}
end
return {n, base, ind, redis.call('PTTL', ARGV[1] .. v)}
"#,
    )
});

/// What a draw answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drawn {
    pub serial: u64,
    /// The fencing token: the incarnation's base + the serial.
    pub token: u64,
    pub indicator: i64,
    /// The pttl of the indicator's presence key (-2 when it is missing), or
    /// -3 when the lock was granted right away.
    pub pttl: i64,
}

/// The code of a draw or check that was granted the lock right away (a
/// draw's `pttl`, a check's code).
pub(crate) const GRANTED: i64 = -3;

impl Drawn {
    pub fn granted(&self) -> bool {
        self.pttl == GRANTED
    }
}

impl FromRedisValue for Drawn {
    fn from_redis_value(v: &Value) -> RedisResult<Drawn> {
        let reply: Vec<i64> = FromRedisValue::from_redis_value(v)?;
        let (serial, base, indicator, pttl) = match reply.as_slice() {
            [serial, base] => (*serial, *base, *serial, GRANTED),
            [serial, base, indicator, pttl] => (*serial, *base, *indicator, *pttl),
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
            indicator,
            pttl,
        })
    }
}

fn protocol(what: &'static str, detail: &str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::TypeError, what, detail.to_string()))
}

/// check: KEYS indicator, incarnation; ARGV presence prefix, serial,
/// external, resource, ticket prefix, ticket identity, expire ms, token
/// base.
/// Returns {indicator, code}: code -3 = granted now ("N started" said and
/// the lease renewed); indicator -1 = the ticket is not ours any more (its
/// identity key is gone or names another ticket, or the queue's
/// incarnation changed: the queue vanished, or a later ticket took the
/// serial) or the queue is gone; otherwise code is the pttl of the
/// indicator's presence key (-2 when it is missing). When the indicator is
/// our serial but our presence key is gone, code is -2.
pub(crate) static CHECK: Lazy<Script> = Lazy::new(|| {
    script(&format!(
        "{CHECK_NUM}{}",
        r#"
if not ours(ARGV[5] .. ARGV[2], ARGV[6], KEYS[2], ARGV[8]) then return {-1, -2} end
local ind = num(KEYS[1])
if bad(ind) then return ind end
if ind == nil then return {-1, -2} end
local n = tonumber(ARGV[2])
if ind == n then
  if redis.call('PEXPIRE', ARGV[1] .. ARGV[2], ARGV[7]) == 0 then return {ind, -2} end
  redis.call('PEXPIRE', ARGV[5] .. ARGV[2], ARGV[7])
  say(ARGV[3], ARGV[4], ARGV[2] .. ' started')
  return {ind, -3}
end
if ind > n then return {ind, -2} end
return {ind, redis.call('PTTL', ARGV[1] .. fmt(ind))}
"#
    ))
});

/// release / abandon: KEYS indicator, withdrawn, dispenser, incarnation;
/// ARGV presence prefix, serial, label, external, internal, resource, mode
/// ('release' or 'abandon'), ticket prefix, ticket identity, token base.
/// Does nothing at all unless the ticket is still ours: its identity key
/// holds its identity and the queue's incarnation has its token base (a
/// ticket of a vanished queue, or one whose serial a later ticket took,
/// touches nothing). Else deletes the presence and identity keys; only
/// when the indicator is this serial it moves the indicator on and calls
/// the next ticket (see `announce`), passing over tickets that were
/// withdrawn (timeout, cancel, try-lock) and so will never come. An
/// abandoned ticket the indicator has not reached is recorded as withdrawn
/// (a set that expires ten minutes after its last addition). The withdrawn
/// set is consulted only for tickets the dispenser has handed out: past it
/// nobody waits, and an entry left over from before a turn 1.0 `reset`
/// cannot pass a ticket drawn afterwards.
/// Returns 2 x moved (0/1) + presence key existed (0/1).
pub(crate) static RELEASE: Lazy<Script> = Lazy::new(|| {
    Script::new(
        r#"
local tkey = ARGV[8] .. ARGV[2]
if redis.call('GET', tkey) ~= ARGV[9] then return 0 end
local inc = redis.call('GET', KEYS[4])
if inc == false or string.sub(inc, 1, #ARGV[10] + 1) ~= ARGV[10] .. ' ' then return 0 end
redis.call('DEL', tkey)
local present = redis.call('DEL', ARGV[1] .. ARGV[2])
local v = redis.call('GET', KEYS[1])
local ind = nil
if v ~= false then
  if not string.match(v, '^%d+$') or #v > 16 or tonumber(v) > 9007199254740991 then
    return redis.error_reply('TURNPROTO ' .. KEYS[1] .. ' is not a serial number')
  end
  ind = tonumber(v)
end
local n = tonumber(ARGV[2])
local abandon = ARGV[7] == 'abandon'
if abandon then
  redis.call('PUBLISH', ARGV[4], ARGV[6] .. ': ' .. ARGV[2] .. ' canceled')
end
if ind ~= n then
  if abandon and ind ~= nil and ind < n then
    redis.call('SADD', KEYS[2], ARGV[2])
    redis.call('PEXPIRE', KEYS[2], 600000)
  end
  return present
end
if not abandon then
  redis.call('PUBLISH', ARGV[4], ARGV[6] .. ': ' .. ARGV[2] .. ' completed by "' .. ARGV[3] .. '"')
end
local t = n + 1
local s = string.format('%d', t)
local disp = tonumber(redis.call('GET', KEYS[3]))
while (disp == nil or t <= disp) and redis.call('SREM', KEYS[2], s) == 1
    and redis.call('EXISTS', ARGV[1] .. s) == 0 do
  t = t + 1
  s = string.format('%d', t)
end
redis.call('SET', KEYS[1], s)
if disp ~= nil and t <= disp then
  local id = redis.call('GET', ARGV[8] .. s)
  if id then
    local sp = string.find(id, ' ', 1, true)
    if sp then redis.call('PUBLISH', string.sub(id, sp + 1), string.sub(id, 1, sp - 1)) end
  end
end
redis.call('PUBLISH', ARGV[5], ARGV[1] .. s)
redis.call('PUBLISH', ARGV[4], ARGV[6] .. ': ' .. s .. ' granted')
return 2 + present
"#,
    )
});

/// bump: KEYS indicator, dispenser, incarnation; ARGV presence prefix,
/// limit ('' for the dispenser), external, internal, resource, text to say
/// first ('' for none), ticket prefix, the bumping ticket's identity key,
/// identity and token base ('' for a bump by nobody's ticket, such as the
/// tool's).
/// Moves the indicator forward past tickets up to `limit` whose presence key
/// is missing, never back, and announces the result (as turn 1.0 does).
/// Returns the indicator, -1 when there is no queue, -2 when the bumping
/// ticket is not ours any more (it then touches nothing).
pub(crate) static BUMP: Lazy<Script> = Lazy::new(|| {
    script(&format!(
        "{CHECK_NUM}{FIRST_LIVE}{}",
        r#"
if ARGV[8] ~= '' and not ours(ARGV[8], ARGV[9], KEYS[3], ARGV[10]) then return -2 end
local ind = num(KEYS[1])
if bad(ind) then return ind end
local disp = num(KEYS[2])
if bad(disp) then return disp end
if ind == nil or disp == nil then return -1 end
local limit = disp
if ARGV[2] ~= '' then limit = math.min(tonumber(ARGV[2]), disp) end
if ARGV[6] ~= '' then say(ARGV[3], ARGV[5], ARGV[6]) end
local t = first_live(ARGV[1], ind, limit)
announce(KEYS[1], ARGV[1], ARGV[7], ARGV[4], ARGV[3], ARGV[5], t, disp)
return t
"#
    ))
});

/// reset: KEYS indicator, dispenser, withdrawn, incarnation; ARGV presence
/// prefix, expected dispenser ('' for any), external, internal, resource,
/// ticket prefix.
/// Bumps past dead tickets, then deletes the queue's keys when nobody is
/// queued (the next draw starts a new incarnation, whose tokens are above
/// this one's).
/// Returns {0} reset, {-1} no such queue, {-2} activity (the dispenser is not
/// the expected one), {-3, size} in use by size users.
pub(crate) static RESET: Lazy<Script> = Lazy::new(|| {
    script(&format!(
        "{CHECK_NUM}{FIRST_LIVE}{}",
        r#"
local ind = num(KEYS[1])
if bad(ind) then return ind end
local disp = num(KEYS[2])
if bad(disp) then return disp end
if ind == nil or disp == nil then return {-1} end
if ARGV[2] ~= '' and fmt(disp) ~= ARGV[2] then return {-2} end
if disp - ind + 1 > 0 then
  say(ARGV[3], ARGV[5], 'Reset tool bumps.')
  local t = first_live(ARGV[1], ind, disp)
  announce(KEYS[1], ARGV[1], ARGV[6], ARGV[4], ARGV[3], ARGV[5], t, disp)
  ind = t
end
local size = disp - ind + 1
if size > 0 then return {-3, size} end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return {0}
"#
    ))
});

/// status: KEYS indicator, dispenser; ARGV presence prefix, max tickets.
/// Returns {} when there is no queue, else {indicator, dispenser,
/// serial1, label1, ...} for the live tickets from the indicator to the
/// dispenser, ascending.
pub(crate) static STATUS: Lazy<Script> = Lazy::new(|| {
    script(&format!(
        "{CHECK_NUM}{}",
        r#"
local ind = num(KEYS[1])
if bad(ind) then return ind end
local disp = num(KEYS[2])
if bad(disp) then return disp end
if ind == nil then return {} end
if disp == nil then disp = ind - 1 end
local out = {fmt(ind), fmt(disp)}
local last = math.min(disp, ind + tonumber(ARGV[2]) - 1)
for t = ind, last do
  local label = redis.call('GET', ARGV[1] .. fmt(t))
  if label then
    out[#out + 1] = fmt(t)
    out[#out + 1] = label
  end
end
return out
"#
    ))
});

/// heartbeat: ARGV groups of 9: presence key, expire ms, mode ('h' held,
/// 'w' waiting), indicator key, serial, identity key, identity,
/// incarnation key, token base. Renews the presence and identity keys of
/// each ticket that is still ours (see `ours`). Returns one integer per
/// ticket: 1 alive, 0 lost (not ours any more; presence key gone; or held
/// and the indicator is not the serial; or waiting and the indicator
/// passed the serial). A ticket that is not ours any more is left alone:
/// its keys may be a later ticket's.
pub(crate) static HEARTBEAT: Lazy<Script> = Lazy::new(|| {
    script(
        r#"
local out = {}
for i = 1, #ARGV, 9 do
  local ok = 0
  if ours(ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]) then
    ok = redis.call('PEXPIRE', ARGV[i], ARGV[i + 1])
    redis.call('PEXPIRE', ARGV[i + 5], ARGV[i + 1])
  end
  if ok == 1 then
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draw_reads_the_granted_pair_and_the_waiting_quadruple() {
        let ints = |v: &[i64]| Value::Array(v.iter().map(|&n| Value::Int(n)).collect());
        let granted = Drawn::from_redis_value(&ints(&[7, 100])).unwrap();
        assert_eq!(
            (granted.serial, granted.token, granted.indicator),
            (7, 107, 7)
        );
        assert!(granted.granted());
        let waiting = Drawn::from_redis_value(&ints(&[9, -2, 7, 2500])).unwrap();
        assert_eq!(
            (
                waiting.serial,
                waiting.token,
                waiting.indicator,
                waiting.pttl
            ),
            (9, 7, 7, 2500)
        );
        assert!(!waiting.granted());
        assert!(Drawn::from_redis_value(&ints(&[-4, 100])).is_err());
        assert!(Drawn::from_redis_value(&ints(&[4, -4])).is_err());
        assert!(Drawn::from_redis_value(&ints(&[4])).is_err());
        assert!(Drawn::from_redis_value(&Value::Int(7)).is_err());
        assert!(Drawn::from_redis_value(&Value::Nil).is_err());
    }
}
