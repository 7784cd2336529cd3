//! The precision flags of `cnn train`, `compare`, `curve` and `lr-find`
//! (`--precision`, `--loss-scale`), their place in a `TrainConfig` (keys
//! `precision`, `loss_scale`), and the check that the chosen backend
//! computes in the mode, made before anything is written.

use clap::Args;
use cnn::core::Precision;
use cnn::train::TrainConfig;
use cnn::train::loss_scale::LossScaleMode;

use crate::error::CliResult;

/// Precision of convolutions and linear layers, and loss scaling.
#[derive(Debug, Clone, Default, Args)]
pub struct PrecisionArgs {
    /// Precision of convolutions and linear layers, as torch.autocast:
    /// f32, tf32 (TF32 tensor cores), bf16 or f16 operands with f32
    /// accumulation; batch norm, softmax, the loss and the optimizer stay
    /// f32 on f32 weights, and checkpoints are f32. The cpu backend
    /// computes in f32 only [default: f32].
    #[arg(long, value_name = "f32|tf32|bf16|f16", value_parser = parse_precision)]
    pub precision: Option<Precision>,
    /// Dynamic loss scaling with torch.amp.GradScaler's rules (scale
    /// 65536, x2 after 2000 clean steps, x0.5 and the step skipped on a
    /// NaN/inf gradient; steps.csv gains loss_scale and skipped columns),
    /// or none [default: dynamic for f16, else none].
    #[arg(long, value_name = "dynamic|none", value_parser = parse_loss_scale)]
    pub loss_scale: Option<LossScaleMode>,
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    s.trim().parse().map_err(|e: cnn::core::CnnError| match e {
        cnn::core::CnnError::InvalidValue { message, .. } => message,
        e => e.to_string(),
    })
}

fn parse_loss_scale(s: &str) -> Result<LossScaleMode, String> {
    s.parse()
}

impl PrecisionArgs {
    /// Put the flags given over `c`'s settings.
    pub fn apply(&self, c: &mut TrainConfig) {
        if let Some(p) = self.precision {
            c.precision = p;
        }
        if self.loss_scale.is_some() {
            c.loss_scale = self.loss_scale;
        }
    }

    /// The configuration keys the flags given set.
    pub fn keys_given(&self) -> impl Iterator<Item = &'static str> {
        [
            self.precision.map(|_| "precision"),
            self.loss_scale.map(|_| "loss_scale"),
        ]
        .into_iter()
        .flatten()
    }
}

/// That `config`'s backend computes in its precision: one line naming
/// the backend and the mode otherwise (exit code 2), before anything is
/// written.
pub fn check(config: &TrainConfig) -> CliResult {
    cnn::backends::check_precision(&config.backend, config.precision)?;
    Ok(())
}
