//! Finding where a diverging run first went non-finite (a layer's output,
//! a gradient, a parameter) and refusing to save non-finite weights.

use cnn_core::Backend;

use super::Trainer;
use crate::error::{Result, TrainError};

impl<B: Backend> Trainer<B> {
    /// After a non-finite loss: the first node whose output holds NaN/inf.
    pub(super) fn locate_non_finite(&self) -> Result<Option<String>> {
        for (i, name) in self.graph.node_names().enumerate() {
            if let Some(out) = self.graph.node_output(i)
                && self.backend.count_non_finite(out.buffer())? > 0
            {
                return Ok(Some(format!("first non-finite output at layer `{name}`")));
            }
        }
        Ok(None)
    }

    /// After a backward pass: the node nearest the loss whose output
    /// gradient holds NaN/inf (gradients flow backwards, so that is where
    /// the fault first appeared).
    pub(super) fn locate_non_finite_grad(&self) -> Result<Option<String>> {
        let names: Vec<&str> = self.graph.node_names().collect();
        for (i, name) in names.iter().enumerate().rev() {
            if let Some(grad) = self.graph.node_grad(i)
                && self.backend.count_non_finite(grad.buffer())? > 0
            {
                return Ok(Some(format!(
                    "first non-finite gradient at layer `{name}` (counting from the loss)"
                )));
            }
        }
        Ok(None)
    }

    /// Replay the step's forward (and `backward`) unsplit, keeping every
    /// node's output and output gradient (a step shares some of their
    /// buffers), for [`Trainer::locate_non_finite`] and
    /// [`Trainer::locate_non_finite_grad`]; the running statistics the
    /// replay's forward updates are restored.
    pub(super) fn replay_keeping_all(
        &mut self,
        images: &[f32],
        labels: &[u32],
        graph_step: u64,
        backward: bool,
    ) -> Result<()> {
        self.graph.set_keep_gradients(true);
        let mut saved = Vec::new();
        let counters = self.graph.save_buffers(&mut saved)?;
        self.replay_unsplit(images, labels, graph_step, backward)?;
        self.graph.restore_buffers(&saved, &counters)?;
        Ok(())
    }

    /// The first parameter (state_dict order) whose gradient holds NaN/inf.
    pub(super) fn first_non_finite_param_grad(&self) -> Result<Option<String>> {
        for p in self.graph.params_iter() {
            if self.backend.count_non_finite(p.grad.buffer())? > 0 {
                return Ok(Some(p.name.clone()));
            }
        }
        Ok(None)
    }

    /// The first parameter (state_dict order) whose value holds NaN/inf.
    pub(super) fn first_non_finite_weight(&self) -> Result<Option<String>> {
        for p in self.graph.params_iter() {
            if self.backend.count_non_finite(p.value.buffer())? > 0 {
                return Ok(Some(p.name.clone()));
            }
        }
        Ok(None)
    }

    /// Refuse to save non-finite weights: the last good checkpoint stays.
    pub(super) fn ensure_finite_weights(&self) -> Result<()> {
        match self.first_non_finite_weight()? {
            None => Ok(()),
            Some(name) => Err(TrainError::Diverged {
                step: self.state.step,
                epoch: self.state.epochs_done + 1,
                loss: self.history.steps.last().map_or(f64::NAN, |s| s.loss),
                location: Some(format!(
                    "`{name}` became non-finite in the optimizer step; nothing was saved"
                )),
            }),
        }
    }
}
