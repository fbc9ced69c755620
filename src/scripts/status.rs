//! status: a snapshot of a queue, read atomically.

use once_cell::sync::Lazy;
use redis::Script;

use super::call::Call;
use super::lua::{CHECK_NUM, script};
use crate::error::{Error, Result};
use crate::keys::{Keys, parse_serial};
use crate::options::{Kind, Mode};
use crate::shared::Core;
use crate::status::{MAX_STATUS_TICKETS, Status, TicketInfo};

/// status: KEYS indicator, dispenser, kind, holders, weights; ARGV
/// presence prefix, max tickets.
/// Returns {} when there is no queue, else {indicator, dispenser, kind
/// ('' for a plain queue), serial1, label1, weight1, held1, ...} for the
/// live tickets from the indicator to the dispenser, ascending. In a
/// plain queue every weight is 1 and the ticket at the indicator holds; in
/// a shared-mode queue the holders are those admitted, and a ticket whose
/// weight is not recorded (a turn 1.0 client's) weighs '' (all of it).
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
local out = {fmt(ind), fmt(disp), kind}
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
    out[#out + 1] = s
    out[#out + 1] = label
    out[#out + 1] = weight
    out[#out + 1] = held
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
        ],
    )
    .arg(&keys.presence_prefix)
    .arg(MAX_STATUS_TICKETS);
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
    if reply.len() < 3 || !(reply.len() - 3).is_multiple_of(4) {
        return Err(Error::protocol("malformed status reply"));
    }
    let indicator = number(&reply[0], "the indicator")?;
    let dispenser = number(&reply[1], "the dispenser")?;
    let kind = kind_of(&reply[2])?;
    let tickets = reply[3..]
        .chunks(4)
        .map(|four| {
            Ok(TicketInfo {
                serial: number(&four[0], "a serial")?,
                label: String::from_utf8_lossy(&four[1]).into_owned(),
                mode: mode_of(kind, &four[2])?,
                held: four[3] == b"1",
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

    fn reply(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_status_reads_the_queue_and_its_live_tickets() {
        assert_eq!(decode(&[], "r").unwrap(), None);
        let s = decode(
            &reply(&["3", "5", "", "3", "a", "1", "1", "5", "b", "1", "0"]),
            "r",
        )
        .unwrap()
        .unwrap();
        assert_eq!((s.resource.as_str(), s.indicator, s.dispenser), ("r", 3, 5));
        assert_eq!(
            s.tickets,
            vec![
                TicketInfo {
                    serial: 3,
                    label: "a".into(),
                    held: true,
                    mode: Mode::Plain,
                },
                TicketInfo {
                    serial: 5,
                    label: "b".into(),
                    held: false,
                    mode: Mode::Plain,
                }
            ]
        );
        assert!(decode(&reply(&["3"]), "r").is_err());
        assert!(decode(&reply(&["3", "5", "", "4"]), "r").is_err());
        let s = decode(
            &reply(&[
                "3",
                "5",
                "semaphore 4",
                "3",
                "a",
                "2",
                "1",
                "4",
                "b",
                "",
                "0",
            ]),
            "r",
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.kind, Kind::Semaphore { permits: 4 });
        assert_eq!(
            (s.tickets[0].held, s.tickets[0].mode),
            (
                true,
                Mode::Semaphore {
                    permits: 4,
                    weight: 2
                }
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
        let s = decode(&reply(&["3", "3", "rwlock", "3", "a", "1", "1"]), "r")
            .unwrap()
            .unwrap();
        assert_eq!(s.tickets[0].mode, Mode::ReadWrite { exclusive: false });
        assert!(decode(&reply(&["x", "5", ""]), "r").is_err());
        assert!(decode(&reply(&["3", "5", "lock"]), "r").is_err());
    }
}
