//! Which script a ticket's step takes: its plain queue's, or its
//! shared-mode queue's (semaphore, read-write lock), by the ticket's mode.
//! The rest of the library calls these.

use super::bump::{self, Bumped};
use super::check::{self, Checked};
use super::draw::{self, Drawn};
use super::modes::{self, Ask};
use super::reading::Holder;
use super::release::{self, Left, Mode};
use crate::error::Result;
use crate::shared::Core;
use crate::ticket::{Draw, Ticket};

/// Draws a ticket for `draw`: one round trip.
pub(crate) fn draw(core: &Core, draw: &Draw) -> Result<Drawn> {
    match Ask::of(draw.mode) {
        Some(ask) => modes::draw(core, draw, &ask),
        None => draw::draw(core, draw),
    }
}

/// Checks whether `t` has its turn, and what to watch until then (see
/// `check::check`, `modes::check`).
pub(crate) fn check(core: &Core, t: &Ticket, record: bool) -> Result<Checked> {
    match Ask::of(t.mode) {
        Some(ask) => modes::check(core, t, &ask, record),
        None => check::check(core, t, record),
    }
}

/// Confirms the call of `t`: true when it holds.
pub(crate) fn confirm(core: &Core, t: &Ticket) -> Result<bool> {
    match Ask::of(t.mode) {
        Some(ask) => modes::confirm(core, t, &ask),
        None => check::confirm(core, t),
    }
}

/// Takes `t` out of its queue: one round trip.
pub(crate) fn release(core: &Core, t: &Ticket, mode: Mode, confirm: bool) -> Result<Left> {
    match Ask::of(t.mode) {
        Some(ask) => modes::release(core, t, &ask, mode, confirm),
        None => release::release(core, t, mode, confirm),
    }
}

/// A waiter's bump past a dead ticket at the indicator for `t` (see
/// `bump::bump_before`). In a shared-mode queue its check does that: it
/// admits, and passes the tickets before it that are dead.
pub(crate) fn bump_before(
    core: &Core,
    t: &Ticket,
    past_grace: bool,
) -> Result<std::result::Result<Bumped, Holder>> {
    if let Some(ask) = Ask::of(t.mode) {
        return Ok(match modes::check(core, t, &ask, past_grace)? {
            Checked::Granted => Ok(Bumped::To(t.serial)),
            Checked::Lost => Ok(Bumped::NotOurs),
            Checked::Waiting(reading) => Err(reading.holder),
        });
    }
    bump::bump_before(core, t, past_grace)
}

/// True when every one of `tickets` (held by this locker) still holds in
/// Redis: plain tickets on one server in one pipelined round trip; the
/// others (on a Redis Cluster, shared modes, or replicas asked for) one
/// [`confirm`] each.
pub(crate) fn still_held(core: &Core, tickets: &[&Ticket]) -> Result<bool> {
    let mut plain = Vec::new();
    for t in tickets {
        if Ask::of(t.mode).is_some() || core.durable.is_on() || core.pool.is_cluster() {
            if !confirm(core, t)? {
                return Ok(false);
            }
        } else {
            plain.push(*t);
        }
    }
    check::still_held(core, &plain)
}
