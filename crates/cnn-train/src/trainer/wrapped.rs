//! The trainer's side of the optimizer wrappers: SAM's second
//! forward-backward on the step's batch at the perturbed weights, and
//! schedule-free's evaluation point (`x`) in the graph whenever the
//! weights are read for anything but a training step (evaluation, the
//! best and saved models, checkpoints).

use cnn_core::Backend;

use super::Trainer;
use crate::error::{Result, TrainError};

impl<B: Backend> Trainer<B> {
    /// The optimizer step of the graph's accumulated gradients, with SAM
    /// when configured: perturb the weights by `rho g / ||g||`, take the
    /// gradient of the same batch there (the same dropout masks; batch
    /// norm's running statistics and counters as the first pass left
    /// them), regularize and clip it like the first, and let the step put
    /// the weights back before the inner update.
    pub(super) fn wrapped_step(
        &mut self,
        b: &B,
        epoch: usize,
        images: &[f32],
        labels: &[u32],
    ) -> Result<()> {
        if self.optimizer.sam().is_some() {
            self.optimizer.sam_perturb_graph(b, &mut self.graph)?;
            self.graph.zero_grad()?;
            self.sam_second_pass(epoch, images, labels)?;
            self.adjust_gradients(b)?;
        }
        self.optimizer.step_graph(b, &mut self.graph)?;
        Ok(())
    }

    fn sam_second_pass(&mut self, epoch: usize, images: &[f32], labels: &[u32]) -> Result<()> {
        let n = labels.len();
        let mut saved = Vec::new();
        let counters = self.graph.save_buffers(&mut saved)?;
        // The first pass's dropout masks (they are keyed by this counter).
        let after = self.graph.step();
        self.graph.set_step(after.saturating_sub(1));
        let mut preds = vec![0; n];
        let split = self.parallel.is_some() && !self.config.detect_anomaly;
        let partners = self
            .batch_mix
            .map(|lam| (crate::mixing::partners(labels), lam));
        let loss = match self.parallel.as_mut().filter(|_| split) {
            Some(parallel) => f64::from(parallel.forward_backward_mixed(
                &mut self.graph,
                images,
                labels,
                partners.as_ref().map(|(p, lam)| (p.as_slice(), *lam)),
                &self.loss,
                Some(&mut preds),
            )?),
            None => {
                let loss = self.forward_loss(images, labels, &mut preds)?;
                self.graph.backward(&self.scratch[&n].dlogits)?;
                loss
            }
        };
        self.graph.set_step(after);
        self.graph.restore_buffers(&saved, &counters)?;
        let bad = self.first_non_finite_param_grad()?;
        if !loss.is_finite() || bad.is_some() {
            return Err(TrainError::Diverged {
                step: self.state.step + 1,
                epoch,
                loss,
                location: Some(match bad {
                    Some(p) => format!("SAM's second pass: gradient of `{p}`"),
                    None => "SAM's second pass (at the perturbed weights)".to_string(),
                }),
            });
        }
        Ok(())
    }

    /// Put schedule-free's evaluation point into the graph (`on`) or the
    /// training point back; a no-op for other optimizers.
    pub(super) fn eval_point(&mut self, on: bool) -> Result<()> {
        self.optimizer
            .set_eval_point(self.graph.params_iter_mut(), on)?;
        Ok(())
    }
}
