//! Adamax, Adam with the infinity norm (`torch.optim.Adamax`).

use cnn_core::{AdamaxStep, Backend};
use serde::{Deserialize, Serialize};

use super::{GroupHyper, Rule, Slot, StepCtx, bias_correction, check_betas_eps, layout_error};
use crate::error::{Result, check};

/// `torch.optim.Adamax`. Per element, at step `t` (from 1):
///
/// ```text
/// g = g + weight_decay * w                        (if weight_decay != 0)
/// m = b1 * m + (1 - b1) * g
/// u = max(b2 * u, |g| + eps)
/// w = w - lr / (1 - b1^t) * m / u
/// ```
///
/// State: `exp_avg` (m), `exp_inf` (u).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamaxConfig {
    /// Learning rate (default 2e-3).
    pub lr: f64,
    /// `(b1, b2)`, each in [0, 1) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to `|g|`, > 0 (default 1e-8).
    pub eps: f64,
    /// Coupled L2 penalty added to the gradient (default 0).
    pub weight_decay: f64,
}

impl Default for AdamaxConfig {
    fn default() -> Self {
        AdamaxConfig {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl Rule for AdamaxConfig {
    fn validate(&self) -> Result<()> {
        check::lr("lr", self.lr)?;
        check_betas_eps(self.betas, self.eps)?;
        check::non_negative("weight_decay", self.weight_decay)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn slots(&self, _shape: &[usize]) -> Vec<Slot> {
        vec![Slot::zeros("exp_avg"), Slot::zeros("exp_inf")]
    }

    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()> {
        let s = AdamaxStep {
            lr: hp.lr as f32,
            beta1: self.betas.0 as f32,
            beta2: self.betas.1 as f32,
            eps: self.eps as f32,
            weight_decay: hp.weight_decay as f32,
            bias_correction1: bias_correction(self.betas.0, ctx.t) as f32,
        };
        match ctx.bufs {
            [m, u] => backend.adamax_update(&s, ctx.w, ctx.g, m, u)?,
            other => return Err(layout_error("adamax", other.len())),
        }
        Ok(())
    }
}
