//! LARS, layer-wise adaptive rate scaling (You et al. 2017), as PyPI
//! `pytorch-optimizer`'s `LARS` implements it.

use cnn_core::Backend;
use serde::{Deserialize, Serialize};

use super::host::{HostStep, norm};
use super::{GroupHyper, Rule, Slot, StepCtx, layout_error};
use crate::error::{Result, check};

/// `pytorch_optimizer.LARS` (per-parameter path). For a parameter of two
/// or more dimensions (weights; vectors and scalars skip this):
///
/// ```text
/// den   = |g| + weight_decay * |w|
/// trust = trust_coefficient * |w| / den   (1 when |w| = 0 or den = 0)
/// g     = (g + weight_decay * w) * trust
/// ```
///
/// then, for every parameter, SGD with momentum (the buffer starts at 0):
/// `buf = momentum * buf + (1 - dampening) * g`, `d = g + momentum * buf`
/// (nesterov) or `buf`, `w = w - lr * d`. Norms are per tensor, so this
/// rule runs on the host (see `host`). State: `momentum_buffer` (momentum
/// > 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LarsConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Weight decay inside the trust ratio, weights only (default 0).
    pub weight_decay: f64,
    /// Momentum in [0, 1] (default 0.9).
    pub momentum: f64,
    /// Dampening in [0, 1] (default 0).
    pub dampening: f64,
    /// The trust coefficient eta (default 1e-3).
    pub trust_coefficient: f64,
    /// Nesterov momentum (default false).
    pub nesterov: bool,
}

impl Default for LarsConfig {
    fn default() -> Self {
        LarsConfig {
            lr: 1e-3,
            weight_decay: 0.0,
            momentum: 0.9,
            dampening: 0.0,
            trust_coefficient: 1e-3,
            nesterov: false,
        }
    }
}

impl Rule for LarsConfig {
    fn validate(&self) -> Result<()> {
        check::lr("lr", self.lr)?;
        check::non_negative("weight_decay", self.weight_decay)?;
        check::unit_closed("momentum", self.momentum)?;
        check::unit_closed("dampening", self.dampening)?;
        check::non_negative("trust_coefficient", self.trust_coefficient)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn slots(&self, _shape: &[usize]) -> Vec<Slot> {
        if self.momentum > 0.0 {
            vec![Slot::zeros("momentum_buffer")]
        } else {
            Vec::new()
        }
    }

    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()> {
        let expected = usize::from(self.momentum > 0.0);
        if ctx.bufs.len() != expected {
            return Err(layout_error("lars", ctx.bufs.len()));
        }
        let mut h = HostStep::download(backend, &ctx)?;
        let wd = hp.weight_decay as f32;
        let (momentum, dampening) = (self.momentum as f32, self.dampening as f32);
        let mut d = h.g.clone();
        if ctx.shape.len() > 1 {
            let (pn, gn) = (norm(&h.w), norm(&h.g));
            let den = gn + wd * pn;
            let trust = if pn > 0.0 && den > 0.0 {
                self.trust_coefficient as f32 * pn / den
            } else {
                1.0
            };
            for (d, &w) in d.iter_mut().zip(&h.w) {
                *d = (*d + wd * w) * trust;
            }
        }
        if let Some(buf) = h.bufs.first_mut() {
            for (d, b) in d.iter_mut().zip(buf.iter_mut()) {
                *b = *b * momentum + *d * (1.0 - dampening);
                *d = if self.nesterov {
                    *d + *b * momentum
                } else {
                    *b
                };
            }
        }
        let lr = hp.lr as f32;
        for (w, d) in h.w.iter_mut().zip(&d) {
            *w += *d * -lr;
        }
        h.upload(backend, ctx)
    }
}
