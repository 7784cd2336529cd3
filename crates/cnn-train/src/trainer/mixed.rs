//! The trainer's side of mixup and CutMix (see [`crate::mixing`]): a
//! batch from the loader mixed in place before its step, and the mixed
//! loss of its logits.

use cnn_core::{Backend, MixedTargets, SoftmaxCrossEntropy, Tensor};

use super::Trainer;
use crate::error::Result;

impl<B: Backend> Trainer<B> {
    /// Mix batch `batch.index` of `epoch` (1-based) in place as the run's
    /// settings draw it; the weight `lam` of each image's own label, or
    /// `None` when the batch is not mixed.
    pub(super) fn mix_batch(&self, epoch: usize, batch: &mut cnn_data::Batch) -> Option<f64> {
        let c = &self.config;
        let mix = crate::mixing::settings(c.mixup, c.cutmix, c.mix_prob, c.mix_switch_prob);
        let [_, ch, h, w] = *batch.shape.dims() else {
            return None;
        };
        let draw = mix.draw(c.seed, epoch as u64 - 1, batch.index as u64, h, w)?;
        draw.apply(&mut batch.images, batch.n, [ch, h, w]);
        Some(draw.lam)
    }
}

/// The loss of a batch whose labels are `labels` (uploaded in `targets`):
/// plain with `lam = None`, else mixed with the labels reversed (uploaded
/// into `partners`).
#[allow(clippy::too_many_arguments)]
pub(super) fn batch_loss<B: Backend>(
    b: &B,
    loss: &SoftmaxCrossEntropy,
    logits: &Tensor<B>,
    labels: &[u32],
    targets: &B::IndexBuffer,
    partners: &mut B::IndexBuffer,
    lam: Option<f64>,
    dlogits: &mut Tensor<B>,
) -> Result<f32> {
    let Some(lam) = lam else {
        return Ok(loss.forward_backward(b, logits, targets, dlogits)?);
    };
    b.upload_indices_into(&crate::mixing::partners(labels), partners)?;
    let mix = MixedTargets {
        targets,
        partners,
        lam,
    };
    Ok(loss.forward_backward_mixed(b, logits, &mix, dlogits)?)
}
