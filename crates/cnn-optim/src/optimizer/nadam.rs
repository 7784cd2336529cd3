//! Adam with Nesterov momentum (`torch.optim.NAdam`).

use cnn_core::{Backend, NadamStep};
use serde::{Deserialize, Serialize};

use super::{GroupHyper, Rule, Slot, StepCtx, bias_correction, check_betas_eps, layout_error};
use crate::error::{Result, check};

/// `torch.optim.NAdam`. At step `t` (from 1) the host computes the
/// momentum schedule
///
/// ```text
/// mu_t    = b1 * (1 - 0.5 * 0.96^(t * momentum_decay))
/// mu_next = b1 * (1 - 0.5 * 0.96^((t + 1) * momentum_decay))
/// mu_product = mu_product * mu_t                  (host state, starts at 1)
/// ```
///
/// and per element:
///
/// ```text
/// w = w * (1 - lr * weight_decay)   if decoupled_weight_decay,
/// g = g + weight_decay * w          otherwise (if weight_decay != 0)
/// m = b1 * m + (1 - b1) * g
/// v = b2 * v + (1 - b2) * g^2
/// denom = sqrt(v / (1 - b2^t)) + eps
/// w = w - lr * (1 - mu_t) / (1 - mu_product) * g / denom
///       - lr * mu_next / (1 - mu_product * mu_next) * m / denom
/// ```
///
/// State: `exp_avg`, `exp_avg_sq`, and the host scalar `mu_product`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NadamConfig {
    /// Learning rate (default 2e-3).
    pub lr: f64,
    /// `(b1, b2)`, each in [0, 1) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator, > 0 (default 1e-8).
    pub eps: f64,
    /// Weight decay, coupled unless `decoupled_weight_decay` (default 0).
    pub weight_decay: f64,
    /// Momentum decay, >= 0 (default 4e-3).
    pub momentum_decay: f64,
    /// Apply weight decay AdamW-style (default false).
    pub decoupled_weight_decay: bool,
}

impl Default for NadamConfig {
    fn default() -> Self {
        NadamConfig {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
        }
    }
}

impl Rule for NadamConfig {
    fn validate(&self) -> Result<()> {
        check::lr("lr", self.lr)?;
        check_betas_eps(self.betas, self.eps)?;
        check::non_negative("weight_decay", self.weight_decay)?;
        check::non_negative("momentum_decay", self.momentum_decay)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn slots(&self, _shape: &[usize]) -> Vec<Slot> {
        vec![Slot::zeros("exp_avg"), Slot::zeros("exp_avg_sq")]
    }

    fn scalars(&self) -> Vec<(&'static str, f64)> {
        vec![("mu_product", 1.0)]
    }

    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()> {
        let (b1, b2) = self.betas;
        let t = ctx.t as f64;
        let mu_t = b1 * (1.0 - 0.5 * 0.96f64.powf(t * self.momentum_decay));
        let mu_next = b1 * (1.0 - 0.5 * 0.96f64.powf((t + 1.0) * self.momentum_decay));
        let [mu_product_state] = ctx.scalars else {
            return Err(layout_error("nadam scalars", ctx.scalars.len()));
        };
        let mu_product = *mu_product_state * mu_t;
        let mut weight_decay = hp.weight_decay;
        if self.decoupled_weight_decay && weight_decay != 0.0 {
            backend.scale((1.0 - hp.lr * weight_decay) as f32, ctx.w)?;
            weight_decay = 0.0;
        }
        let s = NadamStep {
            lr: hp.lr as f32,
            beta1: b1 as f32,
            beta2: b2 as f32,
            eps: self.eps as f32,
            weight_decay: weight_decay as f32,
            mu_t: mu_t as f32,
            mu_next: mu_next as f32,
            mu_product: mu_product as f32,
            mu_product_next: (mu_product * mu_next) as f32,
            bias_correction2: bias_correction(b2, ctx.t) as f32,
        };
        match ctx.bufs {
            [m, v] => backend.nadam_update(&s, ctx.w, ctx.g, m, v)?,
            other => return Err(layout_error("nadam", other.len())),
        }
        *mu_product_state = mu_product;
        Ok(())
    }
}
