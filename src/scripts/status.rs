//! status: a snapshot of a queue, read atomically.

use std::time::Duration;

use once_cell::sync::Lazy;
use redis::Script;

use super::call::Call;
use super::lua::{CHECK_NUM, script};
use crate::error::{Error, Result};
use crate::keys::{Keys, parse_serial};
use crate::mode::{Kind, Mode};
use crate::shared::Core;
use crate::status::{MAX_STATUS_TICKETS, Status, TicketInfo};

/// status: KEYS indicator, dispenser, kind, holders, weights, since,
/// incarnation, granted; ARGV presence prefix, max tickets, ticket
/// prefix, the client's time (ms since 1970).
/// Returns {} when there is no queue, else {indicator, dispenser, kind
/// ('' for a plain queue), the incarnation's token base ('' when none),
/// serial1, label1, weight1, held1, age1, pttl1, ours1, ...} for the live
/// tickets from the indicator to the dispenser, ascending. In a plain
/// queue every weight is 1 and the ticket at the indicator holds; in a
/// shared-mode queue the holders are those admitted, and a ticket whose
/// weight is not recorded (a turn 1.0 client's) weighs '' (all of it).
/// age: ms since its grant (a holder: `granted` in a plain queue, `since`
/// in a shared-mode one; else since its draw) or its draw (a waiter: the
/// time its nonce begins with; a turn 1.0 ticket in a shared-mode queue:
/// since it was first seen missing its key), '' when not known; pttl: its
/// presence key's; ours: '1' when its identity names the queue's
/// incarnation (its token is the base + its serial), else '0'.
static STATUS: Lazy<Script> = Lazy::new(|| {
    script(&format!(
        "{CHECK_NUM}{}",
        r#"
local ind = num(KEYS[1])
if bad(ind) then return ind end
local disp = num(KEYS[2])
if bad(disp) then return disp end
if ind == nil then return {} end
if disp == nil then disp = ind - 1 end
local kind = redis.call('GET', KEYS[3]) or ''
local base = base_of(redis.call('GET', KEYS[7]))
local client = tonumber(ARGV[4])
local gs = redis.call('GET', KEYS[8])
local gpttl = gs and redis.call('PTTL', KEYS[8]) or -2
local function ago(clock, at)
  if at == nil then return '' end
  return fmt(math.max(0, clock - at))
end
local out = {fmt(ind), fmt(disp), kind, base or ''}
local last = math.min(disp, ind + tonumber(ARGV[2]) - 1)
for t = ind, last do
  local s = fmt(t)
  local label = redis.call('GET', ARGV[1] .. s)
  if label then
    local weight, held = '1', '0'
    if kind == '' then
      if t == ind then held = '1' end
    else
      local w = redis.call('HGET', KEYS[4], s)
      if w then
        held = '1'
      else
        w = redis.call('HGET', KEYS[5], s)
      end
      weight = w or ''
    end
    local drawn = nil
    local ours = '0'
    if base then
      local nonce = callee(redis.call('GET', ARGV[3] .. s), base)
      if nonce then
        ours = '1'
        local hex = string.match(nonce, '^(%x+)%.')
        if hex then drawn = tonumber(hex, 16) end
      end
    end
    local age = ago(client, drawn)
    if kind == '' then
      if held == '1' and gs == s and gpttl >= 0 then age = fmt(86400000 - gpttl) end
    else
      local at = tonumber(redis.call('HGET', KEYS[6], s))
      if at and (held == '1' or drawn == nil) then age = ago(client, at) end
    end
    out[#out + 1] = s
    out[#out + 1] = label
    out[#out + 1] = weight
    out[#out + 1] = held
    out[#out + 1] = age
    out[#out + 1] = fmt(redis.call('PTTL', ARGV[1] .. s))
    out[#out + 1] = ours
  end
end
return out
"#
    ))
});

/// The queue of `keys` (named `resource`), None when there is none; at
/// most [`MAX_STATUS_TICKETS`] tickets from the indicator on.
pub(crate) fn status(core: &Core, keys: &Keys, resource: &str) -> Result<Option<Status>> {
    let call = Call::new(
        &STATUS,
        &[
            &keys.indicator,
            &keys.dispenser,
            &keys.kind,
            &keys.holders,
            &keys.weights,
            &keys.since,
            &keys.incarnation,
            &keys.granted,
        ],
    )
    .arg(&keys.presence_prefix)
    .arg(MAX_STATUS_TICKETS)
    .arg(&keys.ticket_prefix)
    .arg(crate::shared::unix_ms());
    let reply: Vec<Vec<u8>> = core.run(|c| call.invoke(c))?;
    decode(&reply, resource)
}

fn number(bytes: &[u8], what: &str) -> Result<u64> {
    parse_serial(bytes).ok_or_else(|| Error::protocol(format!("{what} is not a serial number")))
}

/// The kind named by a kind key's value ('' for a plain queue).
fn kind_of(text: &[u8]) -> Result<Kind> {
    let text = std::str::from_utf8(text).unwrap_or("?");
    if text.is_empty() {
        return Ok(Kind::Plain);
    }
    if text == "rwlock" {
        return Ok(Kind::ReadWrite);
    }
    text.strip_prefix("semaphore ")
        .and_then(|p| p.parse().ok())
        .filter(|&p| p > 0)
        .map(|permits| Kind::Semaphore { permits })
        .ok_or_else(|| Error::protocol(format!("the queue's kind \"{text}\" is not known")))
}

/// The mode of a ticket of weight `weight` ('' for all of it) in a queue
/// of `kind`.
fn mode_of(kind: Kind, weight: &[u8]) -> Result<Mode> {
    let weight = if weight.is_empty() {
        None
    } else {
        Some(number(weight, "a weight")?)
    };
    Ok(match kind {
        Kind::Plain => Mode::Plain,
        Kind::Semaphore { permits } => Mode::Semaphore {
            permits,
            weight: weight.map_or(permits, |w| w.min(u64::from(permits)) as u32),
        },
        Kind::ReadWrite => Mode::ReadWrite {
            exclusive: weight.is_none_or(|w| w > 1),
        },
    })
}

fn decode(reply: &[Vec<u8>], resource: &str) -> Result<Option<Status>> {
    if reply.is_empty() {
        return Ok(None);
    }
    if reply.len() < 4 || !(reply.len() - 4).is_multiple_of(7) {
        return Err(Error::protocol("malformed status reply"));
    }
    let indicator = number(&reply[0], "the indicator")?;
    let dispenser = number(&reply[1], "the dispenser")?;
    let kind = kind_of(&reply[2])?;
    let base: Option<i64> = std::str::from_utf8(&reply[3])
        .ok()
        .and_then(|b| b.parse().ok());
    let mut waiters = 0;
    let tickets = reply[4..]
        .chunks(7)
        .map(|t| {
            let serial = number(&t[0], "a serial")?;
            let held = t[3] == b"1";
            let ours = t[6] == b"1";
            let age = std::str::from_utf8(&t[4])
                .ok()
                .and_then(|a| a.parse().ok())
                .map(Duration::from_millis);
            let pttl: i64 = std::str::from_utf8(&t[5])
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(-1);
            let position = if held {
                None
            } else {
                waiters += 1;
                Some(waiters)
            };
            Ok(TicketInfo {
                serial,
                label: String::from_utf8_lossy(&t[1]).into_owned(),
                mode: mode_of(kind, &t[2])?,
                held,
                ours,
                token: base
                    .filter(|_| ours)
                    .and_then(|b| b.checked_add(serial as i64))
                    .and_then(|t| u64::try_from(t).ok()),
                held_for: age.filter(|_| held),
                waited_for: age.filter(|_| !held),
                lease_left: u64::try_from(pttl).ok().map(Duration::from_millis),
                position,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Status {
        resource: resource.to_string(),
        kind,
        indicator,
        dispenser,
        tickets,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(parts: &[&str]) -> Vec<Vec<u8>> {
        parts.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_status_reads_the_queue_and_its_live_tickets() {
        assert_eq!(decode(&[], "r").unwrap(), None);
        let s = decode(
            &reply(&[
                "3", "5", "", "90", //
                "3", "a", "1", "1", "2500", "4000", "1", //
                "5", "b", "1", "0", "", "-1", "0",
            ]),
            "r",
        )
        .unwrap()
        .unwrap();
        assert_eq!((s.resource.as_str(), s.indicator, s.dispenser), ("r", 3, 5));
        assert_eq!(s.kind, Kind::Plain);
        assert_eq!(
            s.tickets,
            vec![
                TicketInfo {
                    serial: 3,
                    label: "a".into(),
                    held: true,
                    mode: Mode::Plain,
                    ours: true,
                    token: Some(93),
                    held_for: Some(Duration::from_millis(2500)),
                    waited_for: None,
                    lease_left: Some(Duration::from_secs(4)),
                    position: None,
                },
                TicketInfo {
                    serial: 5,
                    label: "b".into(),
                    held: false,
                    mode: Mode::Plain,
                    ours: false,
                    token: None,
                    held_for: None,
                    waited_for: None,
                    lease_left: None,
                    position: Some(1),
                }
            ]
        );
        assert!(decode(&reply(&["3"]), "r").is_err());
        assert!(decode(&reply(&["3", "5", "", "", "4"]), "r").is_err());
        assert!(decode(&reply(&["x", "5", "", ""]), "r").is_err());
        assert!(decode(&reply(&["3", "5", "lock", ""]), "r").is_err());
        let s = decode(
            &reply(&[
                "3",
                "5",
                "semaphore 4",
                "", //
                "3",
                "a",
                "2",
                "1",
                "",
                "10",
                "1", //
                "4",
                "b",
                "",
                "0",
                "",
                "10",
                "0",
            ]),
            "r",
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.kind, Kind::Semaphore { permits: 4 });
        assert_eq!(
            (s.tickets[0].held, s.tickets[0].mode, s.tickets[0].token),
            (
                true,
                Mode::Semaphore {
                    permits: 4,
                    weight: 2
                },
                None
            )
        );
        assert_eq!(
            (s.tickets[1].held, s.tickets[1].mode),
            (
                false,
                Mode::Semaphore {
                    permits: 4,
                    weight: 4
                }
            )
        );
        let s = decode(
            &reply(&["3", "3", "rwlock", "", "3", "a", "1", "1", "", "10", "1"]),
            "r",
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.tickets[0].mode, Mode::ReadWrite { exclusive: false });
    }
}
