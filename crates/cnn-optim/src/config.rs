//! `OptimizerConfig`: which optimizer, with which hyperparameters; parsed
//! from a name, a serde document or built in code.

use cnn_core::Backend;
use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result};
use crate::optimizer::{
    AdadeltaConfig, AdafactorConfig, AdagradConfig, AdamConfig, AdamWConfig, AdamaxConfig,
    AsgdConfig, GroupHyper, LambConfig, LarsConfig, LionConfig, MuonConfig, NadamConfig,
    RadamConfig, RmspropConfig, RpropConfig, Rule, ScheduleFreeAdamWConfig, ScheduleFreeSgdConfig,
    SgdConfig, Slot, StepCtx,
};

/// An optimizer and its hyperparameters, tagged by `kind` in serde
/// (`{"kind": "adam", "lr": 0.001, "betas": [0.9, 0.999]}`); missing keys
/// take PyTorch's defaults, unknown keys are an error.
///
/// Build an [`Optimizer`](crate::Optimizer) with
/// [`Optimizer::new`](crate::Optimizer::new), which validates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// `torch.optim.SGD`
    Sgd(SgdConfig),
    /// `torch.optim.Adam`
    Adam(AdamConfig),
    /// `torch.optim.AdamW`
    AdamW(AdamWConfig),
    /// `torch.optim.RMSprop`
    Rmsprop(RmspropConfig),
    /// `torch.optim.Adagrad`
    Adagrad(AdagradConfig),
    /// `torch.optim.Adadelta`
    Adadelta(AdadeltaConfig),
    /// `torch.optim.NAdam`
    NAdam(NadamConfig),
    /// `torch.optim.RAdam`
    RAdam(RadamConfig),
    /// `torch.optim.Adamax`
    Adamax(AdamaxConfig),
    /// `torch.optim.ASGD`
    Asgd(AsgdConfig),
    /// `torch.optim.Rprop`
    Rprop(RpropConfig),
    /// `torch.optim.Adafactor`
    Adafactor(AdafactorConfig),
    /// `torch.optim.Muon` (AdamW for parameters of fewer than 2 dimensions)
    Muon(MuonConfig),
    /// Lion (PyPI `lion-pytorch`)
    Lion(LionConfig),
    /// LAMB (PyPI `pytorch-optimizer`'s `Lamb`)
    Lamb(LambConfig),
    /// LARS (PyPI `pytorch-optimizer`'s `LARS`)
    Lars(LarsConfig),
    /// `schedulefree.AdamWScheduleFree`
    #[serde(rename = "schedule_free_adamw")]
    ScheduleFreeAdamW(ScheduleFreeAdamWConfig),
    /// `schedulefree.SGDScheduleFree`
    #[serde(rename = "schedule_free_sgd")]
    ScheduleFreeSgd(ScheduleFreeSgdConfig),
}

/// Call `$body` with `$r` bound to the rule of whichever variant `$cfg` is.
macro_rules! with_rule {
    ($cfg:expr, $r:ident => $body:expr) => {
        match $cfg {
            OptimizerConfig::Sgd($r) => $body,
            OptimizerConfig::Adam($r) => $body,
            OptimizerConfig::AdamW($r) => $body,
            OptimizerConfig::Rmsprop($r) => $body,
            OptimizerConfig::Adagrad($r) => $body,
            OptimizerConfig::Adadelta($r) => $body,
            OptimizerConfig::NAdam($r) => $body,
            OptimizerConfig::RAdam($r) => $body,
            OptimizerConfig::Adamax($r) => $body,
            OptimizerConfig::Asgd($r) => $body,
            OptimizerConfig::Rprop($r) => $body,
            OptimizerConfig::Adafactor($r) => $body,
            OptimizerConfig::Muon($r) => $body,
            OptimizerConfig::Lion($r) => $body,
            OptimizerConfig::Lamb($r) => $body,
            OptimizerConfig::Lars($r) => $body,
            OptimizerConfig::ScheduleFreeAdamW($r) => $body,
            OptimizerConfig::ScheduleFreeSgd($r) => $body,
        }
    };
}

impl Default for OptimizerConfig {
    /// SGD with PyTorch's defaults.
    fn default() -> Self {
        OptimizerConfig::Sgd(SgdConfig::default())
    }
}

impl OptimizerConfig {
    /// Every name [`from_name`](Self::from_name) accepts, lowercase.
    pub const NAMES: &'static [&'static str] = &[
        "sgd",
        "adam",
        "adamw",
        "rmsprop",
        "adagrad",
        "adadelta",
        "nadam",
        "radam",
        "adamax",
        "asgd",
        "rprop",
        "adafactor",
        "muon",
        "lion",
        "lamb",
        "lars",
        "schedule_free_adamw",
        "schedule_free_sgd",
    ];

    /// The optimizer `name` (case-insensitive, one of [`NAMES`](Self::NAMES))
    /// with its reference implementation's default hyperparameters.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "sgd" => OptimizerConfig::Sgd(SgdConfig::default()),
            "adam" => OptimizerConfig::Adam(AdamConfig::default()),
            "adamw" => OptimizerConfig::AdamW(AdamWConfig::default()),
            "rmsprop" => OptimizerConfig::Rmsprop(RmspropConfig::default()),
            "adagrad" => OptimizerConfig::Adagrad(AdagradConfig::default()),
            "adadelta" => OptimizerConfig::Adadelta(AdadeltaConfig::default()),
            "nadam" => OptimizerConfig::NAdam(NadamConfig::default()),
            "radam" => OptimizerConfig::RAdam(RadamConfig::default()),
            "adamax" => OptimizerConfig::Adamax(AdamaxConfig::default()),
            "asgd" => OptimizerConfig::Asgd(AsgdConfig::default()),
            "rprop" => OptimizerConfig::Rprop(RpropConfig::default()),
            "adafactor" => OptimizerConfig::Adafactor(AdafactorConfig::default()),
            "muon" => OptimizerConfig::Muon(MuonConfig::default()),
            "lion" => OptimizerConfig::Lion(LionConfig::default()),
            "lamb" => OptimizerConfig::Lamb(LambConfig::default()),
            "lars" => OptimizerConfig::Lars(LarsConfig::default()),
            "schedule_free_adamw" | "adamwschedulefree" => {
                OptimizerConfig::ScheduleFreeAdamW(ScheduleFreeAdamWConfig::default())
            }
            "schedule_free_sgd" | "sgdschedulefree" => {
                OptimizerConfig::ScheduleFreeSgd(ScheduleFreeSgdConfig::default())
            }
            _ => return Err(OptimError::UnknownOptimizer(name.to_string())),
        })
    }

    /// Parse a JSON object `{"kind": name, ...hyperparameters}` (PyTorch's
    /// argument names) and validate it. The kind is matched like
    /// [`from_name`](Self::from_name), so `"kind": "AdamW"` works too; an
    /// unknown kind is [`OptimError::UnknownOptimizer`], an unknown key or a
    /// wrong type [`OptimError::Config`], a bad value
    /// [`OptimError::InvalidHyperparameter`].
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let mut obj = value
            .as_object()
            .cloned()
            .ok_or_else(|| OptimError::Config {
                what: "optimizer",
                message: format!("expected a JSON object, got {value}"),
            })?;
        let kind = obj
            .get("kind")
            .and_then(|k| k.as_str())
            .ok_or_else(|| OptimError::Config {
                what: "optimizer",
                message: "missing string field `kind`".to_string(),
            })?;
        let canonical = Self::from_name(kind)?.name();
        obj.insert("kind".to_string(), canonical.into());
        let config: Self = serde_json::from_value(serde_json::Value::Object(obj)).map_err(|e| {
            OptimError::Config {
                what: "optimizer",
                message: e.to_string(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The lowercase name ("adam").
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd(_) => "sgd",
            OptimizerConfig::Adam(_) => "adam",
            OptimizerConfig::AdamW(_) => "adamw",
            OptimizerConfig::Rmsprop(_) => "rmsprop",
            OptimizerConfig::Adagrad(_) => "adagrad",
            OptimizerConfig::Adadelta(_) => "adadelta",
            OptimizerConfig::NAdam(_) => "nadam",
            OptimizerConfig::RAdam(_) => "radam",
            OptimizerConfig::Adamax(_) => "adamax",
            OptimizerConfig::Asgd(_) => "asgd",
            OptimizerConfig::Rprop(_) => "rprop",
            OptimizerConfig::Adafactor(_) => "adafactor",
            OptimizerConfig::Muon(_) => "muon",
            OptimizerConfig::Lion(_) => "lion",
            OptimizerConfig::Lamb(_) => "lamb",
            OptimizerConfig::Lars(_) => "lars",
            OptimizerConfig::ScheduleFreeAdamW(_) => "schedule_free_adamw",
            OptimizerConfig::ScheduleFreeSgd(_) => "schedule_free_sgd",
        }
    }

    /// Check every hyperparameter (done by [`Optimizer::new`](crate::Optimizer::new)).
    pub fn validate(&self) -> Result<()> {
        with_rule!(self, r => r.validate())
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        with_rule!(self, r => r.lr())
    }

    /// The weight decay (coupled or decoupled as the optimizer defines it).
    pub fn weight_decay(&self) -> f64 {
        with_rule!(self, r => r.weight_decay())
    }

    /// The same config with learning rate `lr` (checked when the optimizer is built).
    pub fn with_lr(mut self, lr: f64) -> Self {
        with_rule!(&mut self, r => r.lr = lr);
        self
    }

    /// Whether the optimizer has a weight decay (all but Rprop).
    pub fn has_weight_decay(&self) -> bool {
        !matches!(self, OptimizerConfig::Rprop(_))
    }

    /// The same config with weight decay `wd` (Rprop, which has none, is
    /// returned unchanged: see [`has_weight_decay`](Self::has_weight_decay)).
    pub fn with_weight_decay(mut self, wd: f64) -> Self {
        match &mut self {
            OptimizerConfig::Sgd(r) => r.weight_decay = wd,
            OptimizerConfig::Adam(r) => r.weight_decay = wd,
            OptimizerConfig::AdamW(r) => r.weight_decay = wd,
            OptimizerConfig::Rmsprop(r) => r.weight_decay = wd,
            OptimizerConfig::Adagrad(r) => r.weight_decay = wd,
            OptimizerConfig::Adadelta(r) => r.weight_decay = wd,
            OptimizerConfig::NAdam(r) => r.weight_decay = wd,
            OptimizerConfig::RAdam(r) => r.weight_decay = wd,
            OptimizerConfig::Adamax(r) => r.weight_decay = wd,
            OptimizerConfig::Asgd(r) => r.weight_decay = wd,
            OptimizerConfig::Adafactor(r) => r.weight_decay = wd,
            OptimizerConfig::Muon(r) => r.weight_decay = wd,
            OptimizerConfig::Lion(r) => r.weight_decay = wd,
            OptimizerConfig::Lamb(r) => r.weight_decay = wd,
            OptimizerConfig::Lars(r) => r.weight_decay = wd,
            OptimizerConfig::ScheduleFreeAdamW(r) => r.weight_decay = wd,
            OptimizerConfig::ScheduleFreeSgd(r) => r.weight_decay = wd,
            OptimizerConfig::Rprop(_) => {}
        }
        self
    }

    /// The same config with momentum `momentum`: SGD's, RMSprop's, Muon's
    /// and LARS's `momentum`; for Adam, AdamW, NAdam, RAdam, Adamax, Lion
    /// and LAMB the first-moment decay `betas.0` (the role momentum plays
    /// there). Adagrad, Adadelta, ASGD, Rprop and Adafactor have no
    /// momentum: an error.
    pub fn with_momentum(mut self, momentum: f64) -> Result<Self> {
        match &mut self {
            OptimizerConfig::Sgd(c) => c.momentum = momentum,
            OptimizerConfig::Rmsprop(c) => c.momentum = momentum,
            OptimizerConfig::Adam(c) => c.betas.0 = momentum,
            OptimizerConfig::AdamW(c) => c.betas.0 = momentum,
            OptimizerConfig::NAdam(c) => c.betas.0 = momentum,
            OptimizerConfig::RAdam(c) => c.betas.0 = momentum,
            OptimizerConfig::Adamax(c) => c.betas.0 = momentum,
            OptimizerConfig::Muon(c) => c.momentum = momentum,
            OptimizerConfig::Lars(c) => c.momentum = momentum,
            OptimizerConfig::Lion(c) => c.betas.0 = momentum,
            OptimizerConfig::Lamb(c) => c.betas.0 = momentum,
            OptimizerConfig::ScheduleFreeAdamW(c) => c.betas.0 = momentum,
            OptimizerConfig::ScheduleFreeSgd(c) => c.momentum = momentum,
            OptimizerConfig::Adagrad(_)
            | OptimizerConfig::Adadelta(_)
            | OptimizerConfig::Asgd(_)
            | OptimizerConfig::Rprop(_)
            | OptimizerConfig::Adafactor(_) => {
                return Err(OptimError::InvalidCombination(format!(
                    "{} has no momentum",
                    self.name()
                )));
            }
        }
        Ok(self)
    }

    pub(crate) fn slots(&self, shape: &[usize]) -> Vec<Slot> {
        with_rule!(self, r => r.slots(shape))
    }

    pub(crate) fn layouts(&self) -> Vec<Vec<&'static str>> {
        with_rule!(self, r => r.layouts())
    }

    pub(crate) fn scalars(&self) -> Vec<(&'static str, f64)> {
        with_rule!(self, r => r.scalars())
    }

    /// Whether the optimizer evaluates at a point of its own (the
    /// schedule-free average `x`) rather than at the parameters it trains.
    pub fn has_eval_point(&self) -> bool {
        self.eval_slot().is_some()
    }

    pub(crate) fn eval_slot(&self) -> Option<usize> {
        with_rule!(self, r => r.eval_slot())
    }

    pub(crate) fn restore_train_point<B: Backend>(
        &self,
        backend: &B,
        bufs: &[B::Buffer],
        w: &mut B::Buffer,
    ) -> Result<()> {
        with_rule!(self, r => r.restore_train_point(backend, bufs, w))
    }

    pub(crate) fn update<B: Backend>(
        &self,
        backend: &B,
        hp: GroupHyper,
        ctx: StepCtx<'_, B>,
    ) -> Result<()> {
        with_rule!(self, r => r.update(backend, hp, ctx))
    }
}
