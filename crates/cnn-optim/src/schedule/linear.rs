//! Linear and polynomial ramps (`LinearLR`, `PolynomialLR`).

use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result, check};

/// `lr(t) = base * (start + (end - start) * min(t, total_iters) / total_iters)`
/// (`LinearLR`, closed form): a warm-up with the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearSchedule {
    /// Factor at step 0, in (0, 1] (default 1/3).
    pub start_factor: f64,
    /// Factor from `total_iters` on, in [0, 1] (default 1).
    pub end_factor: f64,
    /// Length of the ramp in steps (default 5).
    pub total_iters: u64,
}

impl Default for LinearSchedule {
    fn default() -> Self {
        LinearSchedule {
            start_factor: 1.0 / 3.0,
            end_factor: 1.0,
            total_iters: 5,
        }
    }
}

impl LinearSchedule {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.start_factor > 0.0 && self.start_factor <= 1.0) {
            return Err(OptimError::hyper(
                "start_factor",
                self.start_factor,
                "must be in (0, 1]",
            ));
        }
        if !(0.0..=1.0).contains(&self.end_factor) {
            return Err(OptimError::hyper(
                "end_factor",
                self.end_factor,
                "must be in [0, 1]",
            ));
        }
        Ok(())
    }

    /// The rate at step `t`.
    pub fn lr_at(&self, base: f64, t: u64) -> f64 {
        if self.total_iters == 0 {
            return base * self.end_factor;
        }
        let frac = t.min(self.total_iters) as f64 / self.total_iters as f64;
        base * (self.start_factor + (self.end_factor - self.start_factor) * frac)
    }
}

/// `lr(t) = base * (1 - min(t, total_iters) / total_iters)^power`
/// (`PolynomialLR`): reaches 0 at `total_iters` and stays there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolynomialSchedule {
    /// Steps until the rate reaches 0, >= 1 (default 5).
    pub total_iters: u64,
    /// Exponent, > 0 (default 1: linear decay).
    pub power: f64,
}

impl Default for PolynomialSchedule {
    fn default() -> Self {
        PolynomialSchedule {
            total_iters: 5,
            power: 1.0,
        }
    }
}

impl PolynomialSchedule {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.total_iters == 0 {
            return Err(OptimError::hyper("total_iters", 0, "must be >= 1"));
        }
        check::positive("power", self.power)
    }

    /// The rate at step `t`.
    pub fn lr_at(&self, base: f64, t: u64) -> f64 {
        let frac = t.min(self.total_iters) as f64 / self.total_iters as f64;
        base * (1.0 - frac).powf(self.power)
    }
}
