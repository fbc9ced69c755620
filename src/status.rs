//! Snapshots of queues: what `Locker::status` answers.

use std::time::Duration;

use crate::mode::{Kind, Mode};

/// The most tickets one status reports (from the indicator on).
pub const MAX_STATUS_TICKETS: u64 = 100_000;

/// One live ticket in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketInfo {
    /// The ticket's serial number.
    pub serial: u64,
    /// Its label (the value of its presence key; invalid UTF-8 replaced).
    pub label: String,
    /// It holds: the ticket at the indicator of a plain queue, an admitted
    /// holder of a semaphore or read-write queue.
    pub held: bool,
    /// What it asks of its queue: [`Mode::Plain`] in a plain queue; its
    /// weight in a semaphore, its share in a read-write lock. A turn 1.0
    /// client's ticket in such a queue asks for all of it (every permit,
    /// or exclusive).
    pub mode: Mode,
    /// Drawn by this library in the queue's incarnation; false for a turn
    /// 1.0 client's ticket (or one of an earlier incarnation).
    pub ours: bool,
    /// Its fencing token (ours only).
    pub token: Option<u64>,
    /// A holder: how long it has held (from its grant; a ticket granted by
    /// a turn 1.0 client's release counts from its draw). None when not
    /// known (a turn 1.0 ticket).
    pub held_for: Option<Duration>,
    /// A waiter: how long it has waited (from its draw).
    pub waited_for: Option<Duration>,
    /// Its lease left: its presence key's time to live (None: no expiry).
    pub lease_left: Option<Duration>,
    /// A waiter's place among the waiters, from 1 (None for a holder).
    pub position: Option<u64>,
}

/// A snapshot of one queue, read atomically.
///
/// ```no_run
/// let locker = turn::Locker::new(None)?;
/// let status = locker.status("printer")?;
/// println!("turn {} of {}, {} in line", status.indicator, status.dispenser, status.size());
/// for ticket in &status.tickets {
///     println!("{:>8} {}", ticket.serial, ticket.label);
/// }
/// # Ok::<(), turn::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The resource.
    pub resource: String,
    /// The kind of its queue.
    pub kind: Kind,
    /// The serial whose turn it is; in a semaphore or read-write queue, the
    /// lowest serial that holds or waits (every ticket below it is done).
    pub indicator: u64,
    /// The last serial handed out.
    pub dispenser: u64,
    /// Live tickets (presence key present) from the indicator to the
    /// dispenser, ascending: the holders (if alive) first, then the
    /// waiters.
    pub tickets: Vec<TicketInfo>,
}

impl Status {
    /// Tickets drawn and not yet passed: dispenser - indicator + 1 (turn
    /// 1.0's "queue size"; dead tickets count until bumped).
    pub fn size(&self) -> u64 {
        (self.dispenser + 1).saturating_sub(self.indicator)
    }
}
