//! Deterministic randomness: seeded generators and epoch orders.
//!
//! Every random choice in cnn-data is a pure function of a seed and a few
//! counters, so a run can be resumed exactly:
//! - [`epoch_order`]: the sample order of epoch `e` is a Fisher–Yates
//!   shuffle driven by a ChaCha8 generator seeded from `(seed, e)`.
//! - [`rng_for`]: a ChaCha8 generator for any `(seed, stream, a, b)`.
//! - [`hash4`]: a SplitMix64-style hash of `(seed, stream, a, b)`, for cheap
//!   per-sample choices (augmentation).
//!
//! The shuffle is written out here (not `rand`'s `SliceRandom`) so orders
//! stay the same across `rand` versions: only the ChaCha8 stream matters.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Stream tag of epoch shuffles.
pub const STREAM_SHUFFLE: u64 = 0x5348_5546; // "SHUF"
/// Stream tag of augmentation draws.
pub const STREAM_AUGMENT: u64 = 0x4155_474d; // "AUGM"
/// Stream tag of cutout draws (apart from the crop and flip's, so that
/// turning cutout on leaves those as they were).
pub const STREAM_CUTOUT: u64 = 0x4355_544f; // "CUTO"
/// Stream tag of the per-batch mixup/CutMix draws (keyed by epoch and
/// batch index, not by sample).
pub const STREAM_MIX: u64 = 0x4d49_5842; // "MIXB"

/// A ChaCha8 generator whose 256-bit seed is `(seed, stream, a, b)`, little
/// endian: distinct tuples give independent streams.
pub fn rng_for(seed: u64, stream: u64, a: u64, b: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (chunk, v) in key.chunks_exact_mut(8).zip([seed, stream, a, b]) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// A uniform integer in `0..n` (`n > 0`), unbiased (Lemire's method).
pub fn below(rng: &mut impl RngCore, n: u64) -> u64 {
    debug_assert!(n > 0);
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// Shuffle `items` in place (Fisher–Yates).
pub fn shuffle<T>(items: &mut [T], rng: &mut impl RngCore) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// The order in which epoch `epoch` visits `n` samples: a permutation of
/// `0..n`, a pure function of `(seed, epoch, n)`.
pub fn epoch_order(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, &mut rng_for(seed, STREAM_SHUFFLE, epoch, 0));
    order
}

/// A well-mixed 64-bit hash of four words (SplitMix64 finaliser chained).
pub fn hash4(seed: u64, stream: u64, a: u64, b: u64) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64;
    for v in [seed, stream, a, b] {
        h = mix(h ^ v);
    }
    h
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_a_permutation() {
        let mut o = epoch_order(3, 1, 1000);
        assert_ne!(o, (0..1000).collect::<Vec<_>>());
        o.sort_unstable();
        assert_eq!(o, (0..1000).collect::<Vec<_>>());
        assert!(epoch_order(3, 1, 0).is_empty());
    }

    #[test]
    fn below_is_in_range() {
        let mut rng = rng_for(0, 0, 0, 0);
        for n in 1..100 {
            assert!(below(&mut rng, n) < n);
        }
    }
}
