//! Resilient backpropagation (`torch.optim.Rprop`, Riedmiller and Braun
//! 1993): per-element step sizes adapted by the sign of the gradient.

use cnn_core::{Backend, RpropStep};
use serde::{Deserialize, Serialize};

use super::{GroupHyper, Rule, Slot, StepCtx, layout_error};
use crate::error::{OptimError, Result, check};

/// `torch.optim.Rprop`. Per element; `step_size` starts at the parameter
/// group's rate on the first step, `prev` at 0:
///
/// ```text
/// f = etaplus if g * prev > 0, etaminus if < 0, else 1
/// step_size = clamp(step_size * f, step_sizes.0, step_sizes.1)
/// g = 0 where f == etaminus
/// w = w - sign(g) * step_size
/// prev = g
/// ```
///
/// The rate matters only at the first step; Rprop has no weight decay.
/// State: `prev`, `step_size`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpropConfig {
    /// The initial step size (default 1e-2).
    pub lr: f64,
    /// `(etaminus, etaplus)`, `0 < etaminus < 1 < etaplus` (default (0.5, 1.2)).
    pub etas: (f64, f64),
    /// `(min, max)` step size (default (1e-6, 50)).
    pub step_sizes: (f64, f64),
}

impl Default for RpropConfig {
    fn default() -> Self {
        RpropConfig {
            lr: 1e-2,
            etas: (0.5, 1.2),
            step_sizes: (1e-6, 50.0),
        }
    }
}

impl Rule for RpropConfig {
    fn validate(&self) -> Result<()> {
        check::lr("lr", self.lr)?;
        let (minus, plus) = self.etas;
        if !(0.0 < minus && minus < 1.0 && 1.0 < plus && plus.is_finite()) {
            return Err(OptimError::hyper(
                "etas",
                format!("({minus}, {plus})"),
                "must be 0 < etaminus < 1 < etaplus",
            ));
        }
        check::non_negative("step_sizes[0]", self.step_sizes.0)?;
        if self.step_sizes.1.is_nan() || self.step_sizes.1 < self.step_sizes.0 {
            return Err(OptimError::hyper(
                "step_sizes",
                format!("({}, {})", self.step_sizes.0, self.step_sizes.1),
                "must be min <= max",
            ));
        }
        Ok(())
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    /// Rprop has no weight decay.
    fn weight_decay(&self) -> f64 {
        0.0
    }

    fn slots(&self, _shape: &[usize]) -> Vec<Slot> {
        vec![Slot::zeros("prev"), Slot::zeros("step_size")]
    }

    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()> {
        let s = RpropStep {
            etaminus: self.etas.0 as f32,
            etaplus: self.etas.1 as f32,
            step_size_min: self.step_sizes.0 as f32,
            step_size_max: self.step_sizes.1 as f32,
        };
        match ctx.bufs {
            [prev, step_size] => {
                if ctx.t == 1 {
                    backend.fill(step_size, hp.lr as f32)?;
                }
                backend.rprop_update(&s, ctx.w, ctx.g, prev, step_size)?;
            }
            other => return Err(layout_error("rprop", other.len())),
        }
        Ok(())
    }
}
