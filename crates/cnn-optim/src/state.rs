//! Exported optimizer and schedule state: plain host data, serde
//! serializable, so a checkpoint can hold it and training can resume on the
//! same trajectory bit for bit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything an [`Optimizer`](crate::Optimizer) accumulates while training.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OptimizerState {
    /// The optimizer's name ("adam"); importing into another kind fails.
    pub kind: String,
    /// The current learning rate of every group, default group first.
    pub group_lrs: Vec<f64>,
    /// Per-parameter state keyed by parameter name; parameters that have
    /// not been stepped yet have no entry.
    pub params: BTreeMap<String, ParamState>,
    /// Lookahead's slow weights and counter, when the optimizer has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookahead: Option<crate::wrap::LookaheadState>,
}

/// One parameter's optimizer state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ParamState {
    /// Steps taken (PyTorch's `state["step"]`).
    pub step: u64,
    /// State tensors by PyTorch's key (`exp_avg`, `momentum_buffer`, ...),
    /// flat, with the parameter's element count.
    pub slots: BTreeMap<String, Vec<f32>>,
    /// Host scalars (`mu_product` of NAdam).
    pub scalars: BTreeMap<String, f64>,
}

/// Everything a [`Scheduler`](crate::Scheduler) accumulates.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScheduleState {
    /// How many times the schedule has advanced.
    pub step: u64,
    /// Reduce-on-plateau bookkeeping (absent for the other schedules).
    pub plateau: Option<PlateauState>,
}

/// Reduce-on-plateau bookkeeping, PyTorch's attribute names.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlateauState {
    /// The best metric so far (`None` before the first; PyTorch's `inf`,
    /// which JSON cannot hold).
    pub best: Option<f64>,
    /// Metrics in a row that did not improve on `best`.
    pub num_bad_epochs: u64,
    /// Steps of cooldown left.
    pub cooldown_counter: u64,
    /// How many times the rate has been reduced.
    pub reductions: u64,
}
