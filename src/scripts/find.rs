//! find: the serial a draw got, by its nonce, when its reply never came
//! (Redis stalled or the connection broke after the draw was sent), so
//! that the ticket can be withdrawn rather than left to its lease.

use once_cell::sync::Lazy;
use redis::Script;

use super::call::{Call, protocol};
use super::lua::{CHECK_NUM, script};
use crate::error::Result;
use crate::keys::Keys;
use crate::shared::Core;

/// How far back from the dispenser `find` looks (a draw given up is
/// looked for soon after it was sent).
const LOOK_BACK: u64 = 1000;

/// find: KEYS indicator, dispenser; ARGV ticket prefix, nonce, look back,
/// a serial to pass over (0: none). Returns {serial, identity} of the
/// ticket whose identity key begins with the nonce, looking from the
/// dispenser down to the indicator (at most ARGV[3] tickets), or 0 when
/// there is none.
static FIND: Lazy<Script> = Lazy::new(|| {
    script(&format!(
        "{CHECK_NUM}{}",
        r#"
local ind = num(KEYS[1])
if bad(ind) then return ind end
local disp = num(KEYS[2])
if bad(disp) then return disp end
if ind == nil or disp == nil then return 0 end
local stop = math.max(ind, disp - tonumber(ARGV[3]))
local nonce = ARGV[2] .. ' '
local except = tonumber(ARGV[4])
for t = disp, stop, -1 do
  if t ~= except then
    local id = redis.call('GET', ARGV[1] .. fmt(t))
    if type(id) == 'string' and string.sub(id, 1, #nonce) == nonce then
      return {fmt(t), id}
    end
  end
end
return 0
"#
    ))
});

/// The serial and the identity of a ticket drawn with `nonce`, if one is in
/// the queue (from the indicator on), other than serial `except` (a draw
/// sent again after a broken connection keeps its second ticket). One
/// round trip.
pub(crate) fn find(
    core: &Core,
    keys: &Keys,
    nonce: &str,
    except: Option<u64>,
) -> Result<Option<(u64, String)>> {
    let call = Call::new(&FIND, &[&keys.indicator, &keys.dispenser])
        .arg(&keys.ticket_prefix)
        .arg(nonce)
        .arg(LOOK_BACK)
        .arg(except.unwrap_or(0));
    let reply: redis::Value = core.run(|c| call.invoke(c))?;
    match reply {
        redis::Value::Int(0) => Ok(None),
        redis::Value::Array(items) if items.len() == 2 => {
            let serial: String = redis::from_redis_value(&items[0])?;
            let identity: String = redis::from_redis_value(&items[1])?;
            let serial = serial
                .parse()
                .map_err(|_| protocol("find answered a serial that is not a number", &serial))?;
            Ok(Some((serial, identity)))
        }
        other => Err(protocol("find answered an unknown reply", &format!("{other:?}")).into()),
    }
}
