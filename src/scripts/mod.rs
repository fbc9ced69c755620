//! The protocol's state changes, each one server-side Lua script (EVALSHA,
//! falling back to EVAL), so that each is one round trip and atomic.
//!
//! Texts published on the `external` channel are those of turn 1.0, so that
//! `turn follow` looks the same whichever client acted. Serials are formatted
//! with `%d` so that large numbers never print in exponent form.
//!
//! One file per script: its Lua text, the order of its keys and arguments
//! (written in one place, the function that calls it), and the typed reply
//! it answers. Nothing outside this folder builds a script call or reads a
//! reply's codes.

mod bump;
mod call;
mod check;
mod draw;
mod find;
mod kind;
mod lua;
mod modes;
mod reading;
mod release;
mod renew;
mod reset;
mod route;
mod status;

pub(crate) use bump::{Bumped, bump};
pub(crate) use call::Confirm;
pub(crate) use check::Checked;
pub(crate) use draw::Turn;
pub(crate) use find::find;
pub(crate) use reading::{Holder, Reading};
pub(crate) use release::Mode;
pub(crate) use renew::{prepare_node, prepare_renewals, renew, renew_routed};
pub(crate) use reset::{Reset, reset};
pub(crate) use route::{bump_before, check, confirm, draw, release, still_held};
pub(crate) use status::status;
