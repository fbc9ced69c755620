//! Handles across fork(): each fork generation has its own table, and a
//! child copies its parent's objects only for the kinds that are plain data.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, TryLockError};

use super::Table;

/// A table's live objects in one fork generation.
pub(super) struct Generation<T> {
    pub(super) fork: u64,
    /// Live objects by id (the permuted count in their handles).
    pub(super) live: Mutex<HashMap<u64, Arc<T>>>,
    /// For kinds carried into children: whether this table started with
    /// every object live in the parent's at the fork (and so on up).
    pub(super) carried: bool,
}

/// Tries to lock an ancestor's table in a child: its mutex stays locked
/// forever if a thread that does not exist here held it at the fork, so
/// give up after a while (another thread of the child copying it holds it
/// only briefly).
fn lock_ancestor<T>(live: &Mutex<HashMap<u64, Arc<T>>>) -> Option<HashMap<u64, Arc<T>>> {
    for _ in 0..1000 {
        match live.try_lock() {
            Ok(map) => return Some(map.clone()),
            Err(TryLockError::Poisoned(e)) => return Some(e.into_inner().clone()),
            Err(TryLockError::WouldBlock) => std::thread::yield_now(),
        }
    }
    None
}

impl<T> Table<T> {
    /// The table of fork generation `fork`, made on first use after start
    /// or fork (with a copy of the latest ancestor's objects, for kinds
    /// carried into children).
    pub(super) fn at(&self, fork: u64) -> &Generation<T> {
        loop {
            let cur = self.current.load(Ordering::Acquire);
            // SAFETY: tables are never freed (a child leaks its parent's).
            let ancestor = unsafe { cur.as_ref() };
            if let Some(g) = ancestor
                && g.fork == fork
            {
                return g;
            }
            let (live, carried) = match ancestor {
                Some(g) if self.kind.carried_into_children() && g.fork < fork => {
                    match lock_ancestor(&g.live) {
                        Some(map) => (map, g.carried),
                        None => (HashMap::new(), false),
                    }
                }
                Some(_) => (HashMap::new(), false),
                None => (HashMap::new(), true),
            };
            let fresh = Box::into_raw(Box::new(Generation {
                fork,
                live: Mutex::new(live),
                carried,
            }));
            if self
                .current
                .compare_exchange(cur, fresh, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // SAFETY: fresh was never shared.
                drop(unsafe { Box::from_raw(fresh) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::encoding::{Layout, NATIVE};
    use super::super::testing::{arbitrary, fixed_key, made_up};
    use super::super::{Kind, Misuse};
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn made_up_values_in_a_forked_child_are_invalid_never_forked() {
        let key = fixed_key();
        for layout in [Layout::WIDE, Layout::NARROW] {
            let first_lock = layout.encode(&key, Kind::Lock, 0, 0);
            let mut values = made_up();
            values.push(first_lock);
            values.extend(arbitrary(200_000));
            // A made-up value passes the check of a kind with a chance of
            // 2^-check_bits / 8: rarely, and then it is a value "made" under
            // some generation, not FORKED by itself. Of 10^6 tries about
            // 0.5 do on 64-bit layouts.
            let mut passed = 0;
            for child in [1, 2, 3, 16, 17] {
                for &v in &values {
                    match layout.decode(&key, Kind::Locker, child, v) {
                        Err(Misuse::NotAHandle | Misuse::OtherKind(_)) => {}
                        Ok(_) => passed += 1,
                        got => panic!("{layout:?} child {child}: {v:#x} gave {got:?}"),
                    }
                }
            }
            assert!(passed <= 8, "{layout:?}: {passed} made-up values passed");
        }
    }

    #[test]
    fn a_parent_handle_in_a_child_is_forked_and_never_a_child_object() {
        let table: Table<&str> = Table::new(Kind::Lock);
        let parent = table.insert_at(0, "parent").unwrap();
        let parent_in = |fork| table.get_at(fork, parent).unwrap_err().kind();
        assert_eq!(parent_in(1), ErrorKind::Forked);
        let e = table.remove_at(1, parent).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Forked);
        // The child's table is new and its ids go on from the parent's.
        let mine = table.insert_at(1, "child").unwrap();
        assert_ne!(mine, parent);
        assert_eq!(*table.get_at(1, mine).unwrap(), "child");
        assert_eq!(parent_in(2), ErrorKind::Forked); // a grandchild
        // Too many forks back for the bits kept: invalid, never FORKED, and
        // never a live object of the descendant.
        for fork in [16, 32] {
            let again = table.insert_at(fork, "descendant").unwrap();
            assert_eq!(parent_in(fork), ErrorKind::InvalidArgument);
            assert_eq!(*table.get_at(fork, again).unwrap(), "descendant");
        }
        // The parent's handle of another kind, in a child: invalid.
        let lockers: Table<&str> = Table::new(Kind::Locker);
        let e = lockers.get_at(1, parent).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn statuses_and_options_are_carried_into_children() {
        for kind in [Kind::Status, Kind::Options] {
            let table: Table<&str> = Table::new(kind);
            let kept = table.insert_at(0, "kept").unwrap();
            let freed = table.insert_at(0, "freed").unwrap();
            table.remove_at(0, freed).unwrap();
            // In a child: the parent's live objects, not the freed one.
            assert_eq!(*table.get_at(1, kept).unwrap(), "kept");
            let e = table.get_at(1, freed).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", e.message());
            let mine = table.insert_at(1, "child").unwrap();
            assert_ne!(mine, kept);
            // And in a grandchild, both; freeing there frees once.
            assert_eq!(*table.get_at(2, kept).unwrap(), "kept");
            assert_eq!(*table.get_at(2, mine).unwrap(), "child");
            assert_eq!(*table.remove_at(2, kept).unwrap(), "kept");
            let e = table.remove_at(2, kept).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", e.message());
            // A child whose parent's table was locked at the fork (by a
            // thread the child does not have) cannot copy it: the parent's
            // objects answer FORKED, its own work.
            let g = table.at(2);
            let held = g.live.lock().unwrap();
            let e = table.get_at(3, mine).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Forked, "{}", e.message());
            let own = table.insert_at(3, "own").unwrap();
            assert_eq!(*table.get_at(3, own).unwrap(), "own");
            drop(held);
            // Too many forks back for the bits kept: invalid.
            let e = table.get_at(3 + (1 << NATIVE.fork_bits), own).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", e.message());
        }
    }
}
