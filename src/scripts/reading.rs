//! What a draw or a check read of a waiter's queue.

use std::time::Duration;

/// What a waiter's draw or check read of its queue: an indicator below its
/// serial, and the ticket it watches: the nearest one ahead of it that
/// still has a presence key (or the one at the indicator, when every
/// ticket from there on is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reading {
    pub indicator: u64,
    /// The serial of the watched ticket.
    pub watched: u64,
    /// Its presence key.
    pub holder: Holder,
    /// It is one of ours, drawn in the same incarnation: when it releases,
    /// the ticket after it is called by its nonce. Otherwise (a turn 1.0
    /// ticket, or one not known) only `internal` may say that it left.
    pub ours: bool,
}

/// The presence key of a watched ticket, as PTTL answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// Missing: that ticket is dead, or was drawn a moment ago by a turn
    /// 1.0 client that has not set its key yet.
    Missing,
    /// Missing, and recorded withdrawn: gone for good (a turn 1.0 release
    /// moved the indicator to it, not knowing our withdrawn set).
    Withdrawn,
    /// It lapses after this long unless renewed.
    Expires(Duration),
    /// It has no expiry (written by hand).
    NoExpiry,
}

impl Holder {
    pub(super) fn from_pttl(pttl: i64) -> Holder {
        match pttl {
            -2 => Holder::Missing,
            ms if ms >= 0 => Holder::Expires(Duration::from_millis(ms as u64)),
            _ => Holder::NoExpiry,
        }
    }
}
