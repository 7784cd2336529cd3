//! Pruning the trials of a study (`cnn compare --prune median`): Optuna's
//! `MedianPruner` for a loss to minimize, one step per epoch.
//!
//! [`median_decision`] is the rule as a pure function of the trial's
//! curve and the completed trials' curves; [`Board`] holds the curves of
//! the completed trials of one study (filled as trials finish, or read
//! back from a study directory's finished runs: [`study_gate`]), and a
//! [`MedianPruner`] is the [`EpochGate`] a trainer asks after each epoch.
//!
//! The rules, as Optuna's `MedianPruner` (minimizing) takes them:
//! - the value of an epoch is the validation loss (the training loss when
//!   the run has no validation split, as early stopping monitors it);
//! - `startup` (Optuna's `n_startup_trials`, default 5): no trial is
//!   pruned before that many trials have completed;
//! - `warmup` (`n_warmup_steps`, default 0): epochs `1..=warmup` are never
//!   pruned (Optuna's step `s` is epoch `s + 1`);
//! - after that, a trial is pruned at an epoch when the best (lowest)
//!   value it has reached so far is worse (higher) than the median of the
//!   completed trials' values at that epoch; the median is taken over the
//!   completed trials that reached the epoch (numpy's `nanpercentile(.,
//!   50)`: the mean of the two middle values of an even count), and with
//!   none there is no pruning (`n_min_trials` = 1); a trial whose values
//!   are all NaN is pruned;
//! - `interval_steps` is 1: every epoch after the warm-up is checked.
//!
//! "Completed" means trials that finished training (completed or stopped
//! early) before the decision is taken (done in the study's `study.json`);
//! pruned, diverged and failed trials do not count. One trial at a time
//! (`--jobs 1`, one process), trial `i` is compared with the completed
//! trials among `0..i`, so a study is reproducible; with several at once
//! (`--jobs`, `--devices`, a Slurm array), which trials have completed when
//! another one is judged depends on timing, and so may its outcome. Each decision records
//! what it compared ([`Pruning`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::history::EpochRecord;
use crate::records::read_history_jsonl;
use crate::run_dir::HISTORY_JSONL;
use crate::study::manifest::{RunState, StudyManifest};

/// The median rule's settings (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MedianRule {
    /// Epochs never pruned (`--prune-warmup`).
    pub warmup: usize,
    /// Trials that must complete before any is pruned (`--prune-startup`).
    pub startup: usize,
}

impl Default for MedianRule {
    /// Optuna's defaults: 5 startup trials, no warm-up.
    fn default() -> Self {
        MedianRule {
            warmup: 0,
            startup: 5,
        }
    }
}

/// Why a trial was pruned: at `epoch`, its best value so far `value` was
/// above the `median` of `completed` trials at that epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pruning {
    pub epoch: usize,
    #[serde(with = "crate::json_float")]
    pub value: f64,
    #[serde(with = "crate::json_float")]
    pub median: f64,
    /// Completed trials the decision saw.
    pub completed: usize,
    /// Of those, the ones that reached `epoch` (the median's).
    pub at_epoch: usize,
}

/// The median of the finite values (the mean of the middle two for an
/// even count); NaN when there are none.
fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The median rule: whether a trial whose values per epoch are `trial`
/// (`trial[e - 1]` is epoch `e`'s; the last is the epoch just ended) is
/// pruned, given the completed trials' values per epoch. `None` keeps it.
pub fn median_decision(
    rule: &MedianRule,
    trial: &[f64],
    completed: &[Vec<f64>],
) -> Option<Pruning> {
    let epoch = trial.len();
    if epoch == 0 || completed.len() < rule.startup || epoch <= rule.warmup {
        return None;
    }
    let best = trial
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .fold(f64::NAN, f64::min);
    let at: Vec<f64> = completed
        .iter()
        .filter_map(|c| c.get(epoch - 1).copied())
        .collect();
    let m = median(at.iter().copied());
    let pruned = best.is_nan() || (!m.is_nan() && best > m);
    pruned.then_some(Pruning {
        epoch,
        value: best,
        median: m,
        completed: completed.len(),
        at_epoch: at.len(),
    })
}

/// The value an epoch reports: its validation loss, or its training loss
/// without a validation split.
pub fn epoch_value(e: &EpochRecord) -> f64 {
    e.val.as_ref().map_or(e.train.loss, |v| v.loss)
}

/// What a trainer asks after each epoch (the history so far): `Some` stops
/// the run as pruned.
pub trait EpochGate: Send + Sync + std::fmt::Debug {
    fn check(&self, epochs: &[EpochRecord]) -> Option<Pruning>;
}

/// Where a study's completed trials' curves come from: what a reader
/// gives (a study directory's finished runs, read by any process that runs
/// one of its trials) or, without one, the trials recorded here.
type Reader = Box<dyn Fn() -> Vec<Vec<f64>> + Send + Sync>;

/// The completed trials of one study: their values per epoch.
#[derive(Default)]
pub struct Board {
    completed: Mutex<Vec<Vec<f64>>>,
    reader: Option<Reader>,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("reads", &self.reader.is_some())
            .finish_non_exhaustive()
    }
}

impl Board {
    /// A board of the trials [`complete`](Self::complete) records.
    pub fn new() -> Arc<Self> {
        Arc::new(Board::default())
    }

    /// A board whose completed trials are what `reader` gives at each
    /// decision (the values per epoch of every trial completed by then).
    pub fn reading(reader: impl Fn() -> Vec<Vec<f64>> + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Board {
            completed: Mutex::default(),
            reader: Some(Box::new(reader)),
        })
    }

    /// Record a trial that completed, by its epochs.
    pub fn complete(&self, epochs: &[EpochRecord]) {
        let curve = epochs.iter().map(epoch_value).collect();
        self.completed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(curve);
    }

    /// The completed trials' curves now.
    pub fn completed(&self) -> Vec<Vec<f64>> {
        let mut all = self.reader.as_ref().map(|r| r()).unwrap_or_default();
        all.extend(
            self.completed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned(),
        );
        all
    }
}

/// The median rule against a study's [`Board`].
#[derive(Debug, Clone)]
pub struct MedianPruner {
    pub rule: MedianRule,
    pub board: Arc<Board>,
}

impl EpochGate for MedianPruner {
    fn check(&self, epochs: &[EpochRecord]) -> Option<Pruning> {
        let trial: Vec<f64> = epochs.iter().map(epoch_value).collect();
        median_decision(&self.rule, &trial, &self.board.completed())
    }
}

/// The pruner of the runs of a study directory (`cnn compare`'s, with
/// `--prune`): the completed trials are the runs its `study.json` lists as
/// done (completed or stopped early) when a decision is taken, their
/// values read from their `history.jsonl`. Every executor's worker builds
/// it the same way, so the runs of a study judge each other whichever
/// thread, process or machine runs them.
pub fn study_gate(rule: MedianRule, root: PathBuf) -> Arc<dyn EpochGate> {
    let board = Board::reading(move || {
        let Ok(study) = StudyManifest::load(&root) else {
            return Vec::new();
        };
        study
            .runs
            .iter()
            .filter(|r| matches!(r.state, RunState::Done))
            .filter_map(|r| read_history_jsonl(&root.join(&r.dir).join(HISTORY_JSONL)).ok())
            .map(|epochs| epochs.iter().map(epoch_value).collect())
            .collect()
    });
    Arc::new(MedianPruner { rule, board })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAN: f64 = f64::NAN;

    fn rule(warmup: usize, startup: usize) -> MedianRule {
        MedianRule { warmup, startup }
    }

    /// A study of four completed trials (one cut short at 2 epochs), and
    /// the decisions on new trials at each epoch.
    #[test]
    fn pruning_decisions_on_a_constructed_study() {
        // Binary fractions, so that the medians are exact.
        let completed = vec![
            vec![2.0, 1.5, 1.0, 0.75],
            vec![2.25, 1.75, 1.25, 1.0],
            vec![2.5, 2.0, 1.5, 1.25],
            vec![2.75, 2.25],
        ];
        let r = rule(1, 3);
        // Epoch 1 is the warm-up: never pruned, however bad.
        assert_eq!(median_decision(&r, &[9.0], &completed), None);
        // Epoch 2: the median of 1.5, 1.75, 2.0, 2.25 is 1.875.
        let p = median_decision(&r, &[2.5, 1.9], &completed).expect("pruned");
        assert_eq!(
            p,
            Pruning {
                epoch: 2,
                value: 1.9,
                median: 1.875,
                completed: 4,
                at_epoch: 4
            }
        );
        assert_eq!(
            median_decision(&r, &[2.5, 1.875], &completed),
            None,
            "equal is kept"
        );
        assert_eq!(median_decision(&r, &[2.5, 1.85], &completed), None);
        // Epoch 3: three trials reached it, median 1.25.
        let p = median_decision(&r, &[2.5, 1.75, 1.5], &completed).expect("pruned");
        assert_eq!((p.epoch, p.value, p.median, p.at_epoch), (3, 1.5, 1.25, 3));
        // The best value so far counts, not the last one (Optuna's rule).
        assert_eq!(median_decision(&r, &[2.5, 1.125, 1.5], &completed), None);
        // Past every completed trial's length there is no median: kept.
        assert_eq!(
            median_decision(&r, &[2.5, 1.75, 1.125, 1.0, 5.0], &completed),
            None
        );
        // Fewer completed trials than the startup: kept.
        assert_eq!(median_decision(&rule(1, 5), &[2.5, 9.0], &completed), None);
        assert_eq!(median_decision(&rule(0, 0), &[9.0], &[]), None, "no median");
        // No warm-up: epoch 1 is judged (median 2.375).
        let p = median_decision(&rule(0, 0), &[2.4], &completed).expect("pruned");
        assert_eq!(p.median, 2.375);
        assert_eq!(median_decision(&rule(0, 0), &[2.375], &completed), None);
        // All NaN is pruned; NaN among the completed values is skipped.
        assert!(median_decision(&rule(0, 0), &[NAN], &completed).is_some());
        let with_nan = vec![vec![1.0], vec![NAN], vec![3.0]];
        assert_eq!(
            median_decision(&rule(0, 0), &[2.5], &with_nan).map(|p| p.median),
            Some(2.0)
        );
        assert_eq!(median_decision(&r, &[], &completed), None);
    }

    #[test]
    fn a_board_judges_by_the_trials_completed_so_far() {
        let epoch = |loss: f64| EpochRecord {
            epoch: 1,
            train: crate::history::SplitMetrics {
                loss: 9.0,
                ..Default::default()
            },
            val: Some(crate::history::SplitMetrics {
                loss,
                ..Default::default()
            }),
            lr: 0.1,
            seconds: 1.0,
            images_per_sec: 1.0,
            val_per_class: Vec::new(),
            ema_val: None,
            swa_val: None,
        };
        let board = Board::new();
        let pruner = MedianPruner {
            rule: rule(0, 1),
            board: Arc::clone(&board),
        };
        assert_eq!(pruner.check(&[epoch(5.0)]), None, "nothing completed yet");
        board.complete(&[epoch(1.0)]);
        let p = pruner.check(&[epoch(5.0)]).expect("worse than 1.0");
        assert_eq!((p.value, p.median, p.completed), (5.0, 1.0, 1));
        assert_eq!(pruner.check(&[epoch(0.5)]), None);
        // A board that reads its completed trials (a study directory's).
        let read = Board::reading(|| vec![vec![0.25], vec![0.5], vec![2.0]]);
        let pruner = MedianPruner {
            rule: rule(0, 3),
            board: read,
        };
        assert_eq!(pruner.check(&[epoch(0.75)]).map(|p| p.median), Some(0.5));
        assert_eq!(pruner.check(&[epoch(0.5)]), None);
        // Without a validation split the training loss is the value.
        let mut no_val = epoch(0.0);
        no_val.val = None;
        assert_eq!(epoch_value(&no_val), 9.0);
    }
}
