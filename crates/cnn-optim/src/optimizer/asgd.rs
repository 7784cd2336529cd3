//! Averaged SGD (`torch.optim.ASGD`, Polyak and Juditsky 1992).

use cnn_core::{AsgdStep, Backend};
use serde::{Deserialize, Serialize};

use super::{GroupHyper, Rule, Slot, StepCtx, layout_error};
use crate::error::{Result, check};

/// `torch.optim.ASGD`. Per element at step `t` (from 1), with the
/// per-parameter scalars `eta` (starts at the rate) and `mu` (starts at 1)
/// that torch keeps as float32 tensors:
///
/// ```text
/// g  = g + weight_decay * w
/// w  = w * (1 - lambd * eta) - eta * g
/// ax = ax + (w - ax) * mu                (ax = w while mu == 1)
/// eta = lr / (1 + lambd * lr * t)^alpha
/// mu  = 1 / max(1, t - t0)
/// ```
///
/// State: `ax` (the running average of the weights, which torch keeps but
/// does not swap in for evaluation), scalars `eta` and `mu`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsgdConfig {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Decay term (default 1e-4).
    pub lambd: f64,
    /// Power for the eta update (default 0.75).
    pub alpha: f64,
    /// The step at which averaging starts (default 1e6).
    pub t0: f64,
    /// Coupled L2 penalty (default 0).
    pub weight_decay: f64,
}

impl Default for AsgdConfig {
    fn default() -> Self {
        AsgdConfig {
            lr: 1e-2,
            lambd: 1e-4,
            alpha: 0.75,
            t0: 1e6,
            weight_decay: 0.0,
        }
    }
}

impl Rule for AsgdConfig {
    fn validate(&self) -> Result<()> {
        check::lr("lr", self.lr)?;
        check::non_negative("lambd", self.lambd)?;
        check::non_negative("alpha", self.alpha)?;
        check::non_negative("t0", self.t0)?;
        check::non_negative("weight_decay", self.weight_decay)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn slots(&self, _shape: &[usize]) -> Vec<Slot> {
        vec![Slot::zeros("ax")]
    }

    fn scalars(&self) -> Vec<(&'static str, f64)> {
        // eta starts at the parameter group's rate, set at the first step.
        vec![("eta", self.lr), ("mu", 1.0)]
    }

    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()> {
        let [eta_state, mu_state] = ctx.scalars else {
            return Err(layout_error("asgd scalars", ctx.scalars.len()));
        };
        let (eta, mu) = if ctx.t == 1 {
            (f64::from(hp.lr as f32), 1.0)
        } else {
            (*eta_state, *mu_state)
        };
        let s = AsgdStep {
            eta: eta as f32,
            decay: (1.0 - self.lambd * eta) as f32,
            mu: mu as f32,
            weight_decay: hp.weight_decay as f32,
        };
        match ctx.bufs {
            [ax] => backend.asgd_update(&s, ctx.w, ctx.g, ax)?,
            other => return Err(layout_error("asgd", other.len())),
        }
        let t = ctx.t as f64;
        // Stored as torch stores them: float32.
        *eta_state = f64::from((hp.lr / (1.0 + self.lambd * hp.lr * t).powf(self.alpha)) as f32);
        *mu_state = f64::from((1.0 / (t - self.t0).max(1.0)) as f32);
        Ok(())
    }
}
