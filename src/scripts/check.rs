//! check: a waiter re-reads its queue, and takes its turn when it came.

use once_cell::sync::Lazy;
use redis::Script;

use super::{CHECK_NUM, Call, Holder, Reading, script};
use crate::core::Core;
use crate::error::Result;
use crate::ticket::Ticket;

/// The code of a check that was granted the lock.
const GRANTED: i64 = -3;

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
static CHECK: Lazy<Script> = Lazy::new(|| {
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

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checked {
    /// The ticket has its turn now: "N started" was said and its lease
    /// renewed.
    Granted,
    /// The ticket is not ours any more, its queue is gone, or the indicator
    /// reached or passed it without granting it (its presence key is gone).
    Lost,
    /// Another ticket comes first.
    Waiting(Reading),
}

/// Checks whether `t` has its turn: one round trip.
pub(crate) fn check(core: &Core, t: &Ticket) -> Result<Checked> {
    let call = Call::new(&CHECK, &[&t.keys.indicator, &t.keys.incarnation])
        .arg(&t.keys.presence_prefix)
        .arg(t.serial)
        .arg(&t.keys.external)
        .arg(&t.keys.name)
        .arg(&t.keys.ticket_prefix)
        .arg(&t.identity)
        .arg(t.expire_ms())
        .arg(&t.base);
    let (indicator, code): (i64, i64) = core.run(|c| call.invoke(c))?;
    Ok(decode(indicator, code, t.serial))
}

/// Reads the reply {indicator, code} of a check for ticket `serial`.
fn decode(indicator: i64, code: i64, serial: u64) -> Checked {
    if code == GRANTED {
        return Checked::Granted;
    }
    if indicator < 0 || indicator as u64 >= serial {
        return Checked::Lost;
    }
    Checked::Waiting(Reading {
        indicator: indicator as u64,
        holder: Holder::from_pttl(code),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_check_reads_granted_lost_and_waiting() {
        assert_eq!(decode(5, -3, 5), Checked::Granted);
        assert_eq!(decode(-1, -2, 5), Checked::Lost);
        assert_eq!(decode(5, -2, 5), Checked::Lost);
        assert_eq!(decode(6, -2, 5), Checked::Lost);
        assert_eq!(
            decode(4, 1500, 5),
            Checked::Waiting(Reading {
                indicator: 4,
                holder: Holder::Expires(Duration::from_millis(1500))
            })
        );
        assert_eq!(
            decode(4, -2, 5),
            Checked::Waiting(Reading {
                indicator: 4,
                holder: Holder::Missing
            })
        );
        assert_eq!(
            decode(4, -1, 5),
            Checked::Waiting(Reading {
                indicator: 4,
                holder: Holder::NoExpiry
            })
        );
    }
}
