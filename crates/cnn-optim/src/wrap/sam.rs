//! SAM, sharpness-aware minimization (Foret et al. 2021; reference:
//! `pytorch_optimizer.SAM`, the rule of davda54/sam, non-adaptive).
//!
//! Two gradients per step: with `g` the gradient at the weights `w`,
//!
//! ```text
//! e = rho / (||g|| + 1e-12) * g       (||g||: the norm over all parameters)
//! w_backup = w;  w = w + e            (first step: perturb)
//! g' = the gradient at w + e          (the caller's second forward-backward)
//! w = w_backup;  inner step with g'   (second step)
//! ```
//!
//! The adaptive variant (ASAM, `e ~ w^2 g`) is not offered: it needs
//! per-element products that no backend op provides.

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
}

impl Default for SamConfig {
    fn default() -> Self {
        SamConfig { rho: 0.05 }
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
    /// the gradients of every parameter.
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
            sum += backend.sum_squares(p.grad.buffer())?;
        }
        Ok(self.config.rho / (sum.sqrt() + SAM_EPS))
    }

    /// The first step, part two: save each parameter's weights and move
    /// them by `scale g`.
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
            backend.axpy(scale as f32, grad.buffer(), value.buffer_mut())?;
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
