//! The weight-averaging flags of `cnn train`, `compare` and `curve`
//! (`--ema`, `--ema-warmup`, `--swa-start`, `--swa-lr`,
//! `--swa-anneal-epochs`, `--swa-anneal`) and their place in a
//! `TrainConfig` (`[averaging]`, see cnn-train's `averaging`).

use clap::Args;
use cnn::train::TrainConfig;
use cnn::train::averaging::Anneal;

/// Weight averaging: EMA and SWA.
#[derive(Debug, Clone, Default, Args)]
pub struct AveragingArgs {
    /// Keep an exponential moving average of the weights and batch-norm
    /// statistics with this decay (timm's ModelEmaV2: after each optimizer
    /// step ema = decay * ema + (1 - decay) * weights), validated each
    /// epoch (ema_val columns, its own line in curves.png) and saved as
    /// ema.safetensors.
    #[arg(long, value_name = "DECAY", allow_negative_numbers = true)]
    pub ema: Option<f64>,
    /// Warm the EMA's decay up as timm's ModelEmaV3 does (use_warmup):
    /// update t uses min(DECAY, 1 - t^(-2/3)), the first a plain copy.
    #[arg(long)]
    pub ema_warmup: bool,
    /// Stochastic weight averaging from this epoch on (counting from 1):
    /// the SWALR rate replaces the schedule, the weights are averaged
    /// after each epoch, batch-norm statistics recomputed over the
    /// training data (update_bn), validated (swa_val columns) and saved
    /// as swa.safetensors.
    #[arg(long, value_name = "EPOCH", value_parser = parse_epoch)]
    pub swa_start: Option<usize>,
    /// SWALR's swa_lr: the rate SWA anneals to (needs --swa-start).
    #[arg(long, value_name = "LR", allow_negative_numbers = true)]
    pub swa_lr: Option<f64>,
    /// SWALR's anneal_epochs: epochs from the run's rate to --swa-lr
    /// (0 = at once) [default: 10].
    #[arg(long, value_name = "N")]
    pub swa_anneal_epochs: Option<usize>,
    /// SWALR's anneal_strategy: cos or linear [default: cos].
    #[arg(long, value_name = "cos|linear", value_parser = parse_anneal)]
    pub swa_anneal: Option<Anneal>,
}

/// An epoch, counting from 1.
fn parse_epoch(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected an epoch, counting from 1, got `{s}`")),
    }
}

fn parse_anneal(s: &str) -> Result<Anneal, String> {
    match s.trim() {
        "cos" => Ok(Anneal::Cos),
        "linear" => Ok(Anneal::Linear),
        _ => Err(format!("expected `cos` or `linear`, got `{s}`")),
    }
}

impl AveragingArgs {
    /// Put the flags given over `c`'s `[averaging]` settings.
    pub fn apply(&self, c: &mut TrainConfig) {
        let a = &mut c.averaging;
        if self.ema.is_some() {
            a.ema = self.ema;
        }
        if self.ema_warmup {
            a.ema_warmup = true;
        }
        if self.swa_start.is_some() {
            a.swa_start = self.swa_start;
        }
        if self.swa_lr.is_some() {
            a.swa_lr = self.swa_lr;
        }
        if let Some(n) = self.swa_anneal_epochs {
            a.swa_anneal_epochs = n;
        }
        if let Some(s) = self.swa_anneal {
            a.swa_anneal = s;
        }
    }
}
