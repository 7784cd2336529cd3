//! Adagrad (`torch.optim.Adagrad`).

use cnn_core::{AdagradStep, Backend};
use serde::{Deserialize, Serialize};

use super::{GroupHyper, Rule, Slot, StepCtx, layout_error};
use crate::error::{Result, check};

/// `torch.optim.Adagrad`. At step `t` (from 1) the host computes
/// `clr = lr / (1 + (t - 1) * lr_decay)`; per element:
///
/// ```text
/// g = g + weight_decay * w                        (if weight_decay != 0)
/// s = s + g^2                                     (s starts at initial_accumulator_value)
/// w = w - clr * g / (sqrt(s) + eps)
/// ```
///
/// State: `sum`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdagradConfig {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Learning-rate decay per step, >= 0 (default 0).
    pub lr_decay: f64,
    /// Coupled L2 penalty added to the gradient (default 0).
    pub weight_decay: f64,
    /// Starting value of the accumulator, >= 0 (default 0).
    pub initial_accumulator_value: f64,
    /// Added to the denominator, > 0 (default 1e-10).
    pub eps: f64,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        AdagradConfig {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
        }
    }
}

impl Rule for AdagradConfig {
    fn validate(&self) -> Result<()> {
        check::lr("lr", self.lr)?;
        check::non_negative("lr_decay", self.lr_decay)?;
        check::non_negative("weight_decay", self.weight_decay)?;
        check::non_negative("initial_accumulator_value", self.initial_accumulator_value)?;
        check::positive("eps", self.eps)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn slots(&self, _shape: &[usize]) -> Vec<Slot> {
        vec![Slot {
            name: "sum",
            init: self.initial_accumulator_value as f32,
            len: None,
        }]
    }

    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()> {
        let s = AdagradStep {
            clr: (hp.lr / (1.0 + (ctx.t - 1) as f64 * self.lr_decay)) as f32,
            eps: self.eps as f32,
            weight_decay: hp.weight_decay as f32,
        };
        match ctx.bufs {
            [sum] => backend.adagrad_update(&s, ctx.w, ctx.g, sum)?,
            other => return Err(layout_error("adagrad", other.len())),
        }
        Ok(())
    }
}
