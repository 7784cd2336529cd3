//! The trainer's side of dynamic loss scaling ([`crate::loss_scale`]):
//! the loss gradient multiplied by the scale before backward, and at the
//! optimizer step the gradients multiplied by `1 / scale`, checked for
//! NaN and infinities (the backend's `count_non_finite` of each gradient)
//! and the step skipped when one is found. The scaler lives in
//! [`TrainerState`](super::TrainerState), so checkpoints keep it.
//!
//! With scaling on, steps run unsplit (`cnn_core::DataParallel` seeds its
//! own loss gradient): on the CPU backend a data-parallel step equals the
//! unsplit step bit for bit, so only the speed of a multi-threaded step
//! changes.

use cnn_core::Backend;

use super::Trainer;
use crate::error::{Result, TrainError};
use crate::history::StepScaling;
use crate::loss_scale::LossScaler;

impl<B: Backend> Trainer<B> {
    /// Use `scaler` (`None`: no scaling) from the next step on, over what
    /// the configuration chose: for tests and for callers who want other
    /// than GradScaler's default scale or growth interval.
    pub fn with_loss_scaler(mut self, scaler: Option<LossScaler>) -> Result<Self> {
        if let Some(s) = &scaler {
            s.validate().map_err(TrainError::Config)?;
            if self.config.sam.is_some() {
                return Err(TrainError::Config(
                    "loss scaling does not combine with sam".into(),
                ));
            }
        }
        self.state.loss_scale = scaler;
        Ok(self)
    }

    /// The loss scaler and where it stands, when the run scales its loss.
    pub fn loss_scaler(&self) -> Option<&LossScaler> {
        self.state.loss_scale.as_ref()
    }

    /// Whether the run scales its loss (its steps then run unsplit).
    pub(super) fn scales_loss(&self) -> bool {
        self.state.loss_scale.is_some()
    }

    /// Before the unsplit backward of a batch of `n`: its loss gradient
    /// (waiting in the scratch buffers) times the scale.
    pub(super) fn scale_loss_gradient(&mut self, n: usize) -> Result<()> {
        let Some(scale) = self.state.loss_scale.as_ref().map(|s| s.scale) else {
            return Ok(());
        };
        let b = self.backend.clone();
        if let Some(scratch) = self.scratch.get_mut(&n) {
            b.scale(scale, scratch.dlogits.buffer_mut())?;
        }
        Ok(())
    }

    /// At the optimizer step, before regularizers and clipping: the
    /// gradients times `1 / scale`, then whether any is NaN or infinite;
    /// the scaler updated by the outcome. Gives the step's scale and
    /// whether to skip it (`None` without scaling).
    pub(super) fn unscale_gradients(&mut self, b: &B) -> Result<Option<StepScaling>> {
        let Some(scaler) = self.state.loss_scale.as_ref() else {
            return Ok(None);
        };
        let (scale, inv) = (scaler.scale, scaler.inv_scale());
        let mut found_inf = false;
        for p in self.graph.params_iter_mut() {
            b.scale(inv, p.grad.buffer_mut())?;
            if !found_inf && b.count_non_finite(p.grad.buffer())? > 0 {
                found_inf = true;
            }
        }
        if let Some(s) = self.state.loss_scale.as_mut() {
            s.update(found_inf);
        }
        Ok(Some(StepScaling {
            loss_scale: scale,
            skipped: found_inf,
        }))
    }
}
