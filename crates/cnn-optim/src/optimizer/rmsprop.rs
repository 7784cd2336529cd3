//! RMSprop, optionally centered and with momentum (`torch.optim.RMSprop`).

use cnn_core::{Backend, RmspropStep};
use serde::{Deserialize, Serialize};

use super::{GroupHyper, Rule, Slot, StepCtx, layout_error};
use crate::error::{Result, check};

/// `torch.optim.RMSprop`. Per element:
///
/// ```text
/// g = g + weight_decay * w                        (if weight_decay != 0)
/// s = alpha * s + (1 - alpha) * g^2
/// a = alpha * a + (1 - alpha) * g                 (centered)
/// avg = sqrt(s - a^2) + eps   if centered,   sqrt(s) + eps   otherwise
/// b = momentum * b + g / avg;  w = w - lr * b     (momentum > 0)
/// w = w - lr * g / avg                            (momentum = 0)
/// ```
///
/// State: `square_avg`, `momentum_buffer` (momentum > 0), `grad_avg` (centered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RmspropConfig {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Smoothing constant, in [0, 1] (default 0.99).
    pub alpha: f64,
    /// Added to the denominator, > 0 (default 1e-8).
    pub eps: f64,
    /// Coupled L2 penalty added to the gradient (default 0).
    pub weight_decay: f64,
    /// Momentum factor, >= 0 (default 0).
    pub momentum: f64,
    /// Normalise by the estimated variance instead of the second moment.
    pub centered: bool,
}

impl Default for RmspropConfig {
    fn default() -> Self {
        RmspropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }
}

impl Rule for RmspropConfig {
    fn validate(&self) -> Result<()> {
        check::lr("lr", self.lr)?;
        check::unit_closed("alpha", self.alpha)?;
        check::positive("eps", self.eps)?;
        check::non_negative("weight_decay", self.weight_decay)?;
        check::non_negative("momentum", self.momentum)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn slots(&self, _shape: &[usize]) -> Vec<Slot> {
        let mut slots = vec![Slot::zeros("square_avg")];
        if self.momentum > 0.0 {
            slots.push(Slot::zeros("momentum_buffer"));
        }
        if self.centered {
            slots.push(Slot::zeros("grad_avg"));
        }
        slots
    }

    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()> {
        let s = RmspropStep {
            lr: hp.lr as f32,
            alpha: self.alpha as f32,
            eps: self.eps as f32,
            weight_decay: hp.weight_decay as f32,
            momentum: self.momentum as f32,
            centered: self.centered,
        };
        let with_momentum = self.momentum > 0.0;
        let (sq, mom, avg) = match (ctx.bufs, with_momentum, self.centered) {
            ([sq], false, false) => (sq, None, None),
            ([sq, mom], true, false) => (sq, Some(mom), None),
            ([sq, avg], false, true) => (sq, None, Some(avg)),
            ([sq, mom, avg], true, true) => (sq, Some(mom), Some(avg)),
            (other, _, _) => return Err(layout_error("rmsprop", other.len())),
        };
        backend.rmsprop_update(&s, ctx.w, ctx.g, sq, mom, avg)?;
        Ok(())
    }
}
