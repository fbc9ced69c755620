//! What the wait does outside itself, behind two small traits: the clock it
//! reads ([`Clock`]) and everything else ([`Env`]): its round trips (draw,
//! check, confirm, bump, withdraw, the message that makes the notifier look
//! at its subscriptions), the heartbeat admitting and granting its ticket,
//! the notifier's bookkeeping of its nonce and ticket, the locker's flags,
//! and the pause of a blocking acquire without a ticket. `live.rs` serves
//! them with a locker's `Engine`; the unit tests with a fake queue and
//! clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::metrics::Metrics;
use crate::options::Cancel;
use crate::scripts::{Bumped, Checked, Confirm, Holder, Turn};
use crate::ticket::{Draw, Ticket};

/// What a draw answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DrawReply {
    pub serial: u64,
    /// The fencing token.
    pub token: u64,
    pub turn: Turn,
    /// Enough replicas have the draw (always, when none are asked for): a
    /// grant counts only then.
    pub confirmed: bool,
}

/// The clock the wait reads: its deadlines, pauses and a ticket's age, and
/// the locker's millisecond clock that leases run on.
pub(crate) trait Clock {
    fn now(&self) -> Instant;
    /// Milliseconds since the locker's epoch (a ticket's lease runs on it).
    fn now_ms(&self) -> u64;
}

/// The wait's side effects and the locker state it reads.
pub(crate) trait Env: Clock {
    // The locker.

    /// The locker is closing (or closed).
    fn is_closed(&self) -> bool;
    /// The calling process is the one that made the locker (not a child
    /// forked since).
    fn in_owner_process(&self) -> bool;
    /// How long a ticket ahead missing its presence key may be a turn 1.0
    /// one whose key is not set yet.
    fn grace(&self) -> Duration;
    /// Redis is reached through Sentinel (a master gone away is a failover
    /// on its way).
    fn is_sentinel(&self) -> bool;
    /// The replica confirmation a grant of a ticket with lease `lease`
    /// needs (None when the locker asks for none).
    fn confirm_of(&self, lease: Duration) -> Option<Confirm>;
    /// A nonce made for one draw alone.
    fn nonce(&self) -> String;
    /// A ticket id, unique in the locker.
    fn next_id(&self) -> u64;
    /// The locker's counters.
    fn metrics(&self) -> Arc<Metrics>;

    // The queue: one round trip each (withdraw: the leaving thread's).

    fn draw(&self, draw: &Draw) -> Result<DrawReply>;
    fn check(&self, t: &Ticket, record: bool) -> Result<Checked>;
    fn confirm(&self, t: &Ticket) -> Result<bool>;
    fn bump_before(
        &self,
        t: &Ticket,
        past_grace: bool,
    ) -> Result<std::result::Result<Bumped, Holder>>;
    /// Withdraws a ticket that will not be used.
    fn withdraw(&self, t: &Arc<Ticket>);
    /// Makes the notifier thread look at its subscriptions now.
    fn kick(&self);

    // The heartbeat.

    /// Admits a drawn ticket (as held with `held`); false when the locker
    /// is closing or its lease lapsed by the local clock.
    fn admit(&self, t: &Arc<Ticket>, held: bool) -> bool;
    /// Makes a waiting ticket held, when that is still true.
    fn grant(&self, t: &Ticket) -> bool;

    // The notifier.

    /// The locker's own channel.
    fn channel(&self) -> String;
    fn expect(&self, nonce: &str) -> Option<u64>;
    fn attach(&self, nonce: &str, t: &Arc<Ticket>) -> (Option<u64>, bool);
    fn forget(&self, nonce: &str);
    fn register(&self, t: &Arc<Ticket>);
    fn unregister(&self, t: &Ticket);
    fn listen(&self, t: &Ticket) -> Option<u64>;
    fn snapshot(&self, channel: &str) -> Option<u64>;

    // A blocking acquire's pause without a ticket.

    /// Sleeps up to `d`; ends at once when the locker closes and soon
    /// after `cancel` fires.
    fn pause(&self, d: Duration, cancel: Option<&Cancel>);
}

/// Round trips a step may still make (None: any number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget(pub Option<u32>);

impl Budget {
    /// Any number of round trips.
    pub(crate) const ANY: Budget = Budget(None);

    /// Spends a round trip; false when the budget is spent.
    pub fn spend(&mut self) -> bool {
        match &mut self.0 {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }
}
