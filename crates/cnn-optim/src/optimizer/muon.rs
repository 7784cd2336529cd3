//! Muon, momentum orthogonalized by Newton-Schulz (`torch.optim.Muon`,
//! Jordan et al. 2024), with AdamW for the parameters Muon does not take.

use cnn_core::Backend;
use serde::{Deserialize, Serialize};

use super::adam::{adam_scalars, adam_step};
use super::host::{HostStep, lerp};
use super::newton_schulz::orthogonalize;
use super::{GroupHyper, Rule, Slot, StepCtx, check_betas_eps, layout_error};
use crate::error::{OptimError, Result, check};

/// `torch.optim.Muon` for every parameter of two or more dimensions, with
/// `torch.optim.AdamW` (the fallback torch's documentation names, with
/// hyperparameters of its own, `adamw_*`) for the others (biases,
/// normalisation parameters).
///
/// torch's Muon accepts only 2-D parameters. A convolution weight
/// `(out, in, kh, kw)` is taken as the `(out, in * kh * kw)` matrix it is
/// in memory (as Keller Jordan's reference Muon flattens it), so it gets
/// exactly the update torch's Muon gives that matrix, `adjust_lr_fn`
/// included (A = out, B = in * kh * kw). Per matrix, at each step:
///
/// ```text
/// buf = lerp(buf, g, 1 - momentum)
/// u   = lerp(g, buf, momentum)   (nesterov) or buf
/// O   = NewtonSchulz(u; ns_coefficients, ns_steps, eps)
/// w   = w * (1 - lr * weight_decay)
/// w   = w - lr * ratio(A, B) * O
/// ratio: "original" (None) sqrt(max(1, A / B)); "match_rms_adamw"
///        0.2 sqrt(max(A, B)); "spectral_unclamped" sqrt(A / B)
/// ```
///
/// torch runs the Newton-Schulz iteration in bfloat16; cnn runs it in
/// float32 (its storage type), so updates agree with torch's to bfloat16
/// rounding and exactly with the same iteration in float32 (the golden
/// test's reference). The iteration is a chain of small matrix products,
/// so matrices are updated on the host (see `host`); the AdamW fallback
/// is the fused Adam op.
///
/// The fallback's rate and weight decay follow the parameter group's in
/// proportion: `adamw_lr * group lr / lr` (so schedules scale both) and
/// `adamw_weight_decay * group weight decay / weight_decay` (a no-decay
/// group gives 0; `adamw_weight_decay` itself when `weight_decay` is 0).
///
/// State: `momentum_buffer` (matrices), `exp_avg` and `exp_avg_sq` (the
/// fallback's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MuonConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Decoupled weight decay (default 0.1).
    pub weight_decay: f64,
    /// Momentum (default 0.95).
    pub momentum: f64,
    /// Nesterov momentum (default true).
    pub nesterov: bool,
    /// `(a, b, c)` of the quintic iteration (default (3.4445, -4.7750,
    /// 2.0315)).
    pub ns_coefficients: (f64, f64, f64),
    /// Floor of the norm the update is divided by (default 1e-7).
    pub eps: f64,
    /// Newton-Schulz iterations, below 100 (default 5).
    pub ns_steps: usize,
    /// `original` (the default, also when unset), `match_rms_adamw` or
    /// `spectral_unclamped`.
    pub adjust_lr_fn: Option<String>,
    /// The AdamW fallback's rate (default 1e-3, AdamW's).
    pub adamw_lr: f64,
    /// The fallback's betas (default (0.9, 0.999)).
    pub adamw_betas: (f64, f64),
    /// The fallback's eps (default 1e-8).
    pub adamw_eps: f64,
    /// The fallback's decoupled weight decay (default 1e-2).
    pub adamw_weight_decay: f64,
}

impl Default for MuonConfig {
    fn default() -> Self {
        MuonConfig {
            lr: 1e-3,
            weight_decay: 0.1,
            momentum: 0.95,
            nesterov: true,
            ns_coefficients: (3.4445, -4.7750, 2.0315),
            eps: 1e-7,
            ns_steps: 5,
            adjust_lr_fn: None,
            adamw_lr: 1e-3,
            adamw_betas: (0.9, 0.999),
            adamw_eps: 1e-8,
            adamw_weight_decay: 1e-2,
        }
    }
}

impl MuonConfig {
    /// torch's `_adjust_lr`: the rate times the shape's ratio.
    fn adjusted_lr(&self, lr: f64, a: usize, b: usize) -> f64 {
        let (a, b) = (a as f64, b as f64);
        let ratio = match self.adjust_lr_fn.as_deref() {
            None | Some("original") => (a / b).max(1.0).sqrt(),
            Some("match_rms_adamw") => 0.2 * a.max(b).sqrt(),
            Some("spectral_unclamped") => (a / b).sqrt(),
            Some(_) => 1.0,
        };
        lr * ratio
    }

    /// A ratio of the group's value to this config's, for the fallback.
    fn scaled(fallback: f64, group: f64, own: f64) -> f64 {
        if group == own {
            fallback
        } else if own > 0.0 {
            fallback * group / own
        } else {
            fallback
        }
    }
}

impl Rule for MuonConfig {
    fn validate(&self) -> Result<()> {
        check::lr("lr", self.lr)?;
        check::non_negative("weight_decay", self.weight_decay)?;
        check::non_negative("momentum", self.momentum)?;
        check::non_negative("eps", self.eps)?;
        if self.ns_steps >= 100 {
            return Err(OptimError::hyper(
                "ns_steps",
                self.ns_steps,
                "must be below 100",
            ));
        }
        let known = ["original", "match_rms_adamw", "spectral_unclamped"];
        match &self.adjust_lr_fn {
            Some(f) if !known.contains(&f.as_str()) => {
                return Err(OptimError::hyper(
                    "adjust_lr_fn",
                    f,
                    "must be original, match_rms_adamw or spectral_unclamped",
                ));
            }
            _ => {}
        }
        check::lr("adamw_lr", self.adamw_lr)?;
        check_betas_eps(self.adamw_betas, self.adamw_eps)?;
        check::non_negative("adamw_weight_decay", self.adamw_weight_decay)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn slots(&self, shape: &[usize]) -> Vec<Slot> {
        if shape.len() >= 2 {
            vec![Slot::zeros("momentum_buffer")]
        } else {
            vec![Slot::zeros("exp_avg"), Slot::zeros("exp_avg_sq")]
        }
    }

    fn layouts(&self) -> Vec<Vec<&'static str>> {
        vec![vec!["momentum_buffer"], vec!["exp_avg", "exp_avg_sq"]]
    }

    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()> {
        if ctx.shape.len() < 2 {
            let fallback = GroupHyper {
                lr: Self::scaled(self.adamw_lr, hp.lr, self.lr),
                weight_decay: Self::scaled(
                    self.adamw_weight_decay,
                    hp.weight_decay,
                    self.weight_decay,
                ),
            };
            let s = adam_scalars(
                fallback,
                self.adamw_betas,
                self.adamw_eps,
                false,
                true,
                ctx.t,
            );
            return adam_step(backend, &s, ctx, "muon (adamw fallback)");
        }
        if ctx.bufs.len() != 1 {
            return Err(layout_error("muon", ctx.bufs.len()));
        }
        let rows = ctx.shape[0];
        let cols = ctx.shape[1..].iter().product::<usize>();
        let mut h = HostStep::download(backend, &ctx)?;
        let momentum = self.momentum as f32;
        let weight = (1.0 - self.momentum) as f32;
        let buf = &mut h.bufs[0];
        let mut u = vec![0.0f32; h.g.len()];
        for ((b, u), &g) in buf.iter_mut().zip(u.iter_mut()).zip(&h.g) {
            *b = lerp(*b, g, weight);
            *u = if self.nesterov {
                lerp(g, *b, momentum)
            } else {
                *b
            };
        }
        let (a, b, c) = self.ns_coefficients;
        let o = orthogonalize(
            &u,
            rows,
            cols,
            (a as f32, b as f32, c as f32),
            self.ns_steps,
            self.eps as f32,
        );
        let decay = (1.0 - hp.lr * hp.weight_decay) as f32;
        let step = -self.adjusted_lr(hp.lr, rows, cols) as f32;
        for (w, &o) in h.w.iter_mut().zip(&o) {
            *w *= decay;
            *w += o * step;
        }
        h.upload(backend, ctx)
    }
}
