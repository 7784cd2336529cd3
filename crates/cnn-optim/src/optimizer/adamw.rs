//! Adam with decoupled weight decay (`torch.optim.AdamW`).

use cnn_core::Backend;
use serde::{Deserialize, Serialize};

use super::adam::{adam_scalars, adam_slots, adam_step};
use super::{GroupHyper, Rule, Slot, StepCtx, check_betas_eps};
use crate::error::{Result, check};

/// `torch.optim.AdamW`: Adam whose weight decay shrinks the weights instead
/// of entering the gradient. Per element, at step `t` (from 1):
///
/// ```text
/// w = w * (1 - lr * weight_decay)            (decoupled decay, first)
/// m = b1 * m + (1 - b1) * g
/// v = b2 * v + (1 - b2) * g^2
/// v_max = max(v_max, v)                      (amsgrad; then v_max replaces v below)
/// w = w - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
/// ```
///
/// State: `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq` (amsgrad only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// `(b1, b2)`, each in [0, 1) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator, > 0 (default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay (default 1e-2).
    pub weight_decay: f64,
    /// Use the running maximum of `v` (default false).
    pub amsgrad: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-2,
            amsgrad: false,
        }
    }
}

impl Rule for AdamWConfig {
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
        adam_slots(self.amsgrad)
    }

    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()> {
        let s = adam_scalars(hp, self.betas, self.eps, self.amsgrad, true, ctx.t);
        adam_step(backend, &s, ctx, "adamw")
    }
}
