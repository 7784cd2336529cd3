//! # cnn-optim
//!
//! Optimizers, learning-rate schedules and regularizers for the `cnn`
//! framework, matching `torch.optim` step for step (checked against
//! PyTorch's trajectories in `testdata/golden/{optim,schedules}.json`).
//!
//! Where things live:
//! - [`config`]: [`OptimizerConfig`], the serde enum (tag `kind`) that names
//!   an optimizer and its hyperparameters (PyTorch's names and defaults);
//!   parsed from a name or JSON, validated into typed errors.
//! - [`optimizer`]: one file per update rule (`sgd.rs`, `adam.rs`,
//!   `adamw.rs`, `rmsprop.rs`, `adagrad.rs`, `adadelta.rs`, `nadam.rs`,
//!   `radam.rs`, `adamax.rs`, `asgd.rs`, `rprop.rs`, `adafactor.rs`,
//!   `muon.rs` with `newton_schulz.rs`, `lion.rs`, `lamb.rs`, `lars.rs`;
//!   the last four of torch.optim's and LAMB and LARS update on the host,
//!   `host.rs`), each documenting its formula, and
//!   `driver.rs` with [`Optimizer<B>`]: parameter groups, per-parameter state
//!   in device memory, the step loop and state export/import. The host
//!   computes per-step scalars only; the element-wise update is the fused
//!   backend op ([`cnn_core::OptimOps`]), so parameters never pass through
//!   the host.
//! - [`params`]: [`OptimizerConfig::with_params`], hyperparameters by the
//!   reference's argument names over a config (`--optimizer-param`).
//! - [`group`]: [`ParamGroup`], parameters matched by name sharing a rate and
//!   weight decay ([`ParamGroup::no_decay`] for biases and norm parameters).
//! - [`schedule`]: [`ScheduleConfig`] (one file per family) and the
//!   [`Scheduler`] that advances it, with PyTorch's `lr_scheduler`
//!   semantics.
//! - [`regularize`]: L1/L2 penalties through the gradient, decoupled weight
//!   decay, gradient clipping by norm and by value.
//! - [`state`]: [`OptimizerState`] and [`ScheduleState`], the serde-able
//!   snapshots a checkpoint stores.
//! - [`wrap`]: Lookahead and SAM, wrappers around any rule
//!   ([`Optimizer::with_lookahead`], [`Optimizer::with_sam`]).
//! - [`error`]: [`OptimError`], the crate's typed error.
//!
//! A training step:
//!
//! ```text
//! use cnn_optim::{Optimizer, OptimizerConfig, ParamGroup, Scheduler, ScheduleConfig, regularize};
//!
//! let config = OptimizerConfig::from_name("adamw")?.with_lr(1e-3).with_weight_decay(1e-2);
//! let mut opt = Optimizer::new(config)?;
//! opt.add_group(ParamGroup::no_decay(params.iter().map(|p| &**p)))?;
//! let mut sched = Scheduler::new(ScheduleConfig::from_name("cosine", total_steps)?)?;
//! for batch in batches {
//!     opt.zero_grad(&backend, &mut params)?;
//!     let loss = model.forward_backward(&backend, &batch)?;       // accumulates grads
//!     regularize::clip_grad_norm(&backend, &mut params, 1.0)?;
//!     opt.apply_schedule(&sched)?;
//!     opt.step(&backend, &mut params)?;
//!     sched.step();
//! }
//! ```
//!
//! Not here: dropout, activations and batch norm are layers (cnn-core and
//! the backends); early stopping belongs to the training loop.

pub mod config;
pub mod error;
pub mod group;
pub mod optimizer;
pub mod params;
pub mod regularize;
pub mod schedule;
pub mod state;
pub mod wrap;

pub use config::OptimizerConfig;
pub use error::{OptimError, Result};
pub use group::ParamGroup;
pub use optimizer::{
    AdadeltaConfig, AdafactorConfig, AdagradConfig, AdamConfig, AdamWConfig, AdamaxConfig,
    AsgdConfig, LambConfig, LarsConfig, LionConfig, MuonConfig, NadamConfig, Optimizer,
    RadamConfig, RmspropConfig, RpropConfig, ScheduleFreeAdamWConfig, ScheduleFreeSgdConfig,
    SgdConfig,
};
pub use regularize::{PenaltyScope, Regularizer};
pub use schedule::{ScheduleConfig, Scheduler};
pub use state::{OptimizerState, ParamState, PlateauState, ScheduleState};
pub use wrap::{LookaheadConfig, LookaheadState, SamConfig};
