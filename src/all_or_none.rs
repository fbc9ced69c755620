//! All or none: locks on several resources taken in one order that every
//! client uses (the resource names' bytes, ascending), so that two such
//! calls, or such a call and single locks, never wait for each other in a
//! circle. On timeout, cancel or error every lock taken is released and the
//! waiting ticket is withdrawn.

use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::keys::validate_resource;
use crate::lock::Lock;
use crate::options::{Acquire, Cancel, Wait};
use crate::scripts;
use crate::shared::Core;
use crate::ticket::Ticket;

/// The most resources one call takes.
pub const MAX_ALL_RESOURCES: usize = 64;

/// Takes `request`'s lock on every resource of `resources` (1 to
/// [`MAX_ALL_RESOURCES`] distinct names) with `acquire` (the locker's), in
/// name order, within the request's one wait; the locks in the order of
/// `resources`.
pub(crate) fn acquire_all(
    core: &Core,
    resources: &[&str],
    request: &Acquire,
    acquire: impl Fn(&str, &Acquire) -> Result<Lock>,
) -> Result<Vec<Lock>> {
    let order = order(resources)?;
    request.mode.validate()?;
    let deadline = match request.wait {
        Wait::For(d) => Instant::now().checked_add(d),
        _ => None,
    };
    loop {
        if let Some(locks) = take_all(core, resources, &order, request, deadline, &acquire)? {
            return Ok(locks);
        }
        // A lock taken early was lost while a later one was waited for
        // (its queue vanished, its lease lapsed): everything was released;
        // take them all again, within the same wait, if any is left.
        let lost = |kind, what: &str| {
            Err(Error::new(
                kind,
                format!(
                    "taking all of {} resources: a lock taken before the last was lost \
                     meanwhile, and {what}; every lock was released",
                    resources.len()
                ),
            ))
        };
        if request.cancel.as_ref().is_some_and(Cancel::is_canceled) {
            return lost(ErrorKind::Canceled, "the wait was canceled");
        }
        match request.wait {
            Wait::TryOnce => return lost(ErrorKind::WouldBlock, "a try takes them once"),
            Wait::For(_) if deadline.is_none_or(|d| Instant::now() >= d) => {
                return lost(ErrorKind::Timeout, "the time to wait has passed");
            }
            _ => {}
        }
    }
}

/// One round of [`acquire_all`]: the locks, or None when one taken early
/// turned out lost once the last was taken (all released then).
fn take_all(
    core: &Core,
    resources: &[&str],
    order: &[usize],
    request: &Acquire,
    deadline: Option<Instant>,
    acquire: &impl Fn(&str, &Acquire) -> Result<Lock>,
) -> Result<Option<Vec<Lock>>> {
    let mut taken: Vec<(usize, Lock)> = Vec::with_capacity(resources.len());
    for (n, &i) in order.iter().enumerate() {
        let mut one = request.clone();
        if let (Some(deadline), Wait::For(_)) = (deadline, request.wait) {
            let left = deadline.saturating_duration_since(Instant::now());
            // The first draw tries even with no time left; the later ones
            // too (a try-lock then), so that free resources are taken.
            one.wait = Wait::For(left);
        }
        match acquire(resources[i], &one) {
            Ok(lock) => taken.push((i, lock)),
            Err(e) => {
                // Released last taken first; each release is a round trip.
                while let Some((_, lock)) = taken.pop() {
                    let _ = lock.release();
                }
                return Err(failed(e, request.wait, resources[i], n, resources.len()));
            }
        }
    }
    // Every lock but the last may have been lost while the later ones
    // were waited for: one round trip tells (the last was granted just
    // now).
    let earlier: Vec<&Ticket> = taken[..taken.len() - 1]
        .iter()
        .map(|(_, lock)| lock.ticket().as_ref())
        .collect();
    let held = earlier.iter().all(|t| t.is_held())
        && (earlier.is_empty() || scripts::still_held(core, &earlier)?);
    if !held {
        while let Some((_, lock)) = taken.pop() {
            let _ = lock.release();
        }
        return Ok(None);
    }
    taken.sort_by_key(|(i, _)| *i);
    Ok(Some(taken.into_iter().map(|(_, lock)| lock).collect()))
}

/// The indexes of `resources` in the order they are taken; an error for
/// none, too many, a name twice or a name that is not valid.
fn order(resources: &[&str]) -> Result<Vec<usize>> {
    if resources.is_empty() || resources.len() > MAX_ALL_RESOURCES {
        return Err(Error::invalid(format!(
            "acquiring all of several resources takes 1 to {MAX_ALL_RESOURCES}, not {}",
            resources.len()
        )));
    }
    for r in resources {
        validate_resource(r)?;
    }
    let mut order: Vec<usize> = (0..resources.len()).collect();
    order.sort_by(|&a, &b| resources[a].as_bytes().cmp(resources[b].as_bytes()));
    if let Some(w) = order
        .windows(2)
        .find(|w| resources[w[0]] == resources[w[1]])
    {
        return Err(Error::invalid(format!(
            "\"{}\" is named twice",
            resources[w[0]]
        )));
    }
    Ok(order)
}

/// The error of the whole call when taking the `n`th resource (in taking
/// order) failed with `e`. A later resource found busy by the try-lock a
/// timeout comes to is a timeout of the call.
fn failed(e: Error, wait: Wait, resource: &str, n: usize, count: usize) -> Error {
    let kind = match (e.kind(), wait) {
        (ErrorKind::WouldBlock, Wait::For(d)) if d >= Duration::from_millis(1) => {
            ErrorKind::Timeout
        }
        (kind, _) => kind,
    };
    let released = if n == 0 {
        String::new()
    } else {
        format!("; the {n} lock(s) taken before it were released")
    };
    Error::new(
        kind,
        format!("taking all of {count} resources stopped at \"{resource}\": {e}{released}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_taken_in_name_order_and_each_once() {
        assert_eq!(order(&["b", "a", "c"]).unwrap(), vec![1, 0, 2]);
        assert_eq!(order(&["x"]).unwrap(), vec![0]);
        let e = order(&["a", "b", "a"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("\"a\" is named twice"), "{e}");
        assert_eq!(order(&[]).unwrap_err().kind(), ErrorKind::InvalidArgument);
        let many: Vec<String> = (0..65).map(|i| format!("r{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(order(&many).unwrap_err().kind(), ErrorKind::InvalidArgument);
        assert!(order(&many[..64]).is_ok());
        assert_eq!(
            order(&["a", ""]).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn a_later_resource_busy_within_a_timeout_is_a_timeout() {
        let busy = Error::new(ErrorKind::WouldBlock, "taken");
        let e = failed(busy.clone(), Wait::For(Duration::from_secs(1)), "b", 1, 2);
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.message().contains("released"), "{e}");
        let e = failed(busy, Wait::TryOnce, "a", 0, 2);
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
    }
}
