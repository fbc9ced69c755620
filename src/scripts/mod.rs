//! The protocol's state changes, each one server-side Lua script (EVALSHA,
//! falling back to EVAL), so that each is one round trip and atomic.
//!
//! Texts published on the `external` channel are those of turn 1.0, so that
//! `turn follow` looks the same whichever client acted. Serials are formatted
//! with `%d` so that large numbers never print in exponent form.
//!
//! One file per script: its Lua text, the order of its keys and arguments
//! (written in one place, the function that calls it), and the typed reply
//! it answers. Nothing outside this folder builds a script call or reads a
//! reply's codes.

use std::time::Duration;

use redis::{ConnectionLike, FromRedisValue, RedisResult, Script, ToRedisArgs};

use crate::core::Core;
use crate::error::Error;

mod bump;
mod check;
mod draw;
mod heartbeat;
mod release;
mod reset;
mod status;

pub(crate) use bump::{Bumped, bump, bump_before};
pub(crate) use check::{Checked, check, confirm};
pub(crate) use draw::{Turn, draw};
pub(crate) use heartbeat::{prepare_node, prepare_renewals, renew, renew_routed};
pub(crate) use release::{Mode, release};
pub(crate) use reset::{Reset, reset};
pub(crate) use status::status;

/// One EVALSHA of a script, written straight into one command buffer: the
/// declared keys, then the arguments. Built once and run as often as needed
/// (a retry sends the same bytes); loads the script when Redis answers
/// NOSCRIPT (a restarted or flushed server) and sends it again.
struct Call {
    script: &'static Script,
    cmd: redis::Cmd,
}

impl Call {
    fn new(script: &'static Script, keys: &[&str]) -> Call {
        let mut cmd = redis::Cmd::with_capacity(3 + keys.len() + 8, 256);
        cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys.len());
        for key in keys {
            cmd.arg(*key);
        }
        Call { script, cmd }
    }

    fn arg<T: ToRedisArgs>(mut self, arg: T) -> Call {
        self.cmd.arg(arg);
        self
    }

    fn invoke<T: FromRedisValue>(&self, con: &mut dyn ConnectionLike) -> RedisResult<T> {
        match self.cmd.query(con) {
            Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
                self.script.load(con)?;
                self.cmd.query(con)
            }
            result => result,
        }
    }

    /// [`Call::invoke`], followed in the same round trip by `WAIT` when
    /// `confirm` asks for replicas: the reply, and whether enough replicas
    /// have every write made on this connection so far (true when none
    /// are asked for).
    fn invoke_confirmed<T: FromRedisValue>(
        &self,
        con: &mut dyn ConnectionLike,
        confirm: Option<Confirm>,
    ) -> RedisResult<(T, bool)> {
        let Some(confirm) = confirm else {
            return Ok((self.invoke(con)?, true));
        };
        let mut pipe = redis::pipe();
        pipe.add_command(self.cmd.clone())
            .cmd("WAIT")
            .arg(confirm.replicas)
            .arg(confirm.wait_ms);
        let (reply, acked): (T, i64) = match pipe.query(con) {
            Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
                self.script.load(con)?;
                pipe.query(con)?
            }
            result => result?,
        };
        Ok((reply, acked >= i64::from(confirm.replicas)))
    }
}

/// Replica confirmation of one call: `WAIT replicas wait_ms` after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Confirm {
    pub replicas: u32,
    /// At least 1 (`WAIT` with 0 would block for ever).
    pub wait_ms: u64,
}

impl Confirm {
    /// The confirmation `core` asks for a write of a ticket with lease
    /// `lease`: None when it asks for none; it waits at most a third of the
    /// lease.
    pub fn of(core: &Core, lease: Duration) -> Option<Confirm> {
        let durable = core.durable;
        if !durable.is_on() {
            return None;
        }
        let wait = durable.timeout.min(lease / 3);
        Some(Confirm {
            replicas: durable.replicas,
            wait_ms: (wait.as_millis() as u64).max(1),
        })
    }

    /// The error of a write not confirmed in time.
    pub fn missed(&self, what: &str) -> Error {
        Error::refusal(format!(
            "{what} was not confirmed by {} replica(s) within {} ms",
            self.replicas, self.wait_ms
        ))
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
local function say(channel, resource, text)
  redis.call('PUBLISH', channel, resource .. ': ' .. text)
end
-- Moves the indicator to t and calls t: on `internal` (turn 1.0's message),
-- and, when t is one of ours (drawn in this incarnation, not past the
-- dispenser), on its locker's channel with its nonce, which wakes that
-- waiter alone; "t started" is said for it then (it confirms its turn with
-- a plain read).
local function announce(ind_key, inc_key, prefix, ticket_prefix, internal, external, resource, t, disp)
  local s = fmt(t)
  redis.call('SET', ind_key, s)
  local nonce, channel = nil, nil
  if t <= disp then
    local base = base_of(redis.pcall('GET', inc_key))
    if base then nonce, channel = callee(redis.pcall('GET', ticket_prefix .. s), base) end
  end
  if nonce then redis.call('PUBLISH', channel, nonce) end
  redis.call('PUBLISH', internal, prefix .. s)
  redis.call('PUBLISH', external, resource .. ': ' .. s .. ' granted')
  if nonce then redis.call('PUBLISH', external, resource .. ': ' .. s .. ' started') end
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

fn protocol(what: &'static str, detail: &str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::TypeError, what, detail.to_string()))
}

/// What a waiter's draw or check read of its queue: an indicator below its
/// serial, and the ticket it watches: the nearest one ahead of it that
/// still has a presence key (or the one at the indicator, when every
/// ticket from there on is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reading {
    pub indicator: u64,
    /// The serial of the watched ticket.
    pub watched: u64,
    /// Its presence key.
    pub holder: Holder,
    /// It is one of ours, drawn in the same incarnation: when it releases,
    /// the ticket after it is called by its nonce. Otherwise (a turn 1.0
    /// ticket, or one not known) only `internal` may say that it left.
    pub ours: bool,
}

/// The presence key of a watched ticket, as PTTL answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// Missing: that ticket is dead, or was drawn a moment ago by a turn
    /// 1.0 client that has not set its key yet.
    Missing,
    /// Missing, and recorded withdrawn: gone for good (a turn 1.0 release
    /// moved the indicator to it, not knowing our withdrawn set).
    Withdrawn,
    /// It lapses after this long unless renewed.
    Expires(Duration),
    /// It has no expiry (written by hand).
    NoExpiry,
}

impl Holder {
    fn from_pttl(pttl: i64) -> Holder {
        match pttl {
            -2 => Holder::Missing,
            ms if ms >= 0 => Holder::Expires(Duration::from_millis(ms as u64)),
            _ => Holder::NoExpiry,
        }
    }
}
