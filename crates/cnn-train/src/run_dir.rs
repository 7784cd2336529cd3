//! The run directory: where a run's files live, and its checkpoints.
//!
//! Layout:
//! - `config.toml`: the resolved configuration
//! - `steps.csv`, `metrics.csv`, `history.jsonl`: the learning curves
//! - `model.safetensors`: the latest weights (PyTorch state_dict names);
//!   `best.safetensors`: the weights of the best validation loss
//! - `curves.png`, `curves.svg`, `confusion.png`
//! - `checkpoint/step-N/` (`model.safetensors`, `optimizer.json`,
//!   `trainer.json`) and `checkpoint/LATEST` naming the newest complete one.
//!
//! Every file is written atomically (temp file, fsync, rename). A checkpoint
//! directory is complete before `LATEST` points at it, so a crash at any
//! moment leaves the previous checkpoint intact.

use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};
use crate::io::write_atomic;

/// Paths of one run.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Create a fresh run directory. An existing non-empty directory is an
    /// error unless `overwrite`, in which case its old contents are removed.
    pub fn create(root: &Path, overwrite: bool) -> Result<Self> {
        if root.exists() {
            let non_empty = std::fs::read_dir(root)
                .map_err(|e| TrainError::io(root, e))?
                .next()
                .is_some();
            if non_empty {
                if !overwrite {
                    return Err(TrainError::RunDirExists(root.to_path_buf()));
                }
                std::fs::remove_dir_all(root).map_err(|e| TrainError::io(root, e))?;
            }
        }
        std::fs::create_dir_all(root.join("checkpoint")).map_err(|e| TrainError::io(root, e))?;
        Ok(RunDir {
            root: root.to_path_buf(),
        })
    }

    /// Fail early, before any work, if `create(root, overwrite)` would refuse.
    pub fn check_free(root: &Path, overwrite: bool) -> Result<()> {
        let non_empty = root.is_dir()
            && std::fs::read_dir(root)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true);
        if non_empty && !overwrite {
            return Err(TrainError::RunDirExists(root.to_path_buf()));
        }
        Ok(())
    }

    /// Open an existing run for resuming; it must hold a config and a checkpoint.
    pub fn open(root: &Path) -> Result<Self> {
        if !root.is_dir() {
            return Err(TrainError::bad_file(root, "no such run directory"));
        }
        let dir = RunDir {
            root: root.to_path_buf(),
        };
        if !dir.config().is_file() {
            return Err(TrainError::bad_file(
                root,
                "not a run directory (no config.toml)",
            ));
        }
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn steps_csv(&self) -> PathBuf {
        self.root.join("steps.csv")
    }
    pub fn metrics_csv(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }
    pub fn history_jsonl(&self) -> PathBuf {
        self.root.join("history.jsonl")
    }
    pub fn model(&self) -> PathBuf {
        self.root.join("model.safetensors")
    }
    pub fn best_model(&self) -> PathBuf {
        self.root.join("best.safetensors")
    }
    pub fn curves_png(&self) -> PathBuf {
        self.root.join("curves.png")
    }
    pub fn curves_svg(&self) -> PathBuf {
        self.root.join("curves.svg")
    }
    pub fn confusion_png(&self) -> PathBuf {
        self.root.join("confusion.png")
    }
    pub fn summary_json(&self) -> PathBuf {
        self.root.join("summary.json")
    }
    fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoint")
    }

    /// A new, empty directory for the checkpoint of `step`.
    pub fn begin_checkpoint(&self, step: u64) -> Result<PathBuf> {
        let dir = self.checkpoints().join(format!("step-{step}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
        Ok(dir)
    }

    /// Point `LATEST` at a completed checkpoint and delete older ones.
    pub fn commit_checkpoint(&self, dir: &Path) -> Result<()> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| TrainError::bad_file(dir, "checkpoint directory has no name"))?;
        write_atomic(&self.checkpoints().join("LATEST"), name.as_bytes())?;
        let entries = std::fs::read_dir(self.checkpoints())
            .map_err(|e| TrainError::io(self.checkpoints(), e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let stale = path.is_dir() && path.file_name().and_then(|n| n.to_str()) != Some(name);
            if stale {
                // Best effort: a leftover directory is harmless, LATEST decides.
                let _ = std::fs::remove_dir_all(&path);
            }
        }
        Ok(())
    }

    /// The newest complete checkpoint, if any.
    pub fn latest_checkpoint(&self) -> Result<Option<PathBuf>> {
        let latest = self.checkpoints().join("LATEST");
        if !latest.exists() {
            return Ok(None);
        }
        let name = std::fs::read_to_string(&latest).map_err(|e| TrainError::io(&latest, e))?;
        let dir = self.checkpoints().join(name.trim());
        if !dir.is_dir() {
            return Err(TrainError::bad_file(
                &latest,
                format!("names `{}`, which does not exist", name.trim()),
            ));
        }
        Ok(Some(dir))
    }
}
