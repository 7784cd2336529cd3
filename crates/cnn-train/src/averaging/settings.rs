//! The weight-averaging settings of a run: `[averaging]` in
//! `config.toml`, the `--ema`, `--ema-warmup` and `--swa-*` flags.

use serde::{Deserialize, Serialize};

use super::swa::Anneal;
use crate::error::{Result, TrainError};

/// The weight averages of a run (`[averaging]` in `config.toml`; the
/// `--ema`, `--ema-warmup`, `--swa-*` flags). Both off by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AveragingSettings {
    /// The EMA's decay in `[0, 1)` (timm's `ModelEmaV2`; e.g. 0.999).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ema: Option<f64>,
    /// Warm the EMA's decay up as timm's `ModelEmaV3` does with
    /// `use_warmup` (see [`super::ema::decay_at`]).
    pub ema_warmup: bool,
    /// The epoch (counting from 1) from which SWA trains at the SWA rate
    /// and averages the weights after each epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swa_start: Option<usize>,
    /// SWALR's `swa_lr`: the rate SWA anneals to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swa_lr: Option<f64>,
    /// SWALR's `anneal_epochs` (torch's default, 10).
    pub swa_anneal_epochs: usize,
    /// SWALR's `anneal_strategy`: `cos` (torch's default) or `linear`.
    pub swa_anneal: Anneal,
}

impl Default for AveragingSettings {
    fn default() -> Self {
        AveragingSettings {
            ema: None,
            ema_warmup: false,
            swa_start: None,
            swa_lr: None,
            swa_anneal_epochs: 10,
            swa_anneal: Anneal::Cos,
        }
    }
}

impl AveragingSettings {
    /// Neither EMA nor SWA (the settings are then left out of `config.toml`).
    pub fn is_off(&self) -> bool {
        *self == AveragingSettings::default()
    }

    /// Check the values.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Config(m));
        if let Some(d) = self.ema
            && !(d.is_finite() && (0.0..1.0).contains(&d))
        {
            return bad(format!("ema decay {d} is outside [0, 1)"));
        }
        if self.ema_warmup && self.ema.is_none() {
            return bad("ema_warmup needs an EMA decay (--ema DECAY)".into());
        }
        match (self.swa_start, self.swa_lr) {
            (Some(0), _) => return bad("swa_start counts epochs from 1".into()),
            (Some(_), None) => {
                return bad("swa_start needs the SWA learning rate (--swa-lr)".into());
            }
            (None, Some(_)) => {
                return bad("swa_lr needs the epoch SWA starts at (--swa-start)".into());
            }
            (_, Some(lr)) if !(lr.is_finite() && lr >= 0.0) => {
                return bad(format!("swa_lr {lr} must be a non-negative number"));
            }
            _ => {}
        }
        let swa_defaults = AveragingSettings::default();
        if self.swa_start.is_none()
            && (self.swa_anneal_epochs != swa_defaults.swa_anneal_epochs
                || self.swa_anneal != swa_defaults.swa_anneal)
        {
            return bad("swa_anneal_epochs and swa_anneal need --swa-start and --swa-lr".into());
        }
        Ok(())
    }
}
