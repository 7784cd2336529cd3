//! Per-channel normalisation: pixels scaled to `[0, 1]`, then
//! `(x - mean[c]) / std[c]`.
//!
//! Defaults: MNIST mean 0.1307 std 0.3081; Fashion-MNIST mean 0.2860 std
//! 0.3530; CIFAR-10 mean (0.4914, 0.4822, 0.4465) std (0.2470, 0.2435,
//! 0.2616); the synthetic set and image folders use statistics computed on
//! their training split ([`Normalization::compute`], in `stats.rs`).

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
