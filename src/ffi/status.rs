//! `turn_status`: snapshots of a queue.

use std::ffi::{CString, c_char};
use std::sync::Arc;

use super::args::{Handle, text};
use super::export::{Out, guard_out_after, quiet};
use super::handles::{Kind, Table};
use super::locker::{locker_of, turn_locker};
use super::result::turn_result;
use crate::Status;

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

/// Frees a status. NULL is a no-op.
///
/// # Safety
/// `status` is NULL or from `turn_status_get` and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turn_status_free(status: *mut turn_status) {
    turn_status::free(status, drop)
}
