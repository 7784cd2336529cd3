//! # cnn-train
//!
//! Training loop, metrics, learning-curve history and its files, plots,
//! checkpoints and resume.
//!
//! Where things live:
//! - [`config`]: `TrainConfig`, a run's whole configuration (`config.toml`),
//!   and what its names resolve to: the optimizer with cnn's defaults, the
//!   schedule, byte sizes.
//! - [`setup`]: from a config to data splits, the model spec and graph,
//!   initial weights.
//! - [`plan`]: `RunPlan`, everything decided before a run trains, checked
//!   once (configuration, output directory, data, model, memory, initial
//!   weights, schedule, regularizers); [`memory`]: its memory estimate
//!   (`--max-memory`).
//! - [`trainer`]: `Trainer` (the loop, evaluation, callbacks, checkpoints,
//!   resume), made from a plan, and `evaluate`.
//! - [`history`], [`records`]: the learning-curve records and their files
//!   (`steps.csv`, `metrics.csv`, `history.jsonl`); [`json_float`]: NaN
//!   and infinities in their JSON.
//! - [`metrics`]: confusion matrix, accuracy, precision/recall/F1, top-k.
//! - [`plot`]: curves and confusion-matrix pictures (plotters).
//! - [`run_dir`], [`checkpoint`], [`io`]: every output file name, the run
//!   directory, safetensors state_dicts, atomic writes.
//! - [`tensorboard`]: TensorBoard event files of the same records
//!   (`--tensorboard`).
//! - [`mixing`]: mixup and CutMix in training (the settings' checks, the
//!   batch mixed before its step, the mixed targets).
//! - [`early_stopping`], [`progress`]: callbacks and progress bars.
//! - [`loss_scale`]: dynamic loss scaling (`torch.amp.GradScaler`'s
//!   rules), on for f16 and on request.
//! - [`resident`]: the training set kept in device memory
//!   (`data_on_device`), each batch gathered on the device.
//! - [`run`]: one training job into a run directory (`cnn train`).
//! - [`diagnose`](mod@diagnose): overfitting, underfitting, divergence and plateau, in
//!   words with figures, from a history.
//! - [`compare`]: variants of one configuration run side by side
//!   (`cnn compare`: variants, execution, manifest, outputs);
//!   [`learning_curve`]: score against training-set size (`cnn curve`);
//!   [`lr_find`]: the LR range test (`cnn lr-find`, `cnn train --lr find`);
//!   [`prune`]: stopping a study's unpromising trials (`--prune median`);
//!   [`stats`]: their means, deviations and number formats;
//!   [`study`]: either as a plan of runs in their own directories, run
//!   by threads, processes per GPU or a cluster's scheduler, resumed and
//!   collected;
//!   [`report`]: the self-contained `report.html`, written by whoever
//!   finishes a run, comparison or curve.

mod accumulation;
pub mod averaging;
pub mod checkpoint;
pub mod checkpoint_store;
pub mod config;
pub mod csv_table;
pub mod early_stopping;
pub mod error;
pub mod history;
pub mod hparams;
pub mod io;
pub mod json_float;
pub mod lock;
pub mod loss_scale;
pub mod memory;
pub mod metrics;
pub mod mixing;
pub mod optim_wrap;
mod optimizer_params;
pub mod plan;
pub mod plot;
pub mod progress;
pub mod records;
pub mod resident;
pub mod run_dir;
pub mod setup;
pub mod tensorboard;
pub mod trainer;

// Comparing techniques by their learning curves.
pub mod compare;
pub mod diagnose;
pub mod display;
pub mod inspect;
pub mod learning_curve;
pub mod lr_find;
pub mod prune;
pub mod report;
pub mod run;
pub mod stats;
pub mod study;

pub use config::{LrFindSettings, SchedulePer, TrainConfig};
pub use error::{Result, TrainError};
pub use history::{ClassMetrics, EpochRecord, History, SplitMetrics, StepRecord};
pub use plan::RunPlan;
pub use run_dir::{RunDir, RunTarget};
pub use setup::DataSplits;
pub use trainer::{Outcome, Restored, Trainer, TrainerState, evaluate};

pub use diagnose::{Finding, FindingKind, diagnose};
pub use run::{RunOptions, RunStatus, RunSummary, run_training};
