//! [`RunPlan`]: everything decided about a run before it trains, resolved
//! once from a [`TrainConfig`] (`cnn train`, each run of `cnn compare` and
//! each fit of `cnn curve` make one; so does `compare`'s preflight, and
//! [`Trainer`](crate::Trainer) trains from one).
//!
//! A plan is checked in this order, and the first failure is the error:
//! 1. the configuration alone ([`TrainConfig::checked_optimizer`]): its
//!    values, the optimizer with cnn's defaults filled in, and the
//!    schedule's name and parameters, before any data is read;
//! 2. the output directory: a fresh run's must be free (or one that
//!    `--overwrite` may empty);
//! 3. before any data is read, a lower bound of the memory from what the
//!    configuration alone says (an image folder's `image_size`: one
//!    image, as pixels and as the model's input), so that an impossible
//!    size is refused in milliseconds, not after minutes of decoding;
//! 4. the data, loaded (or given) and split;
//! 5. the model spec on that data (its input shape and classes);
//! 6. the memory estimate against `max_memory`, or the memory available;
//! 7. a fresh run's initial weights (`init_from`), read.
//!
//! It then holds the schedule for the run's length and the regularizers,
//! and [`recorded_config`](RunPlan::recorded_config), the `config.toml`
//! that a run directory records.

use cnn_core::{Backend, Graph, GraphSpec, NamedArray};
use cnn_optim::{OptimizerConfig, Regularizer, ScheduleConfig};

use crate::checkpoint::load_safetensors;
use crate::config::{SchedulePer, TrainConfig};
use crate::error::{Result, TrainError};
use crate::memory::{self, MemoryEstimate};
use crate::run_dir::{RunDir, RunTarget};
use crate::setup::{self, DataSplits};

/// A run, checked and resolved before it trains (see the module docs).
#[derive(Debug, Clone)]
pub struct RunPlan {
    config: TrainConfig,
    optimizer: OptimizerConfig,
    schedule: Option<ScheduleConfig>,
    regularizer: Regularizer,
    data: DataSplits,
    spec: GraphSpec,
    memory: MemoryEstimate,
    steps_per_epoch: u64,
    init_weights: Option<Vec<NamedArray>>,
}

impl RunPlan {
    /// The plan of a run of `config` into `target` (`None`: a check that
    /// writes nothing), on `data` when given, else on the configured data.
    pub fn new(
        config: &TrainConfig,
        target: Option<&RunTarget>,
        data: Option<DataSplits>,
    ) -> Result<Self> {
        Self::with_data(config, target, |config| match data {
            Some(data) => Ok(data),
            None => setup::load_data(config),
        })
    }

    /// [`new`](Self::new) with the data from `data`, called once the
    /// configuration and the output directory have passed their checks
    /// (`compare`'s preflight loads each distinct dataset once).
    pub fn with_data(
        config: &TrainConfig,
        target: Option<&RunTarget>,
        data: impl FnOnce(&TrainConfig) -> Result<DataSplits>,
    ) -> Result<Self> {
        let optimizer = config.checked_optimizer()?;
        if let Some(RunTarget::Fresh { out, overwrite }) = target {
            RunDir::check_free(out, *overwrite)?;
        }
        memory_before_data(config)?;
        let data = data(config)?;
        let spec = setup::model_spec(config, &data.shape, data.num_classes())?;
        let memory = checked_memory(config, &spec, &data)?;
        // A resumed run continues from its checkpoint, not from these.
        let init_weights = match (&config.init_from, target) {
            (Some(_), Some(RunTarget::Resume(_))) | (None, _) => None,
            (Some(path), _) => Some(load_safetensors(path)?.0),
        };
        Self::finish(config, optimizer, data, spec, memory, init_weights)
    }

    /// The plan of training a model built elsewhere (a library user's
    /// graph, or weights loaded beforehand) on `data`: `spec`, the model's,
    /// is checked against the data instead of being made from
    /// `config.model`. No output directory, no initial weights.
    pub fn for_model(config: &TrainConfig, spec: GraphSpec, data: DataSplits) -> Result<Self> {
        let optimizer = config.checked_optimizer()?;
        if spec.input != data.shape {
            return Err(TrainError::Config(format!(
                "the model takes inputs of shape {} but the data's images are {}",
                spec.input, data.shape
            )));
        }
        let classes = spec.output_shape()?.numel();
        if classes != data.num_classes() {
            return Err(TrainError::Config(format!(
                "the model has {classes} outputs but the data has {} classes",
                data.num_classes()
            )));
        }
        let memory = checked_memory(config, &spec, &data)?;
        Self::finish(config, optimizer, data, spec, memory, None)
    }

    /// The schedule for the run's length, and the regularizers.
    fn finish(
        config: &TrainConfig,
        optimizer: OptimizerConfig,
        data: DataSplits,
        spec: GraphSpec,
        memory: MemoryEstimate,
        init_weights: Option<Vec<NamedArray>>,
    ) -> Result<Self> {
        let steps_per_epoch = config.steps_per_epoch(data.train.len());
        let total = match config.schedule_per {
            SchedulePer::Step => config.planned_steps(steps_per_epoch),
            SchedulePer::Epoch => config.planned_epochs(steps_per_epoch) as u64,
        };
        let schedule = config.schedule_config(total)?;
        let regularizer = Regularizer::new(config.l1, config.l2)?;
        Ok(RunPlan {
            config: config.clone(),
            optimizer,
            schedule,
            regularizer,
            data,
            spec,
            memory,
            steps_per_epoch,
            init_weights,
        })
    }

    /// The configuration as given.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The optimizer, cnn's defaults filled in.
    pub fn optimizer(&self) -> &OptimizerConfig {
        &self.optimizer
    }

    /// The learning-rate schedule for the run's length (in steps or epochs,
    /// as `schedule_per` says); `None` for a constant rate.
    pub fn schedule(&self) -> Option<&ScheduleConfig> {
        self.schedule.as_ref()
    }

    /// L1 and L2 through the gradients (on weights, not biases or norm
    /// parameters); the L1 term is also added to the reported loss.
    pub fn regularizer(&self) -> Regularizer {
        self.regularizer
    }

    pub fn data(&self) -> &DataSplits {
        &self.data
    }

    /// The model, checked against the data.
    pub fn spec(&self) -> &GraphSpec {
        &self.spec
    }

    /// The memory estimate, already within the limit.
    pub fn memory(&self) -> &MemoryEstimate {
        &self.memory
    }

    /// Optimizer steps per epoch (the last batch of an epoch may be short,
    /// and with `accumulate` the last step may take fewer batches).
    pub fn steps_per_epoch(&self) -> u64 {
        self.steps_per_epoch
    }

    /// Batches per epoch: `steps_per_epoch` times `accumulate`, or fewer.
    pub fn batches_per_epoch(&self) -> u64 {
        self.config.batches_per_epoch(self.data.train.len())
    }

    /// The initial weights a fresh run starts from (`init_from`), read but
    /// not yet checked against the model.
    pub fn init_weights(&self) -> Option<&[NamedArray]> {
        self.init_weights.as_deref()
    }

    /// The model with its initialisation from the seed.
    pub fn build_graph<B: Backend>(&self, backend: &B) -> Result<Graph<B>> {
        Ok(Graph::new(backend, self.spec.clone(), self.config.seed)?)
    }

    /// What a run directory's `config.toml` records: the configuration with
    /// absolute paths and the optimizer's defaults written in.
    pub fn recorded_config(&self) -> TrainConfig {
        self.config
            .with_absolute_paths()
            .with_optimizer_defaults(&self.optimizer)
    }
}

/// Before the data is read: what the configuration alone fixes, checked
/// against the limit. With `image_size`, every image is resized to it, so
/// one image (its pixels, then the model's f32 input) is a lower bound of
/// what training needs, whatever the folder holds.
fn memory_before_data(config: &TrainConfig) -> Result<()> {
    let Some([h, w]) = config.image_size else {
        return Ok(());
    };
    let pixels = (h as u64)
        .saturating_mul(w as u64)
        .saturating_mul(config.channels.unwrap_or(1) as u64);
    let at_least = MemoryEstimate {
        params: 0,
        activations: pixels.saturating_mul(4),
        conv_workspace: 0,
        data: pixels,
    };
    memory::check(&at_least, config.max_memory)
}

/// The memory estimate of training `spec` on `data` as `config` says,
/// refused when over the limit.
fn checked_memory(
    config: &TrainConfig,
    spec: &GraphSpec,
    data: &DataSplits,
) -> Result<MemoryEstimate> {
    let estimate = memory::estimate(spec, config.batch_size, data, config.threads)?;
    memory::check(&estimate, config.max_memory)?;
    Ok(estimate)
}
