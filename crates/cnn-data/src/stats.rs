//! Per-channel statistics of an image set: the mean and standard deviation
//! that [`Normalization::compute`] turns into a dataset's normalisation.
//! Kept apart from `normalize.rs` so that the normalisation (a value every
//! dataset holds) does not depend on the dataset types.

use crate::dataset::{ImageSet, Pixels};
use crate::normalize::Normalization;

impl Normalization {
    /// Per-channel mean and (population) standard deviation of `set` on the
    /// `[0, 1]` scale. A channel with zero variance gets std 1; an empty set
    /// gives [`Normalization::unit`].
    pub fn compute(set: &ImageSet) -> Self {
        let channels = set.shape().dims()[0];
        let plane = set.shape().numel() / channels;
        let mut sum = vec![0f64; channels];
        let mut sum_sq = vec![0f64; channels];
        if set.is_empty() {
            return Normalization::unit(channels);
        }
        let pixels = set.pixels();
        // Integer sums per plane (exact for bytes), accumulated in f64.
        for i in 0..set.len() {
            for c in 0..channels {
                let start = (i * channels + c) * plane;
                let (s, sq) = plane_sums(pixels, start, plane);
                sum[c] += s;
                sum_sq[c] += sq;
            }
        }
        let count = (set.len() * plane) as f64;
        let mut mean = Vec::with_capacity(channels);
        let mut std = Vec::with_capacity(channels);
        for c in 0..channels {
            let m = sum[c] / count;
            let var = (sum_sq[c] / count - m * m).max(0.0);
            mean.push(m as f32);
            let s = var.sqrt() as f32;
            std.push(if s > 1e-6 { s } else { 1.0 });
        }
        Normalization { mean, std }
    }
}

fn plane_sums(pixels: &Pixels, start: usize, len: usize) -> (f64, f64) {
    match pixels {
        Pixels::U8(v) => {
            let (mut s, mut sq) = (0u64, 0u64);
            for &p in &v[start..start + len] {
                s += u64::from(p);
                sq += u64::from(p) * u64::from(p);
            }
            (s as f64 / 255.0, sq as f64 / (255.0 * 255.0))
        }
        Pixels::F32(v) => {
            let (mut s, mut sq) = (0f64, 0f64);
            for &p in &v[start..start + len] {
                s += f64::from(p);
                sq += f64::from(p) * f64::from(p);
            }
            (s, sq)
        }
    }
}
