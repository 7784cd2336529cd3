//! Mixup and CutMix in training: the settings of a run (`mixup`, `cutmix`,
//! `mix_prob`, `mix_switch_prob` in `config.toml`) and the host side of a
//! mixed batch.
//!
//! Each training batch of epoch `e` (1-based) and index `b` within it is
//! mixed by [`cnn_data::Mix::draw`]`(seed, e - 1, b)` after the loader has
//! cropped, flipped and cut it out; the step's loss is then
//! `lam CE_s(y) + (1 - lam) CE_s(y_partner)` with label smoothing `s`
//! applied to each one-hot target first (timm's `mixup_target` with
//! `SoftTargetCrossEntropy`), the partners being the batch's labels
//! reversed.
//!
//! Training accuracy under mixing counts the arg-max against each image's
//! own label `y` (the one its `lam` weighs), as timm's and most trainers'
//! logs do; the training loss is the mixed loss. Validation is never mixed.
//!
//! Steps given their images directly (`Trainer::train_step`,
//! `Trainer::train_batch`) are not mixed: the draw is keyed by a batch's
//! place in its epoch, which only the trainer's own loop knows; the LR
//! range test, which steps through `train_batch`, sweeps on clean batches.

use crate::error::{Result, TrainError};

/// timm's `mix_prob` default: every batch is mixed.
pub const DEFAULT_PROB: f64 = 1.0;
/// timm's `switch_prob` default: CutMix or mixup alike when both are on.
pub const DEFAULT_SWITCH_PROB: f64 = 0.5;

/// The settings as `cnn_data` takes them.
pub fn settings(mixup: f64, cutmix: f64, prob: f64, switch_prob: f64) -> cnn_data::Mix {
    cnn_data::Mix {
        mixup_alpha: mixup,
        cutmix_alpha: cutmix,
        prob,
        switch_prob,
    }
}

/// Alphas finite and not negative, probabilities in `[0, 1]`.
pub fn check(mixup: f64, cutmix: f64, prob: f64, switch_prob: f64) -> Result<()> {
    settings(mixup, cutmix, prob, switch_prob)
        .validate()
        .map_err(|e| TrainError::Config(e.to_string()))
}

/// The partner of each image of a mixed batch: the batch reversed.
pub fn partners(labels: &[u32]) -> Vec<u32> {
    labels.iter().rev().copied().collect()
}

// `config.toml` holds a mixing key only when it differs from its default,
// so the files of runs without mixing read as before.
pub(crate) fn is_off(alpha: &f64) -> bool {
    *alpha == 0.0
}
pub(crate) fn is_default_prob(p: &f64) -> bool {
    *p == DEFAULT_PROB
}
pub(crate) fn is_default_switch_prob(p: &f64) -> bool {
    *p == DEFAULT_SWITCH_PROB
}
