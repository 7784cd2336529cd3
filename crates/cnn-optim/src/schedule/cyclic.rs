//! Cyclical learning rates (`CyclicLR`).

use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result, check};

/// How the amplitude of a cycle changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CyclicMode {
    /// Constant amplitude (default).
    #[default]
    Triangular,
    /// Amplitude halved each cycle.
    Triangular2,
    /// Amplitude scaled by `gamma^t`.
    ExpRange,
}

/// `CyclicLR`: a triangle wave between `base_lr` and `max_lr`, rising for
/// `step_size_up` steps and falling for `step_size_down`. With
/// `total = up + down`, `cycle = floor(1 + t / total)`,
/// `x = 1 + t / total - cycle`:
///
/// ```text
/// s = x / (up / total)                    if x <= up / total
/// s = (x - 1) / (up / total - 1)          otherwise
/// lr = base_lr + (max_lr - base_lr) * s * scale
/// ```
///
/// with `scale` 1 (triangular), `1 / 2^(cycle - 1)` (triangular2) or
/// `gamma^t` (exp_range). Momentum cycling is not modelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CyclicSchedule {
    /// The lower bound; `None`: `max_lr / 10`.
    #[serde(default)]
    pub base_lr: Option<f64>,
    /// The upper bound; `None`: the optimizer's (group's) base rate.
    #[serde(default)]
    pub max_lr: Option<f64>,
    /// Steps rising, > 0 (default 2000).
    #[serde(default = "default_step_size_up")]
    pub step_size_up: f64,
    /// Steps falling, > 0 (`None`: `step_size_up`).
    #[serde(default)]
    pub step_size_down: Option<f64>,
    /// Amplitude policy (default triangular).
    #[serde(default)]
    pub mode: CyclicMode,
    /// Decay of exp_range, in (0, 1] (default 1).
    #[serde(default = "default_cyclic_gamma")]
    pub gamma: f64,
}

fn default_step_size_up() -> f64 {
    2000.0
}
fn default_cyclic_gamma() -> f64 {
    1.0
}

impl CyclicSchedule {
    /// A triangular cycle with PyTorch's defaults.
    pub fn new(base_lr: Option<f64>, max_lr: Option<f64>, step_size_up: f64) -> Self {
        CyclicSchedule {
            base_lr,
            max_lr,
            step_size_up,
            step_size_down: None,
            mode: CyclicMode::Triangular,
            gamma: 1.0,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(v) = self.base_lr {
            check::lr("base_lr", v)?;
        }
        if let Some(v) = self.max_lr {
            check::lr("max_lr", v)?;
        }
        check::positive("step_size_up", self.step_size_up)?;
        if let Some(v) = self.step_size_down {
            check::positive("step_size_down", v)?;
        }
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(OptimError::hyper("gamma", self.gamma, "must be in (0, 1]"));
        }
        Ok(())
    }

    /// The lower and upper bound for an optimizer base rate `base`.
    pub fn bounds(&self, base: f64) -> (f64, f64) {
        let max_lr = self.max_lr.unwrap_or(base);
        (self.base_lr.unwrap_or(max_lr / 10.0), max_lr)
    }

    /// Steps in one cycle (`step_size_up + step_size_down`).
    pub fn period(&self) -> f64 {
        self.step_size_up + self.step_size_down.unwrap_or(self.step_size_up)
    }

    /// The rate at step `t`.
    pub fn lr_at(&self, base: f64, t: u64) -> f64 {
        let (lo, hi) = self.bounds(base);
        let total = self.period();
        let step_ratio = self.step_size_up / total;
        let t = t as f64;
        let cycle = (1.0 + t / total).floor();
        let x = 1.0 + t / total - cycle;
        let s = if x <= step_ratio {
            x / step_ratio
        } else {
            (x - 1.0) / (step_ratio - 1.0)
        };
        let scale = match self.mode {
            CyclicMode::Triangular => 1.0,
            CyclicMode::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
            CyclicMode::ExpRange => self.gamma.powf(t),
        };
        lo + (hi - lo) * s * scale
    }
}
