//! The Lua shared by several scripts: the helpers prepended to every
//! script but draw and release, and two fragments for bump, reset and
//! status.

use redis::Script;

/// Shared helpers, prepended to every script but draw and release.
pub(super) const HELPERS: &str = r#"
local function fmt(n) return string.format('%d', n) end
local function num(key)
  local v = redis.call('GET', key)
  if v == false then return nil end
  if not string.match(v, '^%d+$') or #v > 16 or tonumber(v) > 9007199254740991 then
    return redis.error_reply('TURNPROTO ' .. key .. ' is not a serial number')
  end
  return tonumber(v)
end
-- The base of an incarnation value `BASE TOP`, or nil.
local function base_of(inc)
  if type(inc) ~= 'string' then return nil end
  local sp = string.find(inc, ' ', 1, true)
  if not sp then return nil end
  return string.sub(inc, 1, sp - 1)
end
-- The nonce and channel of an identity value `NONCE BASE CHANNEL` drawn in
-- the incarnation with token base `base`; nil for anything else (a missing
-- key, a ticket of an earlier incarnation, a value written by hand).
local function callee(id, base)
  if type(id) ~= 'string' then return nil end
  local a = string.find(id, ' ', 1, true)
  if not a then return nil end
  local b = string.find(id, ' ', a + 1, true)
  if not b or string.sub(id, a + 1, b - 1) ~= base then return nil end
  return string.sub(id, 1, a - 1), string.sub(id, b + 1)
end
-- True when ticket key tkey still holds this ticket's identity, in the
-- incarnation whose token base it was drawn with.
local function ours(tkey, identity, ikey, base)
  local v = redis.pcall('MGET', tkey, ikey)
  if type(v) ~= 'table' or v.err then return false end
  return v[1] == identity and base_of(v[2]) == base
end
-- The server's time in ms.
local function now_ms()
  local tm = redis.call('TIME')
  return tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
end
local function say(channel, resource, text)
  redis.call('PUBLISH', channel, resource .. ': ' .. text)
end
-- Moves the indicator to t (recorded in P:R:granted) and calls t: on `internal` (turn 1.0's message),
-- and, when t is one of ours (drawn in this incarnation, not past the
-- dispenser), on its locker's channel with its nonce, which wakes that
-- waiter alone; "t started" is said for it then (it confirms its turn with
-- a plain read).
local function announce(ind_key, inc_key, prefix, ticket_prefix, internal, external, resource, t, disp)
  local s = fmt(t)
  redis.call('SET', ind_key, s)
  local nonce, channel = nil, nil
  if t <= disp then
    -- The grant: P:R:granted beside P:R:indicator (its expiry, a day, tells
    -- how long ago it was made).
    redis.call('SET', string.sub(ind_key, 1, #ind_key - 9) .. 'granted', s, 'PX', 86400000)
    local base = base_of(redis.pcall('GET', inc_key))
    if base then nonce, channel = callee(redis.pcall('GET', ticket_prefix .. s), base) end
  end
  if nonce then redis.call('PUBLISH', channel, nonce) end
  redis.call('PUBLISH', internal, prefix .. s)
  redis.call('PUBLISH', external, resource .. ': ' .. s .. ' granted')
  if nonce then redis.call('PUBLISH', external, resource .. ': ' .. s .. ' started') end
end
"#;

pub(super) fn script(body: &str) -> Script {
    Script::new(&format!("{HELPERS}{body}"))
}

/// For bump and reset only (kept out of the hot scripts): the first ticket
/// from `t` to `limit` whose presence key exists, or limit + 1; looking at
/// 10,000 tickets at most (a gap written by hand must not block Redis): it
/// then answers the next one to look at, and a later call goes on.
pub(super) const FIRST_LIVE: &str = r#"
local function first_live(prefix, t, limit)
  local stop = math.min(limit, t + 9999)
  while t <= stop and redis.call('EXISTS', prefix .. fmt(t)) == 0 do t = t + 1 end
  return t
end
"#;

/// A wrong-shaped value read by `num` comes back as an error table.
pub(super) const CHECK_NUM: &str = r#"
local function bad(x) return type(x) == 'table' end
"#;
