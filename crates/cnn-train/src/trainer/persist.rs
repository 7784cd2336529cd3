//! What a [`Trainer`] writes into its run directory: the learning-curve
//! files and plots after each epoch, and checkpoints.

use std::collections::HashMap;

use cnn_core::Backend;
use cnn_optim::Scheduler;

use super::Trainer;
use crate::checkpoint::serialize_safetensors;
use crate::error::{Result, TrainError};
use crate::io::write_atomic;
use crate::metrics::ConfusionMatrix;
use crate::run_dir::{
    HISTORY_JSONL, MODEL_SAFETENSORS, OPTIMIZER_JSON, RunDir, STEPS_CSV, TRAINER_JSON,
};

impl<B: Backend> Trainer<B> {
    /// Write the learning-curve files and plots.
    pub fn write_files(&self, dir: &RunDir, confusion: Option<&ConfusionMatrix>) -> Result<()> {
        crate::records::write_steps_csv(&dir.steps_csv(), &self.history.steps)?;
        crate::records::write_metrics_csv(&dir.metrics_csv(), &self.history.epochs)?;
        crate::records::write_history_jsonl(&dir.history_jsonl(), &self.history.epochs)?;
        let title = format!("{} on {}", self.config.model, self.data.name);
        crate::plot::draw_curves_with_steps_per_epoch(
            &self.history,
            self.steps_per_epoch(),
            &title,
            &dir.curves_png(),
            &dir.curves_svg(),
        )?;
        if let Some(cm) = confusion {
            crate::plot::draw_confusion(
                cm,
                &self.data.class_names,
                &format!("{title}: validation confusion"),
                &dir.confusion_png(),
            )?;
        }
        if let Some(tensorboard) = &self.tensorboard {
            let confusion_png = confusion.map(|_| dir.confusion_png());
            tensorboard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .write(&self.history, confusion_png.as_deref())?;
        }
        Ok(())
    }

    /// Save weights, optimizer and trainer state (and the weight averages)
    /// as the newest checkpoint (a commit: see [`crate::checkpoint_store`]),
    /// then the same weights as the run's `model.safetensors` (and
    /// `ema.safetensors`, `swa.safetensors`).
    pub fn checkpoint(&mut self) -> Result<()> {
        let Some(dir) = self.run_dir.clone() else {
            return Ok(());
        };
        self.ensure_finite_weights()?;
        self.state.graph_step = self.graph.step();
        self.state.schedule = self.scheduler.as_ref().map(Scheduler::export_state);
        let store = dir.checkpoints();
        let origin = |name: &str| store.dir().join(name);
        // The optimizer's state at the training point; the weights saved
        // at the evaluation point (schedule-free's x; the same weights
        // for other optimizers).
        self.eval_point(false)?;
        let opt = self.optimizer.export_state(&self.backend)?;
        self.eval_point(true)?;
        let model = serialize_safetensors(
            &self.graph.state_dict()?,
            &HashMap::new(),
            &origin(MODEL_SAFETENSORS),
        )?;
        let opt_json = serde_json::to_vec(&opt)
            .map_err(|e| TrainError::bad_file(origin(OPTIMIZER_JSON), e.to_string()))?;
        let trainer_json = serde_json::to_vec_pretty(&self.state)
            .map_err(|e| TrainError::bad_file(origin(TRAINER_JSON), e.to_string()))?;
        let steps = crate::records::steps_csv(&self.history.steps);
        let history = crate::records::history_jsonl(&self.history.epochs, &origin(HISTORY_JSONL))?;
        let averages = match &self.averages {
            Some(a) => a.files(store.dir())?,
            None => Vec::new(),
        };
        let mut files: Vec<(&str, &[u8])> = vec![
            (MODEL_SAFETENSORS, &model),
            (OPTIMIZER_JSON, &opt_json),
            (TRAINER_JSON, &trainer_json),
            (STEPS_CSV, steps.as_bytes()),
            (HISTORY_JSONL, history.as_bytes()),
        ];
        files.extend(
            averages
                .iter()
                .map(|(name, bytes)| (*name, bytes.as_slice())),
        );
        store.commit(self.state.step, &files)?;
        write_atomic(&dir.model(), &model)?;
        // `ema.safetensors`, `swa.safetensors` beside the model.
        for (name, bytes) in &averages {
            write_atomic(&dir.root().join(name), bytes)?;
        }
        Ok(())
    }

    /// Continue from the newest checkpoint of the run directory that
    /// verifies (see [`restore`](Self::restore)); `false` when the run has
    /// no checkpoint at all.
    pub fn restore_latest(&mut self) -> Result<bool> {
        Ok(self.restore()?.is_some())
    }
}
