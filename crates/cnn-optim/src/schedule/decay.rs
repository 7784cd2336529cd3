//! Multiplicative decays: constant, step, multi-step, exponential
//! (`ConstantLR`, `StepLR`, `MultiStepLR`, `ExponentialLR`).

use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result, check};

/// `lr(t) = base * factor` for `t < total_iters`, then `base`
/// (PyTorch's `ConstantLR`). With the defaults here (factor 1, total_iters 0)
/// the rate is simply constant; PyTorch's defaults are 1/3 and 5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConstantSchedule {
    /// Multiplier while `t < total_iters`, in [0, 1] (default 1).
    pub factor: f64,
    /// Steps the factor applies for (default 0).
    pub total_iters: u64,
}

impl Default for ConstantSchedule {
    fn default() -> Self {
        ConstantSchedule {
            factor: 1.0,
            total_iters: 0,
        }
    }
}

impl ConstantSchedule {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.factor) {
            return Err(OptimError::hyper(
                "factor",
                self.factor,
                "must be in [0, 1]",
            ));
        }
        Ok(())
    }

    /// The rate at step `t`.
    pub fn lr_at(&self, base: f64, t: u64) -> f64 {
        if t < self.total_iters {
            base * self.factor
        } else {
            base
        }
    }
}

/// `lr(t) = base * gamma^floor(t / step_size)` (`StepLR`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSchedule {
    /// Steps between decays, >= 1.
    pub step_size: u64,
    /// Multiplier per decay, > 0 (default 0.1).
    #[serde(default = "default_gamma")]
    pub gamma: f64,
}

fn default_gamma() -> f64 {
    0.1
}

impl StepSchedule {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.step_size == 0 {
            return Err(OptimError::hyper("step_size", 0, "must be >= 1"));
        }
        check::positive("gamma", self.gamma)
    }

    /// The rate at step `t`.
    pub fn lr_at(&self, base: f64, t: u64) -> f64 {
        base * self.gamma.powf((t / self.step_size) as f64)
    }
}

/// `lr(t) = base * gamma^(number of milestones <= t)` (`MultiStepLR`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiStepSchedule {
    /// Steps at which the rate is multiplied by gamma, non-decreasing.
    pub milestones: Vec<u64>,
    /// Multiplier per milestone, > 0 (default 0.1).
    #[serde(default = "default_gamma")]
    pub gamma: f64,
}

impl MultiStepSchedule {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.milestones.windows(2).any(|w| w[0] > w[1]) {
            return Err(OptimError::hyper(
                "milestones",
                format!("{:?}", self.milestones),
                "must be non-decreasing",
            ));
        }
        check::positive("gamma", self.gamma)
    }

    /// The rate at step `t`.
    pub fn lr_at(&self, base: f64, t: u64) -> f64 {
        let passed = self.milestones.partition_point(|&m| m <= t);
        base * self.gamma.powf(passed as f64)
    }
}

/// `lr(t) = base * gamma^t` (`ExponentialLR`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExponentialSchedule {
    /// Multiplier per step, > 0.
    pub gamma: f64,
}

impl ExponentialSchedule {
    pub(crate) fn validate(&self) -> Result<()> {
        check::positive("gamma", self.gamma)
    }

    /// The rate at step `t`.
    pub fn lr_at(&self, base: f64, t: u64) -> f64 {
        base * self.gamma.powf(t as f64)
    }
}
