//! Checked handles for the C ABI. A `turn_locker *`, `turn_lock *` or
//! `turn_cancel *` is not the address of anything: it is a number made of
//! four fields, from the lowest bit up:
//!
//! | field | 64-bit targets | 32-bit targets |
//! |---|---|---|
//! | id: which object, never reused (see below) | 40 bits | 20 bits |
//! | kind: locker 1, lock 2, cancel 3 (0 is never made) | 2 bits | 2 bits |
//! | fork generation (its lowest bits) | 4 bits | 2 bits |
//! | check: a keyed hash of the kind, the whole fork generation and the id | 18 bits | 8 bits |
//!
//! The check is SipHash (std's [`RandomState`]) under a key drawn once per
//! process at the first handle and kept by forked children, so a value that
//! was not made here fails it but for a chance of 2^-18 (2^-8 on 32-bit
//! targets), and then still has to name a live object of the right kind.
//! A value that fails the check, names another kind, or names no live
//! object answers `TURN_ERR_INVALID_ARGUMENT`; `TURN_ERR_FORKED` is only
//! for a value that passes the check for its kind and was made before the
//! latest fork() (by an ancestor at most 15 forks up; 3 on 32-bit targets).
//!
//! Ids come from one counter per kind that only goes up and goes on in a
//! forked child, so a handle from this process or from an ancestor names
//! only the object it was made for, or nothing. On 64-bit targets, when the
//! counter reaches 2^40, making a handle of that kind fails instead of
//! reusing an id. On 32-bit targets the counter wraps after 2^20 handles of
//! a kind and ids are reused (skipping those still live), so a handle kept
//! after release through 2^20 newer handles of its kind may name a newer
//! object: a weaker promise, as only 32 bits are there to carry it.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, ErrorKind, Result};
use crate::fork;

/// What a table holds; each kind has its own tag in its handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Locker = 1,
    Lock = 2,
    Cancel = 3,
}

impl Kind {
    fn from_tag(tag: u64) -> Option<Kind> {
        match tag {
            1 => Some(Kind::Locker),
            2 => Some(Kind::Lock),
            3 => Some(Kind::Cancel),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Locker => "turn_locker",
            Kind::Lock => "turn_lock",
            Kind::Cancel => "turn_cancel",
        }
    }
}

const KIND_BITS: u32 = 2;

/// The widths of a handle's fields (the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    id_bits: u32,
    fork_bits: u32,
    check_bits: u32,
    /// Whether ids are reused once the counter wraps (32-bit targets).
    reuse_ids: bool,
}

impl Layout {
    #[cfg(any(test, target_pointer_width = "64"))]
    const WIDE: Layout = Layout {
        id_bits: 40,
        fork_bits: 4,
        check_bits: 18,
        reuse_ids: false,
    };
    #[cfg(any(test, not(target_pointer_width = "64")))]
    const NARROW: Layout = Layout {
        id_bits: 20,
        fork_bits: 2,
        check_bits: 8,
        reuse_ids: true,
    };

    const fn bits(self) -> u32 {
        self.id_bits + KIND_BITS + self.fork_bits + self.check_bits
    }

    fn id_mask(self) -> u64 {
        (1 << self.id_bits) - 1
    }

    fn fork_mask(self) -> u64 {
        (1 << self.fork_bits) - 1
    }

    /// The check of (kind tag, fork generation, id) under `key`.
    fn check(self, key: &impl BuildHasher, tag: u64, fork: u64, id: u64) -> u64 {
        key.hash_one((tag, fork, id)) >> (64 - self.check_bits)
    }

    fn encode(self, key: &impl BuildHasher, kind: Kind, fork: u64, id: u64) -> u64 {
        debug_assert!(id <= self.id_mask());
        let tag = kind as u64;
        let mut handle = self.check(key, tag, fork, id);
        handle = (handle << self.fork_bits) | (fork & self.fork_mask());
        handle = (handle << KIND_BITS) | tag;
        (handle << self.id_bits) | id
    }

    /// The id in `handle` if it is a handle of `kind` made under fork
    /// generation `fork`.
    fn decode(
        self,
        key: &impl BuildHasher,
        kind: Kind,
        fork: u64,
        handle: u64,
    ) -> std::result::Result<u64, Misuse> {
        if self.bits() < 64 && handle >> self.bits() != 0 {
            return Err(Misuse::NotAHandle);
        }
        let id = handle & self.id_mask();
        let tag = (handle >> self.id_bits) & ((1 << KIND_BITS) - 1);
        let low = (handle >> (self.id_bits + KIND_BITS)) & self.fork_mask();
        let check = handle >> (self.id_bits + KIND_BITS + self.fork_bits);
        // The latest generation up to now with these lowest bits.
        let back = fork.wrapping_sub(low) & self.fork_mask();
        let made = fork.checked_sub(back).ok_or(Misuse::NotAHandle)?;
        if check != self.check(key, tag, made, id) {
            return Err(Misuse::NotAHandle);
        }
        match Kind::from_tag(tag) {
            None => Err(Misuse::NotAHandle),
            Some(k) if k != kind => Err(Misuse::OtherKind(k)),
            Some(_) if made != fork => Err(Misuse::Forked),
            Some(_) => Ok(id),
        }
    }
}

#[cfg(target_pointer_width = "64")]
const NATIVE: Layout = Layout::WIDE;
#[cfg(not(target_pointer_width = "64"))]
const NATIVE: Layout = Layout::NARROW;

const _: () = assert!(NATIVE.bits() == usize::BITS);

/// Why a value is not a live handle of the kind asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Misuse {
    /// Not made by this process or its ancestors (made up, damaged, or
    /// from too far back).
    NotAHandle,
    /// A real handle of another kind.
    OtherKind(Kind),
    /// A real handle made before the latest fork().
    Forked,
}

/// The key of the checks: drawn once per process and kept across fork()
/// (the child has a copy of the parent's memory). Set with a
/// compare-and-swap, not a lock, so a fork() while another thread sets it
/// leaves nothing held in the child.
fn key() -> &'static RandomState {
    static KEY: AtomicPtr<RandomState> = AtomicPtr::new(std::ptr::null_mut());
    let mut cur = KEY.load(Ordering::Acquire);
    if cur.is_null() {
        let fresh = Box::into_raw(Box::new(RandomState::new()));
        cur = match KEY.compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh,
            Err(winner) => {
                // SAFETY: fresh was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                winner
            }
        };
    }
    // SAFETY: the key, once set, is never freed nor replaced.
    unsafe { &*cur }
}

/// A table of live handles of one kind, made anew in each forked child (the
/// parent's table is left alone: its mutex may be held by a thread that does
/// not exist in the child).
pub(crate) struct Table<T> {
    kind: Kind,
    layout: Layout,
    /// The id of the next handle; only goes up, and goes on in a child.
    next_id: AtomicU64,
    current: AtomicPtr<Generation<T>>,
}

struct Generation<T> {
    fork: u64,
    live: Mutex<HashMap<u64, Arc<T>>>,
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

    /// The table of fork generation `fork`, made on first use after start
    /// or fork.
    fn at(&self, fork: u64) -> &Generation<T> {
        loop {
            let cur = self.current.load(Ordering::Acquire);
            // SAFETY: tables are never freed (a child leaks its parent's).
            if let Some(g) = unsafe { cur.as_ref() }
                && g.fork == fork
            {
                return g;
            }
            let fresh = Box::into_raw(Box::new(Generation {
                fork,
                live: Mutex::new(HashMap::new()),
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

    fn decode_at(&self, fork: u64, handle: usize) -> Result<u64> {
        self.layout
            .decode(key(), self.kind, fork, handle as u64)
            .map_err(|m| self.error(m))
    }

    /// Stores `value` and returns its handle.
    pub fn insert(&self, value: T) -> Result<usize> {
        self.insert_at(fork::generation(), value)
    }

    fn insert_at(&self, fork: u64, value: T) -> Result<usize> {
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
            if !live.contains_key(&(next & mask)) {
                break next & mask;
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

    fn get_at(&self, fork: u64, handle: usize) -> Result<Arc<T>> {
        let id = self.decode_at(fork, handle)?;
        let live = self.at(fork).live.lock().unwrap_or_else(|e| e.into_inner());
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

    fn remove_at(&self, fork: u64, handle: usize) -> Result<Arc<T>> {
        let id = self.decode_at(fork, handle)?;
        let mut live = self.at(fork).live.lock().unwrap_or_else(|e| e.into_inner());
        live.remove(&id).ok_or_else(|| self.dead())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::{BuildHasherDefault, DefaultHasher};

    use super::*;

    const KINDS: [Kind; 3] = [Kind::Locker, Kind::Lock, Kind::Cancel];

    /// A fixed key, so that tests over many values are deterministic.
    fn fixed_key() -> BuildHasherDefault<DefaultHasher> {
        BuildHasherDefault::default()
    }

    /// `n` arbitrary 64-bit values, the same in every run.
    fn arbitrary(n: u64) -> impl Iterator<Item = u64> {
        (0..n).map(|i| fixed_key().hash_one(("arbitrary", i)))
    }

    /// Values nobody was given.
    fn made_up() -> Vec<u64> {
        let mut v: Vec<u64> = (0..=64).collect();
        v.extend([
            u64::MAX,
            u64::MAX - 1,
            u64::MAX >> 1,
            1 << 63,
            0x1_0000_0001, // the first handle of every kind when handles were slots
            0xdead_beef_cafe_f00d,
            0x7fff_ffff_f000, // looks like a stack address
        ]);
        v
    }

    #[test]
    fn handles_decode_to_what_they_encode() {
        let key = fixed_key();
        for layout in [Layout::WIDE, Layout::NARROW] {
            for kind in KINDS {
                for fork in [0, 1, 2, 15, 16, 17, 1000] {
                    for id in [0, 1, 2, 12345 & layout.id_mask(), layout.id_mask()] {
                        let h = layout.encode(&key, kind, fork, id);
                        assert!(layout.bits() == 64 || h >> layout.bits() == 0);
                        assert_ne!(h, 0);
                        assert_eq!(layout.decode(&key, kind, fork, h), Ok(id));
                        for other in KINDS.into_iter().filter(|k| *k != kind) {
                            assert_eq!(
                                layout.decode(&key, other, fork, h),
                                Err(Misuse::OtherKind(kind))
                            );
                        }
                        for later in 1..(1 << layout.fork_bits) {
                            assert_eq!(
                                layout.decode(&key, kind, fork + later, h),
                                Err(Misuse::Forked),
                                "{layout:?} {fork}+{later}"
                            );
                        }
                    }
                }
            }
        }
        assert_eq!(NATIVE.bits(), usize::BITS);
        assert_eq!(Layout::WIDE.bits(), 64);
        assert_eq!(Layout::NARROW.bits(), 32);
    }

    #[test]
    fn a_handle_of_another_kind_is_invalid_and_frees_nothing() {
        let lockers: Table<&str> = Table::new(Kind::Locker);
        let locks: Table<&str> = Table::new(Kind::Lock);
        let cancels: Table<&str> = Table::new(Kind::Cancel);
        let locker = lockers.insert("locker").unwrap();
        let lock = locks.insert("lock").unwrap();
        let cancel = cancels.insert("cancel").unwrap();
        // The first handle of each table: three different values.
        assert_ne!(locker, lock);
        assert_ne!(locker, cancel);
        assert_ne!(lock, cancel);
        for (table, foreign) in [
            (&lockers, [lock, cancel]),
            (&locks, [locker, cancel]),
            (&cancels, [locker, lock]),
        ] {
            for h in foreign {
                let e = table.get(h).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", e.message());
                assert!(e.message().contains("was given where"), "{}", e.message());
                let e = table.remove(h).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", e.message());
            }
        }
        assert_eq!(*lockers.get(locker).unwrap(), "locker");
        assert_eq!(*locks.get(lock).unwrap(), "lock");
        assert_eq!(*cancels.get(cancel).unwrap(), "cancel");
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
    fn made_up_values_in_a_forked_child_are_invalid_never_forked() {
        let key = fixed_key();
        for layout in [Layout::WIDE, Layout::NARROW] {
            let first_lock = layout.encode(&key, Kind::Lock, 0, 0);
            let mut values = made_up();
            values.push(first_lock);
            values.extend(arbitrary(200_000));
            for child in [1, 2, 3, 16, 17] {
                for &v in &values {
                    let got = layout.decode(&key, Kind::Locker, child, v);
                    assert!(
                        matches!(got, Err(Misuse::NotAHandle | Misuse::OtherKind(_))),
                        "{layout:?} child {child}: {v:#x} gave {got:?}"
                    );
                }
            }
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
        assert_eq!(
            Layout::WIDE.decode(key(), Kind::Lock, 0, b as u64),
            Ok(last_id)
        );
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
        let zero = table.insert(0).unwrap(); // id 0, kept live
        let one = table.insert(1).unwrap(); // id 1, released
        table.remove(one).unwrap();
        table.set_next_id(Layout::NARROW.id_mask());
        let top = table.insert(2).unwrap();
        let wrapped = table.insert(3).unwrap(); // id 0 is live: id 1
        for h in [zero, one, top, wrapped] {
            assert_eq!(h as u64 >> 32, 0, "{h:#x} is not 32 bits");
        }
        let id = |h: usize| Layout::NARROW.decode(key(), Kind::Lock, 0, h as u64);
        assert_eq!(id(top), Ok(Layout::NARROW.id_mask()));
        assert_eq!(id(wrapped), Ok(1));
        assert_eq!(*table.get(zero).unwrap(), 0);
        assert_eq!(*table.get(wrapped).unwrap(), 3);
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
