//! The output directories: every file name cnn writes (a run's, a
//! comparison's in [`comparison`], a learning curve's in [`curve`], `cnn
//! inspect`'s in [`inspect`]), where
//! a run writes ([`RunTarget`]), and the run directory ([`RunDir`]) with
//! its checkpoints.
//!
//! A run directory's layout:
//! - `config.toml`: the resolved configuration
//! - `steps.csv`, `metrics.csv`, `history.jsonl`: the learning curves
//! - `model.safetensors`: the latest weights (PyTorch state_dict names);
//!   `best.safetensors`: the weights of the best validation loss;
//!   `ema.safetensors`, `swa.safetensors`: the weight averages, with
//!   `--ema` and `--swa-start` (also in each checkpoint)
//! - `curves.png`, `curves.svg`, `confusion.png`
//! - with `--lr find`, the LR range test's `lr_find.csv`, `lr_find.png`
//!   and `lr_find.svg`
//! - `summary.json` (written last, once the run is over) and `report.html`
//! - `checkpoint/step-N/` (`model.safetensors`, `optimizer.json`,
//!   `trainer.json`, `steps.csv`, `history.jsonl`) and `checkpoint/LATEST`
//!   naming the newest complete one.
//! - `.cnn-output`: marks the directory as cnn's, the only kind
//!   `--overwrite` empties.
//!
//! - `.cnn-lock`: the lock a process holds while it works in the
//!   directory ([`crate::lock`]).
//!
//! Every file is written atomically (temp file, fsync, rename), and each
//! checkpoint is a commit ([`crate::checkpoint_store`]): written in a
//! temporary directory with a manifest of its files' SHA-256, renamed into
//! place, then named by `LATEST`; the newest two complete checkpoints are
//! kept. A crash at any moment leaves a checkpoint that verifies. What a
//! killed process leaves behind (`.<name>.tmp-*` files of unfinished
//! writes, `.step-N.tmp-*` directories) is never read as data and is
//! removed once a resumed run has loaded a verified checkpoint.

use std::path::{Path, PathBuf};

use crate::checkpoint_store::{CheckpointStore, remove_temp_files};
use crate::error::{Result, TrainError};
use crate::io::write_atomic;
use crate::lock::LOCK_FILE;

/// The resolved configuration of a run.
pub const CONFIG_TOML: &str = "config.toml";
/// The per-step log.
pub const STEPS_CSV: &str = "steps.csv";
/// The per-epoch table.
pub const METRICS_CSV: &str = "metrics.csv";
/// The per-epoch JSON lines.
pub const HISTORY_JSONL: &str = "history.jsonl";
/// The latest weights (also the weights file of a checkpoint).
pub const MODEL_SAFETENSORS: &str = "model.safetensors";
/// The weights of the best validation loss.
pub const BEST_SAFETENSORS: &str = "best.safetensors";
/// The weight averages (`--ema`, `--swa-start`; also in checkpoints).
pub const EMA_SAFETENSORS: &str = "ema.safetensors";
pub const SWA_SAFETENSORS: &str = "swa.safetensors";
/// The learning curves.
pub const CURVES_PNG: &str = "curves.png";
pub const CURVES_SVG: &str = "curves.svg";
/// The validation confusion matrix after the last epoch.
pub const CONFUSION_PNG: &str = "confusion.png";
/// What a run did, written last: a run with one is over.
pub const SUMMARY_JSON: &str = "summary.json";
/// The self-contained page of a run, comparison or learning curve.
pub const REPORT_HTML: &str = "report.html";
/// The checkpoints' directory, and the file in it naming the newest one.
pub const CHECKPOINT_DIR: &str = "checkpoint";
pub use crate::checkpoint_store::LATEST;
/// A checkpoint's optimizer state and trainer state.
pub const OPTIMIZER_JSON: &str = "optimizer.json";
pub const TRAINER_JSON: &str = "trainer.json";
/// The files of every checkpoint (besides its manifest).
pub const CHECKPOINT_FILES: &[&str] = &[
    MODEL_SAFETENSORS,
    OPTIMIZER_JSON,
    TRAINER_JSON,
    STEPS_CSV,
    HISTORY_JSONL,
];

/// File names of a comparison directory (`cnn compare`).
pub mod comparison {
    /// What the comparison ran: base configuration, variants, runs.
    pub const MANIFEST: &str = "compare.json";
    pub const OVERLAY_PNG: &str = "overlay.png";
    pub const OVERLAY_SVG: &str = "overlay.svg";
    pub const SUMMARY_CSV: &str = "summary.csv";
    pub const SUMMARY_MD: &str = "summary.md";
    pub const DIAGNOSIS_MD: &str = "diagnosis.md";
    /// Score against the value of the one numeric setting varied.
    pub const VALIDATION_CURVE_PNG: &str = "validation_curve.png";
    pub const VALIDATION_CURVE_SVG: &str = "validation_curve.svg";
}

/// File names of a learning-curve directory (`cnn curve`).
pub mod curve {
    /// What the curve ran: base configuration and one point per fit.
    pub const MANIFEST: &str = "curve.json";
    pub const POINTS_CSV: &str = "learning_curve.csv";
    pub const SUMMARY_CSV: &str = "learning_curve_summary.csv";
    pub const CURVE_PNG: &str = "learning_curve.png";
    pub const CURVE_SVG: &str = "learning_curve.svg";
}

/// A study's files (a comparison or learning curve written as a plan of
/// runs first: [`crate::study`]).
pub mod study {
    /// The study's manifest: every run and its state.
    pub const MANIFEST: &str = "study.json";
    /// The lock taken around each update of the manifest.
    pub const MANIFEST_LOCK: &str = ".cnn-study-lock";
}

/// File names of the LR range test (`cnn lr-find`'s directory, and a run
/// of `cnn train --lr find`).
pub mod lr_find {
    /// step, lr, loss, smoothed loss.
    pub const CSV: &str = "lr_find.csv";
    pub const PNG: &str = "lr_find.png";
    pub const SVG: &str = "lr_find.svg";
}

/// File names of `cnn inspect`'s directory: its page, its record and its
/// pictures, all named `inspect-*.png`.
pub mod inspect {
    /// The page showing everything, self-contained.
    pub const HTML: &str = "inspect.html";
    /// Predictions, Grad-CAM's class and layer, the files of each image.
    pub const JSON: &str = "inspect.json";
    /// The first convolution's filters.
    pub const FILTERS_PNG: &str = "inspect-filters.png";

    /// The picture `what` of image `i`: `inspect-<i>-<what>.png`.
    pub fn image_file(i: usize, what: &str) -> String {
        format!("inspect-{i}-{what}.png")
    }

    /// `name` with every character other than ASCII letters, digits, `.`,
    /// `_` and `-` replaced by `_` (node names in file names).
    pub fn file_safe(name: &str) -> String {
        name.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// Whether `name` is one of these files.
    pub fn is_own(name: &str) -> bool {
        name == HTML || name == JSON || (name.starts_with("inspect-") && name.ends_with(".png"))
    }
}

/// Where a run writes.
#[derive(Debug, Clone)]
pub enum RunTarget {
    /// A new directory (`overwrite` replaces a non-empty one).
    Fresh { out: PathBuf, overwrite: bool },
    /// Continue the newest checkpoint of an existing run.
    Resume(RunDir),
}

/// Paths of one run.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Create a fresh run directory (see [`RunDir::prepare_output`]).
    pub fn create(root: &Path, overwrite: bool) -> Result<Self> {
        Self::prepare_output(root, overwrite)?;
        std::fs::create_dir_all(root.join(CHECKPOINT_DIR)).map_err(|e| TrainError::io(root, e))?;
        Ok(RunDir {
            root: root.to_path_buf(),
        })
    }

    /// Make `root` an empty output directory of cnn's (a run, comparison
    /// or learning curve) and mark it with [`OUTPUT_MARKER`]. A missing or
    /// empty directory is used as it is; a non-empty one is an error unless
    /// `overwrite`, and then only one that cnn wrote is emptied (see
    /// [`RunDir::check_free`]).
    pub fn prepare_output(root: &Path, overwrite: bool) -> Result<()> {
        Self::check_free(root, overwrite)?;
        if is_non_empty_dir(root) {
            // Empty it rather than delete it: `root` may be a mount point
            // or sit in a directory the user cannot write to.
            for entry in std::fs::read_dir(root).map_err(|e| TrainError::io(root, e))? {
                let path = entry.map_err(|e| TrainError::io(root, e))?.path();
                if path.file_name().and_then(|n| n.to_str()) == Some(LOCK_FILE) {
                    continue;
                }
                let removed = if path.is_dir() && !path.is_symlink() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(|e| TrainError::io(&path, e))?;
            }
        }
        std::fs::create_dir_all(root).map_err(|e| TrainError::io(root, e))?;
        write_atomic(&root.join(OUTPUT_MARKER), MARKER_TEXT.as_bytes())
    }

    /// Fail early, before any work, if `prepare_output(root, overwrite)`
    /// would refuse: `root` is a non-empty directory and either `overwrite`
    /// is off, or `root` holds the current directory, or it is not one that
    /// cnn wrote ([`is_cnn_output`]): a mistyped `--out` must not take a
    /// user's files with it.
    pub fn check_free(root: &Path, overwrite: bool) -> Result<()> {
        if root.exists() && !root.is_dir() {
            return Err(TrainError::bad_file(root, "exists and is not a directory"));
        }
        if !is_non_empty_dir(root) {
            return Ok(());
        }
        if !overwrite {
            return Err(TrainError::RunDirExists(root.to_path_buf()));
        }
        let canonical = root.canonicalize().map_err(|e| TrainError::io(root, e))?;
        if let Ok(cwd) = std::env::current_dir()
            && cwd.starts_with(&canonical)
        {
            return Err(TrainError::bad_file(
                root,
                "holds the current directory, so --overwrite will not empty it",
            ));
        }
        if !is_cnn_output(root) {
            return Err(TrainError::bad_file(
                root,
                "is not a directory cnn wrote, so --overwrite will not empty it",
            ));
        }
        let foreign = foreign_entries(root)?;
        if !foreign.is_empty() {
            return Err(TrainError::bad_file(
                root,
                format!(
                    "holds files cnn did not write ({}), so --overwrite will not empty it; move them away first",
                    foreign.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// The default output directory: `runs/<model>-<data>` (with `kind`:
    /// `runs/<kind>-<model>-<data>`), or, unless `overwrite` (which then
    /// replaces it), the first free `-2`, `-3`, ... A model spec file
    /// counts by its file stem.
    pub fn default_out(
        kind: Option<&str>,
        config: &crate::config::TrainConfig,
        overwrite: bool,
    ) -> PathBuf {
        let stem = Path::new(&config.model)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("model");
        let name = match kind {
            Some(kind) => format!("{kind}-{stem}-{}", config.data),
            None => format!("{stem}-{}", config.data),
        };
        let base = PathBuf::from("runs").join(name);
        if overwrite || !is_non_empty_dir(&base) {
            return base;
        }
        (2..)
            .map(|i| PathBuf::from(format!("{}-{i}", base.display())))
            .find(|p| !is_non_empty_dir(p))
            .expect("an unbounded range always finds a free name")
    }

    /// Open an existing run for resuming; it must hold a config and a
    /// checkpoint that looks complete. Changes nothing: what an
    /// interrupted process left is removed once a verified checkpoint is
    /// loaded ([`CheckpointStore::settle_after_load`]).
    pub fn open(root: &Path) -> Result<Self> {
        if !root.is_dir() {
            return Err(TrainError::bad_file(root, "no such run directory"));
        }
        let dir = RunDir {
            root: root.to_path_buf(),
        };
        if !dir.config().is_file() {
            let message = if root.join(OUTPUT_MARKER).is_file() {
                "was stopped before it wrote its config.toml, so there is nothing to resume; start the run again with --overwrite"
            } else {
                "not a run directory (no config.toml)"
            };
            return Err(TrainError::bad_file(root, message));
        }
        let store = dir.checkpoints();
        let candidates = store.candidates()?;
        if !candidates.dirs.iter().any(|d| store.looks_complete(d)) {
            let why = candidates
                .latest_problem
                .map(|p| format!(" ({p})"))
                .unwrap_or_default();
            return Err(TrainError::bad_file(
                root,
                format!(
                    "has no checkpoint to resume from{why}; start the run again with --overwrite"
                ),
            ));
        }
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Whether the run is over: its summary, written last, exists.
    pub fn is_over(&self) -> bool {
        self.summary_json().is_file()
    }
    pub fn config(&self) -> PathBuf {
        self.root.join(CONFIG_TOML)
    }
    pub fn steps_csv(&self) -> PathBuf {
        self.root.join(STEPS_CSV)
    }
    pub fn metrics_csv(&self) -> PathBuf {
        self.root.join(METRICS_CSV)
    }
    pub fn history_jsonl(&self) -> PathBuf {
        self.root.join(HISTORY_JSONL)
    }
    pub fn model(&self) -> PathBuf {
        self.root.join(MODEL_SAFETENSORS)
    }
    pub fn best_model(&self) -> PathBuf {
        self.root.join(BEST_SAFETENSORS)
    }
    pub fn curves_png(&self) -> PathBuf {
        self.root.join(CURVES_PNG)
    }
    pub fn curves_svg(&self) -> PathBuf {
        self.root.join(CURVES_SVG)
    }
    pub fn confusion_png(&self) -> PathBuf {
        self.root.join(CONFUSION_PNG)
    }
    pub fn summary_json(&self) -> PathBuf {
        self.root.join(SUMMARY_JSON)
    }
    pub fn report_html(&self) -> PathBuf {
        self.root.join(REPORT_HTML)
    }
    /// The run's `checkpoint/` directory.
    pub fn checkpoints(&self) -> CheckpointStore {
        CheckpointStore::new(self.root.join(CHECKPOINT_DIR), CHECKPOINT_FILES)
    }

    /// Remove the `.<name>.tmp-*` files that killed writes left directly
    /// in the run directory; returns how many.
    pub fn remove_temp_files(&self) -> Result<usize> {
        remove_temp_files(&self.root)
    }
}

/// The file that marks a directory as cnn's output.
pub const OUTPUT_MARKER: &str = ".cnn-output";
const MARKER_TEXT: &str = "Written by cnn; `--overwrite` may empty this directory.\n";

/// Whether `path` is a directory with something in it besides a lock file
/// (an unreadable one counts as non-empty).
pub fn is_non_empty_dir(path: &Path) -> bool {
    path.is_dir()
        && std::fs::read_dir(path)
            .map(|mut d| d.any(|e| e.map_or(true, |e| e.file_name() != LOCK_FILE)))
            .unwrap_or(true)
}

/// Every name cnn writes directly in an output directory (a run's, a
/// comparison's or a learning curve's).
/// The start of a TensorBoard event file's name (`--tensorboard`):
/// `events.out.tfevents.<seconds>.cnn.<pid>`.
pub const TENSORBOARD_EVENTS: &str = "events.out.tfevents.";

const CNN_NAMES: &[&str] = &[
    CONFIG_TOML,
    STEPS_CSV,
    METRICS_CSV,
    HISTORY_JSONL,
    MODEL_SAFETENSORS,
    BEST_SAFETENSORS,
    EMA_SAFETENSORS,
    SWA_SAFETENSORS,
    CURVES_PNG,
    CURVES_SVG,
    CONFUSION_PNG,
    SUMMARY_JSON,
    REPORT_HTML,
    CHECKPOINT_DIR,
    OUTPUT_MARKER,
    LOCK_FILE,
    comparison::MANIFEST,
    comparison::OVERLAY_PNG,
    comparison::OVERLAY_SVG,
    comparison::SUMMARY_CSV,
    comparison::SUMMARY_MD,
    comparison::DIAGNOSIS_MD,
    comparison::VALIDATION_CURVE_PNG,
    comparison::VALIDATION_CURVE_SVG,
    curve::MANIFEST,
    curve::POINTS_CSV,
    curve::SUMMARY_CSV,
    curve::CURVE_PNG,
    curve::CURVE_SVG,
    study::MANIFEST,
    study::MANIFEST_LOCK,
    lr_find::CSV,
    lr_find::PNG,
    lr_find::SVG,
];

/// The entries of `root` that cnn did not write, sorted (directories with
/// a trailing `/`): not one of its file names, not a leftover of an
/// unfinished write, and not an output directory of its own (a
/// comparison's runs).
fn foreign_entries(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| TrainError::io(root, e))? {
        let entry = entry.map_err(|e| TrainError::io(root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let ours = CNN_NAMES.contains(&name.as_str())
            || (name.starts_with(TENSORBOARD_EVENTS) && name.contains(".cnn."))
            || inspect::is_own(&name)
            || (name.starts_with('.') && name.contains(".tmp-"))
            || (is_dir && is_cnn_output(&path));
        if !ours {
            out.push(if is_dir { format!("{name}/") } else { name });
        }
    }
    out.sort();
    Ok(out)
}

/// Whether cnn wrote `root`: it holds [`OUTPUT_MARKER`], or (directories
/// written before the marker existed) a run's `config.toml` beside its
/// `checkpoint/`, a comparison's `compare.json` or a learning curve's
/// `curve.json`.
pub fn is_cnn_output(root: &Path) -> bool {
    root.join(OUTPUT_MARKER).is_file()
        || (root.join(CONFIG_TOML).is_file() && root.join(CHECKPOINT_DIR).is_dir())
        || root.join(comparison::MANIFEST).is_file()
        || root.join(curve::MANIFEST).is_file()
}
