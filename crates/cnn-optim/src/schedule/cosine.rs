//! Cosine annealing, with and without warm restarts
//! (`CosineAnnealingLR`, `CosineAnnealingWarmRestarts`).

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result, check};

/// `lr(t) = eta_min + (base - eta_min) * (1 + cos(pi * t / t_max)) / 2`
/// (`CosineAnnealingLR`'s closed form). Past `t_max` the rate rises again
/// along the same cosine, as PyTorch's recursive form does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosineSchedule {
    /// Steps from `base` down to `eta_min`, >= 1.
    pub t_max: u64,
    /// The floor, >= 0 (default 0).
    #[serde(default)]
    pub eta_min: f64,
}

impl CosineSchedule {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.t_max == 0 {
            return Err(OptimError::hyper("t_max", 0, "must be >= 1"));
        }
        check::non_negative("eta_min", self.eta_min)
    }

    /// The rate at step `t`.
    pub fn lr_at(&self, base: f64, t: u64) -> f64 {
        cosine(base, self.eta_min, t as f64, self.t_max as f64)
    }
}

/// `eta_min + (base - eta_min) * (1 + cos(pi * t_cur / t_i)) / 2`.
fn cosine(base: f64, eta_min: f64, t_cur: f64, t_i: f64) -> f64 {
    eta_min + (base - eta_min) * (1.0 + (PI * t_cur / t_i).cos()) / 2.0
}

/// SGDR (`CosineAnnealingWarmRestarts`): cosine annealing from `base` to
/// `eta_min` over a period that starts at `t_0` steps and is multiplied by
/// `t_mult` after each restart:
/// `lr(t) = eta_min + (base - eta_min) * (1 + cos(pi * t_cur / t_i)) / 2`
/// with `t_cur` the steps since the last restart and `t_i` the current period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosineWarmRestartsSchedule {
    /// Length of the first period, >= 1.
    pub t_0: u64,
    /// Period multiplier after each restart, >= 1 (default 1).
    #[serde(default = "one")]
    pub t_mult: u64,
    /// The floor, >= 0 (default 0).
    #[serde(default)]
    pub eta_min: f64,
}

fn one() -> u64 {
    1
}

impl CosineWarmRestartsSchedule {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.t_0 == 0 {
            return Err(OptimError::hyper("t_0", 0, "must be >= 1"));
        }
        if self.t_mult == 0 {
            return Err(OptimError::hyper("t_mult", 0, "must be >= 1"));
        }
        check::non_negative("eta_min", self.eta_min)
    }

    /// Steps since the last restart and the current period at step `t`.
    pub fn position(&self, t: u64) -> (u64, u64) {
        if self.t_mult == 1 {
            return (t % self.t_0, self.t_0);
        }
        let (mut t_cur, mut t_i) = (t, self.t_0);
        while t_cur >= t_i {
            t_cur -= t_i;
            t_i = t_i.saturating_mul(self.t_mult);
        }
        (t_cur, t_i)
    }

    /// The rate at step `t`.
    pub fn lr_at(&self, base: f64, t: u64) -> f64 {
        let (t_cur, t_i) = self.position(t);
        cosine(base, self.eta_min, t_cur as f64, t_i as f64)
    }
}
