//! `OptimError`: what can go wrong building or running an optimizer,
//! a schedule or a regularizer.

use cnn_core::CnnError;

/// Result alias of this crate.
pub type Result<T, E = OptimError> = std::result::Result<T, E>;

/// The names [`crate::OptimizerConfig::from_name`] accepts.
pub const OPTIMIZER_NAMES: &str = "sgd, adam, adamw, rmsprop, adagrad, adadelta, nadam, radam, \
     adamax, asgd, rprop, adafactor, muon, lion, lamb, lars, schedule_free_adamw, schedule_free_sgd";

/// The names [`crate::ScheduleConfig::from_name`] accepts.
pub const SCHEDULE_NAMES: &str = "constant, step, multistep, exponential, cosine, cosine_warm_restarts, \
     linear, polynomial, one_cycle, cyclic, sequential, reduce_on_plateau";

/// Everything this crate reports. Construction errors (bad hyperparameters,
/// unknown names) are raised when a config is built, never mid-training.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum OptimError {
    /// A hyperparameter outside its domain, e.g. `lr` = -0.1.
    #[error("invalid value for `{name}` = {value}: {reason}")]
    InvalidHyperparameter {
        name: String,
        value: String,
        reason: String,
    },
    /// Hyperparameters that are fine alone but not together.
    #[error("invalid combination: {0}")]
    InvalidCombination(String),
    /// An optimizer name that is not one of [`OPTIMIZER_NAMES`].
    #[error("unknown optimizer `{0}`; expected one of: {OPTIMIZER_NAMES}")]
    UnknownOptimizer(String),
    /// A schedule name that is not one of [`SCHEDULE_NAMES`].
    #[error("unknown schedule `{0}`; expected one of: {SCHEDULE_NAMES}")]
    UnknownSchedule(String),
    /// A config that does not deserialize (unknown key, wrong type).
    #[error("invalid {what} config: {message}")]
    Config { what: &'static str, message: String },
    /// Exported state that does not fit the optimizer or schedule it is
    /// imported into.
    #[error("cannot import state: {0}")]
    State(String),
    /// A backend or tensor error.
    #[error(transparent)]
    Core(#[from] CnnError),
}

impl OptimError {
    /// Shorthand for [`OptimError::InvalidHyperparameter`].
    pub fn hyper(
        name: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        OptimError::InvalidHyperparameter {
            name: name.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Checks shared by the configs. Each returns the typed error naming the key.
pub(crate) mod check {
    use super::{OptimError, Result};

    /// A learning rate: finite and >= 0 (NaN is rejected).
    pub fn lr(name: &str, v: f64) -> Result<()> {
        if v.is_finite() && v >= 0.0 {
            Ok(())
        } else {
            Err(OptimError::hyper(name, v, "must be a finite number >= 0"))
        }
    }

    /// A finite number >= 0 (weight decay, momentum, lr_decay, ...).
    pub fn non_negative(name: &str, v: f64) -> Result<()> {
        if v.is_finite() && v >= 0.0 {
            Ok(())
        } else {
            Err(OptimError::hyper(name, v, "must be a finite number >= 0"))
        }
    }

    /// A finite number > 0 (eps, factors).
    pub fn positive(name: &str, v: f64) -> Result<()> {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(OptimError::hyper(name, v, "must be a finite number > 0"))
        }
    }

    /// A beta or decay rate in [0, 1).
    pub fn unit_open(name: &str, v: f64) -> Result<()> {
        if (0.0..1.0).contains(&v) {
            Ok(())
        } else {
            Err(OptimError::hyper(name, v, "must be in [0, 1)"))
        }
    }

    /// A rate in [0, 1] (dampening, RMSprop's alpha, Adadelta's rho).
    pub fn unit_closed(name: &str, v: f64) -> Result<()> {
        if (0.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(OptimError::hyper(name, v, "must be in [0, 1]"))
        }
    }
}
