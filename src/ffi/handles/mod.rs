//! Checked handles for the C ABI. A `turn_locker *`, `turn_lock *`,
//! `turn_cancel *`, `turn_status *`, `turn_options *` or `turn_pending *`
//! is not the address
//! of anything: it is a number made of four fields, from the lowest bit up:
//!
//! | field | 64-bit targets | 32-bit targets |
//! |---|---|---|
//! | id: which object, never reused (see below) | 40 bits | 20 bits |
//! | kind: locker 1, lock 2, cancel 3, status 4, options 5, pending 6 (0 and 7 are never made) | 3 bits | 3 bits |
//! | fork generation (its lowest bits) | 3 bits | 1 bit |
//! | check: a keyed hash of the kind, the whole fork generation and the id | 18 bits | 8 bits |
//!
//! Both the ids and the check are keyed with SipHash (std's
//! [`RandomState`]) under a key drawn once per process at the first handle
//! and kept by forked children.
//!
//! Ids come from one counter per kind that only goes up and goes on in a
//! forked child, mapped through a keyed permutation of the id field: a
//! 4-round Feistel network over its two halves (20 bits each; 10 on 32-bit
//! targets) whose round function is the keyed hash of (kind, round, half).
//! A permutation maps distinct counts to distinct ids, so a handle from this
//! process or from an ancestor names only the object it was made for, or
//! nothing; and the key makes ids look drawn at random: the id of the next
//! handle cannot be told from the ids seen before, so a guess at another
//! object's handle must hit a live id (a chance of live objects / 2^40;
//! / 2^20 on 32-bit targets) as well as the check (2^-18; 2^-8).
//!
//! A value that fails the check, names another kind, or names no live
//! object answers `TURN_ERR_INVALID_ARGUMENT`. A real handle made before the
//! latest fork() (by an ancestor at most 7 forks up; 1 on 32-bit targets)
//! answers `TURN_ERR_FORKED`, except for the kinds that are plain data
//! (status, options): a child starts with a copy of its parent's live ones,
//! as it has a copy of their memory, and may use and free them.
//!
//! On 64-bit targets, when a kind's counter reaches 2^40, making a handle
//! of that kind fails instead of reusing an id. On 32-bit targets the
//! counter wraps after 2^20 handles of a kind and ids are reused (skipping
//! those still live), so a handle kept after its object ended through 2^20
//! newer handles of its kind may name a newer object: a weaker promise, as
//! only 32 bits are there to carry it.
//!
//! `encoding` makes and reads a handle's fields under the key, `table`
//! keeps one kind's live objects, `generations` gives each fork generation
//! its table, and `kind` names the kinds and the ways a handle is misused.

mod encoding;
mod generations;
mod kind;
mod table;
#[cfg(test)]
mod testing;

pub(crate) use kind::Kind;
pub(crate) use table::Table;
