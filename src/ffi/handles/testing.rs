//! What the tests of the handle modules share.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use super::kind::Kind;

pub(super) const KINDS: [Kind; 6] = [
    Kind::Locker,
    Kind::Lock,
    Kind::Cancel,
    Kind::Status,
    Kind::Options,
    Kind::Pending,
];

/// A fixed key, so that tests over many values are deterministic.
pub(super) fn fixed_key() -> BuildHasherDefault<DefaultHasher> {
    BuildHasherDefault::default()
}

/// `n` arbitrary 64-bit values, the same in every run.
pub(super) fn arbitrary(n: u64) -> impl Iterator<Item = u64> {
    (0..n).map(|i| fixed_key().hash_one(("arbitrary", i)))
}

/// Values nobody was given.
pub(super) fn made_up() -> Vec<u64> {
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
