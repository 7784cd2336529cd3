//! Lion, evolved sign momentum (PyPI `lion-pytorch`, Chen et al. 2023).

use cnn_core::{Backend, LionStep};
use serde::{Deserialize, Serialize};

use super::{GroupHyper, Rule, Slot, StepCtx, layout_error};
use crate::error::{Result, check};

/// `lion_pytorch.Lion`. Per element:
///
/// ```text
/// w = w * (1 - lr * weight_decay)        (decoupled decay, first;
///                                         weight_decay / initial lr when
///                                         decoupled_weight_decay)
/// w = w - lr * sign(b1 * m + (1 - b1) * g)
/// m = b2 * m + (1 - b2) * g
/// ```
///
/// State: `exp_avg` (m).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LionConfig {
    /// Learning rate, > 0 (default 1e-4).
    pub lr: f64,
    /// `(b1, b2)`, each in [0, 1] (default (0.9, 0.99)).
    pub betas: (f64, f64),
    /// Decoupled weight decay (default 0).
    pub weight_decay: f64,
    /// Divide `weight_decay` by the initial rate (this config's `lr`), so
    /// the decay per step is `lr / initial_lr * weight_decay` (default
    /// false).
    pub decoupled_weight_decay: bool,
}

impl Default for LionConfig {
    fn default() -> Self {
        LionConfig {
            lr: 1e-4,
            betas: (0.9, 0.99),
            weight_decay: 0.0,
            decoupled_weight_decay: false,
        }
    }
}

impl Rule for LionConfig {
    fn validate(&self) -> Result<()> {
        check::positive("lr", self.lr)?;
        check::unit_closed("betas[0]", self.betas.0)?;
        check::unit_closed("betas[1]", self.betas.1)?;
        check::non_negative("weight_decay", self.weight_decay)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn slots(&self, _shape: &[usize]) -> Vec<Slot> {
        vec![Slot::zeros("exp_avg")]
    }

    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()> {
        let wd = if self.decoupled_weight_decay {
            hp.weight_decay / self.lr
        } else {
            hp.weight_decay
        };
        // lion-pytorch multiplies by the Python float `1 - lr * wd`.
        let s = LionStep {
            lr: hp.lr as f32,
            beta1: self.betas.0 as f32,
            beta2: self.betas.1 as f32,
            weight_decay: wd as f32,
        };
        match ctx.bufs {
            [m] => backend.lion_update(&s, ctx.w, ctx.g, m)?,
            other => return Err(layout_error("lion", other.len())),
        }
        Ok(())
    }
}
