//! SAM, sharpness-aware minimization (Foret et al. 2021; reference:
//! `pytorch_optimizer.SAM`, the rule of davda54/sam), and its adaptive
//! variant ASAM (Kwon et al. 2021; davda54/sam's `adaptive=True`).
//!
//! Two gradients per step: with `g` the gradient at the weights `w`,
//!
//! ```text
//! SAM:  e = rho / (||g|| + 1e-12) * g             (||.||: over all parameters)
//! ASAM: e = rho / (||w g|| + 1e-12) * w^2 g       (w g, w^2 g: per element)
//! w_backup = w;  w = w + e            (first step: perturb)
//! g' = the gradient at w + e          (the caller's second forward-backward)
//! w = w_backup;  inner step with g'   (second step)
//! ```
//!
//! SAM is composed from backend ops (`sum_squares`, `copy`, `axpy`). ASAM
//! needs per-element products of two buffers, which no backend op
//! provides: its norm and perturbation are computed on the host (download
//! `w` and `g`, f32 products in the reference's order, upload `w + e`), as
//! the host optimizers (Adafactor, Muon, LAMB, LARS) update, once per step
//! and parameter.

use std::collections::HashMap;

use cnn_core::{Backend, Param};
use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result, check};

/// The reference's `perturb_eps`.
pub const SAM_EPS: f64 = 1e-12;

/// SAM's hyperparameters, the reference's names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamConfig {
    /// Radius of the perturbation, >= 0 (default 0.05).
    pub rho: f64,
    /// ASAM: the perturbation scaled per element by `|w|` (default false;
    /// not written when false, so configurations without it keep their
    /// text).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub adaptive: bool,
}

impl Default for SamConfig {
    fn default() -> Self {
        SamConfig {
            rho: 0.05,
            adaptive: false,
        }
    }
}

impl SamConfig {
    /// Check `rho`.
    pub fn validate(&self) -> Result<()> {
        check::non_negative("rho", self.rho)
    }
}

/// The weights saved before the perturbation (reused from step to step).
pub struct Sam<B: Backend> {
    config: SamConfig,
    backup: HashMap<String, B::Buffer>,
    perturbed: bool,
}

impl<B: Backend> std::fmt::Debug for Sam<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sam")
            .field("config", &self.config)
            .field("perturbed", &self.perturbed)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Sam<B> {
    /// Validate `config`.
    pub fn new(config: SamConfig) -> Result<Self> {
        config.validate()?;
        Ok(Sam {
            config,
            backup: HashMap::new(),
            perturbed: false,
        })
    }

    pub fn config(&self) -> &SamConfig {
        &self.config
    }

    /// Whether the weights are perturbed now (between the two passes).
    pub fn is_perturbed(&self) -> bool {
        self.perturbed
    }

    /// The first step, part one: the scale `rho / (||g|| + 1e-12)` from
    /// the gradients of every parameter (ASAM: `||w g||`).
    pub(crate) fn scale<'a>(
        &self,
        backend: &B,
        params: impl Iterator<Item = &'a Param<B>>,
    ) -> Result<f64>
    where
        B: 'a,
    {
        if self.perturbed {
            return Err(OptimError::InvalidCombination(
                "SAM: the weights are already perturbed (two first steps without a step)".into(),
            ));
        }
        let mut sum = 0.0;
        for p in params {
            sum += if self.config.adaptive {
                let w = backend.download(p.value.buffer())?;
                let g = backend.download(p.grad.buffer())?;
                adaptive_sum_squares(&w, &g)
            } else {
                backend.sum_squares(p.grad.buffer())?
            };
        }
        Ok(self.config.rho / (sum.sqrt() + SAM_EPS))
    }

    /// The first step, part two: save each parameter's weights and move
    /// them by `scale g` (ASAM: `scale w^2 g`).
    pub(crate) fn perturb<'a>(
        &mut self,
        backend: &B,
        scale: f64,
        params: impl Iterator<Item = &'a mut Param<B>>,
    ) -> Result<()>
    where
        B: 'a,
    {
        for p in params {
            let n = p.numel();
            let backup = match self.backup.get_mut(&p.name) {
                Some(b) if backend.buffer_len(b) == n => b,
                _ => {
                    self.backup.insert(p.name.clone(), backend.alloc_zeros(n)?);
                    self.backup.get_mut(&p.name).expect("inserted above")
                }
            };
            backend.copy(p.value.buffer(), backup)?;
            let Param { value, grad, .. } = p;
            if self.config.adaptive {
                let mut w = backend.download(value.buffer())?;
                let g = backend.download(grad.buffer())?;
                adaptive_perturb(&mut w, &g, scale as f32);
                backend.upload_into(&w, value.buffer_mut())?;
            } else {
                backend.axpy(scale as f32, grad.buffer(), value.buffer_mut())?;
            }
        }
        self.perturbed = true;
        Ok(())
    }

    /// Before the inner update of a parameter: its weights back from the
    /// perturbation, when the step follows one.
    pub(crate) fn restore(&self, backend: &B, name: &str, w: &mut B::Buffer) -> Result<()> {
        if !self.perturbed {
            return Ok(());
        }
        let b = self
            .backup
            .get(name)
            .ok_or_else(|| OptimError::State(format!("SAM: `{name}` was not perturbed")))?;
        backend.copy(b, w)?;
        Ok(())
    }

    /// After the whole step.
    pub(crate) fn end_step(&mut self) {
        self.perturbed = false;
    }
}

/// ASAM's squared norm of one parameter: `sum (|w| g)^2`, each product in
/// f32 as the reference's tensors hold it, summed in f64 as the backends'
/// `sum_squares` sums.
fn adaptive_sum_squares(w: &[f32], g: &[f32]) -> f64 {
    w.iter()
        .zip(g)
        .map(|(&w, &g)| {
            let x = (w.abs() * g) as f64;
            x * x
        })
        .sum()
}

/// ASAM's perturbation: `w += (w^2 g) scale`, in the reference's order
/// (`torch.pow(p, 2) * grad * scale`).
fn adaptive_perturb(w: &mut [f32], g: &[f32], scale: f32) {
    for (w, &g) in w.iter_mut().zip(g) {
        *w += (*w * *w * g) * scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_norm_and_perturbation_by_hand() {
        let w = [2.0f32, -1.0, 0.0];
        let g = [0.5f32, 3.0, 7.0];
        // (2 * 0.5)^2 + (1 * 3)^2 + 0 = 10
        assert_eq!(adaptive_sum_squares(&w, &g), 10.0);
        let mut x = w;
        adaptive_perturb(&mut x, &g, 0.1);
        // 2 + 4 * 0.5 * 0.1, -1 + 1 * 3 * 0.1, 0 (no move where w = 0)
        assert_eq!(x, [2.2, -0.7, 0.0]);
    }
}
