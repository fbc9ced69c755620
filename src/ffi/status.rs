//! `turn_status`: snapshots of a queue.

use std::ffi::{CString, c_char, c_int};
use std::sync::Arc;

use super::args::{Handle, text};
use super::export::{Out, guard_out_after, quiet};
use super::handles::{Kind, Table};
use super::locker::{locker_of, turn_locker};
use super::result::turn_result;
use crate::{Mode, Status, TicketInfo};

/// The statuses handed out, by handle.
static STATUSES: Table<StatusCell> = Table::new(Kind::Status);

/// A status behind a `turn_status` handle, with the strings handed out
/// from it (they live as long as it stays in the table).
pub(super) struct StatusCell {
    status: Status,
    labels: Vec<CString>,
}

/// A snapshot of one queue from `turn_status_get`. Owned by the caller,
/// freed with `turn_status_free`; immutable, so it may be read from several
/// threads at once. Strings it returns live as long as it does.
///
/// The handle is a checked number like a `turn_locker`'s (see there), with
/// the kind status: a status freed already, a value this library did not
/// return, or a handle of another kind makes each reader answer its
/// fallback (0, or NULL from `turn_status_label_at`) and touches nothing,
/// and `turn_status_free` of it does nothing (a second free is harmless).
/// A status is plain data: after fork() the child may still read and free
/// the statuses its parent had (its own copies).
pub struct turn_status {
    _opaque: [u8; 0],
}

impl Handle for turn_status {
    type Object = StatusCell;
    const PARAM: &'static str = "status";
    fn table() -> &'static Table<StatusCell> {
        &STATUSES
    }
}

/// The status behind a handle, if it is a live one.
fn status_of(status: *const turn_status) -> Option<Arc<StatusCell>> {
    turn_status::get(status).ok()
}

/// Reads a snapshot of the queue of `resource` atomically and writes it to
/// `*out`. `TURN_ERR_NOT_FOUND` when there is no queue;
/// `TURN_ERR_INVALID_ARGUMENT` for a resource that is not 1 to 1024 bytes
/// of UTF-8 without control characters.
///
/// # Safety
/// `resource` is NULL or NUL-terminated; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_get(
    locker: *mut turn_locker,
    resource: *const c_char,
    out: *mut *mut turn_status,
) -> turn_result {
    let args = || {
        let locker = locker_of(locker)?;
        // SAFETY: NUL-terminated per the contract.
        let resource = unsafe { text(resource, "resource")? };
        Ok((locker, resource))
    };
    // SAFETY: out is NULL or writable per the contract.
    let out = unsafe { Out::new(out) };
    guard_out_after(args, out, |(locker, resource)| {
        let status = locker.status(resource)?;
        let labels = status
            .tickets
            .iter()
            .map(|t| {
                let clean: Vec<u8> = t.label.bytes().filter(|b| *b != 0).collect();
                CString::new(clean).unwrap_or_default()
            })
            .collect();
        turn_status::insert(StatusCell { status, labels })
    })
}

/// The serial whose turn it is. 0 for NULL.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_indicator(status: *const turn_status) -> u64 {
    quiet(0, || status_of(status).map_or(0, |s| s.status.indicator))
}

/// The last serial handed out. 0 for NULL.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_dispenser(status: *const turn_status) -> u64 {
    quiet(0, || status_of(status).map_or(0, |s| s.status.dispenser))
}

/// The number of live tickets (holder and waiters), in ascending serial
/// order. 0 for NULL.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_len(status: *const turn_status) -> usize {
    quiet(0, || {
        status_of(status).map_or(0, |s| s.status.tickets.len())
    })
}

/// The serial of live ticket `i` (0-based). 0 for NULL or out of range.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_serial_at(status: *const turn_status, i: usize) -> u64 {
    quiet(0, || {
        status_of(status)
            .and_then(|s| s.status.tickets.get(i).map(|t| t.serial))
            .unwrap_or(0)
    })
}

/// The label of live ticket `i` (0-based), owned by the status and valid
/// until `turn_status_free`. NULL for NULL or out of range.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_label_at(
    status: *const turn_status,
    i: usize,
) -> *const c_char {
    // The string belongs to the status held by the table, which keeps it
    // until turn_status_free.
    quiet(std::ptr::null(), || {
        status_of(status)
            .and_then(|s| s.labels.get(i).map(|l| l.as_ptr()))
            .unwrap_or(std::ptr::null())
    })
}

/// `turn_status_kind`: a plain queue (turn 1.0's).
pub const TURN_KIND_PLAIN: c_int = 0;
/// `turn_status_kind`: a FIFO semaphore (`turn_status_permits` tells its
/// permits).
pub const TURN_KIND_SEMAPHORE: c_int = 1;
/// `turn_status_kind`: a read-write lock.
pub const TURN_KIND_RWLOCK: c_int = 2;

/// The live ticket `i` of a live status.
fn ticket_at(status: *const turn_status, i: usize) -> Option<TicketInfo> {
    status_of(status).and_then(|s| s.status.tickets.get(i).cloned())
}

/// The queue's kind: `TURN_KIND_PLAIN`, `TURN_KIND_SEMAPHORE` or
/// `TURN_KIND_RWLOCK`; -1 for NULL or a handle that is not a live status.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_kind(status: *const turn_status) -> c_int {
    quiet(-1, || {
        status_of(status).map_or(-1, |s| match s.status.kind {
            crate::Kind::Plain => TURN_KIND_PLAIN,
            crate::Kind::Semaphore { .. } => TURN_KIND_SEMAPHORE,
            crate::Kind::ReadWrite => TURN_KIND_RWLOCK,
        })
    })
}

/// A semaphore's permits; 0 for another kind, NULL or a bad handle.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_permits(status: *const turn_status) -> u32 {
    quiet(0, || {
        status_of(status).map_or(0, |s| match s.status.kind {
            crate::Kind::Semaphore { permits } => permits,
            _ => 0,
        })
    })
}

/// 1 when live ticket `i` holds, 0 when it waits; -1 for NULL or out of
/// range.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_held_at(status: *const turn_status, i: usize) -> c_int {
    quiet(-1, || {
        ticket_at(status, i).map_or(-1, |t| c_int::from(t.held))
    })
}

/// The permits live ticket `i` takes of a semaphore (a turn 1.0 ticket:
/// all of them); 1 in other queues; 0 for NULL or out of range.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_weight_at(status: *const turn_status, i: usize) -> u32 {
    quiet(0, || {
        ticket_at(status, i).map_or(0, |t| match t.mode {
            Mode::Semaphore { weight, .. } => weight,
            _ => 1,
        })
    })
}

/// 1 when live ticket `i` holds alone (a plain queue's ticket, a
/// read-write lock's writer, a turn 1.0 ticket there), 0 when it shares
/// (a reader, a semaphore's ticket); -1 for NULL or out of range.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_exclusive_at(status: *const turn_status, i: usize) -> c_int {
    quiet(-1, || {
        ticket_at(status, i).map_or(-1, |t| match t.mode {
            Mode::Plain | Mode::ReadWrite { exclusive: true } => 1,
            _ => 0,
        })
    })
}

/// 1 when live ticket `i` was drawn by this library in the queue's
/// incarnation, 0 for a turn 1.0 client's; -1 for NULL or out of range.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_ours_at(status: *const turn_status, i: usize) -> c_int {
    quiet(-1, || {
        ticket_at(status, i).map_or(-1, |t| c_int::from(t.ours))
    })
}

/// The fencing token of live ticket `i`; 0 when not known (a turn 1.0
/// ticket), for NULL or out of range.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_token_at(status: *const turn_status, i: usize) -> u64 {
    quiet(0, || {
        ticket_at(status, i).and_then(|t| t.token).unwrap_or(0)
    })
}

/// How long live ticket `i` has held (a holder) or waited (a waiter), in
/// ms when the status was read; -1 when not known (a turn 1.0 ticket), for
/// NULL or out of range.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_age_ms_at(status: *const turn_status, i: usize) -> i64 {
    quiet(-1, || {
        ticket_at(status, i)
            .and_then(|t| t.held_for.or(t.waited_for))
            .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

/// The lease left of live ticket `i` in ms (its presence key's time to
/// live) when the status was read; -1 when it has no expiry, for NULL or
/// out of range.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_lease_left_ms_at(status: *const turn_status, i: usize) -> i64 {
    quiet(-1, || {
        ticket_at(status, i)
            .and_then(|t| t.lease_left)
            .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

/// The place of live ticket `i` among the waiters, from 1; 0 for a
/// holder, NULL or out of range.
///
/// # Safety
/// `status` is NULL or a live status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_position_at(status: *const turn_status, i: usize) -> u64 {
    quiet(0, || {
        ticket_at(status, i).and_then(|t| t.position).unwrap_or(0)
    })
}

/// Frees a status. NULL is a no-op.
///
/// # Safety
/// `status` is NULL or from `turn_status_get` and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_free(status: *mut turn_status) {
    turn_status::free(status, drop)
}
