//! The queues of shared modes (semaphores and read-write locks): their
//! draw, check and release, over one admission rule written once in Lua
//! ([`ADMIT`]).
//!
//! Such a queue keeps turn 1.0's keys (dispenser, indicator, presence keys,
//! `internal` and `external`) and adds its kind, its admitted serial, and
//! the weights of its holders and waiters (see `Keys`). Tickets are
//! admitted in draw order while the sum of the holders' weights stays
//! within the permits; a ticket that does not fit yet holds back every
//! later one. A read-write lock is a semaphore of [`ALL`] permits whose
//! shared tickets weigh 1 and exclusive ones [`ALL`]. A ticket that is not
//! ours (a turn 1.0 client's) weighs every permit: it is admitted alone.
//!
//! The indicator shows the lowest serial that holds or waits: every ticket
//! below it is done. So a turn 1.0 client in such a queue (which holds
//! when the indicator shows its serial, or when `internal` names it) holds
//! only alone, and its release (indicator = its serial + 1) and bump (to
//! the first ticket with a presence key) never move the indicator past a
//! holder or a waiter.

mod check;
mod draw;
mod release;

pub(crate) use check::{check, confirm};
pub(crate) use draw::draw;
pub(crate) use release::release;

use super::call::Call;
use crate::keys::Keys;
use crate::mode::Mode;

/// The permits of a read-write lock, and the weight of its exclusive
/// tickets.
pub(super) const ALL: u64 = 1 << 31;

/// What a shared-mode ticket asks, as the scripts take it: the queue's kind
/// (the value of its kind key), its permits, the ticket's weight.
pub(super) struct Ask {
    pub kind: String,
    pub permits: u64,
    pub weight: u64,
}

impl Ask {
    /// None for a plain ticket.
    pub fn of(mode: Mode) -> Option<Ask> {
        match mode {
            Mode::Plain => None,
            Mode::Semaphore { permits, weight } => Some(Ask {
                kind: format!("semaphore {permits}"),
                permits: permits.into(),
                weight: weight.into(),
            }),
            Mode::ReadWrite { exclusive } => Some(Ask {
                kind: "rwlock".to_string(),
                permits: ALL,
                weight: if exclusive { ALL } else { 1 },
            }),
        }
    }
}

/// The admission rule, prepended to the draw, check and release of a
/// shared-mode queue, after [`NAMES`].
///
/// `admit(disp, ind, bs, unknown_ms, self, self_w, adm)` (`adm`: the
/// admitted key's value when read already) admits tickets from the one
/// after the admitted serial on (from the indicator when none was
/// admitted yet), in order, while they fit: a ticket without a presence
/// key is passed when it is ours (its weight is known: dead, or
/// withdrawn, weight 0), or once it has been seen missing for
/// `unknown_ms` (the caller's lease) or 10 s, whichever is longer
/// (`since` keeps when it was first seen, by the server's clock); until
/// then it stops admission (a turn 1.0 ticket whose key is not set yet,
/// later on a slow link). An indicator moved past live tickets from
/// outside skips none of them. At most
/// 1,000 tickets are passed in one call (a gap written by hand must not
/// block Redis): the rest in the next, which the waiter makes at once
/// (an unknown wait of 1 ms). When one does not fit, the holders
/// whose presence key is gone are dropped first (their permits come back).
/// Each ticket admitted is called: ours on its locker's channel with its
/// nonce ("N granted", "N started"), another on `internal` ("N granted"),
/// but `self` (the caller's own ticket; `self_w`: its weight, when it is
/// a new ticket whose weight is not recorded yet). Each admission is
/// recorded in `since` (NOW). It then sets the indicator to the
/// lowest holder (or the first ticket not admitted). Returns the
/// indicator, the first ticket not admitted, the holders (serial ->
/// weight), whether `self` was admitted now, and how long (ms) until the
/// unknown ticket that stopped admission may be passed (nil when none
/// did).
///
/// `watch(n, t, holders, bs, unknown_wait)`, for a waiting ticket n (t:
/// the first not admitted): the nearest ticket before n from t on with a
/// presence key (or t), the least time among its lease left, the holders'
/// and `unknown_wait`, and 1 when it and the holder whose lease is least
/// are ours (else a turn 1.0 one's leaving may be said on `internal`
/// only).
pub(super) const ADMIT: &str = r#"
local function serial(v, key)
  if v == false or v == nil then return nil end
  if not string.match(v, '^%d+$') or #v > 16 or tonumber(v) > 9007199254740991 then
    error({err = 'TURNPROTO ' .. key .. ' is not a serial number'})
  end
  return tonumber(v)
end
local function admit(disp, ind, bs, unknown_ms, self, self_w, adm)
  if adm == nil then adm = redis.call('GET', K_ADM) end
  local f = tonumber(adm)
  -- From the admitted serial on, whatever the indicator says: moved from
  -- outside (a turn 1.0 client's release is unconditional, and stale
  -- after the queue was made anew under it; a bump), it may have passed
  -- live tickets, which are still admitted in their turn, never skipped.
  -- With nothing admitted yet (a queue made, or made anew by turn 1.0
  -- clients), from the indicator (or the last ticket, when the indicator
  -- is past the dispenser: a draw does not take the indicator's serial
  -- here), written at once: a later move of the indicator changes it not.
  if f == nil then
    f = math.min(ind, disp) - 1
    redis.call('SET', K_ADM, fmt(f))
  end
  -- 'run' in `since`: "LO HI MS", tickets LO to HI (drawn by then) were
  -- looked at by MS, when one of them without a key stopped admission;
  -- one still missing its key has been missing since MS at least (or it
  -- had its key then and is dead). So dead tickets without their keys in
  -- a row cost one wait together, not one each.
  local run = nil
  local function run_of()
    if run == nil then
      run = false
      local lo, hi, ms = string.match(redis.call('HGET', K_SINCE, 'run') or '', '^(%d+) (%d+) (%d+)$')
      if lo then run = {tonumber(lo), tonumber(hi), tonumber(ms)} end
    end
    return run
  end
  local holders, used = {}, 0
  local hv = redis.call('HGETALL', K_HOLD)
  for i = 1, #hv, 2 do
    local h, w = tonumber(hv[i]), tonumber(hv[i + 1])
    if h and w then
      holders[h] = w
      used = used + w
    else
      redis.call('HDEL', K_HOLD, hv[i])
    end
  end
  local pruned = false
  local admitted_self = false
  local unknown_wait = nil
  local t = f + 1
  local passed = 0
  while t <= disp do
    if passed >= 1000 then
      -- Many passed in one call (a gap): the rest in the next, at once.
      unknown_wait = 1
      break
    end
    local s = fmt(t)
    local w, present
    if t == self and self_w then
      -- The caller's own new ticket: its weight is given, its key set.
      w, present = self_w, true
    else
      w = tonumber(redis.call('HGET', K_WEIGHTS, s))
      present = redis.call('EXISTS', P_PREFIX .. s) == 1
    end
    if not present then
      if w == nil then
        -- Not ours, no presence key: a turn 1.0 ticket whose key is not
        -- set yet (its client sets it a moment after drawing, later on a
        -- slow link), or one that died before setting it. Passed once seen
        -- missing for unknown_ms, 10 s at least (since keeps when it was
        -- first seen, by the server's clock: one clock for every client).
        local now = now_ms()
        local seen = tonumber(redis.call('HGET', K_SINCE, s))
        if seen == nil then
          seen = now
          redis.call('HSET', K_SINCE, s, fmt(seen))
        end
        local r = run_of()
        if r and t >= r[1] and t <= r[2] and r[3] < seen then seen = r[3] end
        local left = math.max(unknown_ms, 10000) - (now - seen)
        if left > 0 then
          unknown_wait = left
          if not (r and t >= r[1] and t <= r[2]) then
            redis.call('HSET', K_SINCE, 'run', fmt(t) .. ' ' .. fmt(disp) .. ' ' .. fmt(now))
          end
          break
        end
      else
        redis.call('HDEL', K_WEIGHTS, s)
      end
      redis.call('HDEL', K_SINCE, s)
      passed = passed + 1
    else
      local mine = w ~= nil
      if not mine then w = PERMITS end
      if used + w > PERMITS and not pruned then
        pruned = true
        for h, hw in pairs(holders) do
          if redis.call('EXISTS', P_PREFIX .. fmt(h)) == 0 then
            redis.call('HDEL', K_HOLD, fmt(h))
            redis.call('HDEL', K_SINCE, fmt(h))
            holders[h] = nil
            used = used - hw
          end
        end
      end
      if used + w > PERMITS then break end
      redis.call('HSET', K_HOLD, s, fmt(w))
      redis.call('HSET', K_SINCE, s, fmt(NOW))
      holders[t] = w
      used = used + w
      if mine and not (t == self and self_w) then redis.call('HDEL', K_WEIGHTS, s) end
      if t == self then
        admitted_self = true
      else
        redis.call('PUBLISH', EXTERNAL, NAME .. ': ' .. s .. ' granted')
        local nonce, channel = nil, nil
        if mine then nonce, channel = callee(redis.call('GET', T_PREFIX .. s), bs) end
        if nonce then
          redis.call('PUBLISH', channel, nonce)
          redis.call('PUBLISH', EXTERNAL, NAME .. ': ' .. s .. ' started')
        else
          redis.call('PUBLISH', INTERNAL, P_PREFIX .. s)
        end
      end
    end
    t = t + 1
  end
  if t - 1 ~= f then redis.call('SET', K_ADM, fmt(t - 1)) end
  if run and t > run[2] then redis.call('HDEL', K_SINCE, 'run') end
  local head = t
  for h in pairs(holders) do
    if h < head then head = h end
  end
  if head ~= ind then redis.call('SET', K_IND, fmt(head)) end
  return head, t, holders, admitted_self, unknown_wait
end
local function watch(n, t, holders, bs, unknown_wait)
  local watched, pttl = nil, -2
  local p = n - 1
  local stop = math.max(t, n - 10000)
  while p >= stop do
    local q = redis.call('PTTL', P_PREFIX .. fmt(p))
    if q ~= -2 then
      watched, pttl = p, q
      break
    end
    p = p - 1
  end
  local mine = 1
  if watched and not callee(redis.call('GET', T_PREFIX .. fmt(watched)), bs) then mine = 0 end
  local least, lq = nil, -1
  local seen = 0
  for h in pairs(holders) do
    if seen >= 64 then break end
    seen = seen + 1
    local q = redis.call('PTTL', P_PREFIX .. fmt(h))
    if q >= 0 and (least == nil or q < lq) then least, lq = h, q end
  end
  if least then
    if not callee(redis.call('GET', T_PREFIX .. fmt(least)), bs) then mine = 0 end
    if watched == nil then
      watched, pttl = least, lq
    elseif pttl < 0 or lq < pttl then
      pttl = lq
    end
  end
  if unknown_wait then
    -- Ticket t, not ours and missing its key, holds admission back until
    -- it may be passed.
    if watched == nil then
      watched, pttl, mine = t, unknown_wait, 0
    elseif pttl < 0 or unknown_wait < pttl then
      pttl = unknown_wait
    end
  end
  if watched == nil then watched, pttl, mine = t, -2, 0 end
  return watched, pttl, mine
end
"#;

/// The names every shared-mode script gives its declared keys (all in the
/// queue's slot, in the order of [`call`]'s), its first six arguments
/// (presence prefix, identity prefix, `external`, `internal`, the resource
/// as log lines name it, the permits) and its last, NOW (the client's time
/// in ms since 1970); each script's own arguments come between.
pub(super) const NAMES: &str = r#"
local K_DISP, K_IND, K_INC, K_KIND = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_ADM, K_HOLD, K_WEIGHTS, K_SINCE = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local P_PREFIX, T_PREFIX, EXTERNAL, INTERNAL, NAME = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local PERMITS = tonumber(ARGV[6])
local NOW = tonumber(ARGV[#ARGV])
"#;

/// A call of a shared-mode script for a queue of `k` asking `ask`: its
/// declared keys and first six arguments (see [`NAMES`]).
pub(super) fn call(script: &'static redis::Script, k: &Keys, ask: &Ask) -> Call {
    Call::new(
        script,
        &[
            &k.dispenser,
            &k.indicator,
            &k.incarnation,
            &k.kind,
            &k.admitted,
            &k.holders,
            &k.weights,
            &k.since,
        ],
    )
    .arg(&k.presence_prefix)
    .arg(&k.ticket_prefix)
    .arg(&k.external)
    .arg(&k.internal)
    .arg(&k.name)
    .arg(ask.permits)
}

/// A shared-mode script: the shared helpers (`lua.rs`), [`NAMES`],
/// [`ADMIT`], then `body`.
pub(super) fn script(body: &str) -> redis::Script {
    super::lua::script(&format!("{NAMES}{ADMIT}{body}"))
}
