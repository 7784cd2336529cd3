//! Classification metrics: a confusion matrix and what follows from it
//! (accuracy, per-class and macro precision/recall/F1), plus helpers on
//! logits (argmax, top-k, softmax).
//!
//! Conventions follow scikit-learn: rows are the true class, columns the
//! predicted class; a ratio whose denominator is zero is 0
//! (`zero_division=0`); "macro" is the unweighted mean over all classes,
//! including classes absent from the targets.

use crate::history::{ClassMetrics, SplitMetrics};

/// Counts of (true class, predicted class) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    /// Row-major `classes x classes`: `counts[t * classes + p]`.
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An all-zero matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// A matrix from row-major counts (`counts[t * classes + p]`), as
    /// [`counts`](Self::counts) returns them; `None` when the length is not
    /// `classes * classes`.
    pub fn from_counts(classes: usize, counts: Vec<u64>) -> Option<Self> {
        (counts.len() == classes * classes).then_some(ConfusionMatrix { classes, counts })
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Count one sample.
    ///
    /// # Panics
    /// If `target` or `pred` is not below `classes()`.
    pub fn add(&mut self, target: u32, pred: u32) {
        let (t, p) = (target as usize, pred as usize);
        assert!(
            t < self.classes && p < self.classes,
            "class out of range: target {t}, prediction {p}, {} classes",
            self.classes
        );
        self.counts[t * self.classes + p] += 1;
    }

    /// Count a batch of samples.
    ///
    /// # Panics
    /// If the slices differ in length or a class is out of range.
    pub fn add_batch(&mut self, targets: &[u32], preds: &[u32]) {
        assert_eq!(
            targets.len(),
            preds.len(),
            "{} targets but {} predictions",
            targets.len(),
            preds.len()
        );
        for (&t, &p) in targets.iter().zip(preds) {
            self.add(t, p);
        }
    }

    /// Add the counts of another matrix (e.g. from another batch or worker).
    ///
    /// # Panics
    /// If the class counts differ.
    pub fn merge(&mut self, other: &ConfusionMatrix) {
        assert_eq!(
            self.classes, other.classes,
            "merging confusion matrices of different sizes"
        );
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// Row-major counts, `counts()[t * classes + p]`.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Samples of true class `target` predicted as `pred`.
    pub fn count(&self, target: usize, pred: usize) -> u64 {
        self.counts[target * self.classes + pred]
    }

    /// Total number of samples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Fraction of samples on the diagonal; 0 when empty.
    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.classes).map(|c| self.count(c, c)).sum();
        ratio(correct, self.total())
    }

    /// Precision, recall, F1 and support of every class.
    pub fn per_class(&self) -> Vec<ClassMetrics> {
        let k = self.classes;
        (0..k)
            .map(|c| {
                let tp = self.count(c, c);
                let support: u64 = (0..k).map(|p| self.count(c, p)).sum();
                let predicted: u64 = (0..k).map(|t| self.count(t, c)).sum();
                let precision = ratio(tp, predicted);
                let recall = ratio(tp, support);
                // F1 = 2 TP / (2 TP + FP + FN), which is 0 when TP is 0
                // (scikit-learn's zero_division=0).
                let f1 = ratio(2 * tp, predicted + support);
                ClassMetrics {
                    class: c,
                    precision,
                    recall,
                    f1,
                    support: support as usize,
                }
            })
            .collect()
    }

    /// Unweighted mean of per-class precision.
    pub fn precision_macro(&self) -> f64 {
        self.macro_mean(|m| m.precision)
    }

    /// Unweighted mean of per-class recall.
    pub fn recall_macro(&self) -> f64 {
        self.macro_mean(|m| m.recall)
    }

    /// Unweighted mean of per-class F1 (not the F1 of the macro precision
    /// and recall).
    pub fn f1_macro(&self) -> f64 {
        self.macro_mean(|m| m.f1)
    }

    fn macro_mean(&self, f: impl Fn(&ClassMetrics) -> f64) -> f64 {
        if self.classes == 0 {
            return 0.0;
        }
        self.per_class().iter().map(f).sum::<f64>() / self.classes as f64
    }

    /// The split's metrics with the given mean loss.
    pub fn split_metrics(&self, mean_loss: f64) -> SplitMetrics {
        let per_class = self.per_class();
        let k = self.classes.max(1) as f64;
        SplitMetrics {
            loss: mean_loss,
            accuracy: self.accuracy(),
            precision_macro: per_class.iter().map(|m| m.precision).sum::<f64>() / k,
            recall_macro: per_class.iter().map(|m| m.recall).sum::<f64>() / k,
            f1_macro: per_class.iter().map(|m| m.f1).sum::<f64>() / k,
            n: self.total() as usize,
            top5_accuracy: None,
        }
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Index of the largest logit of each row (`logits` is `[N, classes]`);
/// the first one on ties. NaN never wins over a number.
///
/// # Panics
/// If `classes` is 0 or does not divide `logits.len()`.
pub fn argmax_rows(logits: &[f32], classes: usize) -> Vec<u32> {
    check_rows(logits, classes);
    logits
        .chunks_exact(classes)
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate().skip(1) {
                if v > row[best] || (row[best].is_nan() && !v.is_nan()) {
                    best = i;
                }
            }
            best as u32
        })
        .collect()
}

/// Number of rows whose target is among the `k` largest logits
/// (`logits` is `[N, classes]`). Ties are broken towards the lower index, as
/// in `argmax_rows`, so `topk_correct(.., 1)` counts the same samples as
/// comparing `argmax_rows` with the targets.
///
/// # Panics
/// If `classes` is 0, does not divide `logits.len()`, or the row count
/// differs from `targets.len()`.
pub fn topk_correct(logits: &[f32], classes: usize, targets: &[u32], k: usize) -> usize {
    check_rows(logits, classes);
    assert_eq!(
        logits.len() / classes,
        targets.len(),
        "{} rows of logits but {} targets",
        logits.len() / classes,
        targets.len()
    );
    logits
        .chunks_exact(classes)
        .zip(targets)
        .filter(|(row, t)| {
            let t = **t as usize;
            if t >= classes {
                return false;
            }
            let v = row[t];
            // Classes ranked before the target: larger logits, or equal
            // logits at a lower index (NaN ranks last).
            let ahead = row
                .iter()
                .enumerate()
                .filter(|&(i, &x)| {
                    if v.is_nan() {
                        !x.is_nan() || i < t
                    } else {
                        x > v || (x == v && i < t)
                    }
                })
                .count();
            ahead < k
        })
        .count()
}

/// Softmax of each row (`logits` is `[N, classes]`), computed stably by
/// subtracting the row maximum.
///
/// # Panics
/// If `classes` is 0 or does not divide `logits.len()`.
pub fn softmax_rows(logits: &[f32], classes: usize) -> Vec<f32> {
    check_rows(logits, classes);
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks_exact(classes) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let start = out.len();
        let mut sum = 0.0f64;
        for &x in row {
            let e = (x - max).exp();
            sum += e as f64;
            out.push(e);
        }
        for e in &mut out[start..] {
            *e = (*e as f64 / sum) as f32;
        }
    }
    out
}

fn check_rows(logits: &[f32], classes: usize) {
    assert!(
        classes > 0 && logits.len().is_multiple_of(classes),
        "{} logits do not form rows of {classes} classes",
        logits.len()
    );
}
