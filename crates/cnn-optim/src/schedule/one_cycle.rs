//! The one-cycle policy (`OneCycleLR`).

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result, check};

/// How a one-cycle phase moves between its end points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Anneal {
    /// `end + (start - end) * (1 + cos(pi * pct)) / 2` (default).
    #[default]
    Cos,
    /// `start + (end - start) * pct`.
    Linear,
}

impl Anneal {
    fn apply(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            Anneal::Cos => end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0),
            Anneal::Linear => (end - start) * pct + start,
        }
    }
}

/// `OneCycleLR`: from `initial = max_lr / div_factor` up to `max_lr` over
/// the first `pct_start` of `total_steps`, then down to
/// `initial / final_div_factor` (three-phase: up, back down to `initial`,
/// then down to the minimum). Phase `i` ends at step
/// `pct_start * total_steps - 1` (and `2 * pct_start * total_steps - 2`),
/// the last at `total_steps - 1`; within a phase
/// `lr = anneal(start, end, (t - phase_start) / (phase_end - phase_start))`.
/// Steps past the end keep the final rate (PyTorch raises an error there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneCycleSchedule {
    /// The peak rate; `None`: the optimizer's (group's) base rate.
    #[serde(default)]
    pub max_lr: Option<f64>,
    /// Length of the cycle in steps, >= 2.
    pub total_steps: u64,
    /// Fraction of the cycle spent rising, in (0, 1) (default 0.3).
    #[serde(default = "default_pct_start")]
    pub pct_start: f64,
    /// `cos` (default) or `linear` (PyTorch's `anneal_strategy`).
    #[serde(default, alias = "anneal_strategy")]
    pub anneal: Anneal,
    /// `initial = max_lr / div_factor` (default 25).
    #[serde(default = "default_div_factor")]
    pub div_factor: f64,
    /// `min = initial / final_div_factor` (default 1e4).
    #[serde(default = "default_final_div_factor")]
    pub final_div_factor: f64,
    /// Use three phases instead of two (default false).
    #[serde(default)]
    pub three_phase: bool,
}

fn default_pct_start() -> f64 {
    0.3
}
fn default_div_factor() -> f64 {
    25.0
}
fn default_final_div_factor() -> f64 {
    1e4
}

impl OneCycleSchedule {
    /// A cycle of `total_steps` with PyTorch's defaults, peaking at `max_lr`.
    pub fn new(max_lr: Option<f64>, total_steps: u64) -> Self {
        OneCycleSchedule {
            max_lr,
            total_steps,
            pct_start: default_pct_start(),
            anneal: Anneal::Cos,
            div_factor: default_div_factor(),
            final_div_factor: default_final_div_factor(),
            three_phase: false,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(max_lr) = self.max_lr {
            check::lr("max_lr", max_lr)?;
        }
        if self.total_steps < 2 {
            return Err(OptimError::hyper(
                "total_steps",
                self.total_steps,
                "must be >= 2",
            ));
        }
        if !(self.pct_start > 0.0 && self.pct_start < 1.0) {
            return Err(OptimError::hyper(
                "pct_start",
                self.pct_start,
                "must be in (0, 1)",
            ));
        }
        check::positive("div_factor", self.div_factor)?;
        check::positive("final_div_factor", self.final_div_factor)
    }

    /// The rate at step `t`.
    pub fn lr_at(&self, base: f64, t: u64) -> f64 {
        let max_lr = self.max_lr.unwrap_or(base);
        let initial = max_lr / self.div_factor;
        let min_lr = initial / self.final_div_factor;
        let total = self.total_steps as f64;
        let rise_end = self.pct_start * total - 1.0;
        let phases: Vec<(f64, f64, f64)> = if self.three_phase {
            vec![
                (rise_end, initial, max_lr),
                (2.0 * self.pct_start * total - 2.0, max_lr, initial),
                (total - 1.0, initial, min_lr),
            ]
        } else {
            vec![(rise_end, initial, max_lr), (total - 1.0, max_lr, min_lr)]
        };
        let step = (t as f64).min(total - 1.0);
        let mut start_step = 0.0;
        for (i, &(end_step, start, end)) in phases.iter().enumerate() {
            if step <= end_step || i == phases.len() - 1 {
                let span = end_step - start_step;
                let pct = if span > 0.0 {
                    (step - start_step) / span
                } else {
                    1.0
                };
                return self.anneal.apply(start, end, pct);
            }
            start_step = end_step;
        }
        min_lr
    }
}
