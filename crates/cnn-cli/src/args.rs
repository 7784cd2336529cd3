//! Argument groups shared by several subcommands (model and data flags,
//! training flags) and their mapping onto `TrainConfig`.

use std::path::{Path, PathBuf};

use clap::Args;
use cnn::train::TrainConfig;

use crate::error::CliResult;

/// Flags shared by everything that builds a model and loads data.
#[derive(Debug, Args, Clone, Default)]
pub struct ModelDataArgs {
    /// Built-in model (article, lenet5, vgg, resnet20, airbench94) or a
    /// TOML model spec [default: article].
    #[arg(long)]
    pub model: Option<String>,
    /// Dataset: synthetic, mnist, fashion-mnist, cifar10 or folder [default:
    /// synthetic].
    #[arg(long)]
    pub data: Option<String>,
    /// Directory holding the dataset files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Image folders: resize every image to HxW (e.g. 64x64, or 64 for a
    /// square) [default: every image must have the first one's size].
    #[arg(long, value_name = "HxW", value_parser = parse_image_size)]
    pub image_size: Option<[usize; 2]>,
    /// Image folders: 1 (grayscale) or 3 (RGB) [default: the first image's].
    #[arg(long)]
    pub channels: Option<usize>,
    /// Hidden activation of the built-in models (relu, leaky_relu, sigmoid,
    /// tanh, gelu, gelu_tanh, elu, silu, softplus) [default: relu].
    #[arg(long)]
    pub activation: Option<String>,
    /// Dropout probability in the built-in models [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub dropout: Option<f32>,
    /// Batch norm after each convolution in the built-in models (on/off).
    #[arg(long, value_parser = parse_on_off)]
    pub batch_norm: Option<bool>,
    /// Worker threads; 0 means one per core [default: 0].
    #[arg(long, value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// Backend: cpu (and cuda when built with the `cuda` feature) [default:
    /// cpu].
    #[arg(long)]
    pub backend: Option<String>,
    /// Random seed for initialisation, shuffling, dropout and the synthetic
    /// set [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct TrainArgs {
    /// Read the whole configuration from a TOML file (flags override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub common: ModelDataArgs,
    /// Passes over the training data [default: 20, or as many as
    /// --max-steps takes when only that is given].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after this many optimizer steps (with --epochs too, whichever
    /// ends first).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Images per optimizer step (per batch with --accumulate) [default:
    /// 64].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Gradient accumulation: one optimizer step every N batches, on the
    /// mean gradient of their images (an epoch's last step takes the
    /// batches left); steps, schedules, --max-steps and the curves count
    /// optimizer steps [default: 1].
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    pub accumulate: Option<usize>,
    /// sgd, adam, adamw, rmsprop, adagrad, adadelta, nadam, radam, adamax,
    /// asgd, rprop, adafactor, muon, lion, lamb, lars, schedule_free_adamw,
    /// schedule_free_sgd [default: sgd].
    #[arg(long)]
    pub optimizer: Option<String>,
    /// KEY=VALUE: an optimizer hyperparameter by the reference
    /// implementation's name, over the optimizer's defaults and the flags
    /// above (e.g. --optimizer adam --optimizer-param betas=[0.9,0.99]
    /// --optimizer-param amsgrad=true); repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_optimizer_param)]
    pub optimizer_param: Vec<(String, toml::Value)>,
    /// Wrap the optimizer in Lookahead: every k steps the slow weights
    /// move alpha of the way to the fast ones, which restart from them.
    /// Alone: k=5,alpha=0.5 (the reference's); or e.g. --lookahead
    /// k=6,alpha=0.6.
    #[arg(long, value_name = "k=K,alpha=A", num_args = 0..=1, default_missing_value = "",
        value_parser = crate::wrapper_args::parse_lookahead)]
    pub lookahead: Option<cnn::optim::LookaheadConfig>,
    /// Wrap the optimizer in SAM (sharpness-aware minimization): each step
    /// takes a second forward-backward at the weights moved by rho along
    /// the normalised gradient. Alone: rho=0.05; or e.g. --sam rho=0.1;
    /// adaptive SAM (ASAM, the step scaled per weight by |w|): --sam
    /// adaptive=true,rho=2.
    #[arg(long, value_name = "rho=R,adaptive=B", num_args = 0..=1, default_missing_value = "",
        value_parser = crate::wrapper_args::parse_sam)]
    pub sam: Option<cnn::optim::SamConfig>,
    /// Learning rate, or `find`: run the LR range test first (as `cnn
    /// lr-find` does) and train with its steepest-descent suggestion
    /// [default: 0.05 for sgd, else the optimizer's torch default].
    #[arg(long, allow_negative_numbers = true, value_name = "LR|find", value_parser = parse_lr)]
    pub lr: Option<LrArg>,
    /// SGD/RMSprop momentum, or beta1 of the Adam family [default: 0.9 for
    /// sgd, else the optimizer's torch default].
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// The optimizer's weight decay (decoupled for AdamW).
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Nesterov momentum (sgd).
    #[arg(long)]
    pub nesterov: bool,
    /// none, step, multistep, exponential, cosine, cosine_restarts,
    /// warmup_cosine, linear, polynomial, one_cycle, cyclic, plateau
    /// [default: none].
    #[arg(long)]
    pub schedule: Option<String>,
    /// KEY=VALUE: a schedule parameter by PyTorch's name, over the
    /// schedule's defaults (e.g. --schedule plateau --schedule-param
    /// patience=3 --schedule-param factor=0.5); repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_schedule_param)]
    pub schedule_param: Vec<(String, toml::Value)>,
    /// L1 penalty coefficient.
    #[arg(long, allow_negative_numbers = true)]
    pub l1: Option<f64>,
    /// L2 penalty coefficient (through the gradient, weights only).
    #[arg(long, allow_negative_numbers = true)]
    pub l2: Option<f64>,
    /// Label smoothing of the cross-entropy loss, in [0, 1] (as torch allows) [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub label_smoothing: Option<f32>,
    /// Clip the global gradient norm.
    #[arg(long, allow_negative_numbers = true)]
    pub clip_grad_norm: Option<f64>,
    /// Clip gradient values to [-v, v].
    #[arg(long, allow_negative_numbers = true)]
    pub clip_value: Option<f64>,
    /// Stop after N epochs without validation-loss improvement.
    #[arg(long)]
    pub early_stopping: Option<usize>,
    /// An improvement of the validation loss smaller than this does not
    /// count for --early-stopping [default: 0].
    #[arg(long)]
    pub min_delta: Option<f64>,
    /// Whether early stopping puts the best epoch's weights back (on/off)
    /// [default: on].
    #[arg(long, value_parser = parse_on_off)]
    pub restore_best: Option<bool>,
    /// Fraction of the training data used for validation (0 = test split)
    /// [default: 0.1].
    #[arg(long, allow_negative_numbers = true)]
    pub val_fraction: Option<f64>,
    /// Use only the first N training images (0 = all of them) [default: 0].
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Keep the training data in its stored order each epoch (an image
    /// folder's is a fixed mix of its classes).
    #[arg(long)]
    pub no_shuffle: bool,
    /// Random crop and horizontal flip.
    #[arg(long)]
    pub augment: bool,
    /// Cutout (DeVries & Taylor): zero one SIZE x SIZE square per training
    /// image, centre uniform over the image, clipped at the borders,
    /// drawn per (seed, epoch, image) [default: 0, off].
    #[arg(long, value_name = "SIZE")]
    pub cutout: Option<usize>,
    /// Mixup (timm's Mixup, mode "batch"): each training batch blended
    /// with itself reversed, lam ~ Beta(ALPHA, ALPHA) per (seed, epoch,
    /// batch); loss lam CE(y) + (1 - lam) CE(y reversed); training
    /// accuracy counts the label that weighs more [default: 0, off].
    #[arg(long, value_name = "ALPHA", allow_negative_numbers = true)]
    pub mixup: Option<f64>,
    /// CutMix: a box of the reversed batch pasted into each image, its
    /// area 1 - lam with lam ~ Beta(ALPHA, ALPHA), lam then corrected to
    /// the clipped box [default: 0, off].
    #[arg(long, value_name = "ALPHA", allow_negative_numbers = true)]
    pub cutmix: Option<f64>,
    /// Probability that a training batch is mixed at all (with --mixup or
    /// --cutmix) [default: 1].
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub mix_prob: Option<f64>,
    /// With both --mixup and --cutmix, the probability of CutMix instead of
    /// mixup for a batch [default: 0.5].
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub mix_switch_prob: Option<f64>,
    /// Start from these weights (safetensors, e.g. exported from PyTorch).
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    /// Checkpoint every N steps as well as every epoch.
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Check every layer's output and gradient for NaN/inf (slow).
    #[arg(long)]
    pub detect_anomaly: bool,
    #[command(flatten)]
    pub averaging: crate::averaging::AveragingArgs,
    #[command(flatten)]
    pub precision: crate::precision_args::PrecisionArgs,
    #[command(flatten)]
    pub data_on_device: crate::data_on_device_args::DataOnDeviceArgs,
    /// Refuse to train when the memory estimate exceeds this (bytes, or
    /// with a suffix: 512M, 2G; default: the available memory).
    #[arg(long, value_parser = parse_max_memory)]
    pub max_memory: Option<u64>,
    // The doc comment below is the help text: plain text for clap, where
    // rustdoc would read `<model>` as an HTML tag.
    #[allow(rustdoc::invalid_html_tags)]
    /// Output directory [default: runs/<model>-<data> for train,
    /// runs/compare-<model>-<data> and runs/curve-<model>-<data> for compare
    /// and curve; -2, -3, ... when taken].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an existing output directory (only one that cnn wrote).
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bars (train still prints a line per epoch and the
    /// results).
    #[arg(long)]
    pub quiet: bool,
}

/// `--lr`: a rate, or `find` for the LR range test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LrArg {
    Value(f64),
    Find,
}

fn parse_lr(s: &str) -> Result<LrArg, String> {
    if s.trim().eq_ignore_ascii_case("find") {
        return Ok(LrArg::Find);
    }
    s.trim()
        .parse()
        .map(LrArg::Value)
        .map_err(|_| format!("expected a learning rate or `find`, got `{s}`"))
}

/// A whole number of at least 1.
pub(crate) fn parse_positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a whole number of at least 1, got `{s}`")),
    }
}

fn parse_max_memory(s: &str) -> Result<u64, String> {
    cnn::train::config::parse_bytes(s)
}

/// `patience=3`: the value as TOML (a number, boolean, array or quoted
/// string), else as a bare string (`mode=max`).
fn parse_schedule_param(s: &str) -> Result<(String, toml::Value), String> {
    let (key, value) = s
        .split_once('=')
        .filter(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE like patience=3, got `{s}`"))?;
    let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.trim().to_string()));
    Ok((key.trim().to_string(), value))
}

/// `betas=[0.9,0.99]`, read like [`parse_schedule_param`].
fn parse_optimizer_param(s: &str) -> Result<(String, toml::Value), String> {
    parse_schedule_param(s).map_err(|_| format!("expected KEY=VALUE like eps=1e-6, got `{s}`"))
}

/// `64x48` (height x width) or `64` (square).
fn parse_image_size(s: &str) -> Result<[usize; 2], String> {
    let parse = |t: &str| t.trim().parse::<usize>().ok().filter(|&n| n > 0);
    let size = match s.split_once(['x', 'X']) {
        Some((h, w)) => parse(h).zip(parse(w)).map(|(h, w)| [h, w]),
        None => parse(s).map(|n| [n, n]),
    };
    size.ok_or_else(|| format!("expected HxW like 64x64 (or 64), got `{s}`"))
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("expected on or off, got `{s}`")),
    }
}

impl ModelDataArgs {
    /// Apply the flags that were given on top of `c`.
    pub fn apply(&self, c: &mut TrainConfig) {
        if let Some(v) = &self.model {
            c.model = v.clone();
        }
        if let Some(v) = &self.data {
            c.data = v.clone();
        }
        if self.data_dir.is_some() {
            c.data_dir = self.data_dir.clone();
        }
        if self.image_size.is_some() {
            c.image_size = self.image_size;
        }
        if self.channels.is_some() {
            c.channels = self.channels;
        }
        if let Some(v) = &self.activation {
            c.activation = v.clone();
        }
        if let Some(v) = self.dropout {
            c.dropout = v;
        }
        if let Some(v) = self.batch_norm {
            c.batch_norm = v;
        }
        if let Some(v) = self.threads {
            c.threads = v;
        }
        if let Some(v) = &self.backend {
            c.backend = v.clone();
        }
        if let Some(v) = self.seed {
            c.seed = v;
        }
    }
}

impl TrainArgs {
    /// The configuration: defaults, then `--config`, then flags.
    pub fn to_config(&self) -> cnn::train::Result<TrainConfig> {
        let mut c = match &self.config {
            Some(path) => TrainConfig::load(path)?,
            None => TrainConfig::default(),
        };
        self.common.apply(&mut c);
        self.averaging.apply(&mut c);
        self.precision.apply(&mut c);
        self.data_on_device.apply(&mut c);
        macro_rules! set {
            ($($field:ident),*) => {$( if let Some(v) = &self.$field { c.$field = v.clone(); } )*};
        }
        set!(
            epochs,
            max_steps,
            batch_size,
            accumulate,
            optimizer,
            schedule,
            l1,
            l2,
            label_smoothing,
            clip_grad_norm,
            clip_value,
            early_stopping,
            min_delta,
            restore_best,
            val_fraction,
            limit_train,
            checkpoint_every,
            cutout,
            mixup,
            cutmix,
            mix_prob,
            mix_switch_prob
        );
        match self.lr {
            Some(LrArg::Value(lr)) => {
                c.lr = Some(lr);
                c.lr_find = None;
            }
            // The test's settings from a config file, if any; a finished
            // test's record (a run's config.toml) runs again.
            Some(LrArg::Find) => {
                c.lr = None;
                let settings = c.lr_find.take().unwrap_or_default();
                c.lr_find = Some(cnn::train::LrFindSettings {
                    suggestion: None,
                    ..settings
                });
            }
            None => {}
        }
        if self.momentum.is_some() {
            c.momentum = self.momentum;
        }
        if self.weight_decay.is_some() {
            c.weight_decay = self.weight_decay;
        }
        if self.lookahead.is_some() {
            c.lookahead = self.lookahead.clone();
        }
        if self.sam.is_some() {
            c.sam = self.sam.clone();
        }
        if self.init_from.is_some() {
            c.init_from = self.init_from.clone();
        }
        if self.max_memory.is_some() {
            c.max_memory = self.max_memory;
        }
        c.schedule_params
            .extend(self.schedule_param.iter().cloned());
        c.optimizer_params
            .extend(self.optimizer_param.iter().cloned());
        c.nesterov |= self.nesterov;
        c.augment |= self.augment;
        c.detect_anomaly |= self.detect_anomaly;
        if self.no_shuffle {
            c.shuffle = false;
        }
        // A step budget given alone decides the length, as in Lightning.
        if self.max_steps.is_some() && self.epochs.is_none() && self.config.is_none() {
            c.epochs = 0;
        }
        c.validate()?;
        Ok(c)
    }
}

impl TrainArgs {
    /// The configuration keys that the flags given set: a `--runs` file's
    /// `[base]` yields to them, as `--config` does.
    pub fn keys_given(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        macro_rules! given {
            ($from:expr; $($field:ident),*) => {$(
                if $from.$field.is_some() {
                    keys.push(stringify!($field));
                }
            )*};
        }
        given!(self.common; model, data, data_dir, image_size, channels, activation, dropout,
            batch_norm, threads, backend, seed);
        given!(self; epochs, max_steps, batch_size, optimizer, lr, momentum, weight_decay,
            schedule, l1, l2, label_smoothing, clip_grad_norm, clip_value, early_stopping,
            min_delta, restore_best, val_fraction, limit_train, init_from, checkpoint_every,
            max_memory, lookahead, sam, accumulate, cutout, mixup, cutmix, mix_prob,
            mix_switch_prob);
        keys.extend(self.precision.keys_given());
        keys.extend(self.data_on_device.keys_given());
        for (set, key) in [
            (self.nesterov, "nesterov"),
            (self.augment, "augment"),
            (self.detect_anomaly, "detect_anomaly"),
            (self.no_shuffle, "shuffle"),
            (!self.schedule_param.is_empty(), "schedule_params"),
            (!self.optimizer_param.is_empty(), "optimizer_params"),
        ] {
            if set {
                keys.push(key);
            }
        }
        keys
    }
}

/// Config for eval/predict: the `config.toml` of the run the weights come
/// from when they sit in a run directory (its model, data and seed, which
/// fixes the synthetic set), else the defaults; then the flags given.
pub(crate) fn config_for(common: &ModelDataArgs, weights: &Path) -> CliResult<TrainConfig> {
    let run_config = weights
        .parent()
        .map(|dir| dir.join("config.toml"))
        .filter(|p| p.is_file());
    let mut c = match &run_config {
        Some(path) => TrainConfig::load(path)?,
        None => TrainConfig::default(),
    };
    // Another dataset than the run's: the run's data directory (and image
    // options) are for its own dataset, not for the one asked for.
    if common.data.as_ref().is_some_and(|d| *d != c.data) {
        c.data_dir = None;
        c.image_size = None;
        c.channels = None;
    }
    common.apply(&mut c);
    Ok(c)
}

/// `--threads`: a count up to [`cnn::train::display::MAX_THREADS`].
fn parse_threads(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number of threads"))?;
    if n > cnn::train::display::MAX_THREADS {
        return Err(format!(
            "{n} is more than {} threads; 0 means one per core",
            cnn::train::display::MAX_THREADS
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::TrainArgs;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        train: TrainArgs,
    }

    /// The top-level keys of `args`' config that differ from the defaults.
    fn changed_keys(args: &TrainArgs) -> Vec<String> {
        let table = |c: &cnn::train::TrainConfig| -> toml::Table {
            toml::from_str(&c.to_toml()).expect("config.toml parses")
        };
        let (given, plain) = (
            table(&args.to_config().unwrap()),
            table(&TrainArgs::default().to_config().unwrap()),
        );
        given
            .iter()
            .filter(|(k, v)| plain.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect()
    }

    #[test]
    fn every_top_level_key_a_flag_sets_is_one_a_runs_file_base_yields_to() {
        // `--cutout` and `--accumulate` used to be missing, so a `--runs`
        // file's [base] overrode them.
        for flags in [
            &["--cutout", "8"][..],
            &["--accumulate", "2"],
            &["--epochs", "3"],
            &["--batch-size", "16"],
            &["--lr", "0.5"],
            &["--weight-decay", "0.01"],
            &["--label-smoothing", "0.1"],
            &["--mixup", "0.2"],
            &["--cutmix", "1"],
            &["--mix-prob", "0.5"],
            &["--limit-train", "64"],
            &["--checkpoint-every", "2"],
            &["--augment"],
            &["--no-shuffle"],
            &["--seed", "9"],
            &["--dropout", "0.3"],
            &["--data-on-device", "off"],
        ] {
            let args = Cli::try_parse_from(std::iter::once("cnn").chain(flags.iter().copied()))
                .unwrap_or_else(|e| panic!("{flags:?}: {e}"))
                .train;
            let changed = changed_keys(&args);
            assert!(!changed.is_empty(), "{flags:?} changed nothing");
            let given = args.keys_given();
            for key in &changed {
                assert!(
                    given.contains(&key.as_str()),
                    "{flags:?} sets `{key}`, which keys_given leaves out: {given:?}"
                );
            }
        }
    }
}
