//! The update rules, one file each, the private `Rule` trait they share,
//! and the [`Optimizer`] that drives them (`driver.rs`).
//!
//! Most rules are per-element and run as one fused backend op. Adafactor,
//! Muon, LAMB and LARS need per-tensor norms, row and column means or
//! matrix products between per-element passes: they update on the host
//! (`host.rs`; Muon's iteration in `newton_schulz.rs`).
//!
//! Every rule keeps its hyperparameters in a serde config struct named after
//! the PyTorch class (`SgdConfig` for `torch.optim.SGD`) with PyTorch's
//! argument names and defaults. Per step the host computes only scalars
//! (rate, bias corrections, NAdam's momentum products, RAdam's
//! rectification) and hands them to the fused backend op
//! ([`cnn_core::OptimOps`]), which updates the parameter and the state
//! buffers in place: parameters never travel through the host.

mod adadelta;
mod adafactor;
mod adagrad;
mod adam;
mod adamax;
mod adamw;
mod asgd;
mod driver;
mod host;
mod lamb;
mod lars;
mod lion;
mod muon;
mod nadam;
mod newton_schulz;
mod radam;
mod rmsprop;
mod rprop;
mod schedule_free;
mod sgd;

pub use adadelta::AdadeltaConfig;
pub use adafactor::AdafactorConfig;
pub use adagrad::AdagradConfig;
pub use adam::AdamConfig;
pub use adamax::AdamaxConfig;
pub use adamw::AdamWConfig;
pub use asgd::AsgdConfig;
pub use driver::Optimizer;
pub use lamb::LambConfig;
pub use lars::LarsConfig;
pub use lion::LionConfig;
pub use muon::MuonConfig;
pub use nadam::NadamConfig;
pub use radam::RadamConfig;
pub use rmsprop::RmspropConfig;
pub use rprop::RpropConfig;
pub use schedule_free::{ScheduleFreeAdamWConfig, ScheduleFreeSgdConfig};
pub use sgd::SgdConfig;

use cnn_core::Backend;

use crate::error::Result;

/// A state buffer a rule keeps per parameter (PyTorch's state key), the
/// value it starts from and its length (`None`: the parameter's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Slot {
    pub name: &'static str,
    pub init: f32,
    pub len: Option<usize>,
}

impl Slot {
    pub(crate) const fn zeros(name: &'static str) -> Self {
        Slot {
            name,
            init: 0.0,
            len: None,
        }
    }

    /// A zero buffer of `len` elements (Adafactor's row and column factors).
    pub(crate) const fn zeros_len(name: &'static str, len: usize) -> Self {
        Slot {
            name,
            init: 0.0,
            len: Some(len),
        }
    }
}

/// The rate and weight decay of the parameter group a parameter is in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct GroupHyper {
    pub lr: f64,
    pub weight_decay: f64,
}

/// What a rule sees of one parameter for one step.
pub(crate) struct StepCtx<'a, B: Backend> {
    /// The step number this update makes, from 1 (PyTorch's `state["step"]`
    /// after its increment).
    pub t: u64,
    /// The buffers named by [`Rule::slots`], in that order.
    pub bufs: &'a mut [B::Buffer],
    /// The host scalars named by [`Rule::scalars`]; a rule writes them only
    /// once its backend op has succeeded.
    pub scalars: &'a mut [f64],
    pub w: &'a mut B::Buffer,
    pub g: &'a B::Buffer,
    /// The parameter's shape (PyTorch's: `(out, in, kh, kw)` for a
    /// convolution weight).
    pub shape: &'a [usize],
}

/// One update rule: its validation, its state layout and its step.
pub(crate) trait Rule {
    /// Check every hyperparameter; the typed error names the bad one.
    fn validate(&self) -> Result<()>;
    /// The learning rate of the default group.
    fn lr(&self) -> f64;
    /// The weight decay of the default group.
    fn weight_decay(&self) -> f64;
    /// The per-parameter state buffers this configuration needs for a
    /// parameter of `shape`.
    fn slots(&self, shape: &[usize]) -> Vec<Slot>;
    /// Every set of slot names a parameter's state may have, in slot order
    /// (one for rules whose state does not depend on the shape).
    fn layouts(&self) -> Vec<Vec<&'static str>> {
        vec![self.slots(&[]).iter().map(|s| s.name).collect()]
    }
    /// The per-parameter host scalars (name, initial value).
    fn scalars(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    /// Apply one step to one parameter.
    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()>;
    /// The state buffer holding the point evaluation uses instead of the
    /// parameter (schedule-free's average `x`), if the rule has one.
    fn eval_slot(&self) -> Option<usize> {
        None
    }
    /// Recompute the parameter's training point from its state into `w`
    /// (schedule-free's `y` from `x` and `z`), as the last step left it.
    fn restore_train_point<B: Backend>(
        &self,
        _backend: &B,
        _bufs: &[B::Buffer],
        _w: &mut B::Buffer,
    ) -> Result<()> {
        Ok(())
    }
}

/// `1 - beta^t` in f64, the Adam-family bias correction.
pub(crate) fn bias_correction(beta: f64, t: u64) -> f64 {
    1.0 - beta.powf(t as f64)
}

/// Check the Adam-family `betas` and `eps`.
pub(crate) fn check_betas_eps(betas: (f64, f64), eps: f64) -> Result<()> {
    crate::error::check::unit_open("betas[0]", betas.0)?;
    crate::error::check::unit_open("betas[1]", betas.1)?;
    crate::error::check::positive("eps", eps)
}

/// The error for a state layout that does not match the configuration.
pub(crate) fn layout_error(rule: &str, found: usize) -> crate::OptimError {
    crate::OptimError::State(format!(
        "{rule}: unexpected number of state buffers ({found})"
    ))
}
