//! Rectified Adam (`torch.optim.RAdam`).

use cnn_core::{Backend, RadamStep};
use serde::{Deserialize, Serialize};

use super::{GroupHyper, Rule, Slot, StepCtx, bias_correction, check_betas_eps, layout_error};
use crate::error::{Result, check};

/// `torch.optim.RAdam`. At step `t` (from 1) the host computes
///
/// ```text
/// rho_inf = 2 / (1 - b2) - 1
/// rho_t   = rho_inf - 2 t b2^t / (1 - b2^t)
/// rect    = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
/// ```
///
/// and per element:
///
/// ```text
/// w = w * (1 - lr * weight_decay)   if decoupled_weight_decay,
/// g = g + weight_decay * w          otherwise (if weight_decay != 0)
/// m = b1 * m + (1 - b1) * g
/// v = b2 * v + (1 - b2) * g^2
/// m_hat = m / (1 - b1^t)
/// w = w - lr * m_hat * rect * sqrt(1 - b2^t) / (sqrt(v) + eps)   if rho_t > 5
/// w = w - lr * m_hat                                             otherwise
/// ```
///
/// State: `exp_avg`, `exp_avg_sq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RadamConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// `(b1, b2)`, each in [0, 1) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator, > 0 (default 1e-8).
    pub eps: f64,
    /// Weight decay, coupled unless `decoupled_weight_decay` (default 0).
    pub weight_decay: f64,
    /// Apply weight decay AdamW-style (default false).
    pub decoupled_weight_decay: bool,
}

impl Default for RadamConfig {
    fn default() -> Self {
        RadamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
        }
    }
}

impl Rule for RadamConfig {
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
        vec![Slot::zeros("exp_avg"), Slot::zeros("exp_avg_sq")]
    }

    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()> {
        let (b1, b2) = self.betas;
        let t = ctx.t as f64;
        let bc1 = bias_correction(b1, ctx.t);
        let bc2 = bias_correction(b2, ctx.t);
        let rho_inf = 2.0 / (1.0 - b2) - 1.0;
        let rho_t = rho_inf - 2.0 * t * b2.powf(t) / bc2;
        let rectify = rho_t > 5.0;
        let rect = if rectify {
            ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                .sqrt()
        } else {
            0.0
        };
        let mut weight_decay = hp.weight_decay;
        if self.decoupled_weight_decay && weight_decay != 0.0 {
            backend.scale((1.0 - hp.lr * weight_decay) as f32, ctx.w)?;
            weight_decay = 0.0;
        }
        let s = RadamStep {
            lr: hp.lr as f32,
            beta1: b1 as f32,
            beta2: b2 as f32,
            eps: self.eps as f32,
            weight_decay: weight_decay as f32,
            bias_correction1: bc1 as f32,
            bias_correction2: bc2 as f32,
            rectify,
            rect: rect as f32,
        };
        match ctx.bufs {
            [m, v] => backend.radam_update(&s, ctx.w, ctx.g, m, v)?,
            other => return Err(layout_error("radam", other.len())),
        }
        Ok(())
    }
}
