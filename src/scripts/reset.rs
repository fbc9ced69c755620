//! reset: a queue nobody is in is removed.

use once_cell::sync::Lazy;
use redis::Script;

use super::call::Call;
use super::lua::{CHECK_NUM, FIRST_LIVE, script};
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::shared::Core;

/// reset: KEYS indicator, dispenser, withdrawn, incarnation, and a
/// shared-mode queue's kind, admitted, holders, weights, since, and
/// granted; ARGV
/// presence
/// prefix, expected dispenser ('' for any), external, internal, resource,
/// ticket prefix.
/// Bumps past dead tickets, then deletes the queue's keys when nobody is
/// queued (the next draw starts a new incarnation, whose tokens are above
/// this one's).
/// Returns {0} reset, {-1} no such queue, {-2} activity (the dispenser is not
/// the expected one), {-3, size} in use by size users.
static RESET: Lazy<Script> = Lazy::new(|| {
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
  announce(KEYS[1], KEYS[4], ARGV[1], ARGV[6], ARGV[4], ARGV[3], ARGV[5], t, disp)
  ind = t
end
local size = disp - ind + 1
if size > 0 then return {-3, size} end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10])
return {0}
"#
    ))
});

/// What a reset answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reset {
    /// The queue's keys were deleted.
    Done,
    /// There is no such queue.
    NoQueue,
    /// The dispenser is not the expected one: someone drew a ticket.
    Activity,
    /// This many tickets are queued after the bump.
    Busy(u64),
}

/// Removes the queue of `keys` when nobody is in it after a bump; when
/// `expected_dispenser` is given, only if the dispenser still has it.
pub(crate) fn reset(core: &Core, keys: &Keys, expected_dispenser: Option<u64>) -> Result<Reset> {
    let call = Call::new(
        &RESET,
        &[
            &keys.indicator,
            &keys.dispenser,
            &keys.withdrawn,
            &keys.incarnation,
            &keys.kind,
            &keys.admitted,
            &keys.holders,
            &keys.weights,
            &keys.since,
            &keys.granted,
        ],
    )
    .arg(&keys.presence_prefix)
    .arg(
        expected_dispenser
            .map(|d| d.to_string())
            .unwrap_or_default(),
    )
    .arg(&keys.external)
    .arg(&keys.internal)
    .arg(&keys.name)
    .arg(&keys.ticket_prefix);
    let reply: Vec<i64> = core.run(|c| call.invoke(c))?;
    decode(&reply)
}

fn decode(reply: &[i64]) -> Result<Reset> {
    Ok(match reply {
        [0] => Reset::Done,
        [-1] => Reset::NoQueue,
        [-2] => Reset::Activity,
        [-3, n] => Reset::Busy(*n as u64),
        other => return Err(Error::protocol(format!("unexpected reset reply {other:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_reads_its_four_outcomes() {
        assert_eq!(decode(&[0]).unwrap(), Reset::Done);
        assert_eq!(decode(&[-1]).unwrap(), Reset::NoQueue);
        assert_eq!(decode(&[-2]).unwrap(), Reset::Activity);
        assert_eq!(decode(&[-3, 4]).unwrap(), Reset::Busy(4));
        assert!(decode(&[-3]).is_err());
        assert!(decode(&[]).is_err());
    }
}
