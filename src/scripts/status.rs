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

/// status: KEYS indicator, dispenser; ARGV presence prefix, max tickets.
/// Returns {} when there is no queue, else {indicator, dispenser,
/// serial1, label1, ...} for the live tickets from the indicator to the
/// dispenser, ascending.
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

/// The queue of `keys` (named `resource`), None when there is none; at
/// most [`MAX_STATUS_TICKETS`] tickets from the indicator on.
pub(crate) fn status(core: &Core, keys: &Keys, resource: &str) -> Result<Option<Status>> {
    let call = Call::new(&STATUS, &[&keys.indicator, &keys.dispenser])
        .arg(&keys.presence_prefix)
        .arg(MAX_STATUS_TICKETS);
    let reply: Vec<Vec<u8>> = core.run(|c| call.invoke(c))?;
    decode(&reply, resource)
}

fn number(bytes: &[u8], what: &str) -> Result<u64> {
    parse_serial(bytes).ok_or_else(|| Error::protocol(format!("{what} is not a serial number")))
}

fn decode(reply: &[Vec<u8>], resource: &str) -> Result<Option<Status>> {
    if reply.is_empty() {
        return Ok(None);
    }
    if reply.len() < 2 || !reply.len().is_multiple_of(2) {
        return Err(Error::protocol("malformed status reply"));
    }
    let indicator = number(&reply[0], "the indicator")?;
    let dispenser = number(&reply[1], "the dispenser")?;
    let tickets = reply[2..]
        .chunks(2)
        .map(|pair| {
            let serial = number(&pair[0], "a serial")?;
            Ok(TicketInfo {
                serial,
                label: String::from_utf8_lossy(&pair[1]).into_owned(),
                held: serial == indicator,
                mode: Mode::Plain,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Status {
        resource: resource.to_string(),
        kind: Kind::Plain,
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
        let s = decode(&reply(&["3", "5", "3", "a", "5", "b"]), "r")
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
        assert!(decode(&reply(&["3", "5", "4"]), "r").is_err());
        assert!(decode(&reply(&["x", "5"]), "r").is_err());
    }
}
