//! bump: the indicator steps past dead tickets.

use once_cell::sync::Lazy;
use redis::Script;

use super::{CHECK_NUM, Call, Confirm, FIRST_LIVE, protocol, script};
use crate::core::Core;
use crate::error::Result;
use crate::keys::Keys;
use crate::ticket::Ticket;

/// bump: KEYS indicator, dispenser, incarnation; ARGV presence prefix,
/// limit ('' for the dispenser), external, internal, resource, text to say
/// first ('' for none), ticket prefix, the bumping ticket's identity key,
/// identity and token base ('' for a bump by nobody's ticket, such as the
/// tool's).
/// Moves the indicator forward past tickets up to `limit` whose presence key
/// is missing, never back, and announces the result (as turn 1.0 does).
/// Returns the indicator, -1 when there is no queue, -2 when the bumping
/// ticket is not ours any more (it then touches nothing).
static BUMP: Lazy<Script> = Lazy::new(|| {
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
announce(KEYS[1], KEYS[3], ARGV[1], ARGV[7], ARGV[4], ARGV[3], ARGV[5], t, disp)
return t
"#
    ))
});

/// What a bump answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bumped {
    /// The indicator now shows this ticket.
    To(u64),
    /// There is no such queue.
    NoQueue,
    /// The bumping ticket is not ours any more: nothing was touched.
    NotOurs,
}

/// The tool's bump: past every dead ticket up to the dispenser, saying
/// nothing first.
pub(crate) fn bump(core: &Core, keys: &Keys) -> Result<Bumped> {
    run(core, keys, None)
}

/// A waiter's bump, when the ticket at the indicator is dead: past the
/// dead tickets before `t` ("N bumps" first), and only while `t` is ours.
pub(crate) fn bump_before(core: &Core, t: &Ticket) -> Result<Bumped> {
    run(core, &t.keys, Some(t))
}

fn run(core: &Core, keys: &Keys, by: Option<&Ticket>) -> Result<Bumped> {
    let call = Call::new(
        &BUMP,
        &[&keys.indicator, &keys.dispenser, &keys.incarnation],
    )
    .arg(&keys.presence_prefix)
    .arg(by.map(|t| (t.serial - 1).to_string()).unwrap_or_default())
    .arg(&keys.external)
    .arg(&keys.internal)
    .arg(&keys.name)
    .arg(
        by.map(|t| format!("{} bumps", t.serial))
            .unwrap_or_default(),
    )
    .arg(&keys.ticket_prefix)
    .arg(by.map(|t| t.keys.ticket(t.serial)).unwrap_or_default())
    .arg(by.map_or("", |t| t.identity.as_str()))
    .arg(by.map_or("", |t| t.base.as_str()));
    // A bump that reaches the ticket it was made for grants it: replicas
    // confirm that grant.
    let confirm = by.and_then(|t| Confirm::of(core, t.expire));
    let (reply, confirmed): (i64, bool) = core.run(|c| call.invoke_confirmed(c, confirm))?;
    let bumped = decode(reply)?;
    if let (Some(t), Some(confirm)) = (by, confirm)
        && bumped == Bumped::To(t.serial)
        && !confirmed
    {
        return Err(confirm.missed(&format!(
            "the grant of ticket {} on \"{}\"",
            t.serial, t.resource
        )));
    }
    Ok(bumped)
}

fn decode(reply: i64) -> redis::RedisResult<Bumped> {
    match reply {
        -1 => Ok(Bumped::NoQueue),
        -2 => Ok(Bumped::NotOurs),
        n if n >= 0 => Ok(Bumped::To(n as u64)),
        n => Err(protocol("a bump answered", &n.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bump_reads_the_indicator_and_the_refusals() {
        assert_eq!(decode(0).unwrap(), Bumped::To(0));
        assert_eq!(decode(42).unwrap(), Bumped::To(42));
        assert_eq!(decode(-1).unwrap(), Bumped::NoQueue);
        assert_eq!(decode(-2).unwrap(), Bumped::NotOurs);
        assert!(decode(-3).is_err());
    }
}
