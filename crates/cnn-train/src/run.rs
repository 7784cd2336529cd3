//! One training job into one run directory, as `cnn train`, `cnn compare`
//! and `cnn curve` all run it: plan it ([`RunPlan`]: configuration, data,
//! model, memory), build the model, create or reopen the run directory,
//! train, evaluate on the test split, and write `summary.json`. Whoever
//! runs the job writes its `report.html` ([`crate::report`]) when it is
//! over.
//!
//! A run that stops on a non-finite loss is not an error here: its files
//! are written up to the last complete epoch and the [`RunSummary`] says
//! [`RunStatus::Diverged`], so a comparison carries on with its other runs
//! (`cnn train` turns it back into an error with exit code 3).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use cnn_core::Backend;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::diagnose::{Divergence, Finding, diagnose};
use crate::error::{Result, TrainError};
use crate::history::{History, SplitMetrics};
use crate::io::write_atomic;
use crate::lock::DirLock;
use crate::plan::RunPlan;
use crate::prune::Pruning;
use crate::run_dir::{RunDir, RunTarget, SUMMARY_JSON};
use crate::setup::{self, DataSplits};
use crate::trainer::{Outcome, Trainer};

/// How to run a job.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Progress bars (when stderr is a terminal).
    pub progress: bool,
    /// Print the start line and one line per epoch on stderr.
    pub log: bool,
    /// Stop cleanly with a checkpoint when set (Ctrl-C).
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Train on these splits instead of loading the configured data (a
    /// learning curve's subsets).
    pub data: Option<DataSplits>,
    /// Also evaluate the final model on its training data (eval mode), as
    /// scikit-learn's `learning_curve` scores it.
    pub eval_train: bool,
    /// Write TensorBoard event files into this directory as the run goes
    /// (`--tensorboard`; see [`crate::tensorboard`]).
    pub tensorboard: Option<std::path::PathBuf>,
    /// Asked after each epoch whether to stop the run as pruned (a study's
    /// pruner, [`crate::prune`]).
    pub gate: Option<Arc<dyn crate::prune::EpochGate>>,
    /// The run directory's lock, taken by the caller (a study's worker,
    /// which locks the run before it records it as running): the run
    /// neither checks nor takes the lock itself.
    pub held_lock: Option<Arc<DirLock>>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RunStatus {
    Completed,
    EarlyStopped {
        epoch: usize,
        best_epoch: usize,
    },
    Diverged(Divergence),
    /// Stopped by a study's pruner after `epoch` ([`crate::prune`]).
    Pruned(Pruning),
}

impl RunStatus {
    /// `completed`, `early_stopped`, `diverged` or `pruned`.
    pub fn name(&self) -> &'static str {
        match self {
            RunStatus::Completed => "completed",
            RunStatus::EarlyStopped { .. } => "early_stopped",
            RunStatus::Diverged(_) => "diverged",
            RunStatus::Pruned(_) => "pruned",
        }
    }

    pub fn divergence(&self) -> Option<&Divergence> {
        match self {
            RunStatus::Diverged(d) => Some(d),
            _ => None,
        }
    }
}

/// What a run did (`summary.json`; the history itself is in the run's
/// `history.jsonl` and `steps.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub model: String,
    pub data: String,
    #[serde(flatten)]
    pub status: RunStatus,
    /// Epochs completed.
    pub epochs: usize,
    /// Optimizer steps taken.
    pub steps: u64,
    pub params: usize,
    pub train_images: usize,
    pub val_images: usize,
    /// Wall-clock seconds of the whole job (training and evaluation).
    pub seconds: f64,
    /// The final model on the test split (when there is one).
    pub test: Option<SplitMetrics>,
    /// The final model on its own training data (with `eval_train`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_eval: Option<SplitMetrics>,
    /// With loss scaling on: the steps skipped on a non-finite gradient
    /// (`steps.csv`'s `skipped` column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_steps: Option<u64>,
    /// The diagnosis of the curves.
    pub findings: Vec<Finding>,
    #[serde(skip)]
    pub history: History,
}

impl RunSummary {
    /// Read `summary.json` of a run directory.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(SUMMARY_JSON);
        let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| TrainError::bad_file(&path, e.to_string()))
    }
}

/// "3 epochs", "500 steps (8 epochs)" or "20 epochs or 500 steps,
/// whichever ends first (20 epochs)": how long a run trains.
fn length(config: &TrainConfig, per_epoch: u64) -> String {
    let epochs = config.planned_epochs(per_epoch);
    let plural = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    match (config.epochs, config.max_steps) {
        (e, 0) => plural(e as u64, "epoch"),
        (0, s) => format!("{} ({})", plural(s, "step"), plural(epochs as u64, "epoch")),
        (e, s) => format!(
            "{} or {}, whichever ends first ({})",
            plural(e as u64, "epoch"),
            plural(s, "step"),
            plural(config.planned_steps(per_epoch), "step")
        ),
    }
}

/// Run one training job (see the module docs). Everything that can be
/// checked (configuration, data, model, memory, initial weights: its
/// [`RunPlan`]) is checked before a fresh run directory is created. A
/// resumed run that is over already ([`RunDir::is_over`]) gives its
/// summary and does nothing.
pub fn run_training<B: Backend>(
    backend: B,
    config: &TrainConfig,
    target: RunTarget,
    mut opts: RunOptions,
) -> Result<RunSummary> {
    let started = Instant::now();
    // One process per run directory: a resumed run's is locked before
    // anything is read; a fresh one's is checked now (without a change:
    // the plan may still refuse the run) and locked before it is emptied.
    let held = opts.held_lock.take();
    let mut lock = match (&target, &held) {
        (_, Some(_)) => None,
        (RunTarget::Fresh { out, .. }, None) => {
            DirLock::check_free(out)?;
            None
        }
        (RunTarget::Resume(dir), None) => Some(DirLock::acquire(dir.root())?),
    };
    if let RunTarget::Resume(dir) = &target
        && dir.is_over()
    {
        let summary = RunSummary::load(dir.root())?;
        if opts.log {
            crate::io::log_line(format_args!(
                "{} is already over ({}); nothing to resume",
                dir.root().display(),
                match &summary.status {
                    RunStatus::Completed => "completed".to_string(),
                    RunStatus::EarlyStopped { epoch, .. } =>
                        format!("stopped early after epoch {epoch}"),
                    RunStatus::Diverged(d) => format!("diverged at step {}", d.step),
                    RunStatus::Pruned(p) => format!("pruned after epoch {}", p.epoch),
                }
            ));
        }
        return Ok(summary);
    }
    let plan = RunPlan::new(config, Some(&target), opts.data.take())?;
    // `--lr find`: the LR range test first, and the plan with its suggestion.
    let (plan, lr_finding) = crate::lr_find::before_training(&backend, plan, &target)?;
    let mut graph = plan.build_graph(&backend)?;
    if let (Some(weights), Some(path)) = (plan.init_weights(), &config.init_from) {
        setup::apply_weights(&mut graph, weights, path)?;
    }
    let resume = matches!(target, RunTarget::Resume(_));
    let dir = match target {
        RunTarget::Resume(dir) => dir,
        RunTarget::Fresh { out, overwrite } => {
            if held.is_none() {
                lock = Some(DirLock::acquire(&out)?);
            }
            let dir = RunDir::create(&out, overwrite)?;
            let recorded = plan.recorded_config().to_toml();
            write_atomic(&dir.config(), recorded.as_bytes())?;
            dir
        }
    };
    let root = dir.root().to_path_buf();
    if let Some(finding) = &lr_finding {
        let title = format!("{} on {}: LR range test", config.model, plan.data().name);
        finding.write_files(&root, &title)?;
        if opts.log {
            crate::io::log_line(format_args!("{}", finding.summary()));
        }
    }
    debug_assert!(
        lock.is_some() || held.is_some(),
        "the run directory is locked"
    );
    let steps_per_epoch = plan.steps_per_epoch();
    let mut trainer = Trainer::from_plan(backend, &plan, graph)?
        .with_run_dir(dir.clone())
        .with_progress(opts.progress)
        .with_epoch_log(opts.log);
    if let Some(flag) = &opts.interrupt {
        trainer = trainer.with_interrupt(Arc::clone(flag));
    }
    if let Some(gate) = &opts.gate {
        trainer = trainer.with_epoch_gate(Arc::clone(gate));
    }
    if let Some(tensorboard) = &opts.tensorboard {
        trainer = trainer.with_tensorboard(crate::tensorboard::EventWriter::create(tensorboard)?);
    }
    // The trainer holds what it needs; the initial weights' copy goes.
    drop(plan);
    if resume {
        let Some(restored) = trainer.restore()? else {
            return Err(TrainError::bad_file(
                &root,
                "has no checkpoint to resume from",
            ));
        };
        if opts.log {
            if let Some(problem) = &restored.latest_problem {
                crate::io::log_line(format_args!("checkpoint/{problem}"));
            }
            for (dir, why) in &restored.skipped {
                crate::io::log_line(format_args!(
                    "checkpoint/{} cannot be used ({why}); removed, falling back to an older one",
                    dir.file_name().unwrap_or_default().display()
                ));
            }
            if !restored.skipped.is_empty() || restored.latest_problem.is_some() {
                crate::io::log_line(format_args!(
                    "using checkpoint/{}, which verifies",
                    restored.dir.file_name().unwrap_or_default().display()
                ));
            }
        }
        let state = trainer.state();
        let finished = state.epochs_done >= config.planned_epochs(steps_per_epoch)
            || state.early_stopping.should_stop();
        if opts.log && finished {
            crate::io::log_line(format_args!(
                "{} finished its training (step {}) before it stopped; writing its results",
                root.display(),
                state.step,
            ));
        } else if opts.log {
            crate::io::log_line(format_args!(
                "resuming {} at step {} (epoch {})",
                root.display(),
                state.step,
                state.epochs_done + 1
            ));
        }
    } else {
        trainer.checkpoint()?;
    }
    if opts.log {
        crate::io::log_line(format_args!(
            "training {} ({} parameters) on {}: {} train / {} {} images, {}, backend {}",
            config.model,
            trainer.graph().num_params(),
            trainer.data().name,
            trainer.data().train.len(),
            trainer.data().val.len(),
            if trainer.data().val_is_test {
                "test (validation)"
            } else {
                "validation"
            },
            length(config, steps_per_epoch),
            trainer.graph().backend().name(),
        ));
    }
    let fitted = {
        let _training = crate::io::training_started();
        trainer.fit()
    };
    let status = match fitted {
        Ok(Outcome::Completed) => RunStatus::Completed,
        Ok(Outcome::EarlyStopped { epoch, best_epoch }) => {
            if opts.log {
                crate::io::log_line(format_args!(
                    "early stopping after epoch {epoch}; best validation loss at epoch {best_epoch}"
                ));
            }
            RunStatus::EarlyStopped { epoch, best_epoch }
        }
        Ok(Outcome::Pruned(p)) => {
            if opts.log {
                crate::io::log_line(format_args!(
                    "pruned after epoch {}: best loss {:.4} above the median {:.4} of {} completed trials",
                    p.epoch, p.value, p.median, p.at_epoch
                ));
            }
            RunStatus::Pruned(p)
        }
        Err(TrainError::Diverged {
            step,
            epoch,
            loss,
            location,
        }) => {
            // The epochs before the divergence are on disk already; the
            // steps of the unfinished epoch are written here.
            trainer.write_files(&dir, None)?;
            let kept = trainer.keep_last_good_model(step)?;
            if opts.log {
                let what = match kept {
                    Some(Some(good)) => format!(
                        "the weights of step {good}, the last checkpoint with a finite loss"
                    ),
                    Some(None) => "the best epoch's weights (no kept checkpoint has a finite validation loss)".into(),
                    None => "the last checkpoint's weights; no kept checkpoint has a finite validation loss".into(),
                };
                crate::io::log_line(format_args!("{}: {what}", dir.model().display()));
            }
            RunStatus::Diverged(Divergence {
                step,
                epoch,
                loss: loss.to_string(),
                location,
            })
        }
        Err(e) => return Err(e),
    };
    let diverged = matches!(status, RunStatus::Diverged(_));
    // A pruned trial is not evaluated further (Optuna gives it no value).
    let pruned = matches!(status, RunStatus::Pruned(_));
    let test_subset = trainer.data().test.clone();
    let test = if diverged || pruned || test_subset.is_empty() {
        None
    } else {
        // Training is over: its workspaces' memory serves the test batches.
        trainer.release_workspaces();
        let (m, _) = trainer.evaluate(&test_subset)?;
        if opts.log {
            crate::io::log_line(format_args!(
                "test: loss {} accuracy {:.2}% (n = {})",
                crate::display::Loss(m.loss),
                m.accuracy * 100.0,
                m.n
            ));
        }
        Some(m)
    };
    let train_eval = if opts.eval_train && !diverged && !pruned {
        let subset = trainer.data().train.clone();
        Some(trainer.evaluate(&subset)?.0)
    } else {
        None
    };
    let history = trainer.history().clone();
    let summary = RunSummary {
        model: config.model.clone(),
        data: trainer.data().name.clone(),
        findings: diagnose(&history, status.divergence()),
        status,
        epochs: history.epochs.len(),
        steps: trainer.state().step,
        params: trainer.graph().num_params(),
        train_images: trainer.data().train.len(),
        val_images: trainer.data().val.len(),
        seconds: started.elapsed().as_secs_f64(),
        test,
        train_eval,
        skipped_steps: trainer.loss_scaler().map(|_| {
            let skipped = history.steps.iter().filter_map(|s| s.scaling);
            skipped.filter(|s| s.skipped).count() as u64
        }),
        history,
    };
    let json = serde_json::to_vec_pretty(&summary)
        .map_err(|e| TrainError::bad_file(root.join(SUMMARY_JSON), e.to_string()))?;
    write_atomic(&root.join(SUMMARY_JSON), &json)?;
    Ok(summary)
}
