//! The learning-curve history of a run: one record per optimizer step and
//! one per epoch.

use serde::{Deserialize, Serialize};

/// One optimizer step (a row of `steps.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Global step, counting from 1.
    pub step: u64,
    /// Epoch the step belongs to, counting from 1.
    pub epoch: usize,
    /// Training loss of the batch before the update (including any L1 penalty).
    #[serde(with = "crate::json_float")]
    pub loss: f64,
    /// Learning rate used by the update.
    #[serde(with = "crate::json_float")]
    pub lr: f64,
    /// With loss scaling on: the scale of the step and whether it was
    /// skipped (`steps.csv`'s `loss_scale` and `skipped` columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<StepScaling>,
}

/// A step's dynamic loss scaling (see [`crate::loss_scale`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepScaling {
    /// The scale the step's loss gradient was multiplied by.
    pub loss_scale: f32,
    /// A gradient was NaN or infinite after unscaling: the optimizer did
    /// not update the weights (the scale was then halved).
    pub skipped: bool,
}

/// Loss and classification metrics on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SplitMetrics {
    #[serde(with = "crate::json_float")]
    pub loss: f64,
    #[serde(with = "crate::json_float")]
    pub accuracy: f64,
    #[serde(with = "crate::json_float")]
    pub precision_macro: f64,
    #[serde(with = "crate::json_float")]
    pub recall_macro: f64,
    #[serde(with = "crate::json_float")]
    pub f1_macro: f64,
    /// Number of samples evaluated.
    pub n: usize,
    /// Fraction of samples whose class is among the 5 highest scores (all
    /// classes when there are fewer); evaluated splits only.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::json_float::option"
    )]
    pub top5_accuracy: Option<f64>,
}

/// One epoch (a row of `metrics.csv`, a line of `history.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Counting from 1.
    pub epoch: usize,
    /// Metrics on the training data, from the running averages over the
    /// epoch's batches (as Keras reports them).
    pub train: SplitMetrics,
    /// Metrics on the validation split, evaluated after the epoch.
    pub val: Option<SplitMetrics>,
    /// Learning rate of the epoch's last step (steps.csv has every step's).
    #[serde(with = "crate::json_float")]
    pub lr: f64,
    /// Wall-clock seconds of the epoch's training (not evaluation).
    #[serde(with = "crate::json_float")]
    pub seconds: f64,
    /// Training images per second.
    #[serde(with = "crate::json_float")]
    pub images_per_sec: f64,
    /// Per-class precision, recall and F1 on the validation split.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub val_per_class: Vec<ClassMetrics>,
    /// The exponential moving average of the weights on the validation
    /// split (`--ema`), evaluated after the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_val: Option<SplitMetrics>,
    /// The SWA average on the validation split, from `--swa-start` on,
    /// with its batch norm statistics recomputed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swa_val: Option<SplitMetrics>,
}

impl EpochRecord {
    /// The line `cnn train` prints when the epoch ends.
    pub fn summary_line(&self) -> String {
        let val = self
            .val
            .as_ref()
            .map(|v| {
                format!(
                    "val loss {} acc {:.2}%",
                    crate::display::Loss(v.loss),
                    v.accuracy * 100.0
                )
            })
            .unwrap_or_default();
        // Milliseconds below a second (a short epoch is not "0.0s").
        let time = match self.seconds {
            s if s < 0.01 => format!("{:.1} ms", s * 1e3),
            s if s < 0.9995 => format!("{:.0} ms", s * 1e3),
            s => format!("{s:.1}s"),
        };
        let averaged: String = [("ema", &self.ema_val), ("swa", &self.swa_val)]
            .into_iter()
            .filter_map(|(name, m)| {
                m.as_ref().map(|v| {
                    format!(
                        "  {name} val loss {} acc {:.2}%",
                        crate::display::Loss(v.loss),
                        v.accuracy * 100.0
                    )
                })
            })
            .collect();
        format!(
            "epoch {:>3}: train loss {} acc {:.2}%  {val}{averaged}  ({time}, {:.0} img/s)",
            self.epoch,
            crate::display::Loss(self.train.loss),
            self.train.accuracy * 100.0,
            self.images_per_sec
        )
    }
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: usize,
    #[serde(with = "crate::json_float")]
    pub precision: f64,
    #[serde(with = "crate::json_float")]
    pub recall: f64,
    #[serde(with = "crate::json_float")]
    pub f1: f64,
    pub support: usize,
}

/// The whole history of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct History {
    pub steps: Vec<StepRecord>,
    pub epochs: Vec<EpochRecord>,
}
