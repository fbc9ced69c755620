//! How a handle is made of its fields and taken apart again: the layouts
//! of 64- and 32-bit targets, the keyed permutation of ids, the keyed check,
//! and the process's key.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicPtr, Ordering};

use super::kind::{Kind, Misuse};

const KIND_BITS: u32 = 3;

/// Rounds of the Feistel network that turns counts into ids.
const ROUNDS: u64 = 4;

/// The widths of a handle's fields (the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) id_bits: u32,
    pub(super) fork_bits: u32,
    pub(super) check_bits: u32,
    /// Whether ids are reused once the counter wraps (32-bit targets).
    pub(super) reuse_ids: bool,
}

/// What a handle that passes its check says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Decoded {
    /// The id (the permuted count) of the object.
    pub(super) id: u64,
    /// The fork generation it was made under (now or before).
    pub(super) made: u64,
}

impl Layout {
    #[cfg(any(test, target_pointer_width = "64"))]
    pub(super) const WIDE: Layout = Layout {
        id_bits: 40,
        fork_bits: 3,
        check_bits: 18,
        reuse_ids: false,
    };
    #[cfg(any(test, not(target_pointer_width = "64")))]
    pub(super) const NARROW: Layout = Layout {
        id_bits: 20,
        fork_bits: 1,
        check_bits: 8,
        reuse_ids: true,
    };

    pub(super) const fn bits(self) -> u32 {
        self.id_bits + KIND_BITS + self.fork_bits + self.check_bits
    }

    pub(super) fn id_mask(self) -> u64 {
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
    pub(super) fn permute(self, key: &impl BuildHasher, kind: Kind, n: u64) -> u64 {
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
    pub(super) fn unpermute(self, key: &impl BuildHasher, kind: Kind, id: u64) -> u64 {
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

    pub(super) fn encode(self, key: &impl BuildHasher, kind: Kind, fork: u64, id: u64) -> u64 {
        debug_assert!(id <= self.id_mask());
        let tag = kind as u64;
        let mut handle = self.check(key, tag, fork, id);
        handle = (handle << self.fork_bits) | (fork & self.fork_mask());
        handle = (handle << KIND_BITS) | tag;
        (handle << self.id_bits) | id
    }

    /// The id in `handle` and the generation it was made under, if it is a
    /// handle of `kind` made under fork generation `fork` or before.
    pub(super) fn decode(
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
pub(super) const NATIVE: Layout = Layout::WIDE;
#[cfg(not(target_pointer_width = "64"))]
pub(super) const NATIVE: Layout = Layout::NARROW;

const _: () = assert!(NATIVE.bits() == usize::BITS);
const _: () = assert!(NATIVE.id_bits.is_multiple_of(2));

/// The key of the ids and the checks: drawn once per process and kept
/// across fork() (the child has a copy of the parent's memory). Set with a
/// compare-and-swap, not a lock, so a fork() while another thread sets it
/// leaves nothing held in the child.
pub(super) fn key() -> &'static RandomState {
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::table::Table;
    use super::super::testing::{KINDS, arbitrary, fixed_key};
    use super::*;

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
                        let decoded = layout.decode(&key, kind, too_late, h);
                        if layout == Layout::WIDE {
                            assert_eq!(decoded, Err(Misuse::NotAHandle));
                        } else {
                            // An 8-bit check: one in 256 of these passes it
                            // (as a handle of the later generation, never
                            // as the one it was), as the module says.
                            assert_ne!(decoded, Ok(made));
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
}
