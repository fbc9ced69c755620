//! Waiting for the turn: an acquire draws a ticket and, unless it was
//! granted at once, waits for its call: the message with its nonce that the
//! release (or bump) setting the indicator to it sends to this locker
//! alone; it then confirms its turn with one plain read.
//! Meanwhile it watches the nearest ticket ahead of it that is alive, and
//! re-reads the queue on silence: when that ticket's lease would lapse, and
//! after its patience. A watched ticket found dead is stepped past (bumped
//! when it is at the indicator, recorded as withdrawn otherwise, so that
//! the release before it passes it). A watched ticket that is not ours (a
//! turn 1.0 client's) announces its leaving only on `internal`, so then
//! the waiter listens there too. A ticket lost while waiting is withdrawn
//! and drawn anew; one given up (timeout, cancel, try-lock, closing) is
//! withdrawn.
//!
//! The wait is a state machine, [`Acquiring`] (`machine.rs`), which never
//! sleeps itself: each [`Acquiring::step`] does what can be done now (within
//! the round trips it is allowed) and says how long nothing needs doing
//! unless the ticket is signaled. Its phases: drawing, pausing before
//! drawing anew (Redis away), waiting with a drawn ticket (`waiter.rs`),
//! done. A blocking acquire steps it in the calling thread and sleeps on
//! the ticket's signal between steps; a pending acquire (see `pending.rs`)
//! is stepped by the notifier thread.
//!
//! The machine does nothing outside itself but through `Env` and
//! `Clock` (`env.rs`): a running locker's are `live.rs`'s; the unit tests
//! (`tests.rs`) step it over a fake queue and clock (`fake.rs`).
//!
//! Within this folder the arrows run one way: `machine` uses `waiter`,
//! `outage`, `live` and `env`; `waiter` uses `outage` and `env`; `outage`
//! uses `env`'s clock; `live` (and the tests' `fake`) serve `env`. Nothing
//! is defined here but the modules and what they show outside.

mod env;
mod live;
mod machine;
mod outage;
mod waiter;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub(crate) use env::Budget;
pub(crate) use machine::{Acquiring, Step, acquire};
