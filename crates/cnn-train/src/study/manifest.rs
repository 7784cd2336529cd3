//! `study.json`, the [`StudyManifest`]: what kind of study a directory
//! holds and every planned run with its [`RunState`], the device it was
//! placed on and the worker that last took it. Several processes update it
//! at once (one per run, on one machine or on the nodes of a cluster), so
//! every change goes through [`StudyManifest::update`]: an OS file lock
//! ([`MANIFEST_LOCK`]) around read, change and atomic write.

use std::fs::OpenOptions;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::io::write_atomic;
use crate::run_dir::study::{MANIFEST, MANIFEST_LOCK};

/// Where a planned run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Not started, or stopped at a checkpoint (it resumes from it).
    Pending,
    /// A worker holds it (or held it and was killed: the run's lock says
    /// which).
    Running,
    /// Trained to its end (completed or stopped early).
    Done,
    /// Could not train: the error is recorded.
    Failed,
    /// Its loss went non-finite: a result like `done`, never trained again.
    Diverged,
    /// Stopped early by a search's pruner: a result, never trained again.
    Pruned,
}

impl RunState {
    pub fn name(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Done => "done",
            RunState::Failed => "failed",
            RunState::Diverged => "diverged",
            RunState::Pruned => "pruned",
        }
    }

    /// Whether the run has its result: it is never trained again (done,
    /// diverged, pruned).
    pub fn is_over(self) -> bool {
        matches!(self, RunState::Done | RunState::Diverged | RunState::Pruned)
    }
}

/// Which command planned the study (and so how its results are collected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StudyKind {
    /// `cnn compare`: `compare.json` describes the variants.
    Compare,
    /// `cnn curve`: `curve.json` describes the sizes.
    Curve,
}

/// The training subset of a learning curve's fit: the first `train_size`
/// images of the training split (as `base_seed` and `limit_train` load
/// it) in the order of [`crate::learning_curve::subset_order`]`(base_seed,
/// repeat, n)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSubset {
    pub fraction: f64,
    pub train_size: usize,
    pub repeat: usize,
    /// The curve's seed: the data and the subset order are drawn from it.
    pub base_seed: u64,
    /// The curve's `limit_train`, applied when the data is loaded.
    pub limit_train: usize,
}

/// One planned run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyRun {
    /// Its index: `cnn study run DIR INDEX`, counted from 0 (a Slurm array
    /// `--array=0-(N-1)` passes `$SLURM_ARRAY_TASK_ID` as it is).
    pub index: usize,
    /// Its run directory, relative to the study directory.
    pub dir: String,
    pub state: RunState,
    /// How a run that is over ended: `completed`, `early_stopped` or
    /// `diverged` (its `summary.json` says more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why it failed: the error's one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The device it was placed on (`--devices`: the CUDA_VISIBLE_DEVICES
    /// of its process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The worker that last took it: `pid@host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// A learning curve's fit: its training subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<TrainSubset>,
}

/// `study.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyManifest {
    pub kind: StudyKind,
    pub runs: Vec<StudyRun>,
}

impl StudyManifest {
    pub fn load(root: &Path) -> Result<Self> {
        let path = root.join(MANIFEST);
        let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| TrainError::bad_file(&path, e.to_string()))
    }

    /// Write it (atomically). Several processes: use [`Self::update`].
    pub fn save(&self, root: &Path) -> Result<()> {
        let path = root.join(MANIFEST);
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| TrainError::bad_file(&path, e.to_string()))?;
        write_atomic(&path, &json)
    }

    /// Read, change and write the manifest of `root` under its lock, so
    /// that processes finishing at once each see the others' changes.
    /// The lock waits for its holder (held only for the update itself).
    pub fn update<T>(root: &Path, change: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let path = root.join(MANIFEST_LOCK);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        file.lock().map_err(|e| TrainError::io(&path, e))?;
        let result = Self::load(root).and_then(|mut manifest| {
            let out = change(&mut manifest)?;
            manifest.save(root)?;
            Ok(out)
        });
        let _ = file.unlock();
        result
    }

    /// The run of `index`, or an error naming the valid range.
    pub fn run(&self, index: usize) -> Result<&StudyRun> {
        self.runs.get(index).ok_or_else(|| {
            TrainError::Config(format!(
                "the study has no run {index}: its {} runs are numbered 0 to {}",
                self.runs.len(),
                self.runs.len().saturating_sub(1)
            ))
        })
    }

    /// The runs that have no result yet (neither over nor failed).
    pub fn missing(&self) -> Vec<&StudyRun> {
        self.runs
            .iter()
            .filter(|r| !r.state.is_over() && r.state != RunState::Failed)
            .collect()
    }

    /// The state counts, e.g. `3 done, 1 pending` (states with none left
    /// out).
    pub fn counts(&self) -> String {
        let states = [
            RunState::Done,
            RunState::Diverged,
            RunState::Pruned,
            RunState::Failed,
            RunState::Running,
            RunState::Pending,
        ];
        let parts: Vec<String> = states
            .iter()
            .filter_map(|&s| {
                let n = self.runs.iter().filter(|r| r.state == s).count();
                (n > 0).then(|| format!("{n} {}", s.name()))
            })
            .collect();
        parts.join(", ")
    }
}

/// Whether `dir` holds a study plan.
pub fn is_study(dir: &Path) -> bool {
    dir.join(MANIFEST).is_file()
}

/// "3 of 8 runs are missing: a/ (pending), b/ (running), ...": what a
/// partial study lacks, for its summary and report; `None` when nothing
/// is missing or `dir` holds no plan.
pub fn missing_note(dir: &Path) -> Option<String> {
    let manifest = StudyManifest::load(dir).ok()?;
    let missing = manifest.missing();
    if missing.is_empty() {
        return None;
    }
    let names: Vec<String> = missing
        .iter()
        .map(|r| format!("{}/ (run {}, {})", r.dir, r.index, r.state.name()))
        .collect();
    Some(format!(
        "This is a partial result: {} of {} runs are missing: {}. Run them with `cnn study run {} INDEX` (or the command's --resume), then `cnn study collect`.",
        missing.len(),
        manifest.runs.len(),
        names.join(", "),
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(index: usize, state: RunState) -> StudyRun {
        StudyRun {
            index,
            dir: format!("r{index}"),
            state,
            status: None,
            error: None,
            device: None,
            worker: None,
            subset: None,
        }
    }

    #[test]
    fn updates_from_many_threads_are_all_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        StudyManifest {
            kind: StudyKind::Compare,
            runs: (0..16).map(|i| run(i, RunState::Pending)).collect(),
        }
        .save(root)
        .unwrap();
        std::thread::scope(|s| {
            for i in 0..16 {
                s.spawn(move || {
                    StudyManifest::update(root, |m| {
                        m.runs[i].state = RunState::Done;
                        Ok(())
                    })
                    .unwrap()
                });
            }
        });
        let m = StudyManifest::load(root).unwrap();
        assert!(m.runs.iter().all(|r| r.state == RunState::Done), "{m:?}");
        assert_eq!(m.counts(), "16 done");
        assert!(missing_note(root).is_none());
        let err = m.run(16).unwrap_err().to_string();
        assert!(err.contains("numbered 0 to 15"), "{err}");
    }

    #[test]
    fn states_are_written_in_snake_case_and_missing_runs_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let m = StudyManifest {
            kind: StudyKind::Curve,
            runs: vec![
                run(0, RunState::Done),
                run(1, RunState::Pending),
                run(2, RunState::Failed),
                run(3, RunState::Pruned),
            ],
        };
        m.save(tmp.path()).unwrap();
        let text = std::fs::read_to_string(tmp.path().join(MANIFEST)).unwrap();
        assert!(text.contains("\"kind\": \"curve\"") && text.contains("\"pruned\""));
        assert_eq!(m.counts(), "1 done, 1 pruned, 1 failed, 1 pending");
        let note = missing_note(tmp.path()).unwrap();
        assert!(
            note.contains("1 of 4 runs are missing: r1/ (run 1, pending)"),
            "{note}"
        );
    }
}
