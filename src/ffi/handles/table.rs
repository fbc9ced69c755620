//! The table of one kind's live objects: making, checking and ending
//! handles.

use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use super::encoding::{Layout, NATIVE, key};
use super::fork::Generation;
use super::{Kind, Misuse};
use crate::error::{Error, ErrorKind, Result};
use crate::fork;

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
        let mut live = self.at(fork).live.lock().unwrap_or_else(|e| e.into_inner());
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
        let live = g.live.lock().unwrap_or_else(|e| e.into_inner());
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
        let mut live = g.live.lock().unwrap_or_else(|e| e.into_inner());
        live.remove(&id).ok_or_else(|| self.dead())
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
