//! Stochastic gradient descent with momentum (`torch.optim.SGD`).

use cnn_core::{Backend, SgdStep};
use serde::{Deserialize, Serialize};

use super::{GroupHyper, Rule, Slot, StepCtx, layout_error};
use crate::error::{OptimError, Result, check};

/// `torch.optim.SGD`. Per element, with `g` the gradient:
///
/// ```text
/// g = g + weight_decay * w                          (if weight_decay != 0)
/// b = g                                             (first step)
/// b = momentum * b + (1 - dampening) * g            (later steps)
/// d = g + momentum * b   if nesterov,   b   otherwise   (d = g when momentum = 0)
/// w = w - lr * d
/// ```
///
/// State: `momentum_buffer` (only when `momentum != 0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    /// Learning rate (PyTorch default 1e-3).
    pub lr: f64,
    /// Momentum factor, >= 0 (default 0).
    pub momentum: f64,
    /// Dampening of the momentum, in [0, 1] (default 0).
    pub dampening: f64,
    /// Coupled L2 penalty added to the gradient (default 0).
    pub weight_decay: f64,
    /// Nesterov momentum; needs `momentum > 0` and `dampening == 0`.
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

impl Rule for SgdConfig {
    fn validate(&self) -> Result<()> {
        check::lr("lr", self.lr)?;
        check::non_negative("momentum", self.momentum)?;
        check::unit_closed("dampening", self.dampening)?;
        check::non_negative("weight_decay", self.weight_decay)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(OptimError::InvalidCombination(format!(
                "nesterov momentum requires momentum > 0 and dampening = 0 (momentum {}, dampening {})",
                self.momentum, self.dampening
            )));
        }
        Ok(())
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn slots(&self, _shape: &[usize]) -> Vec<Slot> {
        if self.momentum != 0.0 {
            vec![Slot::zeros("momentum_buffer")]
        } else {
            Vec::new()
        }
    }

    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()> {
        let step = SgdStep {
            lr: hp.lr as f32,
            momentum: self.momentum as f32,
            dampening: self.dampening as f32,
            weight_decay: hp.weight_decay as f32,
            nesterov: self.nesterov,
            first_step: ctx.t == 1,
        };
        let buf = match ctx.bufs {
            [] => None,
            [b] => Some(b),
            other => return Err(layout_error("sgd", other.len())),
        };
        backend.sgd_update(&step, ctx.w, ctx.g, buf)?;
        Ok(())
    }
}
