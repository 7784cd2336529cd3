//! Counter-based random numbers (Philox4x32-10) that every backend can
//! reproduce bit for bit.
//!
//! A draw is a pure function of a key and a counter, so the CPU and a GPU
//! produce the same dropout mask for the same `(seed, stream, step, element)`
//! without sharing any generator state. Initialisers use the same function,
//! keyed by the graph seed and the parameter's index, so a parameter's
//! initial values do not depend on how many draws other layers made.

const PHILOX_M0: u32 = 0xD251_1F53;
const PHILOX_M1: u32 = 0xCD9E_8D57;
const PHILOX_W0: u32 = 0x9E37_79B9;
const PHILOX_W1: u32 = 0xBB67_AE85;

/// Philox4x32 with 10 rounds (Salmon et al., SC'11), the generator behind
/// cuRAND's and PyTorch's counter-based streams.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(PHILOX_W0);
            k[1] = k[1].wrapping_add(PHILOX_W1);
        }
        let p0 = u64::from(PHILOX_M0) * u64::from(c[0]);
        let p1 = u64::from(PHILOX_M1) * u64::from(c[2]);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// SplitMix64 finaliser: spreads a 64-bit value over all bits. Used to turn
/// `(seed, stream)` into a Philox key.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The Philox key for a `(seed, stream)` pair.
pub fn philox_key(seed: u64, stream: u64) -> [u32; 2] {
    let k = splitmix64(seed ^ splitmix64(stream));
    [k as u32, (k >> 32) as u32]
}

/// The 32 random bits for element `index` of draw number `step` under `key`.
///
/// Four consecutive elements share one Philox block: element `i` uses word
/// `i % 4` of the block at counter `(i / 4, step)`.
pub fn random_bits(key: [u32; 2], step: u64, index: u64) -> u32 {
    let block = index / 4;
    let counter = [
        block as u32,
        (block >> 32) as u32,
        step as u32,
        (step >> 32) as u32,
    ];
    philox4x32_10(counter, key)[(index % 4) as usize]
}

/// Uniform in `[0, 1)` with 24 bits of resolution: exact in f32 on any device.
pub fn bits_to_unit_f32(bits: u32) -> f32 {
    (bits >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// A sequential stream of uniform numbers over the counter-based generator,
/// for host-side uses such as weight initialisation.
#[derive(Debug, Clone)]
pub struct CounterRng {
    key: [u32; 2],
    step: u64,
    index: u64,
}

impl CounterRng {
    /// A stream for `(seed, stream)`.
    pub fn new(seed: u64, stream: u64) -> Self {
        CounterRng {
            key: philox_key(seed, stream),
            step: 0,
            index: 0,
        }
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        let bits = random_bits(self.key, self.step, self.index);
        self.index += 1;
        bits
    }

    /// Uniform in `[0, 1)` with 53 bits of resolution.
    pub fn next_f64(&mut self) -> f64 {
        let hi = u64::from(self.next_u32() >> 5);
        let lo = u64::from(self.next_u32() >> 6);
        ((hi << 26) | lo) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform in `[low, high)`.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next_f64()
    }

    /// Standard normal by Box-Muller.
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_known_answer() {
        // Known-answer vectors from the Random123 distribution (kat_vectors).
        assert_eq!(
            philox4x32_10([0, 0, 0, 0], [0, 0]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn unit_floats_are_in_range() {
        assert_eq!(bits_to_unit_f32(0), 0.0);
        assert!(bits_to_unit_f32(u32::MAX) < 1.0);
        let mut rng = CounterRng::new(7, 1);
        for _ in 0..1000 {
            let u = rng.next_f64();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
