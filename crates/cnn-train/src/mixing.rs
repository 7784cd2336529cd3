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
//! Training accuracy (and the training confusion matrix) under mixing
//! counts each image's arg-max against the label that weighs more in its
//! target: its own label `y` when `lam >= 1/2`, else its partner's
//! ([`counted_labels`]). Counting against `y` alone, as trainers that log
//! a mixed accuracy mostly do, reads about 50% for mixup with a small
//! alpha, whose `lam` is near 0 as often as near 1 (55.8% after 10 epochs
//! of LeNet-5 on MNIST with `--mixup 0.2`, against 98.6% unmixed): it
//! measures the draw more than the model. The training loss is the mixed
//! loss. Validation is never mixed.
//!
//! Steps given their images directly (`Trainer::train_step`,
//! `Trainer::train_batch`) are not mixed: the draw is keyed by a batch's
//! place in its epoch, which only the trainer's own loop knows; the LR
//! range test, which steps through `train_batch`, sweeps on clean batches.

use std::borrow::Cow;

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

/// The labels a mixed batch's predictions are counted against for the
/// training accuracy: the labels themselves unless the batch is mixed
/// with `lam < 1/2`, where each image's partner weighs more and the
/// partners' labels (the batch's reversed) are counted.
pub fn counted_labels(labels: &[u32], lam: Option<f64>) -> Cow<'_, [u32]> {
    match lam {
        Some(lam) if lam < 0.5 => Cow::Owned(partners(labels)),
        _ => Cow::Borrowed(labels),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_counts_the_label_that_weighs_more() {
        let labels = [3, 1, 4, 1, 5];
        assert_eq!(partners(&labels), vec![5, 1, 4, 1, 3]);
        assert_eq!(&*counted_labels(&labels, None), &labels);
        assert_eq!(&*counted_labels(&labels, Some(0.5)), &labels);
        assert_eq!(&*counted_labels(&labels, Some(0.9)), &labels);
        assert_eq!(&*counted_labels(&labels, Some(0.49)), &[5, 1, 4, 1, 3]);
        assert_eq!(&*counted_labels(&labels, Some(0.0)), &[5, 1, 4, 1, 3]);
    }

    #[test]
    fn settings_are_checked_with_their_config_names() {
        assert!(check(0.0, 0.0, DEFAULT_PROB, DEFAULT_SWITCH_PROB).is_ok());
        assert!(check(0.2, 1.0, 0.5, 0.0).is_ok());
        for (args, name) in [
            ((-0.1, 0.0, 1.0, 0.5), "mixup"),
            ((0.0, f64::INFINITY, 1.0, 0.5), "cutmix"),
            ((0.2, 0.0, 1.01, 0.5), "mix_prob"),
            ((0.2, 0.0, 1.0, f64::NAN), "mix_switch_prob"),
        ] {
            let e = check(args.0, args.1, args.2, args.3).unwrap_err();
            assert!(
                matches!(&e, TrainError::Config(m) if m.contains(name)),
                "{e}"
            );
        }
    }
}
