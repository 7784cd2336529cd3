//! What a run's learning curves say, in words with the figures behind them.
//!
//! [`diagnose`] is a pure function of a [`History`] (and, for a run that
//! stopped on a non-finite loss, its [`Divergence`]). It looks for:
//!
//! - **divergence**: the loss became NaN or infinite (the trainer stopped
//!   with `TrainError::Diverged`), or the epoch training loss rose to
//!   [`Thresholds::diverge_factor`] times its minimum;
//! - **overfitting**: the validation loss reached its minimum at epoch `e`,
//!   then rose by more than [`Thresholds::overfit_rise`] while the training
//!   loss kept falling;
//! - **underfitting**: the final training accuracy is below
//!   [`Thresholds::underfit_accuracy`] and either the training loss barely
//!   fell or the training and validation accuracies are close (the model
//!   has not fit even its training data);
//! - **plateau**: the validation loss moved less than
//!   [`Thresholds::plateau_change`] (relative) over the last
//!   [`Thresholds::plateau_epochs`] epochs.
//!
//! When none applies the single finding is [`FindingKind::Healthy`]. Every
//! sentence states the numbers (losses, accuracies, epochs) it rests on.

use serde::{Deserialize, Serialize};

use crate::display::{Loss, Times};
use crate::history::{EpochRecord, History, StepRecord};

/// What kind of behaviour a finding reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Divergence,
    Overfitting,
    Underfitting,
    Plateau,
    /// None of the above.
    Healthy,
    /// Too little history to say anything.
    Inconclusive,
}

impl FindingKind {
    /// Lower-case name as used in tables and reports.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::Divergence => "divergence",
            FindingKind::Overfitting => "overfitting",
            FindingKind::Underfitting => "underfitting",
            FindingKind::Plateau => "plateau",
            FindingKind::Healthy => "healthy",
            FindingKind::Inconclusive => "inconclusive",
        }
    }
}

/// One statement about a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The epoch the behaviour starts at, where there is one.
    pub epoch: Option<usize>,
    /// A sentence with the supporting figures.
    pub message: String,
}

/// Where a run stopped on a non-finite loss (from `TrainError::Diverged`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    pub step: u64,
    pub epoch: usize,
    /// The loss as text (`NaN`, `inf`: JSON has no such numbers).
    pub loss: String,
    /// The first layer with a non-finite output, when known.
    pub location: Option<String>,
}

/// The limits the rules use.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Relative rise of the validation loss above its minimum that counts
    /// as overfitting (0.1 = 10%).
    pub overfit_rise: f64,
    /// Final training accuracy below which a run may be underfitting.
    pub underfit_accuracy: f64,
    /// Relative fall of the training loss from the first to the last epoch
    /// below which it "barely decreased".
    pub underfit_loss_drop: f64,
    /// Train minus validation accuracy below which the two are "close".
    pub underfit_gap: f64,
    /// Epochs the plateau rule looks back over.
    pub plateau_epochs: usize,
    /// Relative change of the validation loss over those epochs below which
    /// it has plateaued.
    pub plateau_change: f64,
    /// The epoch training loss rising to this multiple of its minimum (and
    /// above its first value) is divergence.
    pub diverge_factor: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            overfit_rise: 0.10,
            underfit_accuracy: 0.6,
            underfit_loss_drop: 0.10,
            underfit_gap: 0.05,
            plateau_epochs: 3,
            plateau_change: 0.01,
            diverge_factor: 3.0,
        }
    }
}

/// Diagnose a run with the default [`Thresholds`].
pub fn diagnose(history: &History, diverged: Option<&Divergence>) -> Vec<Finding> {
    diagnose_with(history, diverged, &Thresholds::default())
}

/// Diagnose a run: divergence first (it explains everything else), then
/// overfitting, underfitting and plateau; `Healthy` when none applies.
pub fn diagnose_with(
    history: &History,
    diverged: Option<&Divergence>,
    t: &Thresholds,
) -> Vec<Finding> {
    let epochs = &history.epochs;
    if let Some(d) = diverged {
        return vec![divergence_from_error(d, epochs)];
    }
    if let Some(f) = divergence_from_curve(&history.steps, epochs, t) {
        return vec![f];
    }
    if epochs.is_empty() {
        return vec![Finding {
            kind: FindingKind::Inconclusive,
            epoch: None,
            message: "no epoch completed, so there is no curve to read".into(),
        }];
    }
    let mut out = Vec::new();
    out.extend(overfitting(epochs, t));
    out.extend(underfitting(epochs, t));
    if out.is_empty() {
        out.extend(plateau(epochs, t));
    }
    if out.is_empty() {
        out.push(healthy(epochs));
    }
    out
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn val_loss(e: &EpochRecord) -> Option<f64> {
    e.val.as_ref().map(|v| v.loss)
}

fn divergence_from_error(d: &Divergence, epochs: &[EpochRecord]) -> Finding {
    let last = epochs
        .iter()
        .rev()
        .find(|e| e.train.loss.is_finite())
        .map(|e| {
            format!(
                "; the last complete epoch ({}) had training loss {}",
                e.epoch,
                Loss(e.train.loss)
            )
        })
        .unwrap_or_else(|| "; no epoch completed".into());
    let location = d
        .location
        .as_ref()
        .map(|l| format!(" ({l})"))
        .unwrap_or_default();
    Finding {
        kind: FindingKind::Divergence,
        epoch: Some(d.epoch),
        message: format!(
            "diverged: the training loss became {} at step {} (epoch {}){location}{last}; \
             lower the learning rate or clip the gradients",
            d.loss, d.step, d.epoch
        ),
    }
}

fn divergence_from_curve(
    steps: &[StepRecord],
    epochs: &[EpochRecord],
    t: &Thresholds,
) -> Option<Finding> {
    if let Some(e) = epochs
        .iter()
        .find(|e| !e.train.loss.is_finite() || val_loss(e).is_some_and(|v| !v.is_finite()))
    {
        return Some(Finding {
            kind: FindingKind::Divergence,
            epoch: Some(e.epoch),
            message: format!(
                "diverged: at epoch {} the training loss is {} and the validation loss {}",
                e.epoch,
                e.train.loss,
                val_loss(e).map_or("absent".into(), |v| v.to_string())
            ),
        });
    }
    // Far above where training started: the first step's loss (before any
    // update; about ln(classes) for a fresh classifier), or epoch 1's.
    let start = history_start(steps, epochs)?;
    if let Some(worst) = epochs
        .iter()
        .filter(|e| e.train.loss > t.diverge_factor * start)
        .max_by(|a, b| a.train.loss.total_cmp(&b.train.loss))
    {
        return Some(Finding {
            kind: FindingKind::Divergence,
            epoch: Some(worst.epoch),
            message: format!(
                "diverged: the training loss of epoch {} is {}, {} times its starting \
                 value {}; the learning rate is too high",
                worst.epoch,
                Loss(worst.train.loss),
                Times(worst.train.loss / start.max(f64::MIN_POSITIVE)),
                Loss(start)
            ),
        });
    }
    let (first, last) = (epochs.first()?, epochs.last()?);
    let min = epochs
        .iter()
        .min_by(|a, b| a.train.loss.total_cmp(&b.train.loss))?;
    let blew_up = last.train.loss > t.diverge_factor * min.train.loss
        && last.train.loss > first.train.loss
        && min.epoch < last.epoch;
    blew_up.then(|| Finding {
        kind: FindingKind::Divergence,
        epoch: Some(min.epoch + 1),
        message: format!(
            "diverging: the training loss rose from its minimum {} (epoch {}) to {} \
             (epoch {}), {} times as high and above its first-epoch value {}; \
             the learning rate is too high",
            Loss(min.train.loss),
            min.epoch,
            Loss(last.train.loss),
            last.epoch,
            Times(last.train.loss / min.train.loss.max(f64::MIN_POSITIVE)),
            Loss(first.train.loss)
        ),
    })
}

/// The loss training started from: the first step's, else epoch 1's.
fn history_start(steps: &[StepRecord], epochs: &[EpochRecord]) -> Option<f64> {
    steps
        .first()
        .map(|s| s.loss)
        .or_else(|| epochs.first().map(|e| e.train.loss))
        .filter(|v| v.is_finite() && *v > 0.0)
}

fn overfitting(epochs: &[EpochRecord], t: &Thresholds) -> Option<Finding> {
    let with_val: Vec<(&EpochRecord, f64)> = epochs
        .iter()
        .filter_map(|e| Some((e, val_loss(e)?)))
        .collect();
    let (last, last_val) = *with_val.last()?;
    let (best, best_val) = *with_val
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("non-empty");
    if best.epoch >= last.epoch || best_val <= 0.0 {
        return None;
    }
    let rise = last_val / best_val - 1.0;
    let train_falls = last.train.loss < best.train.loss;
    if rise <= t.overfit_rise || !train_falls {
        return None;
    }
    let val_acc = last.val.as_ref().map_or(f64::NAN, |v| v.accuracy);
    Some(Finding {
        kind: FindingKind::Overfitting,
        epoch: Some(best.epoch),
        message: format!(
            "overfitting after epoch {}: the validation loss rose {} from its minimum {:.4} \
             (epoch {}) to {:.4} (epoch {}) while the training loss fell from {:.4} to {:.4}; \
             final accuracy {} on training data against {} on validation data \
             (a gap of {:.1} points); regularise (dropout, L2, augmentation), use more \
             data or stop at epoch {}",
            best.epoch,
            pct(rise),
            best_val,
            best.epoch,
            last_val,
            last.epoch,
            best.train.loss,
            last.train.loss,
            pct(last.train.accuracy),
            pct(val_acc),
            (last.train.accuracy - val_acc) * 100.0,
            best.epoch
        ),
    })
}

fn underfitting(epochs: &[EpochRecord], t: &Thresholds) -> Option<Finding> {
    let (first, last) = (epochs.first()?, epochs.last()?);
    if last.train.accuracy >= t.underfit_accuracy {
        return None;
    }
    let drop = if first.train.loss > 0.0 {
        1.0 - last.train.loss / first.train.loss
    } else {
        0.0
    };
    let val_acc = last.val.as_ref().map(|v| v.accuracy);
    let gap = val_acc.map(|v| last.train.accuracy - v);
    let barely = epochs.len() >= 2 && drop < t.underfit_loss_drop;
    let close = gap.is_some_and(|g| g < t.underfit_gap);
    if !(barely || close) {
        return None;
    }
    let val_text = match (val_acc, close) {
        (Some(v), true) => format!(", close to its validation accuracy {}", pct(v)),
        (Some(v), false) => format!(" (validation {})", pct(v)),
        (None, _) => String::new(),
    };
    let stuck = epochs.len() >= 2 && drop < 0.02;
    let (loss_text, advice) = if stuck {
        (
            format!(
                "; the training loss did not improve in {} epochs ({:.4} to {:.4})",
                epochs.len(),
                first.train.loss,
                last.train.loss
            ),
            format!(
                "the network is stuck where it started, which a rate far too high (dead \
                 units, overshooting) or far too low both cause: try rates ten times either \
                 side of {}",
                last.lr
            ),
        )
    } else if barely {
        (
            format!(
                "; the training loss fell only {} in {} epochs ({:.4} to {:.4})",
                pct(drop),
                epochs.len(),
                first.train.loss,
                last.train.loss
            ),
            "train longer, raise the learning rate, add capacity or reduce regularisation".into(),
        )
    } else {
        (
            format!("; the training loss is {:.4}", last.train.loss),
            "train longer, raise the learning rate, add capacity or reduce regularisation".into(),
        )
    };
    Some(Finding {
        kind: FindingKind::Underfitting,
        epoch: None,
        message: format!(
            "underfitting: after {} epochs the training accuracy is only {}{val_text}{loss_text}; \
             {advice}",
            last.epoch,
            pct(last.train.accuracy)
        ),
    })
}

fn plateau(epochs: &[EpochRecord], t: &Thresholds) -> Option<Finding> {
    let k = t.plateau_epochs.max(1);
    let with_val: Vec<(usize, f64)> = epochs
        .iter()
        .filter_map(|e| Some((e.epoch, val_loss(e)?)))
        .collect();
    if with_val.len() < k + 1 {
        return None;
    }
    let window = &with_val[with_val.len() - (k + 1)..];
    let (lo, hi) = window
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, v)| {
            (lo.min(v), hi.max(v))
        });
    let mean = window.iter().map(|&(_, v)| v).sum::<f64>() / window.len() as f64;
    if mean.abs() < f64::MIN_POSITIVE {
        return None;
    }
    let change = (hi - lo) / mean.abs();
    (change < t.plateau_change).then(|| Finding {
        kind: FindingKind::Plateau,
        epoch: Some(window[0].0),
        message: format!(
            "plateau: the validation loss stayed between {lo:.4} and {hi:.4} from epoch {} \
             to epoch {} (a change of {}); more epochs at this rate will not help: lower \
             the rate (a schedule) or stop",
            window[0].0,
            window[k].0,
            pct(change)
        ),
    })
}

fn healthy(epochs: &[EpochRecord]) -> Finding {
    let last = epochs.last().expect("non-empty");
    match epochs
        .iter()
        .filter_map(|e| Some((e.epoch, val_loss(e)?, e.val.as_ref()?.accuracy)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
    {
        Some((epoch, loss, acc)) => Finding {
            kind: FindingKind::Healthy,
            epoch: None,
            message: format!(
                "no overfitting, underfitting, divergence or plateau: the validation loss \
                 reached {loss:.4} (accuracy {}) at epoch {epoch} of {}; final training \
                 accuracy {}",
                pct(acc),
                last.epoch,
                pct(last.train.accuracy)
            ),
        },
        None => Finding {
            kind: FindingKind::Healthy,
            epoch: None,
            message: format!(
                "no divergence or underfitting: after {} epochs the training loss is {:.4} \
                 and the training accuracy {} (no validation data)",
                last.epoch,
                last.train.loss,
                pct(last.train.accuracy)
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::SplitMetrics;

    fn split(loss: f64, accuracy: f64) -> SplitMetrics {
        SplitMetrics {
            loss,
            accuracy,
            ..SplitMetrics::default()
        }
    }

    /// A history from (train loss, train acc, val loss, val acc) per epoch.
    fn history(rows: &[(f64, f64, f64, f64)]) -> History {
        History {
            steps: Vec::new(),
            epochs: rows
                .iter()
                .enumerate()
                .map(|(i, &(tl, ta, vl, va))| EpochRecord {
                    epoch: i + 1,
                    train: split(tl, ta),
                    val: Some(split(vl, va)),
                    lr: 0.01,
                    seconds: 1.0,
                    images_per_sec: 100.0,
                    val_per_class: Vec::new(),
                    ema_val: None,
                    swa_val: None,
                })
                .collect(),
        }
    }

    fn kinds(f: &[Finding]) -> Vec<FindingKind> {
        f.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn rising_validation_loss_with_falling_training_loss_is_overfitting() {
        let h = history(&[
            (2.0, 0.3, 1.8, 0.35),
            (1.4, 0.55, 1.3, 0.55),
            (0.9, 0.7, 1.1, 0.62),
            (0.5, 0.85, 1.2, 0.61),
            (0.2, 0.95, 1.5, 0.60),
        ]);
        let f = diagnose(&h, None);
        assert_eq!(kinds(&f), vec![FindingKind::Overfitting], "{f:?}");
        assert_eq!(f[0].epoch, Some(3));
        let m = &f[0].message;
        assert!(m.contains("epoch 3") && m.contains("1.1000") && m.contains("1.5000"));
        assert!(m.contains("36.4%"), "rise 1.5/1.1 - 1: {m}");
        assert!(m.contains("95.0%") && m.contains("60.0%"), "{m}");
    }

    #[test]
    fn a_small_rise_or_a_rising_training_loss_is_not_overfitting() {
        // 5% above the minimum: within the default 10%.
        let h = history(&[
            (2.0, 0.3, 1.0, 0.5),
            (1.5, 0.5, 0.9, 0.6),
            (1.0, 0.7, 0.945, 0.6),
        ]);
        assert!(!kinds(&diagnose(&h, None)).contains(&FindingKind::Overfitting));
        // Both losses rise: not overfitting.
        let h = history(&[(1.0, 0.7, 1.0, 0.7), (1.1, 0.7, 1.3, 0.6)]);
        assert!(!kinds(&diagnose(&h, None)).contains(&FindingKind::Overfitting));
    }

    #[test]
    fn a_stopped_run_is_divergence_whatever_the_curve() {
        let h = history(&[(2.0, 0.3, 1.8, 0.35)]);
        let d = Divergence {
            step: 42,
            epoch: 2,
            loss: "NaN".into(),
            location: Some("first non-finite output at layer `fc1`".into()),
        };
        let f = diagnose(&h, Some(&d));
        assert_eq!(kinds(&f), vec![FindingKind::Divergence]);
        assert!(f[0].message.contains("step 42") && f[0].message.contains("NaN"));
        assert!(f[0].message.contains("fc1") && f[0].message.contains("2.0000"));
        let f = diagnose(&History::default(), Some(&d));
        assert!(f[0].message.contains("no epoch completed"), "{f:?}");
    }

    #[test]
    fn a_loss_that_blows_up_or_is_not_finite_is_divergence() {
        let h = history(&[
            (2.3, 0.1, 2.3, 0.1),
            (1.5, 0.4, 1.6, 0.4),
            (6.0, 0.1, 8.0, 0.1),
        ]);
        let f = diagnose(&h, None);
        assert_eq!(kinds(&f), vec![FindingKind::Divergence], "{f:?}");
        assert!(f[0].message.contains("4.0 times"), "{}", f[0].message);
        // Far above the starting loss from the first epoch on (a huge rate
        // that stays finite).
        let mut h = history(&[(1824.9, 0.1, 74.5, 0.1), (66.8, 0.1, 97.4, 0.1)]);
        h.steps.push(StepRecord {
            step: 1,
            epoch: 1,
            loss: 2.31,
            lr: 50.0,
            scaling: None,
        });
        let f = diagnose(&h, None);
        assert_eq!(kinds(&f), vec![FindingKind::Divergence], "{f:?}");
        assert_eq!(f[0].epoch, Some(1));
        assert!(f[0].message.contains("2.3100") && f[0].message.contains("1824.9000"));
        // A loss of 9e30 reads as such, not as a 31-digit number.
        let mut h = history(&[(9.0e30, 0.1, 9.5e30, 0.1)]);
        h.steps.push(StepRecord {
            step: 1,
            epoch: 1,
            loss: 2.31,
            lr: 1e6,
            scaling: None,
        });
        let m = &diagnose(&h, None)[0].message;
        assert!(
            m.contains("is 9.000e30, 3.9e30 times its starting value 2.3100"),
            "{m}"
        );
        let h = history(&[(2.3, 0.1, 2.3, 0.1), (f64::NAN, 0.1, f64::NAN, 0.1)]);
        let f = diagnose(&h, None);
        assert_eq!(kinds(&f), vec![FindingKind::Divergence]);
        assert_eq!(f[0].epoch, Some(2));
    }

    #[test]
    fn low_accuracy_with_a_flat_training_loss_is_underfitting() {
        let h = history(&[
            (2.30, 0.11, 2.30, 0.10),
            (2.28, 0.12, 2.29, 0.11),
            (2.25, 0.14, 2.27, 0.12),
        ]);
        let f = diagnose(&h, None);
        assert_eq!(kinds(&f), vec![FindingKind::Underfitting], "{f:?}");
        assert!(
            f[0].message.contains("14.0%") && f[0].message.contains("2.2%"),
            "{}",
            f[0].message
        );
        // High training accuracy is never underfitting.
        let h = history(&[(0.10, 0.97, 0.12, 0.96), (0.099, 0.97, 0.119, 0.96)]);
        assert!(!kinds(&diagnose(&h, None)).contains(&FindingKind::Underfitting));
    }

    #[test]
    fn a_flat_validation_loss_is_a_plateau_and_a_falling_one_is_healthy() {
        let h = history(&[
            (1.0, 0.7, 1.0, 0.7),
            (0.8, 0.75, 0.800, 0.75),
            (0.79, 0.76, 0.801, 0.75),
            (0.78, 0.76, 0.799, 0.75),
            (0.78, 0.76, 0.802, 0.75),
        ]);
        let f = diagnose(&h, None);
        assert_eq!(kinds(&f), vec![FindingKind::Plateau], "{f:?}");
        assert_eq!(f[0].epoch, Some(2));
        assert!(f[0].message.contains("0.7990") && f[0].message.contains("0.8020"));

        let h = history(&[
            (1.0, 0.7, 1.0, 0.7),
            (0.8, 0.75, 0.8, 0.75),
            (0.6, 0.8, 0.7, 0.78),
        ]);
        let f = diagnose(&h, None);
        assert_eq!(kinds(&f), vec![FindingKind::Healthy], "{f:?}");
        assert!(f[0].message.contains("0.7000") && f[0].message.contains("epoch 3"));
        assert_eq!(
            kinds(&diagnose(&History::default(), None)),
            vec![FindingKind::Inconclusive]
        );
    }
}
