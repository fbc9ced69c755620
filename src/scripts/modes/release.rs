//! release / abandon of a shared-mode ticket: it leaves, and what fits
//! after it is admitted.

use once_cell::sync::Lazy;
use redis::Script;

use super::super::release::{Left, Mode, run};
use super::{Ask, call, script};
use crate::error::Result;
use crate::shared::Core;
use crate::ticket::Ticket;

/// release / abandon: the declared keys and first arguments of
/// [`super::NAMES`]; ARGV 7 serial, 8 label, 9 'release' or 'abandon', 10
/// identity, 11 token base, 12 its lease in ms (see `admit`), 13 NOW. Does
/// nothing at all unless the ticket is still
/// ours (its identity, and the queue's incarnation with its base). Else
/// deletes its presence and identity keys; a holder leaves the holders
/// ("N completed by LABEL" for a release); a waiting ticket given up keeps
/// its place with weight 0, so that admission passes it. Then admission
/// runs. Returns 2 x held (0/1) + presence key existed (0/1).
static RELEASE: Lazy<Script> = Lazy::new(|| {
    script(
        r#"
local n, s = tonumber(ARGV[7]), ARGV[7]
local tkey = T_PREFIX .. s
local got = redis.call('MGET', tkey, K_INC, K_IND, K_DISP, K_ADM)
if got[1] ~= ARGV[10] or base_of(got[2]) ~= ARGV[11] then return 0 end
local present = redis.call('DEL', tkey, P_PREFIX .. s) - 1
redis.call('HDEL', K_SINCE, s)
local abandon = ARGV[9] == 'abandon'
if abandon then redis.call('PUBLISH', EXTERNAL, NAME .. ': ' .. s .. ' canceled') end
local held = redis.call('HDEL', K_HOLD, s) == 1
if held then
  if not abandon then
    redis.call('PUBLISH', EXTERNAL, NAME .. ': ' .. s .. ' completed by "' .. ARGV[8] .. '"')
  end
elseif redis.call('HEXISTS', K_WEIGHTS, s) == 1 then
  redis.call('HSET', K_WEIGHTS, s, '0')
end
local ind = serial(got[3], K_IND)
local disp = serial(got[4], K_DISP)
if ind ~= nil and disp ~= nil then admit(disp, ind, ARGV[11], tonumber(ARGV[12]), 0, nil, got[5]) end
if held then return 2 + present end
return present
"#,
    )
});

/// Takes shared-mode ticket `t` (asking `ask`) out of its queue: one round
/// trip. A release (not a withdrawal) waits for the replicas the locker
/// asks for, in the same round trip, unless `confirm` is false.
pub(crate) fn release(
    core: &Core,
    t: &Ticket,
    ask: &Ask,
    mode: Mode,
    confirm: bool,
) -> Result<Left> {
    let call = call(&RELEASE, &t.keys, ask)
        .arg(t.serial)
        .arg(&t.label)
        .arg(match mode {
            Mode::Release => "release",
            Mode::Abandon => "abandon",
        })
        .arg(&t.identity)
        .arg(&t.base)
        .arg(t.expire_ms())
        .arg(crate::shared::unix_ms());
    run(core, t, &call, mode, confirm)
}
