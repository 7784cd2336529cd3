//! Regularizers that act on parameters and gradients outside the update
//! rule: L1 and L2 penalties, decoupled weight decay, and gradient clipping.
//!
//! Conventions (all on the device, through `ElementwiseOps`):
//! - **L1**: penalty `lambda * sum |w|`, added to the reported loss by the
//!   caller; gradient `lambda * sign(w)` (sign(0) = 0) added to `grad`.
//! - **L2**: penalty `0.5 * lambda * sum w^2`; gradient `lambda * w`. With
//!   this convention `l2 = lambda` is exactly PyTorch's `weight_decay =
//!   lambda` on SGD (the optimizers' own `weight_decay` is the same thing
//!   without the reported penalty).
//! - **Decoupled weight decay**: `w *= 1 - lr * wd` (AdamW's rule, for any
//!   optimizer), applied before or after the step, not through the gradient.
//! - **Clipping by norm**: `torch.nn.utils.clip_grad_norm_` (2-norm over all
//!   gradients together; scale by `max_norm / (total + 1e-6)` when that is
//!   below 1; returns the total norm before clipping).
//! - **Clipping by value**: `torch.nn.utils.clip_grad_value_` (clamp to
//!   `[-clip, clip]`).
//!
//! Call order in a training step: backward, [`Regularizer::add_gradients`],
//! [`clip_grad_norm`], optimizer step.

use cnn_core::{Backend, Graph, Param};
use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result, check};

/// Which parameters the penalties of a [`Regularizer`] touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PenaltyScope {
    /// Only parameters whose kind decays by default (conv and linear
    /// weights; not biases or normalisation parameters). The default.
    #[default]
    Weights,
    /// Every parameter.
    All,
}

/// L1 and L2 penalties applied through the gradient, with the penalty value
/// for the reported loss.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Regularizer {
    /// L1 strength (`lambda * sum |w|`).
    pub l1: f64,
    /// L2 strength (`0.5 * lambda * sum w^2`).
    pub l2: f64,
    /// Which parameters are penalised.
    pub scope: PenaltyScope,
}

impl Regularizer {
    /// L1 `l1` and L2 `l2` on weights only; both must be finite and >= 0.
    pub fn new(l1: f64, l2: f64) -> Result<Self> {
        let r = Regularizer {
            l1,
            l2,
            scope: PenaltyScope::Weights,
        };
        r.validate()?;
        Ok(r)
    }

    /// Check both strengths.
    pub fn validate(&self) -> Result<()> {
        check::non_negative("l1", self.l1)?;
        check::non_negative("l2", self.l2)
    }

    /// Whether it does anything.
    pub fn is_active(&self) -> bool {
        self.l1 != 0.0 || self.l2 != 0.0
    }

    fn applies_to<B: Backend>(&self, p: &Param<B>) -> bool {
        match self.scope {
            PenaltyScope::Weights => p.kind.decays_by_default(),
            PenaltyScope::All => true,
        }
    }

    /// `l1 * sum |w| + 0.5 * l2 * sum w^2` over the parameters in scope, to
    /// add to the reported loss.
    pub fn penalty<'a, B: Backend>(
        &self,
        backend: &B,
        params: impl IntoIterator<Item = &'a Param<B>>,
    ) -> Result<f64> {
        let mut total = 0.0;
        for p in params.into_iter().filter(|p| self.applies_to(p)) {
            if self.l1 != 0.0 {
                total += self.l1 * backend.sum_abs(p.value.buffer())?;
            }
            if self.l2 != 0.0 {
                total += 0.5 * self.l2 * backend.sum_squares(p.value.buffer())?;
            }
        }
        Ok(total)
    }

    /// `grad += l1 * sign(w) + l2 * w` for the parameters in scope.
    pub fn add_gradients<B: Backend>(
        &self,
        backend: &B,
        params: &mut [&mut Param<B>],
    ) -> Result<()> {
        self.add_gradients_each(backend, params.iter_mut().map(|p| &mut **p))
    }

    /// [`Regularizer::add_gradients`] for every parameter of `graph`,
    /// without collecting them (a training step allocates nothing).
    pub fn add_gradients_graph<B: Backend>(&self, backend: &B, graph: &mut Graph<B>) -> Result<()> {
        self.add_gradients_each(backend, graph.params_iter_mut())
    }

    fn add_gradients_each<'a, B: Backend>(
        &self,
        backend: &B,
        params: impl Iterator<Item = &'a mut Param<B>>,
    ) -> Result<()> {
        for p in params {
            if !self.applies_to(p) {
                continue;
            }
            let Param { value, grad, .. } = p;
            if self.l1 != 0.0 {
                backend.add_sign(self.l1 as f32, value.buffer(), grad.buffer_mut())?;
            }
            if self.l2 != 0.0 {
                backend.axpy(self.l2 as f32, value.buffer(), grad.buffer_mut())?;
            }
        }
        Ok(())
    }
}

/// `lambda * sum |w|` over `params`.
pub fn l1_penalty<'a, B: Backend>(
    backend: &B,
    params: impl IntoIterator<Item = &'a Param<B>>,
    lambda: f64,
) -> Result<f64> {
    let mut total = 0.0;
    for p in params {
        total += backend.sum_abs(p.value.buffer())?;
    }
    Ok(lambda * total)
}

/// `grad += lambda * sign(w)` for every parameter (the L1 subgradient).
pub fn add_l1_grad<B: Backend>(
    backend: &B,
    params: &mut [&mut Param<B>],
    lambda: f64,
) -> Result<()> {
    check::non_negative("l1", lambda)?;
    for p in params.iter_mut() {
        let Param { value, grad, .. } = &mut **p;
        backend.add_sign(lambda as f32, value.buffer(), grad.buffer_mut())?;
    }
    Ok(())
}

/// `0.5 * lambda * sum w^2` over `params`.
pub fn l2_penalty<'a, B: Backend>(
    backend: &B,
    params: impl IntoIterator<Item = &'a Param<B>>,
    lambda: f64,
) -> Result<f64> {
    let mut total = 0.0;
    for p in params {
        total += backend.sum_squares(p.value.buffer())?;
    }
    Ok(0.5 * lambda * total)
}

/// `grad += lambda * w` for every parameter (the gradient of
/// [`l2_penalty`]).
pub fn add_l2_grad<B: Backend>(
    backend: &B,
    params: &mut [&mut Param<B>],
    lambda: f64,
) -> Result<()> {
    check::non_negative("l2", lambda)?;
    for p in params.iter_mut() {
        let Param { value, grad, .. } = &mut **p;
        backend.axpy(lambda as f32, value.buffer(), grad.buffer_mut())?;
    }
    Ok(())
}

/// Decoupled weight decay for any optimizer: `w *= 1 - lr * wd` for every
/// parameter (filter biases and norm parameters out beforehand if they
/// should not decay).
pub fn decoupled_weight_decay<B: Backend>(
    backend: &B,
    params: &mut [&mut Param<B>],
    lr: f64,
    wd: f64,
) -> Result<()> {
    check::lr("lr", lr)?;
    check::non_negative("weight_decay", wd)?;
    if wd == 0.0 || lr == 0.0 {
        return Ok(());
    }
    let factor = (1.0 - lr * wd) as f32;
    for p in params.iter_mut() {
        backend.scale(factor, p.value.buffer_mut())?;
    }
    Ok(())
}

/// The 2-norm of all gradients together, `sqrt(sum over params of sum g^2)`.
pub fn grad_norm<'a, B: Backend>(
    backend: &B,
    params: impl IntoIterator<Item = &'a Param<B>>,
) -> Result<f64> {
    let mut sum = 0.0;
    for p in params {
        sum += backend.sum_squares(p.grad.buffer())?;
    }
    Ok(sum.sqrt())
}

/// `torch.nn.utils.clip_grad_norm_`: the total 2-norm of all gradients;
/// when `max_norm / (total + 1e-6) < 1` every gradient is multiplied by that
/// coefficient. Returns the total norm before clipping (non-finite when a
/// gradient is; the gradients are then left as they are, so the caller can
/// skip the step).
pub fn clip_grad_norm<B: Backend>(
    backend: &B,
    params: &mut [&mut Param<B>],
    max_norm: f64,
) -> Result<f64> {
    check_max_norm(max_norm)?;
    let total = grad_norm(backend, params.iter().map(|p| &**p))?;
    scale_for_norm(
        backend,
        params.iter_mut().map(|p| &mut **p),
        total,
        max_norm,
    )?;
    Ok(total)
}

/// [`clip_grad_norm`] over every parameter of `graph`, without collecting
/// them (a training step allocates nothing).
pub fn clip_grad_norm_graph<B: Backend>(
    backend: &B,
    graph: &mut Graph<B>,
    max_norm: f64,
) -> Result<f64> {
    check_max_norm(max_norm)?;
    let total = grad_norm(backend, graph.params_iter())?;
    scale_for_norm(backend, graph.params_iter_mut(), total, max_norm)?;
    Ok(total)
}

/// The scaling step of [`clip_grad_norm`]: gradients times `max_norm /
/// (total + 1e-6)` when that is below 1.
fn scale_for_norm<'a, B: Backend>(
    backend: &B,
    params: impl Iterator<Item = &'a mut Param<B>>,
    total: f64,
    max_norm: f64,
) -> Result<()> {
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        for p in params {
            backend.scale(coef as f32, p.grad.buffer_mut())?;
        }
    }
    Ok(())
}

fn check_max_norm(max_norm: f64) -> Result<()> {
    if !(max_norm.is_finite() && max_norm >= 0.0) {
        return Err(OptimError::hyper(
            "max_norm",
            max_norm,
            "must be a finite number >= 0",
        ));
    }
    Ok(())
}

/// `torch.nn.utils.clip_grad_value_`: clamp every gradient element to
/// `[-clip, clip]`.
pub fn clip_grad_value<B: Backend>(
    backend: &B,
    params: &mut [&mut Param<B>],
    clip: f64,
) -> Result<()> {
    clamp_each(backend, params.iter_mut().map(|p| &mut **p), clip)
}

/// [`clip_grad_value`] over every parameter of `graph`, without collecting
/// them (a training step allocates nothing).
pub fn clip_grad_value_graph<B: Backend>(
    backend: &B,
    graph: &mut Graph<B>,
    clip: f64,
) -> Result<()> {
    clamp_each(backend, graph.params_iter_mut(), clip)
}

fn clamp_each<'a, B: Backend>(
    backend: &B,
    params: impl Iterator<Item = &'a mut Param<B>>,
    clip: f64,
) -> Result<()> {
    if !(clip.is_finite() && clip >= 0.0) {
        return Err(OptimError::hyper(
            "clip_value",
            clip,
            "must be a finite number >= 0",
        ));
    }
    let c = clip as f32;
    for p in params {
        backend.clamp(-c, c, p.grad.buffer_mut())?;
    }
    Ok(())
}
