//! Riding out Redis being unreachable: while a ticket waits, and while an
//! acquire that lost its ticket draws anew.

use std::time::{Duration, Instant};

use super::env::Clock;
use crate::error::{Error, Result};
use crate::ticket::Ticket;

/// How an acquire that lost its ticket rides out Redis being unreachable
/// while it draws anew: it retries after a growing pause for as long as a
/// lease (from the loss) and its deadline allow.
pub(super) struct Redraw {
    until: Instant,
    pause: Duration,
    /// The error ridden out last: what a timeout reports.
    pub(super) last: Option<Error>,
}

impl Redraw {
    pub(super) fn new(lease: Duration, now: Instant) -> Redraw {
        Redraw {
            until: now.checked_add(lease).unwrap_or(now),
            pause: Duration::ZERO,
            last: None,
        }
    }

    /// The pause before the next try, or `e` back when the time is up.
    pub(super) fn pause(
        &mut self,
        e: Error,
        deadline: Option<Instant>,
        clock: &impl Clock,
    ) -> Result<Duration> {
        let now = clock.now();
        let until = deadline.map_or(self.until, |d| d.min(self.until));
        if now >= until {
            return Err(e);
        }
        self.last = Some(e);
        self.pause = (self.pause * 2).clamp(Duration::from_millis(50), Duration::from_secs(1));
        Ok(self.pause.min(until - now))
    }
}

/// How a waiter rides out Redis being unreachable: it retries with a growing
/// pause while its ticket's lease may still hold and its deadline allows,
/// then gives up (a lapsed ticket is drawn anew, which reports the outage if
/// it goes on).
#[derive(Default)]
pub(super) struct Outage {
    pause: Duration,
    /// The error ridden out now (None once a round trip succeeded): what a
    /// timeout reports.
    pub(super) last: Option<Error>,
}

impl Outage {
    /// The pause before the next try, or how the wait ends: given up when
    /// the error is not a connection's or the deadline passed, lost when
    /// the ticket's lease lapsed.
    pub(super) fn pause(
        &mut self,
        e: Error,
        t: &Ticket,
        deadline: Option<Instant>,
        clock: &impl Clock,
    ) -> std::result::Result<Duration, GiveUp> {
        if !e.is_connection() {
            return Err(GiveUp::Failed(e));
        }
        if t.lapsed(clock.now_ms()) {
            return Err(GiveUp::Lost);
        }
        self.last = Some(e.clone());
        self.pause = (self.pause * 2).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut pause = self.pause;
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(clock.now());
            if left.is_zero() {
                return Err(GiveUp::Failed(e));
            }
            pause = pause.min(left);
        }
        self.last = Some(e);
        Ok(pause)
    }

    /// A round trip succeeded: the outage is over.
    pub(super) fn over(&mut self) {
        self.last = None;
    }
}

/// How a wait that stops riding an outage out ends.
pub(super) enum GiveUp {
    /// With this error.
    Failed(Error),
    /// The ticket's lease lapsed: it is drawn anew.
    Lost,
}
