//! LAMB, layer-wise adaptive moments (You et al. 2019), as PyPI
//! `pytorch-optimizer`'s `Lamb` implements it (its defaults: no
//! rectification, no gradient pre-normalisation).

use cnn_core::Backend;
use serde::{Deserialize, Serialize};

use super::host::{HostStep, norm};
use super::{GroupHyper, Rule, Slot, StepCtx, bias_correction, check_betas_eps, layout_error};
use crate::error::{Result, check};

/// pytorch-optimizer clamps the weight norm of the trust ratio to this.
const WEIGHT_NORM_CLAMP: f32 = 10.0;

/// `pytorch_optimizer.Lamb` (per-parameter path). At step `t`:
///
/// ```text
/// m = b1 * m + (1 - b1) * g                (b3 = 1 instead of 1 - b1
///                                           without grad_averaging)
/// v = b2 * v + (1 - b2) * g^2
/// w = w * (1 - weight_decay * lr)          (weight_decouple; * 1 with fixed_decay)
/// u = m / (sqrt(v) + eps)                  (+ weight_decay * w when not decoupled)
/// trust = min(|w|, 10) / (|u| + eps)       (1 when either norm is 0, or adam)
/// w = w - lr / (1 - b1^t) * trust * u
/// ```
///
/// The second moment has no bias correction. Norms are per tensor, so
/// this rule runs on the host (see `host`). State: `exp_avg`, `exp_avg_sq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LambConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// `(b1, b2)`, each in [0, 1) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Weight decay (default 0).
    pub weight_decay: f64,
    /// Decoupled (AdamW-style) weight decay (default true).
    pub weight_decouple: bool,
    /// Decoupled decay not scaled by the rate (default false).
    pub fixed_decay: bool,
    /// Scale the gradient's share of `m` by `1 - b1` (default true).
    pub grad_averaging: bool,
    /// A trust ratio of 1: Adam without second-moment bias correction
    /// (default false).
    pub adam: bool,
    /// Added to the denominators, > 0 (default 1e-6).
    pub eps: f64,
}

impl Default for LambConfig {
    fn default() -> Self {
        LambConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            weight_decay: 0.0,
            weight_decouple: true,
            fixed_decay: false,
            grad_averaging: true,
            adam: false,
            eps: 1e-6,
        }
    }
}

impl Rule for LambConfig {
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
        if ctx.bufs.len() != 2 {
            return Err(layout_error("lamb", ctx.bufs.len()));
        }
        let mut h = HostStep::download(backend, &ctx)?;
        let (b1, b2) = (self.betas.0 as f32, self.betas.1 as f32);
        let b3 = if self.grad_averaging { 1.0 - b1 } else { 1.0 };
        let eps = self.eps as f32;
        let wd = hp.weight_decay;
        let step_size = hp.lr / bias_correction(self.betas.0, ctx.t);
        let [m, v] = &mut h.bufs[..] else {
            return Err(layout_error("lamb", 0));
        };
        for ((m, v), &g) in m.iter_mut().zip(v.iter_mut()).zip(&h.g) {
            *m = *m * b1 + g * b3;
            *v = *v * b2 + g * g * (1.0 - b2);
        }
        if self.weight_decouple && wd != 0.0 {
            let scale = (1.0 - wd * if self.fixed_decay { 1.0 } else { hp.lr }) as f32;
            h.w.iter_mut().for_each(|w| *w *= scale);
        }
        let mut u: Vec<f32> = m
            .iter()
            .zip(v.iter())
            .map(|(&m, &v)| m / (v.sqrt() + eps))
            .collect();
        if !self.weight_decouple && wd > 0.0 {
            let wd = wd as f32;
            u.iter_mut().zip(&h.w).for_each(|(u, &w)| *u += w * wd);
        }
        let wn = norm(&h.w).min(WEIGHT_NORM_CLAMP);
        let un = norm(&u);
        let trust = if self.adam || wn == 0.0 || un == 0.0 {
            1.0
        } else {
            wn / (un + eps)
        };
        let alpha = (-step_size * f64::from(trust)) as f32;
        h.w.iter_mut().zip(&u).for_each(|(w, &u)| *w += u * alpha);
        h.upload(backend, ctx)
    }
}
