//! `TrainConfig`: everything that defines a run, as the CLI flags and the
//! `config.toml` of a run directory spell it. Unknown keys are errors.
//!
//! Also what its names mean: the optimizer and learning-rate schedule they
//! give, with cnn's defaults over PyTorch's ([`SGD_LR`], [`SGD_MOMENTUM`]),
//! and the byte sizes `max_memory` takes ([`parse_bytes`]).

use std::path::{Path, PathBuf};

use cnn_optim::{OptimizerConfig, ScheduleConfig};
use serde::{Deserialize, Serialize};

use crate::averaging::settings::AveragingSettings;
use crate::error::{Result, TrainError};

/// SGD's learning rate when none is given. PyTorch's SGD has no default
/// rate and plain SGD is rarely what a CNN recipe uses: SGD defaults to lr
/// 0.05 with momentum 0.9 (the LeNet-5 workload's settings); the other
/// optimizers keep PyTorch's defaults.
pub const SGD_LR: f64 = 0.05;
fn is_zero(v: &usize) -> bool {
    *v == 0
}
fn is_f32(p: &cnn_core::Precision) -> bool {
    *p == cnn_core::Precision::F32
}

/// SGD's momentum when none is given (see [`SGD_LR`]).
pub const SGD_MOMENTUM: f64 = 0.9;

/// The schedule names `--schedule` takes (each also under its torch name:
/// constant, cosine_warm_restarts, sequential, reduce_on_plateau).
pub const SCHEDULE_NAMES: &str = "none, step, multistep, exponential, cosine, cosine_restarts, \
     warmup_cosine, linear, polynomial, one_cycle, cyclic, plateau";

/// A complete, resolved run configuration (the `config.toml` of a run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// A built-in model name (`article`, `lenet5`, `vgg`, `resnet20`,
    /// `airbench94`) or the path of a TOML model spec.
    pub model: String,
    /// `synthetic`, `mnist`, `fashion-mnist`, `cifar10` or `folder`.
    pub data: String,
    /// Where the data files are (not needed for `synthetic`).
    pub data_dir: Option<PathBuf>,
    /// Image folders: resize every image to `[height, width]` (default:
    /// every image must have the first one's size).
    pub image_size: Option<[usize; 2]>,
    /// Image folders: 1 (grayscale) or 3 (RGB) channels (default: the
    /// first image's).
    pub channels: Option<usize>,
    /// Epochs to train (0 = as many as `max_steps` takes).
    pub epochs: usize,
    /// Stop after this many optimizer steps (0 = no step budget); with
    /// `epochs` too, whichever ends first.
    pub max_steps: u64,
    /// Images per batch (one forward and backward).
    pub batch_size: usize,
    /// Gradient accumulation: the optimizer steps once every `accumulate`
    /// batches, on the mean gradient of their images (an epoch's last step
    /// takes the batches left). Steps, schedules, `max_steps`,
    /// `checkpoint_every` and the step axis of the curves count optimizer
    /// steps. 1 steps on every batch.
    pub accumulate: usize,
    /// `sgd`, `adam`, `adamw`, `rmsprop`, `adagrad`, `adadelta`, `nadam`,
    /// `radam`, `adamax`, `asgd`, `rprop`, `adafactor`, `muon`, `lion`,
    /// `lamb`, `lars`.
    pub optimizer: String,
    /// Learning rate (default: 0.05 for SGD, PyTorch's default otherwise).
    pub lr: Option<f64>,
    /// SGD/RMSprop momentum, or beta1 of the Adam family (default: 0.9 for
    /// SGD, PyTorch's default otherwise).
    pub momentum: Option<f64>,
    /// The optimizer's own weight decay (coupled L2 for SGD/Adam, decoupled
    /// for AdamW).
    pub weight_decay: Option<f64>,
    pub nesterov: bool,
    /// The optimizer's hyperparameters by the reference implementation's
    /// names, over the values above: `optimizer_params = { betas = [0.9,
    /// 0.99], eps = 1e-6 }` for `adam` (`--optimizer-param KEY=VALUE`).
    #[serde(skip_serializing_if = "toml::Table::is_empty")]
    pub optimizer_params: toml::Table,
    /// Learning-rate schedule name (`none`, `step`, `multistep`,
    /// `exponential`, `cosine`, `cosine_restarts`, `warmup_cosine`,
    /// `linear`, `polynomial`, `one_cycle`, `cyclic`, `plateau`).
    pub schedule: String,
    /// Whether the schedule advances per optimizer step or per epoch.
    pub schedule_per: SchedulePer,
    /// The schedule's parameters by PyTorch's names, over its defaults:
    /// `schedule_params = { patience = 3, factor = 0.5 }` for `plateau`,
    /// `{ step_size = 10, gamma = 0.5 }` for `step`.
    #[serde(skip_serializing_if = "toml::Table::is_empty")]
    pub schedule_params: toml::Table,
    /// L1 penalty coefficient (added to the loss; subgradient to the gradients).
    pub l1: f64,
    /// L2 penalty coefficient through the gradient (`g += l2 * w`) on weights.
    pub l2: f64,
    /// Dropout probability in the built-in models.
    #[serde(serialize_with = "shortest_f32")]
    pub dropout: f32,
    /// Hidden activation of the built-in models.
    pub activation: String,
    /// Batch norm after each convolution in the built-in models.
    pub batch_norm: bool,
    #[serde(serialize_with = "shortest_f32")]
    pub label_smoothing: f32,
    /// Clip the global gradient norm to this value (0 = off).
    pub clip_grad_norm: f64,
    /// Clip each gradient element to [-v, v] (0 = off).
    pub clip_value: f64,
    /// Stop after this many epochs without validation-loss improvement (0 = off).
    pub early_stopping: usize,
    /// Improvement smaller than this does not count for early stopping.
    pub min_delta: f64,
    /// Restore the best weights when early stopping triggers.
    pub restore_best: bool,
    /// Fraction of the training data held out for validation, taken from
    /// the end (0 = validate on the test split).
    pub val_fraction: f64,
    /// Use only the first N training images (0 = all).
    pub limit_train: usize,
    pub shuffle: bool,
    /// Random crop (padding 4) and horizontal flip.
    pub augment: bool,
    /// Cutout: zero one square of this side per training image, centre
    /// uniform, clipped at the borders (0 = off; see `cnn_data::Augment`).
    #[serde(skip_serializing_if = "is_zero")]
    pub cutout: usize,
    /// Batch mixing (`crate::mixing`, timm's `Mixup`): mixup's and
    /// CutMix's Beta parameters (0 = off), the probability a batch is
    /// mixed, and with both on the probability of CutMix.
    #[serde(skip_serializing_if = "crate::mixing::is_off")]
    pub mixup: f64,
    #[serde(skip_serializing_if = "crate::mixing::is_off")]
    pub cutmix: f64,
    #[serde(skip_serializing_if = "crate::mixing::is_default_prob")]
    pub mix_prob: f64,
    #[serde(skip_serializing_if = "crate::mixing::is_default_switch_prob")]
    pub mix_switch_prob: f64,
    pub seed: u64,
    /// Worker threads (0 = all cores).
    pub threads: usize,
    pub backend: String,
    /// The precision of convolutions and linear layers (`f32`, `tf32`,
    /// `bf16`, `f16`; `torch.autocast`'s semantics, see
    /// [`cnn_core::Precision`]). Recorded only when not f32.
    #[serde(skip_serializing_if = "is_f32")]
    pub precision: cnn_core::Precision,
    /// Dynamic loss scaling (`dynamic`, `none`); unset: on for the
    /// precisions that need it (f16). See [`crate::loss_scale`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<crate::loss_scale::LossScaleMode>,
    /// Keep the training set in device memory and gather each batch there
    /// (`auto`, `on`, `off`; see [`crate::resident`]). Recorded only when
    /// not auto.
    #[serde(skip_serializing_if = "crate::resident::DataOnDevice::is_auto")]
    pub data_on_device: crate::resident::DataOnDevice,
    /// Start from these weights (a safetensors state_dict, e.g. from PyTorch).
    pub init_from: Option<PathBuf>,
    /// Also checkpoint every N steps (0 = at the end of each epoch only).
    pub checkpoint_every: u64,
    /// Check every layer's output and gradient for NaN/inf (slow).
    pub detect_anomaly: bool,
    /// Refuse to train when the memory estimate exceeds this many bytes
    /// (default: the memory available when training starts). A config
    /// file may also write it as the flag does: `"512M"`, `"2G"`.
    #[serde(deserialize_with = "bytes_or_size")]
    pub max_memory: Option<u64>,
    /// Run the LR range test before training and train with its
    /// suggestion (`cnn train --lr find`); once it has run, the record of
    /// it, with `lr` set to its suggestion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr_find: Option<LrFindSettings>,
    /// Weight averaging: EMA and SWA ([`crate::averaging`]).
    #[serde(skip_serializing_if = "AveragingSettings::is_off")]
    pub averaging: AveragingSettings,
    /// Lookahead around the optimizer (`[lookahead]`, k and alpha).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookahead: Option<cnn_optim::LookaheadConfig>,
    /// SAM around the optimizer (`[sam]`, rho).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sam: Option<cnn_optim::SamConfig>,
}

/// The LR range test's settings (`cnn lr-find`, `cnn train --lr find`):
/// an exponential sweep of the learning rate from `start_lr` to `end_lr`
/// over `steps` optimizer steps (see [`crate::lr_find`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LrFindSettings {
    /// The rate of the first step (fastai's default, 1e-7).
    pub start_lr: f64,
    /// The rate of the last step (fastai's default, 10).
    pub end_lr: f64,
    /// Optimizer steps of the sweep, at most (100).
    pub steps: usize,
    /// The suggestion the test gave, the steepest descent of the smoothed
    /// loss (Lightning's rule), once it has run: the run's `lr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<f64>,
}

impl Default for LrFindSettings {
    fn default() -> Self {
        LrFindSettings {
            start_lr: 1e-7,
            end_lr: 10.0,
            steps: 100,
            suggestion: None,
        }
    }
}

impl LrFindSettings {
    /// A finite sweep upwards from a positive rate, of at least 2 steps.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Config(m));
        if !(self.start_lr.is_finite() && self.start_lr > 0.0) {
            return bad(format!(
                "the LR range test's start_lr {} must be a positive number",
                self.start_lr
            ));
        }
        if !(self.end_lr.is_finite() && self.end_lr > self.start_lr) {
            return bad(format!(
                "the LR range test's end_lr {} must be a number above start_lr {}",
                self.end_lr, self.start_lr
            ));
        }
        if self.steps < 2 {
            return bad(format!(
                "the LR range test needs at least 2 steps, not {}",
                self.steps
            ));
        }
        Ok(())
    }
}

/// An f32 as the shortest decimal that reads back to it: `0.1`, not the
/// `0.10000000149011612` its widening to f64 would print.
fn shortest_f32<S: serde::Serializer>(v: &f32, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(v.to_string().parse().unwrap_or(f64::from(*v)))
}

/// A byte count as a number or as a size with a suffix (`"2G"`).
fn bytes_or_size<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u64>, D::Error> {
    struct Bytes;
    impl<'de> serde::de::Visitor<'de> for Bytes {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte count, or a size such as \"512M\" or \"2G\"")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
            u64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom(format!("max_memory {v}: must be a byte count >= 1")))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
            parse_bytes(v).map(Some).map_err(E::custom)
        }
        // JSON (compare.json, curve.json) writes an unset value as null.
        fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(
            self,
            d: D,
        ) -> std::result::Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    d.deserialize_any(Bytes)
}

/// Parse a byte count: a whole number with an optional suffix `K`, `M`,
/// `G` or `T` (powers of 1024, an optional trailing `B` or `iB`), like
/// `512M`, `2G`, `1.5GiB` or `1000000`.
pub fn parse_bytes(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let body = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (number, scale) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 1u64 << 10),
        Some('M') => (&body[..body.len() - 1], 1 << 20),
        Some('G') => (&body[..body.len() - 1], 1 << 30),
        Some('T') => (&body[..body.len() - 1], 1 << 40),
        _ => (body, 1),
    };
    let bad = || format!("`{text}` is not a byte count (like 512M, 2G or 1000000)");
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    let bytes = value * scale as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// When the learning-rate schedule advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SchedulePer {
    #[default]
    Step,
    Epoch,
}

impl Default for TrainConfig {
    /// The README's main job: the article's classifier on the synthetic set.
    fn default() -> Self {
        TrainConfig {
            model: "article".into(),
            data: "synthetic".into(),
            data_dir: None,
            image_size: None,
            channels: None,
            epochs: 20,
            max_steps: 0,
            batch_size: 64,
            accumulate: 1,
            optimizer: "sgd".into(),
            lr: None,
            momentum: None,
            weight_decay: None,
            nesterov: false,
            optimizer_params: toml::Table::new(),
            schedule: "none".into(),
            schedule_per: SchedulePer::Step,
            schedule_params: toml::Table::new(),
            l1: 0.0,
            l2: 0.0,
            dropout: 0.0,
            activation: "relu".into(),
            batch_norm: false,
            label_smoothing: 0.0,
            clip_grad_norm: 0.0,
            clip_value: 0.0,
            early_stopping: 0,
            min_delta: 0.0,
            restore_best: true,
            val_fraction: 0.1,
            limit_train: 0,
            shuffle: true,
            augment: false,
            cutout: 0,
            mixup: 0.0,
            cutmix: 0.0,
            mix_prob: crate::mixing::DEFAULT_PROB,
            mix_switch_prob: crate::mixing::DEFAULT_SWITCH_PROB,
            seed: 0,
            threads: 0,
            backend: "cpu".into(),
            precision: cnn_core::Precision::F32,
            loss_scale: None,
            data_on_device: crate::resident::DataOnDevice::Auto,
            init_from: None,
            checkpoint_every: 0,
            detect_anomaly: false,
            max_memory: None,
            lr_find: None,
            averaging: AveragingSettings::default(),
            lookahead: None,
            sam: None,
        }
    }
}

impl TrainConfig {
    /// Parse a TOML document; unknown keys and wrong types are errors naming
    /// the file.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let config: TrainConfig = toml::from_str(text).map_err(|e| {
            TrainError::bad_file(origin, toml_message(&e) + &line_of(text, e.span()))
        })?;
        config.check_names().map_err(|e| {
            let message = match e {
                TrainError::Config(m) => m,
                e => e.to_string(),
            };
            TrainError::bad_file(origin, message)
        })?;
        Ok(config)
    }

    /// Read and parse a config file. Relative paths in it (a model spec
    /// file, `data_dir`, `init_from`) are relative to the file's directory,
    /// as Cargo reads paths in `Cargo.toml`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let mut config = Self::from_toml(&text, path)?;
        if let Some(base) = path.parent().filter(|b| !b.as_os_str().is_empty()) {
            let beside = |p: &Path| {
                if p.is_relative() {
                    base.join(p)
                } else {
                    p.to_path_buf()
                }
            };
            if config.model.ends_with(".toml") {
                config.model = beside(Path::new(&config.model)).display().to_string();
            }
            config.data_dir = config.data_dir.as_deref().map(beside);
            config.init_from = config.init_from.as_deref().map(beside);
        }
        Ok(config)
    }

    /// [`checked_optimizer`](Self::checked_optimizer), and that every name
    /// (model, data, optimizer, schedule, activation) is one cnn knows, so that a config
    /// file's mistakes are reported against the file before anything runs.
    pub fn check_names(&self) -> Result<()> {
        self.checked_optimizer()?;
        self.data.parse::<cnn_data::DatasetKind>()?;
        cnn_core::Activation::from_name(&self.activation)?;
        if !self.model_is_spec_file() {
            // Every built-in model takes CIFAR-sized images; only the name
            // can fail here.
            let probe = cnn_core::models::ModelOptions::new([3, 32, 32], 10);
            cnn_core::models::builtin(&self.model, &probe)?;
        }
        Ok(())
    }

    /// The resolved TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# could not serialise config: {e}\n"))
    }

    /// Batches in an epoch of `train_images` images (the last one may be
    /// short).
    pub fn batches_per_epoch(&self, train_images: usize) -> u64 {
        train_images.div_ceil(self.batch_size.max(1)) as u64
    }

    /// Optimizer steps in an epoch of `train_images` images: one per
    /// `accumulate` batches, the last one taking the batches left.
    pub fn steps_per_epoch(&self, train_images: usize) -> u64 {
        self.batches_per_epoch(train_images)
            .div_ceil(self.accumulate.max(1) as u64)
    }

    /// Epochs the run will take with `steps_per_epoch` steps each:
    /// `epochs`, or fewer when the step budget ends sooner; with `epochs =
    /// 0` the budget alone decides (as `max_epochs = -1` with `max_steps`
    /// does in PyTorch Lightning).
    pub fn planned_epochs(&self, steps_per_epoch: u64) -> usize {
        let by_budget = match self.max_steps {
            0 => usize::MAX,
            n => usize::try_from(n.div_ceil(steps_per_epoch.max(1))).unwrap_or(usize::MAX),
        };
        match self.epochs {
            0 => by_budget,
            e => e.min(by_budget),
        }
    }

    /// Optimizer steps the run will take: the step budget, or fewer when
    /// the epochs end sooner.
    pub fn planned_steps(&self, steps_per_epoch: u64) -> u64 {
        let by_epochs = match self.epochs {
            0 => u64::MAX,
            e => steps_per_epoch.saturating_mul(e as u64),
        };
        match self.max_steps {
            0 => by_epochs,
            n => n.min(by_epochs),
        }
    }

    /// Whether `model` names a TOML model spec file rather than a
    /// built-in model.
    pub fn model_is_spec_file(&self) -> bool {
        self.model.ends_with(".toml") || Path::new(&self.model).is_file()
    }

    /// This configuration with its file paths (a model spec file, the data
    /// directory, the initial weights) made absolute against the current
    /// directory, and an MNIST directory taken from `CNN_MNIST_DIR` written
    /// in: what a run directory's `config.toml` records, so that `--resume`
    /// and `cnn eval` find the same data from any directory and whatever
    /// the environment says then.
    pub fn with_absolute_paths(&self) -> TrainConfig {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut c = self.clone();
        if c.model_is_spec_file() {
            c.model = absolute(Path::new(&c.model)).display().to_string();
        }
        if c.data_dir.is_none() && matches!(c.data.parse(), Ok(cnn_data::DatasetKind::Mnist)) {
            c.data_dir = cnn_data::mnist::resolve_mnist_dir(None).ok();
        }
        c.data_dir = c.data_dir.as_deref().map(absolute);
        c.init_from = c.init_from.as_deref().map(absolute);
        c
    }

    /// This configuration with the learning rate (and SGD's momentum) of
    /// `optimizer`, the optimizer it resolves to, written in: a run
    /// directory's `config.toml` shows every value the run used, defaults
    /// included.
    pub fn with_optimizer_defaults(&self, optimizer: &OptimizerConfig) -> TrainConfig {
        let mut c = self.clone();
        c.lr = Some(optimizer.lr());
        if let OptimizerConfig::Sgd(sgd) = optimizer {
            c.momentum.get_or_insert(sgd.momentum);
        }
        c
    }

    /// The optimizer the configuration names, with its learning rate,
    /// momentum, weight decay and Nesterov flag; SGD without a rate or
    /// momentum takes [`SGD_LR`] and [`SGD_MOMENTUM`], the other
    /// optimizers PyTorch's defaults.
    pub fn optimizer_config(&self) -> Result<OptimizerConfig> {
        let mut c = OptimizerConfig::from_name(&self.optimizer)?;
        let is_sgd = c.name() == "sgd";
        let lr = self.lr.unwrap_or(if is_sgd { SGD_LR } else { c.lr() });
        c = c.with_lr(lr);
        match self.momentum {
            Some(m) => c = c.with_momentum(m)?,
            None if is_sgd => c = c.with_momentum(SGD_MOMENTUM)?,
            None => {}
        }
        if let Some(wd) = self.weight_decay {
            crate::optimizer_params::check_weight_decay(&c, wd)?;
            c = c.with_weight_decay(wd);
        }
        if self.nesterov {
            match &mut c {
                OptimizerConfig::Sgd(sgd) => sgd.nesterov = true,
                other => {
                    return Err(TrainError::Config(format!(
                        "nesterov applies to sgd, not {}",
                        other.name()
                    )));
                }
            }
        }
        let c = crate::optimizer_params::apply(c, &self.optimizer_params)?;
        c.validate()?;
        Ok(c)
    }

    /// The schedule for `total` steps (or epochs), `None` for `none`.
    pub fn schedule_config(&self, total: u64) -> Result<Option<ScheduleConfig>> {
        let name = self.schedule.to_ascii_lowercase().replace('-', "_");
        let canonical = match name.as_str() {
            "none" | "" => return Ok(None),
            "cosine_restarts" => "cosine_warm_restarts",
            "warmup_cosine" => "sequential",
            other => other,
        };
        let schedule = match ScheduleConfig::from_name(canonical, total) {
            Ok(s) => s,
            Err(cnn_optim::OptimError::UnknownSchedule(_)) => {
                return Err(TrainError::Config(format!(
                    "unknown schedule `{}`; expected one of: {SCHEDULE_NAMES}",
                    self.schedule
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if self.schedule_params.is_empty() {
            return Ok(Some(schedule));
        }
        // The given parameters over the named schedule's defaults, checked by
        // the schedule's own (deny-unknown-fields) deserialiser.
        let bad =
            |m: String| TrainError::Config(format!("schedule_params for `{}`: {m}", self.schedule));
        let mut table = toml::Table::try_from(&schedule).map_err(|e| bad(e.to_string()))?;
        for (key, value) in &self.schedule_params {
            if key == "kind" {
                return Err(bad("`kind` is set by the schedule's name".into()));
            }
            table.insert(key.clone(), value.clone());
        }
        let schedule: ScheduleConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| bad(e.message().to_string()))?;
        schedule.validate()?;
        Ok(Some(schedule))
    }

    /// What a run checks from its configuration alone, before it reads
    /// any data: [`validate`](Self::validate), then the optimizer (its
    /// config is returned) and the schedule's name and parameters.
    pub fn checked_optimizer(&self) -> Result<OptimizerConfig> {
        self.validate()?;
        let optimizer = self.optimizer_config()?;
        let (la, sam) = (self.lookahead.as_ref(), self.sam.as_ref());
        crate::optim_wrap::check(&optimizer, la, sam, self.accumulate)?;
        self.schedule_config(1)?;
        Ok(optimizer)
    }

    /// Check values that serde's types do not.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.epochs == 0 && self.max_steps == 0 {
            return bad("epochs must be at least 1 (or give max_steps)".into());
        }
        if self.data == "synthetic" && self.data_dir.is_some() {
            return bad(
                "a data directory is given, but the synthetic set (the default data) reads no \
                 files; choose mnist, fashion-mnist, cifar10 or folder"
                    .into(),
            );
        }
        if (self.image_size.is_some() || self.channels.is_some()) && self.data != "folder" {
            return bad(format!(
                "image_size and channels apply to image folders (data = \"folder\"), not to `{}`",
                self.data
            ));
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if self.threads > crate::display::MAX_THREADS {
            return bad(format!(
                "threads {} is more than {}; 0 means one per core",
                self.threads,
                crate::display::MAX_THREADS
            ));
        }
        if self.accumulate == 0 {
            return bad("accumulate must be at least 1 (1 steps on every batch)".into());
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return bad(format!(
                "val_fraction {} is outside [0, 1)",
                self.val_fraction
            ));
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return bad(format!("dropout {} is outside [0, 1)", self.dropout));
        }
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return bad(format!(
                "label_smoothing {} is outside [0, 1]",
                self.label_smoothing
            ));
        }
        crate::mixing::check(self.mixup, self.cutmix, self.mix_prob, self.mix_switch_prob)?;
        for (name, v) in [
            ("l1", self.l1),
            ("l2", self.l2),
            ("clip_grad_norm", self.clip_grad_norm),
            ("clip_value", self.clip_value),
            ("min_delta", self.min_delta),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} {v} must be a non-negative number"));
            }
        }
        if let Some(lr) = self.lr
            && !(lr.is_finite() && lr >= 0.0)
        {
            return bad(format!("lr {lr} must be a non-negative number"));
        }
        self.averaging.validate()?;
        let scaled = crate::loss_scale::LossScaleMode::enabled(self.loss_scale, self.precision);
        if scaled && self.sam.is_some() {
            return bad(format!(
                "loss scaling ({}) does not combine with sam: SAM's second gradient would need \
                 its own scaling; use loss_scale = \"none\" (bf16 needs none)",
                if self.loss_scale.is_some() {
                    "loss_scale = \"dynamic\"".to_string()
                } else {
                    format!("on for precision {}", self.precision)
                }
            ));
        }
        if let Some(find) = &self.lr_find {
            find.validate()?;
            if find.suggestion.is_none() && self.lr.is_some() {
                return bad(
                    "both a learning rate and the LR range test (lr_find) are given; the test \
                     chooses the rate, so give one of them"
                        .into(),
                );
            }
        }
        if self.max_memory == Some(0) {
            return bad("max_memory must be at least 1 byte".into());
        }
        cnn_core::Activation::from_name(&self.activation)?;
        Ok(())
    }
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => format!(
            " (line {})",
            text[..r.start.min(text.len())].matches('\n').count() + 1
        ),
        None => String::new(),
    }
}

/// The toml parser's message for `e`, or what went wrong when it has none
/// (a file ending in `lr =` gives an empty message).
pub(crate) fn toml_message(e: &toml::de::Error) -> String {
    match e.message().trim() {
        "" => "a value is missing or incomplete (every `key =` needs a value)".into(),
        m => m.to_string(),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn recorded_paths_are_absolute() {
        let c = TrainConfig {
            model: "specs/net.toml".into(),
            data_dir: Some(PathBuf::from("data/mnist")),
            init_from: Some(PathBuf::from("w.safetensors")),
            ..TrainConfig::default()
        };
        let r = c.with_absolute_paths();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(Path::new(&r.model), cwd.join("specs/net.toml"));
        assert_eq!(r.data_dir.unwrap(), cwd.join("data/mnist"));
        assert_eq!(r.init_from.unwrap(), cwd.join("w.safetensors"));
        // A built-in model's name stays a name.
        assert_eq!(
            TrainConfig::default().with_absolute_paths().model,
            "article"
        );
    }

    #[test]
    fn the_record_holds_every_value_the_run_used_as_written() {
        let c = TrainConfig {
            dropout: 0.1,
            label_smoothing: 0.3,
            ..TrainConfig::default()
        };
        let recorded = |c: &TrainConfig| {
            c.with_absolute_paths()
                .with_optimizer_defaults(&c.optimizer_config().unwrap())
        };
        let r = recorded(&c);
        assert_eq!((r.lr, r.momentum), (Some(0.05), Some(0.9)));
        let text = r.to_toml();
        for line in [
            "lr = 0.05",
            "momentum = 0.9",
            "dropout = 0.1",
            "label_smoothing = 0.3",
        ] {
            assert!(text.lines().any(|l| l == line), "`{line}` not in:\n{text}");
        }
        assert_eq!(
            TrainConfig::from_toml(&text, Path::new("c.toml")).unwrap(),
            r
        );
        let adam = TrainConfig {
            optimizer: "adam".into(),
            ..TrainConfig::default()
        };
        let r = recorded(&adam);
        assert_eq!((r.lr, r.momentum), (Some(1e-3), None));
    }

    #[test]
    fn byte_counts_with_suffixes() {
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert_eq!(parse_bytes("2gb"), Ok(2 << 30));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes(" 4k "), Ok(4096));
        for bad in ["", "M", "-1G", "0", "lots", "1e400", "NaN"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn max_memory_takes_a_size_with_a_suffix() {
        let at = Path::new("run.toml");
        let c = TrainConfig::from_toml("max_memory = \"2G\"\n", at).unwrap();
        assert_eq!(c.max_memory, Some(2 << 30));
        let c = TrainConfig::from_toml("max_memory = 1000\n", at).unwrap();
        assert_eq!(c.max_memory, Some(1000));
        let err = TrainConfig::from_toml("max_memory = \"lots\"\n", at).unwrap_err();
        assert!(err.to_string().contains("run.toml"), "{err}");
        let err = TrainConfig::from_toml("max_memory = -1\n", at).unwrap_err();
        assert!(err.to_string().contains("byte count"), "{err}");
        let err = TrainConfig::from_toml("max_memory = 1.5e9\n", at).unwrap_err();
        assert!(err.to_string().contains("a size such as"), "{err}");
    }

    use super::*;

    #[test]
    fn round_trips_through_toml() {
        let c = TrainConfig {
            lr: Some(0.05),
            momentum: Some(0.9),
            ..TrainConfig::default()
        };
        let back = TrainConfig::from_toml(&c.to_toml(), Path::new("config.toml")).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unknown_key_names_the_key_and_file() {
        let err =
            TrainConfig::from_toml("epochs = 3\nlearning_rate = 0.1\n", Path::new("run.toml"))
                .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("run.toml: "), "{msg}");
        assert!(
            msg.contains("learning_rate") && msg.contains("line 2"),
            "{msg}"
        );
    }

    #[test]
    fn a_key_without_a_value_names_the_file_and_line() {
        // A file ending in `lr =` once gave an empty message.
        let err = TrainConfig::from_toml("epochs = 1\nlr =", Path::new("c.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("c.toml: "), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.len() > "c.toml: (line 2)".len() + 8, "{msg}");
    }

    #[test]
    fn invalid_values_are_rejected() {
        let err = TrainConfig::from_toml("batch_size = 0\n", Path::new("c.toml")).unwrap_err();
        assert_eq!(err.to_string(), "c.toml: batch_size must be at least 1");
        let err = TrainConfig::from_toml("dropout = 1.5\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("dropout 1.5"), "{err}");
        let err =
            TrainConfig::from_toml("activation = \"swishy\"\n", Path::new("c.toml")).unwrap_err();
        assert!(
            err.to_string().contains("unknown activation `swishy`"),
            "{err}"
        );
        let err = TrainConfig::from_toml("epochs = \"many\"\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("c.toml"), "{err}");
    }

    #[test]
    fn every_unknown_name_is_reported_against_the_file() {
        for (line, needle) in [
            ("lr = -1", "lr -1"),
            ("val_fraction = 1.5", "val_fraction 1.5"),
            ("optimizer = \"sgdd\"", "sgdd"),
            ("schedule = \"cosin\"", "cosin"),
            ("data = \"imagenet\"", "imagenet"),
            ("model = \"alexnet\"", "alexnet"),
        ] {
            let err = TrainConfig::from_toml(line, Path::new("c.toml")).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with("c.toml: ") && msg.contains(needle),
                "{line}: {msg}"
            );
        }
        assert!(TrainConfig::from_toml("model = \"lenet\"\n", Path::new("c.toml")).is_ok());
    }

    #[test]
    fn relative_paths_in_a_config_file_are_relative_to_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("specs").join("run.toml");
        std::fs::create_dir(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            "model = \"net.toml\"\ndata = \"mnist\"\ndata_dir = \"../mnist\"\n\
             init_from = \"/abs/w.safetensors\"\n",
        )
        .unwrap();
        let c = TrainConfig::load(&path).unwrap();
        let specs = tmp.path().join("specs");
        assert_eq!(c.model, specs.join("net.toml").display().to_string());
        assert_eq!(c.data_dir.unwrap(), specs.join("../mnist"));
        assert_eq!(c.init_from.unwrap(), PathBuf::from("/abs/w.safetensors"));
    }
}
