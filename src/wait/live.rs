//! The wait's environment in a running locker: its `Engine` (the core's
//! round trips and flags, the heartbeat, the notifier, the leaving
//! thread).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::env::{Clock, DrawReply, Env};
use crate::engine::Engine;
use crate::error::Result;
use crate::metrics::Metrics;
use crate::options::Cancel;
use crate::scripts::{self, Bumped, Checked, Confirm, Holder};
use crate::ticket::{Draw, Ticket};

/// A locker's running parts, as the wait sees them.
pub(crate) struct Live {
    rt: Arc<Engine>,
}

impl Live {
    pub fn new(rt: &Arc<Engine>) -> Live {
        Live { rt: rt.clone() }
    }
}

impl Clock for Live {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn now_ms(&self) -> u64 {
        self.rt.core.now_ms()
    }
}

impl Env for Live {
    fn is_closed(&self) -> bool {
        self.rt.core.is_closed()
    }

    fn in_owner_process(&self) -> bool {
        self.rt.core.in_owner_process()
    }

    fn grace(&self) -> Duration {
        self.rt.core.options.grace
    }

    fn is_sentinel(&self) -> bool {
        self.rt.core.pool.is_sentinel()
    }

    fn confirm_of(&self, lease: Duration) -> Option<Confirm> {
        Confirm::of(&self.rt.core, lease)
    }

    fn nonce(&self) -> String {
        self.rt.core.nonce()
    }

    fn next_id(&self) -> u64 {
        self.rt.core.next_id()
    }

    fn metrics(&self) -> Arc<Metrics> {
        self.rt.core.metrics.clone()
    }

    fn draw(&self, draw: &Draw) -> Result<DrawReply> {
        let drawn = scripts::draw(&self.rt.core, draw).inspect_err(|e| {
            if e.is_unanswered() {
                // Sent, never answered: the ticket it may have made is
                // looked for and withdrawn in the background.
                self.rt.leaving.doubt(draw.clone(), None);
            }
        })?;
        if drawn.retried {
            // Sent again after a broken connection: the first try may have
            // made a ticket too, with the same nonce.
            self.rt.leaving.doubt(draw.clone(), Some(drawn.serial));
        }
        Ok(DrawReply {
            serial: drawn.serial,
            token: drawn.token,
            turn: drawn.turn,
            confirmed: drawn.confirmed,
        })
    }

    fn check(&self, t: &Ticket, record: bool) -> Result<Checked> {
        scripts::check(&self.rt.core, t, record)
    }

    fn confirm(&self, t: &Ticket) -> Result<bool> {
        scripts::confirm(&self.rt.core, t)
    }

    fn bump_before(
        &self,
        t: &Ticket,
        past_grace: bool,
    ) -> Result<std::result::Result<Bumped, Holder>> {
        scripts::bump_before(&self.rt.core, t, past_grace)
    }

    fn withdraw(&self, t: &Arc<Ticket>) {
        self.rt.withdraw(t);
    }

    fn kick(&self) {
        let channel = self.rt.notifier.channel();
        let _ = self
            .rt
            .core
            .run(|c| redis::cmd("PUBLISH").arg(channel).arg("").query::<i64>(c));
    }

    fn admit(&self, t: &Arc<Ticket>, held: bool) -> bool {
        self.rt.heartbeat.admit(&self.rt.core, t, held)
    }

    fn grant(&self, t: &Ticket) -> bool {
        self.rt.heartbeat.grant(&self.rt.core, t)
    }

    fn channel(&self) -> String {
        self.rt.notifier.channel().to_string()
    }

    fn expect(&self, nonce: &str) -> Option<u64> {
        self.rt.notifier.expect(nonce)
    }

    fn attach(&self, nonce: &str, t: &Arc<Ticket>) -> (Option<u64>, bool) {
        self.rt.notifier.attach(nonce, t)
    }

    fn forget(&self, nonce: &str) {
        self.rt.notifier.forget(nonce);
    }

    fn register(&self, t: &Arc<Ticket>) {
        self.rt.notifier.register(t);
    }

    fn unregister(&self, t: &Ticket) {
        self.rt.notifier.unregister(t);
    }

    fn listen(&self, t: &Ticket) -> Option<u64> {
        self.rt.notifier.listen(t)
    }

    fn snapshot(&self, channel: &str) -> Option<u64> {
        self.rt.notifier.snapshot(channel)
    }

    fn pause(&self, d: Duration, cancel: Option<&Cancel>) {
        self.rt.pause(d, cancel);
    }
}
