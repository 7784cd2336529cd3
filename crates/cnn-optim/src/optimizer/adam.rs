//! Adam with optional AMSGrad and coupled L2 weight decay (`torch.optim.Adam`).

use cnn_core::{AdamStep, Backend};
use serde::{Deserialize, Serialize};

use super::{GroupHyper, Rule, Slot, StepCtx, bias_correction, check_betas_eps, layout_error};
use crate::error::{Result, check};

/// `torch.optim.Adam`. Per element, at step `t` (from 1):
///
/// ```text
/// g = g + weight_decay * w                  (coupled L2, if weight_decay != 0)
/// m = b1 * m + (1 - b1) * g
/// v = b2 * v + (1 - b2) * g^2
/// v_max = max(v_max, v)                      (amsgrad; then v_max replaces v below)
/// w = w - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
/// ```
///
/// State: `exp_avg` (m), `exp_avg_sq` (v), `max_exp_avg_sq` (amsgrad only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// `(b1, b2)`, each in [0, 1) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator, > 0 (default 1e-8).
    pub eps: f64,
    /// Coupled L2 penalty added to the gradient (default 0).
    pub weight_decay: f64,
    /// Use the running maximum of `v` (default false).
    pub amsgrad: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
        }
    }
}

/// The Adam step shared by Adam and AdamW.
pub(crate) fn adam_step<B: Backend>(
    backend: &B,
    s: &AdamStep,
    ctx: StepCtx<'_, B>,
    rule: &str,
) -> Result<()> {
    match ctx.bufs {
        [m, v] if !s.amsgrad => backend.adam_update(s, ctx.w, ctx.g, m, v, None)?,
        [m, v, v_max] if s.amsgrad => backend.adam_update(s, ctx.w, ctx.g, m, v, Some(v_max))?,
        other => return Err(layout_error(rule, other.len())),
    }
    Ok(())
}

/// The slots of Adam and AdamW.
pub(crate) fn adam_slots(amsgrad: bool) -> Vec<Slot> {
    let mut slots = vec![Slot::zeros("exp_avg"), Slot::zeros("exp_avg_sq")];
    if amsgrad {
        slots.push(Slot::zeros("max_exp_avg_sq"));
    }
    slots
}

/// The host scalars of an Adam step.
pub(crate) fn adam_scalars(
    hp: GroupHyper,
    betas: (f64, f64),
    eps: f64,
    amsgrad: bool,
    decoupled: bool,
    t: u64,
) -> AdamStep {
    AdamStep {
        lr: hp.lr as f32,
        beta1: betas.0 as f32,
        beta2: betas.1 as f32,
        eps: eps as f32,
        weight_decay: hp.weight_decay as f32,
        decoupled,
        amsgrad,
        bias_correction1: bias_correction(betas.0, t) as f32,
        bias_correction2: bias_correction(betas.1, t) as f32,
    }
}

impl Rule for AdamConfig {
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
        let s = adam_scalars(hp, self.betas, self.eps, self.amsgrad, false, ctx.t);
        adam_step(backend, &s, ctx, "adam")
    }
}
