//! Per-channel normalisation: pixels scaled to `[0, 1]`, then
//! `(x - mean[c]) / std[c]`.
//!
//! Defaults: MNIST mean 0.1307 std 0.3081; Fashion-MNIST mean 0.2860 std
//! 0.3530; CIFAR-10 mean (0.4914, 0.4822, 0.4465) std (0.2470, 0.2435,
//! 0.2616); the synthetic set and image folders use statistics computed on
//! their training split ([`Normalization::compute`]).

use crate::dataset::ImageSet;
use crate::error::{DataError, Result};

/// Per-channel mean and standard deviation, on the `[0, 1]` pixel scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    /// Mean of each channel.
    pub mean: Vec<f32>,
    /// Standard deviation of each channel (> 0).
    pub std: Vec<f32>,
}

impl Normalization {
    /// A normalisation from per-channel means and standard deviations.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        if mean.is_empty() || mean.len() != std.len() {
            return Err(DataError::value(
                "normalization",
                format!(
                    "{} means and {} stds; need one of each per channel",
                    mean.len(),
                    std.len()
                ),
            ));
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(DataError::value(
                "normalization",
                format!("std {s} is not a positive number"),
            ));
        }
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return Err(DataError::value(
                "normalization",
                format!("mean {m} is not finite"),
            ));
        }
        Ok(Normalization { mean, std })
    }

    /// Only the scaling to `[0, 1]` (mean 0, std 1).
    pub fn unit(channels: usize) -> Self {
        Normalization {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    /// MNIST: mean 0.1307, std 0.3081.
    pub fn mnist() -> Self {
        Normalization {
            mean: vec![0.1307],
            std: vec![0.3081],
        }
    }

    /// Fashion-MNIST: mean 0.2860, std 0.3530.
    pub fn fashion_mnist() -> Self {
        Normalization {
            mean: vec![0.2860],
            std: vec![0.3530],
        }
    }

    /// CIFAR-10: mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616).
    pub fn cifar10() -> Self {
        Normalization {
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2470, 0.2435, 0.2616],
        }
    }

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

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// The normalised value of a black (zero) pixel in channel `c`: what
    /// zero padding becomes after normalisation.
    pub fn zero_value(&self, c: usize) -> f32 {
        -self.mean[c] / self.std[c]
    }
}

fn plane_sums(pixels: &crate::dataset::Pixels, start: usize, len: usize) -> (f64, f64) {
    use crate::dataset::Pixels;
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
