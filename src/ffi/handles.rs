//! Checked handles for the C ABI. A `turn_locker *`, `turn_lock *`,
//! `turn_cancel *`, `turn_status *` or `turn_options *` is not the address
//! of anything: it is a number made of four fields, from the lowest bit up:
//!
//! | field | 64-bit targets | 32-bit targets |
//! |---|---|---|
//! | id: which object, never reused (see below) | 40 bits | 20 bits |
//! | kind: locker 1, lock 2, cancel 3, status 4, options 5 (0, 6, 7 are never made) | 3 bits | 3 bits |
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

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};

use crate::error::{Error, ErrorKind, Result};
use crate::fork;

/// What a table holds; each kind has its own tag in its handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Locker = 1,
    Lock = 2,
    Cancel = 3,
    Status = 4,
    Options = 5,
}

impl Kind {
    fn from_tag(tag: u64) -> Option<Kind> {
        match tag {
            1 => Some(Kind::Locker),
            2 => Some(Kind::Lock),
            3 => Some(Kind::Cancel),
            4 => Some(Kind::Status),
            5 => Some(Kind::Options),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Locker => "turn_locker",
            Kind::Lock => "turn_lock",
            Kind::Cancel => "turn_cancel",
            Kind::Status => "turn_status",
            Kind::Options => "turn_options",
        }
    }

    /// Whether a forked child keeps using the parent's objects of this kind:
    /// plain data, tied to no connection nor thread.
    fn carried_into_children(self) -> bool {
        matches!(self, Kind::Status | Kind::Options)
    }
}

const KIND_BITS: u32 = 3;

/// Rounds of the Feistel network that turns counts into ids.
const ROUNDS: u64 = 4;

/// The widths of a handle's fields (the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    id_bits: u32,
    fork_bits: u32,
    check_bits: u32,
    /// Whether ids are reused once the counter wraps (32-bit targets).
    reuse_ids: bool,
}

/// What a handle that passes its check says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decoded {
    /// The id (the permuted count) of the object.
    id: u64,
    /// The fork generation it was made under (now or before).
    made: u64,
}

impl Layout {
    #[cfg(any(test, target_pointer_width = "64"))]
    const WIDE: Layout = Layout {
        id_bits: 40,
        fork_bits: 3,
        check_bits: 18,
        reuse_ids: false,
    };
    #[cfg(any(test, not(target_pointer_width = "64")))]
    const NARROW: Layout = Layout {
        id_bits: 20,
        fork_bits: 1,
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

    fn half_bits(self) -> u32 {
        self.id_bits / 2
    }

    /// The Feistel round function: the keyed hash of (kind, round, half),
    /// cut to a half's width.
    fn round(self, key: &impl BuildHasher, kind: Kind, round: u64, half: u64) -> u64 {
        key.hash_one(("id", kind as u64, round, half)) & ((1 << self.half_bits()) - 1)
    }

    /// The id of count `n` of `kind`: a keyed permutation of the id field.
    fn permute(self, key: &impl BuildHasher, kind: Kind, n: u64) -> u64 {
        debug_assert!(n <= self.id_mask());
        let h = self.half_bits();
        let (mut left, mut right) = (n >> h, n & ((1 << h) - 1));
        for i in 0..ROUNDS {
            (left, right) = (right, left ^ self.round(key, kind, i, right));
        }
        (left << h) | right
    }

    /// The count whose id is `id` (the inverse of `permute`).
    #[cfg(test)]
    fn unpermute(self, key: &impl BuildHasher, kind: Kind, id: u64) -> u64 {
        let h = self.half_bits();
        let (mut left, mut right) = (id >> h, id & ((1 << h) - 1));
        for i in (0..ROUNDS).rev() {
            (left, right) = (right ^ self.round(key, kind, i, left), left);
        }
        (left << h) | right
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

    /// The id in `handle` and the generation it was made under, if it is a
    /// handle of `kind` made under fork generation `fork` or before.
    fn decode(
        self,
        key: &impl BuildHasher,
        kind: Kind,
        fork: u64,
        handle: u64,
    ) -> std::result::Result<Decoded, Misuse> {
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
            Some(_) => Ok(Decoded { id, made }),
        }
    }
}

#[cfg(target_pointer_width = "64")]
const NATIVE: Layout = Layout::WIDE;
#[cfg(not(target_pointer_width = "64"))]
const NATIVE: Layout = Layout::NARROW;

const _: () = assert!(NATIVE.bits() == usize::BITS);
const _: () = assert!(NATIVE.id_bits.is_multiple_of(2));

/// Why a value is not a live handle of the kind asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Misuse {
    /// Not made by this process or its ancestors (made up, damaged, or
    /// from too far back).
    NotAHandle,
    /// A real handle of another kind.
    OtherKind(Kind),
    /// A real handle made before the latest fork(), of a kind a child does
    /// not carry on (or could not: see `Generation::carried`).
    Forked,
}

/// The key of the ids and the checks: drawn once per process and kept
/// across fork() (the child has a copy of the parent's memory). Set with a
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
    /// The count of the next handle; only goes up, and goes on in a child.
    next_id: AtomicU64,
    current: AtomicPtr<Generation<T>>,
}

struct Generation<T> {
    fork: u64,
    /// Live objects by id (the permuted count in their handles).
    live: Mutex<HashMap<u64, Arc<T>>>,
    /// For kinds carried into children: whether this table started with
    /// every object live in the parent's at the fork (and so on up).
    carried: bool,
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
    /// or fork (with a copy of the latest ancestor's objects, for kinds
    /// carried into children).
    fn at(&self, fork: u64) -> &Generation<T> {
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

    fn get_at(&self, fork: u64, handle: usize) -> Result<Arc<T>> {
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

    fn remove_at(&self, fork: u64, handle: usize) -> Result<Arc<T>> {
        let g = self.at(fork);
        let id = self.id_in(g, handle)?;
        let mut live = g.live.lock().unwrap_or_else(|e| e.into_inner());
        live.remove(&id).ok_or_else(|| self.dead())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::{BuildHasherDefault, DefaultHasher};

    use super::*;

    const KINDS: [Kind; 5] = [
        Kind::Locker,
        Kind::Lock,
        Kind::Cancel,
        Kind::Status,
        Kind::Options,
    ];

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
                for fork in [0, 1, 2, 7, 8, 9, 15, 16, 17, 1000] {
                    for id in [0, 1, 2, 12345 & layout.id_mask(), layout.id_mask()] {
                        let h = layout.encode(&key, kind, fork, id);
                        assert!(layout.bits() == 64 || h >> layout.bits() == 0);
                        assert_ne!(h, 0);
                        let made = Decoded { id, made: fork };
                        assert_eq!(layout.decode(&key, kind, fork, h), Ok(made));
                        for other in KINDS.into_iter().filter(|k| *k != kind) {
                            assert_eq!(
                                layout.decode(&key, other, fork, h),
                                Err(Misuse::OtherKind(kind))
                            );
                        }
                        for later in 1..(1 << layout.fork_bits) {
                            assert_eq!(
                                layout.decode(&key, kind, fork + later, h),
                                Ok(made),
                                "{layout:?} {fork}+{later}"
                            );
                        }
                        let too_late = fork + (1 << layout.fork_bits);
                        assert_eq!(
                            layout.decode(&key, kind, too_late, h),
                            Err(Misuse::NotAHandle)
                        );
                    }
                }
            }
        }
        assert_eq!(NATIVE.bits(), usize::BITS);
        assert_eq!(Layout::WIDE.bits(), 64);
        assert_eq!(Layout::NARROW.bits(), 32);
    }

    #[test]
    fn ids_are_a_keyed_permutation_of_the_counts_and_invert() {
        let key = fixed_key();
        // Every count of a 16-bit id field: a bijection, and it inverts.
        let small = Layout {
            id_bits: 16,
            ..Layout::NARROW
        };
        let mut seen = vec![false; 1 << small.id_bits];
        for n in 0..=small.id_mask() {
            let id = small.permute(&key, Kind::Lock, n);
            assert!(id <= small.id_mask());
            assert!(!seen[id as usize], "{n}: id {id} given twice");
            seen[id as usize] = true;
            assert_eq!(small.unpermute(&key, Kind::Lock, id), n);
        }
        // Samples of the narrow and wide layouts: their ends, runs across
        // a half's carry, and arbitrary counts.
        let narrow = Layout::NARROW;
        let mut ids = HashSet::new();
        for n in (0..5_000).chain(narrow.id_mask() - 5_000..=narrow.id_mask()) {
            let id = narrow.permute(&key, Kind::Lock, n);
            assert!(id <= narrow.id_mask() && ids.insert(id), "{n}: {id:#x}");
            assert_eq!(narrow.unpermute(&key, Kind::Lock, id), n);
        }
        // A sample of the wide layout: its ends, runs and arbitrary counts.
        let wide = Layout::WIDE;
        let mask = wide.id_mask();
        let mut counts: Vec<u64> = (0..10_000).chain(mask - 10_000..=mask).collect();
        counts.extend((0..10_000u64).map(|i| (1 << 20) - 5_000 + i));
        counts.extend(arbitrary(10_000).map(|v| v & mask));
        counts.sort_unstable();
        counts.dedup();
        ids.clear();
        for &n in &counts {
            for kind in [Kind::Lock, Kind::Status] {
                let id = wide.permute(&key, kind, n);
                assert!(id <= mask);
                assert_eq!(wide.unpermute(&key, kind, id), n, "{kind:?} {n}");
                if kind == Kind::Lock {
                    assert!(ids.insert(id), "{n}: id {id:#x} given twice");
                }
            }
        }
        // Another key, another permutation.
        let other = RandomState::new();
        let differ = (0..1000)
            .filter(|&n| wide.permute(&key, Kind::Lock, n) != wide.permute(&other, Kind::Lock, n))
            .count();
        assert!(differ > 990, "{differ}");
    }

    #[test]
    fn consecutive_handles_do_not_have_consecutive_ids() {
        // Under the fixed key: ids spread over the whole field.
        let key = fixed_key();
        let wide = Layout::WIDE;
        let ids: Vec<u64> = (0..1000)
            .map(|n| wide.permute(&key, Kind::Lock, n))
            .collect();
        let close = ids
            .windows(2)
            .filter(|w| w[0].abs_diff(w[1]) < 1 << 20)
            .count();
        assert!(
            close < 3,
            "{close} consecutive ids within 2^20 of each other"
        );
        let tops: HashSet<u64> = ids.iter().map(|id| id >> 20).collect();
        assert!(tops.len() > 990, "{}", tops.len());
        // A table's handles, under the process's key.
        let table: Table<u32> = Table::new(Kind::Lock);
        let handles: Vec<usize> = (0..1000).map(|i| table.insert(i).unwrap()).collect();
        let id = |h: usize| {
            wide.decode(super::key(), Kind::Lock, 0, h as u64)
                .unwrap()
                .id
        };
        for w in handles.windows(2) {
            let (a, b) = (id(w[0]), id(w[1]));
            assert_ne!(b, (a + 1) & wide.id_mask(), "{:#x} then {:#x}", w[0], w[1]);
        }
    }

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
