//! Learning-rate schedules with `torch.optim.lr_scheduler` semantics.
//!
//! A schedule maps (optimizer base rate, step `t`) to the rate of step `t`:
//! the rate used by the `t`-th optimizer step (from 0) when the schedule is
//! advanced once after every step, or of every step of epoch `t` when it is
//! advanced once per epoch. Every kind except reduce-on-plateau is a pure
//! function of `t` ([`ScheduleConfig::lr_at`]); reduce-on-plateau also
//! depends on the metrics seen, which [`Scheduler`] records.
//!
//! - [`decay`]: constant, step, multi-step, exponential.
//! - [`linear`]: linear ramp, polynomial decay.
//! - [`cosine`]: cosine annealing, cosine with warm restarts.
//! - [`one_cycle`], [`cyclic`], [`plateau`].
//! - this file: [`ScheduleConfig`] (serde, tag `kind`), sequential
//!   composition, and the [`Scheduler`] that steps a schedule and exports
//!   its state.

pub mod cosine;
pub mod cyclic;
pub mod decay;
pub mod linear;
pub mod one_cycle;
pub mod plateau;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use cosine::{CosineSchedule, CosineWarmRestartsSchedule};
pub use cyclic::{CyclicMode, CyclicSchedule};
pub use decay::{ConstantSchedule, ExponentialSchedule, MultiStepSchedule, StepSchedule};
pub use linear::{LinearSchedule, PolynomialSchedule};
pub use one_cycle::{Anneal, OneCycleSchedule};
pub use plateau::{PlateauMode, PlateauSchedule, ThresholdMode};

use crate::error::{OptimError, Result};
use crate::state::ScheduleState;

/// A schedule and its parameters, tagged by `kind` in serde with the names
/// of `schedules.json` (`{"kind": "cosine", "t_max": 20, "eta_min": 0.001}`).
/// Parameters follow PyTorch's names (`anneal_strategy` is accepted for
/// one-cycle's `anneal`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScheduleConfig {
    /// `ConstantLR` (a constant rate by default).
    Constant(ConstantSchedule),
    /// `StepLR`
    Step(StepSchedule),
    /// `MultiStepLR`
    #[serde(rename = "multistep")]
    MultiStep(MultiStepSchedule),
    /// `ExponentialLR`
    Exponential(ExponentialSchedule),
    /// `CosineAnnealingLR`
    Cosine(CosineSchedule),
    /// `CosineAnnealingWarmRestarts`
    CosineWarmRestarts(CosineWarmRestartsSchedule),
    /// `LinearLR`
    Linear(LinearSchedule),
    /// `PolynomialLR`
    Polynomial(PolynomialSchedule),
    /// `OneCycleLR`
    OneCycle(OneCycleSchedule),
    /// `CyclicLR`
    Cyclic(CyclicSchedule),
    /// `SequentialLR`
    Sequential(SequentialSchedule),
    /// `ReduceLROnPlateau`
    ReduceOnPlateau(PlateauSchedule),
}

/// `SequentialLR`: schedule `i` runs from `milestones[i - 1]` (0 for the
/// first) with its own step count restarting at 0:
/// `lr(t) = schedules[i].lr_at(base, t - milestones[i - 1])` where `i` is
/// the number of milestones `<= t`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequentialSchedule {
    /// Steps at which the next schedule takes over, increasing; one fewer
    /// than the schedules.
    pub milestones: Vec<u64>,
    /// The schedules in order (reduce-on-plateau not allowed).
    pub schedules: Vec<ScheduleConfig>,
}

impl SequentialSchedule {
    fn validate(&self) -> Result<()> {
        if self.schedules.is_empty() {
            return Err(OptimError::hyper(
                "schedules",
                "[]",
                "needs at least one schedule",
            ));
        }
        if self.milestones.len() + 1 != self.schedules.len() {
            return Err(OptimError::hyper(
                "milestones",
                format!("{:?}", self.milestones),
                format!(
                    "needs {} milestones for {} schedules",
                    self.schedules.len() - 1,
                    self.schedules.len()
                ),
            ));
        }
        if self.milestones.windows(2).any(|w| w[0] >= w[1]) {
            return Err(OptimError::hyper(
                "milestones",
                format!("{:?}", self.milestones),
                "must be increasing",
            ));
        }
        for s in &self.schedules {
            if matches!(s, ScheduleConfig::ReduceOnPlateau(_)) {
                return Err(OptimError::InvalidCombination(
                    "reduce_on_plateau cannot be part of a sequential schedule".to_string(),
                ));
            }
            s.validate()?;
        }
        Ok(())
    }

    fn lr_at(&self, base: f64, t: u64) -> f64 {
        let i = self.milestones.partition_point(|&m| m <= t);
        let start = if i == 0 { 0 } else { self.milestones[i - 1] };
        self.schedules[i].lr_at(base, t - start)
    }
}

const KINDS: [&str; 12] = [
    "constant",
    "step",
    "multistep",
    "exponential",
    "cosine",
    "cosine_warm_restarts",
    "linear",
    "polynomial",
    "one_cycle",
    "cyclic",
    "sequential",
    "reduce_on_plateau",
];

impl ScheduleConfig {
    /// The schedule `name` for a run of `total_steps` steps (or epochs, if
    /// it is advanced per epoch). PyTorch's defaults where it has them; the
    /// values PyTorch requires are derived from `total_steps`:
    /// step: `step_size = total/3`, gamma 0.1; multistep: milestones at 1/2
    /// and 3/4, gamma 0.1; exponential: gamma reaching 1% at the end;
    /// cosine: `t_max = total`; cosine_warm_restarts: `t_0 = total/7`,
    /// `t_mult = 2` (three periods fill the run); polynomial:
    /// `total_iters = total`; one_cycle: peak at the optimizer's rate over
    /// `total` steps; cyclic: between a tenth of the optimizer's rate and
    /// the rate, four cycles; sequential: linear warm-up over the first 5%
    /// (from 1%) then cosine; constant, linear and reduce_on_plateau:
    /// PyTorch's defaults. Names are case-insensitive; `-` counts as `_`.
    pub fn from_name(name: &str, total_steps: u64) -> Result<Self> {
        let total = total_steps.max(1);
        let key = name.to_ascii_lowercase().replace('-', "_");
        Ok(match key.as_str() {
            "constant" => ScheduleConfig::Constant(ConstantSchedule::default()),
            "step" => ScheduleConfig::Step(StepSchedule {
                step_size: (total / 3).max(1),
                gamma: 0.1,
            }),
            "multistep" | "multi_step" => ScheduleConfig::MultiStep(MultiStepSchedule {
                milestones: vec![total / 2, total * 3 / 4],
                gamma: 0.1,
            }),
            "exponential" => ScheduleConfig::Exponential(ExponentialSchedule {
                gamma: 0.01f64.powf(1.0 / total as f64),
            }),
            "cosine" => ScheduleConfig::Cosine(CosineSchedule {
                t_max: total,
                eta_min: 0.0,
            }),
            "cosine_warm_restarts" => {
                ScheduleConfig::CosineWarmRestarts(CosineWarmRestartsSchedule {
                    t_0: (total / 7).max(1),
                    t_mult: 2,
                    eta_min: 0.0,
                })
            }
            "linear" => ScheduleConfig::Linear(LinearSchedule::default()),
            "polynomial" => ScheduleConfig::Polynomial(PolynomialSchedule {
                total_iters: total,
                power: 1.0,
            }),
            "one_cycle" | "onecycle" => {
                ScheduleConfig::OneCycle(OneCycleSchedule::new(None, total.max(2)))
            }
            "cyclic" => ScheduleConfig::Cyclic(CyclicSchedule::new(
                None,
                None,
                (total as f64 / 8.0).max(1.0),
            )),
            "sequential" => {
                let warmup = (total / 20).max(1);
                ScheduleConfig::Sequential(SequentialSchedule {
                    milestones: vec![warmup],
                    schedules: vec![
                        ScheduleConfig::Linear(LinearSchedule {
                            start_factor: 0.01,
                            end_factor: 1.0,
                            total_iters: warmup,
                        }),
                        ScheduleConfig::Cosine(CosineSchedule {
                            t_max: total.saturating_sub(warmup).max(1),
                            eta_min: 0.0,
                        }),
                    ],
                })
            }
            "reduce_on_plateau" | "plateau" => {
                ScheduleConfig::ReduceOnPlateau(PlateauSchedule::default())
            }
            _ => return Err(OptimError::UnknownSchedule(name.to_string())),
        })
    }

    /// Parse a JSON object `{"kind": name, ...parameters}` (nested schedules
    /// of `sequential` included) and validate it. An unknown kind anywhere is
    /// [`OptimError::UnknownSchedule`], an unknown key or wrong type
    /// [`OptimError::Config`], a bad value
    /// [`OptimError::InvalidHyperparameter`].
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        check_kinds(value)?;
        let config: Self =
            serde_json::from_value(value.clone()).map_err(|e| OptimError::Config {
                what: "schedule",
                message: e.to_string(),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// The kind's name as in serde ("cosine_warm_restarts").
    pub fn name(&self) -> &'static str {
        match self {
            ScheduleConfig::Constant(_) => "constant",
            ScheduleConfig::Step(_) => "step",
            ScheduleConfig::MultiStep(_) => "multistep",
            ScheduleConfig::Exponential(_) => "exponential",
            ScheduleConfig::Cosine(_) => "cosine",
            ScheduleConfig::CosineWarmRestarts(_) => "cosine_warm_restarts",
            ScheduleConfig::Linear(_) => "linear",
            ScheduleConfig::Polynomial(_) => "polynomial",
            ScheduleConfig::OneCycle(_) => "one_cycle",
            ScheduleConfig::Cyclic(_) => "cyclic",
            ScheduleConfig::Sequential(_) => "sequential",
            ScheduleConfig::ReduceOnPlateau(_) => "reduce_on_plateau",
        }
    }

    /// Check every parameter (done by [`Scheduler::new`]).
    pub fn validate(&self) -> Result<()> {
        match self {
            ScheduleConfig::Constant(s) => s.validate(),
            ScheduleConfig::Step(s) => s.validate(),
            ScheduleConfig::MultiStep(s) => s.validate(),
            ScheduleConfig::Exponential(s) => s.validate(),
            ScheduleConfig::Cosine(s) => s.validate(),
            ScheduleConfig::CosineWarmRestarts(s) => s.validate(),
            ScheduleConfig::Linear(s) => s.validate(),
            ScheduleConfig::Polynomial(s) => s.validate(),
            ScheduleConfig::OneCycle(s) => s.validate(),
            ScheduleConfig::Cyclic(s) => s.validate(),
            ScheduleConfig::Sequential(s) => s.validate(),
            ScheduleConfig::ReduceOnPlateau(s) => s.validate(),
        }
    }

    /// The rate of step `t` for base rate `base`. Pure; for
    /// reduce-on-plateau (which needs the metric history) this is `base`:
    /// use [`Scheduler`].
    pub fn lr_at(&self, base: f64, t: u64) -> f64 {
        match self {
            ScheduleConfig::Constant(s) => s.lr_at(base, t),
            ScheduleConfig::Step(s) => s.lr_at(base, t),
            ScheduleConfig::MultiStep(s) => s.lr_at(base, t),
            ScheduleConfig::Exponential(s) => s.lr_at(base, t),
            ScheduleConfig::Cosine(s) => s.lr_at(base, t),
            ScheduleConfig::CosineWarmRestarts(s) => s.lr_at(base, t),
            ScheduleConfig::Linear(s) => s.lr_at(base, t),
            ScheduleConfig::Polynomial(s) => s.lr_at(base, t),
            ScheduleConfig::OneCycle(s) => s.lr_at(base, t),
            ScheduleConfig::Cyclic(s) => s.lr_at(base, t),
            ScheduleConfig::Sequential(s) => s.lr_at(base, t),
            ScheduleConfig::ReduceOnPlateau(_) => base,
        }
    }
}

/// Reject an unknown `kind` (here or in nested schedules) with the typed error.
fn check_kinds(value: &serde_json::Value) -> Result<()> {
    let kind = value
        .get("kind")
        .and_then(|k| k.as_str())
        .ok_or_else(|| OptimError::Config {
            what: "schedule",
            message: format!("missing string field `kind` in {value}"),
        })?;
    if !KINDS.contains(&kind) {
        return Err(OptimError::UnknownSchedule(kind.to_string()));
    }
    if let Some(children) = value.get("schedules").and_then(|s| s.as_array()) {
        for child in children {
            check_kinds(child)?;
        }
    }
    Ok(())
}

/// A user function `(step, base_lr) -> lr`.
pub type LrFn = Arc<dyn Fn(u64, f64) -> f64 + Send + Sync>;

#[derive(Clone)]
enum Kind {
    Config(ScheduleConfig),
    Custom(LrFn),
}

/// A schedule being followed: the schedule, how far it has advanced, and
/// (reduce-on-plateau) the metric bookkeeping.
///
/// Per step: `optimizer.apply_schedule(&scheduler)?`, `optimizer.step(..)?`,
/// then `scheduler.step()` (or `scheduler.step_with_metric(m)`); or advance
/// once per epoch instead.
#[derive(Clone)]
pub struct Scheduler {
    kind: Kind,
    state: ScheduleState,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Scheduler");
        match &self.kind {
            Kind::Config(c) => d.field("config", c),
            Kind::Custom(_) => d.field("config", &"custom fn"),
        };
        d.field("state", &self.state).finish()
    }
}

impl Scheduler {
    /// Validate `config` and start at step 0.
    pub fn new(config: ScheduleConfig) -> Result<Self> {
        config.validate()?;
        let plateau = match &config {
            ScheduleConfig::ReduceOnPlateau(p) => Some(p.initial_state()),
            _ => None,
        };
        Ok(Scheduler {
            kind: Kind::Config(config),
            state: ScheduleState { step: 0, plateau },
        })
    }

    /// A schedule given by a closure `(step, base_lr) -> lr`.
    pub fn from_fn(f: impl Fn(u64, f64) -> f64 + Send + Sync + 'static) -> Self {
        Scheduler {
            kind: Kind::Custom(Arc::new(f)),
            state: ScheduleState::default(),
        }
    }

    /// The config (`None` for a closure).
    pub fn config(&self) -> Option<&ScheduleConfig> {
        match &self.kind {
            Kind::Config(c) => Some(c),
            Kind::Custom(_) => None,
        }
    }

    /// How many times the schedule has advanced: the step whose rate
    /// [`lr`](Self::lr) gives.
    pub fn current_step(&self) -> u64 {
        self.state.step
    }

    /// The rate for the current step, for an optimizer (group) base rate `base`.
    pub fn lr(&self, base: f64) -> f64 {
        self.lr_at(base, self.state.step)
    }

    /// The rate at step `t` (reduce-on-plateau: with the reductions so far).
    pub fn lr_at(&self, base: f64, t: u64) -> f64 {
        match &self.kind {
            Kind::Custom(f) => f(t, base),
            Kind::Config(ScheduleConfig::ReduceOnPlateau(p)) => {
                let reductions = self.state.plateau.map_or(0, |s| s.reductions);
                p.lr_after(base, reductions)
            }
            Kind::Config(c) => c.lr_at(base, t),
        }
    }

    /// Advance one step (or epoch). Reduce-on-plateau only counts the step:
    /// give it the metric with [`step_with_metric`](Self::step_with_metric).
    pub fn step(&mut self) {
        self.state.step += 1;
    }

    /// Advance one step, recording `metric` (used by reduce-on-plateau,
    /// ignored by the other schedules).
    pub fn step_with_metric(&mut self, metric: f64) {
        if let (Kind::Config(ScheduleConfig::ReduceOnPlateau(p)), Some(st)) =
            (&self.kind, &mut self.state.plateau)
        {
            p.observe(st, metric);
        }
        self.state.step += 1;
    }

    /// A copy of the state, for checkpoints.
    pub fn export_state(&self) -> ScheduleState {
        self.state.clone()
    }

    /// Continue from an exported state (of a schedule of the same kind).
    pub fn import_state(&mut self, state: &ScheduleState) -> Result<()> {
        let is_plateau = matches!(self.kind, Kind::Config(ScheduleConfig::ReduceOnPlateau(_)));
        if is_plateau != state.plateau.is_some() {
            return Err(OptimError::State(if is_plateau {
                "a reduce_on_plateau schedule needs plateau state".to_string()
            } else {
                "plateau state given to a schedule that is not reduce_on_plateau".to_string()
            }));
        }
        self.state = state.clone();
        Ok(())
    }
}
