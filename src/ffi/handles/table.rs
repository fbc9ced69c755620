//! The table of one kind's live objects: making, checking and ending
//! handles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::encoding::{Layout, NATIVE, key};
use super::generations::{Generation, lock_ancestor};
use super::kind::{Kind, Misuse};
use crate::error::{Error, ErrorKind, Result};
use crate::fork;
use crate::sync::lock;

/// A table of live handles of one kind, made anew in each forked child (the
/// parent's table is left alone: its mutex may be held by a thread that does
/// not exist in the child).
pub(crate) struct Table<T> {
    pub(super) kind: Kind,
    layout: Layout,
    /// The count of the next handle; only goes up, and goes on in a child.
    next_id: AtomicU64,
    pub(super) current: AtomicPtr<Generation<T>>,
}

impl<T> Table<T> {
    pub const fn new(kind: Kind) -> Table<T> {
        Table::with_layout(kind, NATIVE)
    }

    const fn with_layout(kind: Kind, layout: Layout) -> Table<T> {
        Table {
            kind,
            layout,
            next_id: AtomicU64::new(0),
            current: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    fn error(&self, misuse: Misuse) -> Error {
        let what = self.kind.name();
        match misuse {
            Misuse::NotAHandle => Error::invalid(format!(
                "not a {what} handle of this process (a made-up, damaged or foreign value)"
            )),
            Misuse::OtherKind(k) => Error::invalid(format!(
                "a {} was given where a {what} is expected",
                k.name()
            )),
            Misuse::Forked if self.kind.carried_into_children() => Error::new(
                ErrorKind::Forked,
                format!(
                    "this {what} belongs to the parent process and could not be carried \
                     over after fork()"
                ),
            ),
            Misuse::Forked => Error::new(
                ErrorKind::Forked,
                format!("this {what} belongs to the parent process (used after fork())"),
            ),
        }
    }

    fn dead(&self) -> Error {
        Error::invalid(format!(
            "not a live {}: it was freed or released already",
            self.kind.name()
        ))
    }

    /// The id of `handle` in the table of its generation `g`.
    fn id_in(&self, g: &Generation<T>, handle: usize) -> Result<u64> {
        let found = self
            .layout
            .decode(key(), self.kind, g.fork, handle as u64)
            .map_err(|m| self.error(m))?;
        if found.made != g.fork && !(self.kind.carried_into_children() && g.carried) {
            return Err(self.error(Misuse::Forked));
        }
        Ok(found.id)
    }

    /// Stores `value` and returns its handle.
    pub fn insert(&self, value: T) -> Result<usize> {
        self.insert_at(fork::generation(), value)
    }

    pub(super) fn insert_at(&self, fork: u64, value: T) -> Result<usize> {
        let key = key();
        let mut live = lock(&self.at(fork).live);
        let mask = self.layout.id_mask();
        if live.len() as u64 > mask {
            return Err(Error::invalid(format!(
                "too many live {}s",
                self.kind.name()
            )));
        }
        let id = loop {
            let next = self.next_id.load(Ordering::Relaxed);
            if next > mask && !self.layout.reuse_ids {
                return Err(Error::invalid(format!(
                    "no {} handle left: this process made 2^{} of them and never reuses one",
                    self.kind.name(),
                    self.layout.id_bits
                )));
            }
            self.next_id.store(next.wrapping_add(1), Ordering::Relaxed);
            let id = self.layout.permute(key, self.kind, next & mask);
            if !live.contains_key(&id) {
                break id;
            }
        };
        live.insert(id, Arc::new(value));
        let handle = self.layout.encode(key, self.kind, fork, id);
        Ok(handle as usize)
    }

    /// The value of a live handle.
    pub fn get(&self, handle: usize) -> Result<Arc<T>> {
        self.get_at(fork::generation(), handle)
    }

    pub(super) fn get_at(&self, fork: u64, handle: usize) -> Result<Arc<T>> {
        let g = self.at(fork);
        let id = self.id_in(g, handle)?;
        let live = lock(&g.live);
        live.get(&id).cloned().ok_or_else(|| self.dead())
    }

    /// Removes a live handle and returns its value; the handle is dead from
    /// then on.
    pub fn remove(&self, handle: usize) -> Result<Arc<T>> {
        self.remove_at(fork::generation(), handle)
    }

    #[cfg(test)]
    fn set_next_id(&self, id: u64) {
        self.next_id.store(id, Ordering::Relaxed);
    }

    pub(super) fn remove_at(&self, fork: u64, handle: usize) -> Result<Arc<T>> {
        let g = self.at(fork);
        let id = self.id_in(g, handle)?;
        let mut live = lock(&g.live);
        live.remove(&id).ok_or_else(|| self.dead())
    }
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
    use std::collections::HashSet;

    use super::super::testing::{KINDS, arbitrary, made_up};
    use super::*;

    /// The attack on handles with ids in sequence: knowing one live handle,
    /// try the next ids with every check value, and values near it (id and
    /// check bits flipped). Nothing but the handle itself may answer.
    #[test]
    fn guesses_near_a_live_handle_never_hit_another() {
        let table: Table<u32> = Table::new(Kind::Lock);
        let handles: Vec<usize> = (0..64).map(|i| table.insert(i).unwrap()).collect();
        let mine = handles[10] as u64;
        let wide = NATIVE;
        let id_mask = wide.id_mask();
        let check_shift = wide.bits() - wide.check_bits;
        let middle = mine & !id_mask & ((1 << check_shift) - 1);
        // The next 4 ids with every check (2^20 tries), then as many flips:
        // 0.2 s in a release build. Debug builds try 2^4 times fewer.
        let checks: u64 = if cfg!(debug_assertions) {
            1 << (wide.check_bits - 4)
        } else {
            1 << wide.check_bits
        };
        let mut guesses: Vec<u64> = Vec::new();
        for next in 1..=4 {
            let id = (mine + next) & id_mask;
            guesses.extend((0..checks).map(|c| (c << check_shift) | middle | id));
        }
        let flips = arbitrary(guesses.len() as u64)
            .map(|r| mine ^ (r & (id_mask | !((1 << check_shift) - 1))))
            .collect::<Vec<_>>();
        guesses.extend(flips);
        let mut hits = 0;
        for &g in &guesses {
            if g != mine && table.get(g as usize).is_ok() {
                hits += 1;
            }
        }
        assert_eq!(
            hits,
            0,
            "{hits} of {} guesses named a live lock",
            guesses.len()
        );
        for (i, &h) in handles.iter().enumerate() {
            assert_eq!(*table.get(h).unwrap(), i as u32);
        }
    }

    #[test]
    fn a_handle_of_another_kind_is_invalid_and_frees_nothing() {
        let tables: Vec<Table<Kind>> = KINDS.into_iter().map(Table::new).collect();
        // The first handle of each table: all different values.
        let handles: Vec<usize> = tables
            .iter()
            .zip(KINDS)
            .map(|(t, k)| t.insert(k).unwrap())
            .collect();
        let distinct: HashSet<usize> = handles.iter().copied().collect();
        assert_eq!(distinct.len(), KINDS.len());
        for (i, table) in tables.iter().enumerate() {
            for (j, &h) in handles.iter().enumerate() {
                if i == j {
                    continue;
                }
                let e = table.get(h).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", e.message());
                assert!(e.message().contains("was given where"), "{}", e.message());
                let e = table.remove(h).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", e.message());
            }
        }
        for ((table, &h), kind) in tables.iter().zip(&handles).zip(KINDS) {
            assert_eq!(*table.get(h).unwrap(), kind);
        }
    }

    #[test]
    fn made_up_values_are_invalid_never_forked() {
        let lockers: Table<u32> = Table::new(Kind::Locker);
        let locks: Table<u32> = Table::new(Kind::Lock);
        let first_lock = locks.insert(1).unwrap() as u64;
        let live = lockers.insert(7).unwrap();
        let mut values = made_up();
        values.push(first_lock);
        values.extend(arbitrary(100_000));
        for v in values {
            for e in [
                lockers.get(v as usize).unwrap_err(),
                lockers.remove(v as usize).unwrap_err(),
            ] {
                assert_eq!(
                    e.kind(),
                    ErrorKind::InvalidArgument,
                    "{v:#x}: {}",
                    e.message()
                );
            }
        }
        assert_eq!(*lockers.get(live).unwrap(), 7);
    }

    #[test]
    fn a_stale_handle_never_names_a_live_object() {
        let table: Table<u32> = Table::new(Kind::Lock);
        let keep = table.insert(u32::MAX).unwrap();
        let mut stale = HashSet::new();
        for i in 0..200_000 {
            let h = table.insert(i).unwrap();
            assert!(
                !stale.contains(&h),
                "round {i}: a stale handle is live again"
            );
            assert_eq!(*table.get(h).unwrap(), i);
            assert_eq!(*table.remove(h).unwrap(), i);
            stale.insert(h);
        }
        for &h in stale.iter().take(1000) {
            for e in [table.get(h).unwrap_err(), table.remove(h).unwrap_err()] {
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", e.message());
                assert!(e.message().contains("already"), "{}", e.message());
            }
        }
        assert_eq!(*table.get(keep).unwrap(), u32::MAX);
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn when_ids_run_out_insert_fails_instead_of_reusing_one() {
        let table: Table<u32> = Table::new(Kind::Lock);
        let first = table.insert(0).unwrap();
        table.remove(first).unwrap();
        let last_id = Layout::WIDE.id_mask();
        table.set_next_id(last_id - 1);
        let a = table.insert(1).unwrap();
        let b = table.insert(2).unwrap();
        let id = Layout::WIDE
            .decode(key(), Kind::Lock, 0, b as u64)
            .unwrap()
            .id;
        assert_eq!(Layout::WIDE.unpermute(key(), Kind::Lock, id), last_id);
        for _ in 0..3 {
            let e = table.insert(3).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(
                e.message().contains("no turn_lock handle left"),
                "{}",
                e.message()
            );
        }
        table.remove(a).unwrap();
        assert!(table.insert(4).is_err(), "a freed id was reused");
        assert_eq!(*table.get(b).unwrap(), 2);
        assert!(table.get(a).is_err() && table.get(first).is_err());
    }

    #[test]
    fn narrow_handles_reuse_ids_only_after_a_full_cycle_skipping_live_ones() {
        let table: Table<u32> = Table::with_layout(Kind::Lock, Layout::NARROW);
        let zero = table.insert(0).unwrap(); // count 0, kept live
        let one = table.insert(1).unwrap(); // count 1, released
        table.remove(one).unwrap();
        table.set_next_id(Layout::NARROW.id_mask());
        let top = table.insert(2).unwrap();
        let wrapped = table.insert(3).unwrap(); // count 0 is live: count 1
        for h in [zero, one, top, wrapped] {
            assert_eq!(h as u64 >> 32, 0, "{h:#x} is not 32 bits");
        }
        let count = |h: usize| {
            let id = Layout::NARROW
                .decode(key(), Kind::Lock, 0, h as u64)
                .unwrap()
                .id;
            Layout::NARROW.unpermute(key(), Kind::Lock, id)
        };
        assert_eq!(count(top), Layout::NARROW.id_mask());
        assert_eq!(count(wrapped), 1);
        assert_eq!(*table.get(zero).unwrap(), 0);
        assert_eq!(*table.get(wrapped).unwrap(), 3);
        assert_eq!(wrapped, one, "the same id and fork: the same handle again");
    }

    #[test]
    fn freeing_twice_is_invalid_the_second_time() {
        let table: Table<u32> = Table::new(Kind::Locker);
        let h = table.insert(5).unwrap();
        assert_eq!(*table.remove(h).unwrap(), 5);
        let e = table.remove(h).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(table.get(h).unwrap_err().kind(), ErrorKind::InvalidArgument);
    }
}

/// Tables across fork generations.
#[cfg(test)]
mod across_forks {
    use super::super::encoding::{Layout, NATIVE};
    use super::super::kind::{Kind, Misuse};
    use super::super::testing::{arbitrary, fixed_key, made_up};
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
