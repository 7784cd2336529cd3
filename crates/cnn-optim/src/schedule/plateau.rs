//! Reduce the rate when a metric stops improving (`ReduceLROnPlateau`).

use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result, check};
use crate::state::PlateauState;

/// Whether lower or higher metrics are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PlateauMode {
    /// Lower is better (a loss; default).
    #[default]
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How `threshold` defines a significant improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdMode {
    /// `best * (1 -+ threshold)` (default).
    #[default]
    Rel,
    /// `best -+ threshold`.
    Abs,
}

/// `ReduceLROnPlateau`. After each metric: it improves on `best` when
/// `metric < best * (1 - threshold)` (min, rel), `metric < best - threshold`
/// (min, abs), `metric > best * (1 + threshold)` (max, rel) or
/// `metric > best + threshold` (max, abs). More than `patience` metrics in a
/// row without improvement (not counting `cooldown` metrics after a
/// reduction) reduce the rate: `lr = max(lr * factor, min_lr)`, skipped when
/// the change is at most `eps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlateauSchedule {
    /// `min` (default) or `max`.
    pub mode: PlateauMode,
    /// Multiplier per reduction, in (0, 1) (default 0.1).
    pub factor: f64,
    /// Metrics without improvement tolerated (default 10).
    pub patience: u64,
    /// Significance of an improvement, >= 0 (default 1e-4).
    pub threshold: f64,
    /// `rel` (default) or `abs`.
    pub threshold_mode: ThresholdMode,
    /// Metrics ignored after a reduction (default 0).
    pub cooldown: u64,
    /// The floor, >= 0 (default 0).
    pub min_lr: f64,
    /// Smallest change applied (default 1e-8).
    pub eps: f64,
}

impl Default for PlateauSchedule {
    fn default() -> Self {
        PlateauSchedule {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

impl PlateauSchedule {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.factor > 0.0 && self.factor < 1.0) {
            return Err(OptimError::hyper(
                "factor",
                self.factor,
                "must be in (0, 1)",
            ));
        }
        check::non_negative("threshold", self.threshold)?;
        check::non_negative("min_lr", self.min_lr)?;
        check::non_negative("eps", self.eps)
    }

    /// Bookkeeping before the first metric.
    pub fn initial_state(&self) -> PlateauState {
        PlateauState {
            best: None,
            num_bad_epochs: 0,
            cooldown_counter: 0,
            reductions: 0,
        }
    }

    fn is_better(&self, metric: f64, best: Option<f64>) -> bool {
        let Some(best) = best else {
            // PyTorch's best starts at +-inf: any finite metric improves.
            return match self.mode {
                PlateauMode::Min => metric < f64::INFINITY,
                PlateauMode::Max => metric > f64::NEG_INFINITY,
            };
        };
        match (self.mode, self.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => metric < best * (1.0 - self.threshold),
            (PlateauMode::Min, ThresholdMode::Abs) => metric < best - self.threshold,
            (PlateauMode::Max, ThresholdMode::Rel) => metric > best * (1.0 + self.threshold),
            (PlateauMode::Max, ThresholdMode::Abs) => metric > best + self.threshold,
        }
    }

    /// Record one metric (PyTorch's `step(metrics)`).
    pub fn observe(&self, state: &mut PlateauState, metric: f64) {
        if self.is_better(metric, state.best) {
            state.best = Some(metric);
            state.num_bad_epochs = 0;
        } else {
            state.num_bad_epochs += 1;
        }
        if state.cooldown_counter > 0 {
            state.cooldown_counter -= 1;
            state.num_bad_epochs = 0;
        }
        if state.num_bad_epochs > self.patience {
            state.reductions += 1;
            state.cooldown_counter = self.cooldown;
            state.num_bad_epochs = 0;
        }
    }

    /// The rate after `reductions` reductions of `base`, with PyTorch's
    /// recursion `new = max(lr * factor, min_lr)`, applied when
    /// `lr - new > eps`.
    pub fn lr_after(&self, base: f64, reductions: u64) -> f64 {
        let mut lr = base;
        for _ in 0..reductions {
            let new = (lr * self.factor).max(self.min_lr);
            if lr - new > self.eps {
                lr = new;
            } else {
                break;
            }
        }
        lr
    }
}
