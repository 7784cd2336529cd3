//! Adafactor (`torch.optim.Adafactor`, Shazeer and Stern 2018): a
//! factored second moment and a step relative to the weights' scale.

use cnn_core::Backend;
use serde::{Deserialize, Serialize};

use super::host::{HostStep, lerp, norm};
use super::{GroupHyper, Rule, Slot, StepCtx, layout_error};
use crate::error::{OptimError, Result, check};

/// `torch.optim.Adafactor`. At step `t` (from 1), for a parameter `w`:
///
/// ```text
/// b2t   = t^beta2_decay                  (the weight 1 - beta2_t)
/// rho   = min(lr, 1 / sqrt(t))
/// alpha = max(eps2, rms(w)) * rho        (rms of w before the decay)
/// w     = w * (1 - lr * weight_decay)
/// two or more dimensions, factored over the last two (rows r, columns c;
/// the leading dimensions index separate matrices, so a convolution
/// weight (out, in, kh, kw) has out * in matrices of kh x kw):
///   row_var = lerp(row_var, mean_c(g^2), b2t)
///   col_var = lerp(col_var, mean_r(g^2), b2t)
///   var     = row_var * col_var / max(mean_r(row_var), eps1)
/// vectors: variance = lerp(variance, g^2, b2t); var = variance
/// u = g / sqrt(max(var, eps1^2))
/// w = w - alpha / max(1, rms(u) / d) * u
/// ```
///
/// The row and column means and the RMS are reductions over a reshaped
/// tensor, so this rule runs on the host (see `host`). State: `row_var`
/// and `col_var` (matrices), `variance` (vectors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdafactorConfig {
    /// Caps the relative step `rho` (default 1e-2).
    pub lr: f64,
    /// The second moment's decay exponent, <= 0 (default -0.8).
    pub beta2_decay: f64,
    /// `(eps1, eps2)`: the variance floor and the weight-scale floor
    /// (default (1.1920929e-7, 1e-3); torch's `None` for eps1 means the
    /// float32 machine epsilon, the value given here).
    pub eps: (f64, f64),
    /// The update's RMS clipping threshold, >= 1 (default 1).
    pub d: f64,
    /// Decoupled weight decay (default 0).
    pub weight_decay: f64,
}

impl Default for AdafactorConfig {
    fn default() -> Self {
        AdafactorConfig {
            lr: 1e-2,
            beta2_decay: -0.8,
            eps: (f64::from(f32::EPSILON), 1e-3),
            d: 1.0,
            weight_decay: 0.0,
        }
    }
}

/// `(matrices, rows, columns)` of a shape factored over its last two
/// dimensions.
fn factors(shape: &[usize]) -> Option<(usize, usize, usize)> {
    match shape {
        [lead @ .., r, c] => Some((lead.iter().product(), *r, *c)),
        _ => None,
    }
}

impl Rule for AdafactorConfig {
    fn validate(&self) -> Result<()> {
        check::lr("lr", self.lr)?;
        if self.beta2_decay.is_nan() || self.beta2_decay > 0.0 {
            return Err(OptimError::hyper(
                "beta2_decay",
                self.beta2_decay,
                "must be <= 0",
            ));
        }
        check::non_negative("eps[0]", self.eps.0)?;
        check::non_negative("eps[1]", self.eps.1)?;
        if !self.d.is_finite() || self.d < 1.0 {
            return Err(OptimError::hyper(
                "d",
                self.d,
                "must be a finite number >= 1",
            ));
        }
        check::non_negative("weight_decay", self.weight_decay)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn slots(&self, shape: &[usize]) -> Vec<Slot> {
        match factors(shape) {
            Some((k, r, c)) => vec![
                Slot::zeros_len("row_var", k * r),
                Slot::zeros_len("col_var", k * c),
            ],
            None => vec![Slot::zeros("variance")],
        }
    }

    fn layouts(&self) -> Vec<Vec<&'static str>> {
        vec![vec!["row_var", "col_var"], vec!["variance"]]
    }

    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()> {
        let factored = factors(ctx.shape);
        if ctx.bufs.len() != if factored.is_some() { 2 } else { 1 } {
            return Err(layout_error("adafactor", ctx.bufs.len()));
        }
        let mut h = HostStep::download(backend, &ctx)?;
        let n = h.w.len();
        let t = ctx.t as f64;
        let b2t = t.powf(self.beta2_decay) as f32;
        let rho = hp.lr.min(1.0 / t.sqrt());
        let rms_w = f64::from(norm(&h.w)) / (n as f64).sqrt();
        let alpha = self.eps.1.max(rms_w) * rho;
        if hp.weight_decay != 0.0 {
            let scale = (1.0 - hp.lr * hp.weight_decay) as f32;
            h.w.iter_mut().for_each(|w| *w *= scale);
        }
        let eps1 = self.eps.0 as f32;
        let mut u = vec![0.0f32; n];
        match (factored, &mut h.bufs[..]) {
            (Some((k, r, c)), [row_var, col_var]) => {
                for m in 0..k {
                    let g = &h.g[m * r * c..(m + 1) * r * c];
                    let rows = &mut row_var[m * r..(m + 1) * r];
                    let cols = &mut col_var[m * c..(m + 1) * c];
                    for (i, rv) in rows.iter_mut().enumerate() {
                        let ss = norm(&g[i * c..(i + 1) * c]);
                        *rv = lerp(*rv, ss * ss / c as f32, b2t);
                    }
                    for (j, cv) in cols.iter_mut().enumerate() {
                        let col: f64 = (0..r)
                            .map(|i| f64::from(g[i * c + j]) * f64::from(g[i * c + j]))
                            .sum();
                        let ss = col.sqrt() as f32;
                        *cv = lerp(*cv, ss * ss / r as f32, b2t);
                    }
                    let row_mean =
                        (rows.iter().map(|&v| f64::from(v)).sum::<f64>() / r as f64) as f32;
                    let row_mean = row_mean.max(eps1);
                    let base = m * r * c;
                    for (i, &rv) in rows.iter().enumerate() {
                        for (j, &cv) in cols.iter().enumerate() {
                            let var = rv * cv / row_mean;
                            let idx = base + i * c + j;
                            u[idx] = 1.0 / var.max(eps1 * eps1).sqrt() * h.g[idx];
                        }
                    }
                }
            }
            (None, [variance]) => {
                for ((u, v), &g) in u.iter_mut().zip(variance.iter_mut()).zip(&h.g) {
                    *v = lerp(*v, g * g, b2t);
                    *u = 1.0 / v.max(eps1 * eps1).sqrt() * g;
                }
            }
            (_, other) => return Err(layout_error("adafactor", other.len())),
        }
        let rms_u = f64::from(norm(&u)) / ((n as f64).sqrt() * self.d);
        let step = (-alpha / rms_u.max(1.0)) as f32;
        h.w.iter_mut().zip(&u).for_each(|(w, &u)| *w += u * step);
        h.upload(backend, ctx)
    }
}
