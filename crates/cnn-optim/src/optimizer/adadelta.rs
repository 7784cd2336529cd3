//! Adadelta (`torch.optim.Adadelta`).

use cnn_core::{AdadeltaStep, Backend};
use serde::{Deserialize, Serialize};

use super::{GroupHyper, Rule, Slot, StepCtx, layout_error};
use crate::error::{Result, check};

/// `torch.optim.Adadelta`. Per element:
///
/// ```text
/// g = g + weight_decay * w                        (if weight_decay != 0)
/// s = rho * s + (1 - rho) * g^2
/// d = sqrt(acc + eps) / sqrt(s + eps) * g
/// acc = rho * acc + (1 - rho) * d^2
/// w = w - lr * d
/// ```
///
/// State: `square_avg` (s), `acc_delta` (acc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdadeltaConfig {
    /// Scale of the delta (default 1.0).
    pub lr: f64,
    /// Decay of the running averages, in [0, 1] (default 0.9).
    pub rho: f64,
    /// Added inside the square roots, > 0 (default 1e-6).
    pub eps: f64,
    /// Coupled L2 penalty added to the gradient (default 0).
    pub weight_decay: f64,
}

impl Default for AdadeltaConfig {
    fn default() -> Self {
        AdadeltaConfig {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
        }
    }
}

impl Rule for AdadeltaConfig {
    fn validate(&self) -> Result<()> {
        check::lr("lr", self.lr)?;
        check::unit_closed("rho", self.rho)?;
        check::positive("eps", self.eps)?;
        check::non_negative("weight_decay", self.weight_decay)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn slots(&self, _shape: &[usize]) -> Vec<Slot> {
        vec![Slot::zeros("square_avg"), Slot::zeros("acc_delta")]
    }

    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()> {
        let s = AdadeltaStep {
            lr: hp.lr as f32,
            rho: self.rho as f32,
            eps: self.eps as f32,
            weight_decay: hp.weight_decay as f32,
        };
        match ctx.bufs {
            [sq, acc] => backend.adadelta_update(&s, ctx.w, ctx.g, sq, acc)?,
            other => return Err(layout_error("adadelta", other.len())),
        }
        Ok(())
    }
}
