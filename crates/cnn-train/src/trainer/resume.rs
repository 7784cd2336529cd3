//! Resuming a [`Trainer`] from its run's checkpoints (the newest that
//! verifies, falling back past damaged ones) and, after a divergence,
//! choosing the weights a run keeps.

use std::path::{Path, PathBuf};

use cnn_core::Backend;

use super::{Trainer, TrainerState};
use crate::checkpoint::load_safetensors;
use crate::error::{Result, TrainError};
use crate::history::History;
use crate::io::write_atomic;
use crate::run_dir::{HISTORY_JSONL, MODEL_SAFETENSORS, OPTIMIZER_JSON, STEPS_CSV, TRAINER_JSON};

impl<B: Backend> Trainer<B> {
    /// Continue from the checkpoint `LATEST` names or, when it is damaged,
    /// incomplete or outside the run, from the newest other one that
    /// verifies (its manifest's sizes and SHA-256, then its contents).
    /// Nothing is removed before a checkpoint is loaded; then the
    /// checkpoints passed over, those newer than the loaded one and the
    /// leftovers of killed writes are, and `LATEST` names the loaded one.
    /// `None` when the run has no checkpoint; an error naming each
    /// checkpoint's problem when none can be used.
    pub fn restore(&mut self) -> Result<Option<Restored>> {
        let Some(dir) = self.run_dir.clone() else {
            return Ok(None);
        };
        let store = dir.checkpoints();
        let candidates = store.candidates()?;
        let mut skipped: Vec<(PathBuf, String)> = Vec::new();
        for ckpt in candidates.dirs {
            let loaded = store
                .verify(&ckpt)
                .and_then(|_| self.load_checkpoint(&ckpt).map_err(|e| e.to_string()));
            match loaded {
                Ok(()) => {
                    let unusable: Vec<PathBuf> = skipped.iter().map(|(p, _)| p.clone()).collect();
                    store.settle_after_load(&ckpt, &unusable)?;
                    dir.remove_temp_files()?;
                    // The run's weights are the checkpoint's (a crash may
                    // have come between the two writes).
                    let model = ckpt.join(MODEL_SAFETENSORS);
                    let bytes = std::fs::read(&model).map_err(|e| TrainError::io(&model, e))?;
                    if std::fs::read(dir.model()).ok().as_deref() != Some(bytes.as_slice()) {
                        write_atomic(&dir.model(), &bytes)?;
                    }
                    return Ok(Some(Restored {
                        dir: ckpt,
                        skipped,
                        latest_problem: candidates.latest_problem,
                    }));
                }
                Err(why) => skipped.push((ckpt, why)),
            }
        }
        if skipped.is_empty() {
            return Ok(None);
        }
        let reasons: Vec<String> = skipped
            .iter()
            .map(|(p, why)| format!("{}: {why}", p.file_name().unwrap_or_default().display()))
            .collect();
        Err(TrainError::bad_file(
            store.dir(),
            format!(
                "no checkpoint can be resumed ({}); nothing was removed",
                reasons.join("; ")
            ),
        ))
    }

    /// Read every file of the checkpoint in `ckpt`, check that they agree,
    /// and only then load them into the trainer.
    fn load_checkpoint(&mut self, ckpt: &Path) -> Result<()> {
        let read = |name: &str| -> Result<Vec<u8>> {
            let p = ckpt.join(name);
            std::fs::read(&p).map_err(|e| TrainError::io(&p, e))
        };
        let (weights, _) = load_safetensors(&ckpt.join(MODEL_SAFETENSORS))?;
        let opt: cnn_optim::OptimizerState = serde_json::from_slice(&read(OPTIMIZER_JSON)?)
            .map_err(|e| TrainError::bad_file(ckpt.join(OPTIMIZER_JSON), e.to_string()))?;
        let state: TrainerState = serde_json::from_slice(&read(TRAINER_JSON)?)
            .map_err(|e| TrainError::bad_file(ckpt.join(TRAINER_JSON), e.to_string()))?;
        let history = History {
            steps: crate::records::read_steps_csv(&ckpt.join(STEPS_CSV))?,
            epochs: crate::records::read_history_jsonl(&ckpt.join(HISTORY_JSONL))?,
        };
        // Every step and epoch leaves one record: a cut file shows here
        // even without a manifest.
        let last_step = history.steps.last().map_or(0, |s| s.step);
        if history.steps.len() as u64 != state.step || last_step != state.step {
            return Err(TrainError::bad_file(
                ckpt.join(STEPS_CSV),
                format!(
                    "holds {} rows up to step {last_step}, but the checkpoint is of step {} (truncated?)",
                    history.steps.len(),
                    state.step
                ),
            ));
        }
        if history.epochs.len() != state.epochs_done {
            return Err(TrainError::bad_file(
                ckpt.join(HISTORY_JSONL),
                format!(
                    "holds {} epochs, but the checkpoint is after epoch {} (truncated?)",
                    history.epochs.len(),
                    state.epochs_done
                ),
            ));
        }
        if let Some(averages) = &mut self.averages {
            averages.load(ckpt, state.epochs_done)?;
        }
        self.graph.load_state_dict(&weights)?;
        self.optimizer.import_state(&self.backend, &opt)?;
        // Schedule-free's training point from its averages (the weights
        // are its evaluation point).
        let params = self.graph.params_iter_mut();
        self.optimizer.restore_train_point(&self.backend, params)?;
        if let (Some(s), Some(st)) = (self.scheduler.as_mut(), state.schedule.as_ref()) {
            s.import_state(st)?;
        }
        self.graph.set_step(state.graph_step);
        self.history = history;
        self.state = state;
        Ok(())
    }

    /// After a divergence at step `diverged_at`: make the run's
    /// `model.safetensors` the newest kept checkpoint whose weights are
    /// finite, gave a finite loss on the step after it (the checkpoint of
    /// the step just before a non-finite loss holds the weights that
    /// produced it) and give a finite validation loss (weights near 1e21
    /// can pass the first two); else `best.safetensors`, when there is one.
    /// Gives the step of the checkpoint used (`Some(None)`: the best
    /// weights), or `None` when nothing qualifies and the file is left.
    pub fn keep_last_good_model(&mut self, diverged_at: u64) -> Result<Option<Option<u64>>> {
        let Some(dir) = self.run_dir.clone() else {
            return Ok(None);
        };
        let store = dir.checkpoints();
        let finite_steps = self
            .history
            .steps
            .iter()
            .take_while(|s| s.loss.is_finite() && s.step < diverged_at)
            .count() as u64;
        let val = self.data.val.clone();
        for ckpt in store.list() {
            let Ok(state) = std::fs::read(ckpt.join(TRAINER_JSON))
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    serde_json::from_slice::<TrainerState>(&b).map_err(|e| e.to_string())
                })
            else {
                continue;
            };
            // The loss of step `state.step + 1` used these weights.
            if state.step >= finite_steps || store.verify(&ckpt).is_err() {
                continue;
            }
            let path = ckpt.join(MODEL_SAFETENSORS);
            let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
            let (arrays, _) = crate::checkpoint::parse_safetensors(&bytes, &path)?;
            let finite = arrays.iter().all(|a| match &a.data {
                cnn_core::ArrayData::F32(v) => v.iter().all(|x| x.is_finite()),
                cnn_core::ArrayData::I64(_) => true,
            });
            if !finite {
                continue;
            }
            if !val.is_empty() {
                self.graph.load_state_dict(&arrays)?;
                if !self.evaluate(&val)?.0.loss.is_finite() {
                    continue;
                }
            }
            write_atomic(&dir.model(), &bytes)?;
            return Ok(Some(Some(state.step)));
        }
        let best = dir.best_model();
        if best.is_file() {
            let bytes = std::fs::read(&best).map_err(|e| TrainError::io(&best, e))?;
            write_atomic(&dir.model(), &bytes)?;
            return Ok(Some(None));
        }
        Ok(None)
    }
}

/// What [`Trainer::restore`] loaded, and what it passed over and why.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The checkpoint loaded.
    pub dir: PathBuf,
    /// Checkpoints tried before it, each with what was wrong (they are
    /// removed now).
    pub skipped: Vec<(PathBuf, String)>,
    /// Why `LATEST` could not be followed, if it could not.
    pub latest_problem: Option<String>,
}
