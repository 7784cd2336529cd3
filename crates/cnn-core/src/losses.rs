//! Losses on tensors: the mean loss and the gradient of that mean with
//! respect to the network's output, computed by one fused backend op.

use crate::backend::{Backend, CrossEntropyParams};
use crate::error::{CnnError, Result};
use crate::tensor::Tensor;

/// Softmax cross-entropy over logits `[N, C]` and class targets, mean over
/// the batch, with optional label smoothing (PyTorch's `CrossEntropyLoss`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoftmaxCrossEntropy {
    pub label_smoothing: f32,
}

impl SoftmaxCrossEntropy {
    /// Without label smoothing.
    pub fn new() -> Self {
        SoftmaxCrossEntropy {
            label_smoothing: 0.0,
        }
    }

    /// The mean loss; writes its gradient into `dlogits` (same shape).
    pub fn forward_backward<B: Backend>(
        &self,
        backend: &B,
        logits: &Tensor<B>,
        targets: &B::IndexBuffer,
        dlogits: &mut Tensor<B>,
    ) -> Result<f32> {
        let p = self.params(logits)?;
        backend.softmax_cross_entropy(&p, logits.buffer(), targets, dlogits.buffer_mut())
    }

    /// The mean loss against the mixed targets of mixup and CutMix, `lam`
    /// of `targets` and `1 - lam` of `partners` (label-smoothed first, as
    /// timm's `mixup_target`); writes its gradient into `dlogits`.
    pub fn forward_backward_mixed<B: Backend>(
        &self,
        backend: &B,
        logits: &Tensor<B>,
        mix: &MixedTargets<'_, B>,
        dlogits: &mut Tensor<B>,
    ) -> Result<f32> {
        let p = self.params(logits)?;
        backend.softmax_cross_entropy_mixed(
            &p,
            mix.lam,
            logits.buffer(),
            mix.targets,
            mix.partners,
            dlogits.buffer_mut(),
        )
    }

    /// The op's params for logits `[N, classes]`.
    fn params<B: Backend>(&self, logits: &Tensor<B>) -> Result<CrossEntropyParams> {
        let (n, classes) = match *logits.shape().dims() {
            [n, c] => (n, c),
            _ => {
                return Err(CnnError::value(
                    "logits",
                    format!(
                        "cross-entropy needs logits of shape [N, classes], got {}",
                        logits.shape()
                    ),
                ));
            }
        };
        Ok(CrossEntropyParams {
            n,
            classes,
            label_smoothing: self.label_smoothing,
        })
    }
}

/// The targets of a mixed batch on the device: each row's own class
/// (`targets`), its partner's (`partners`) and the weight `lam` of the
/// own class.
pub struct MixedTargets<'a, B: Backend> {
    pub targets: &'a B::IndexBuffer,
    pub partners: &'a B::IndexBuffer,
    pub lam: f64,
}

impl Default for SoftmaxCrossEntropy {
    fn default() -> Self {
        Self::new()
    }
}

/// Mean squared error against a target tensor of the same shape.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MeanSquaredError;

impl MeanSquaredError {
    /// The mean loss; writes its gradient into `dx`.
    pub fn forward_backward<B: Backend>(
        &self,
        backend: &B,
        x: &Tensor<B>,
        target: &Tensor<B>,
        dx: &mut Tensor<B>,
    ) -> Result<f32> {
        if x.shape() != target.shape() {
            return Err(CnnError::ShapeMismatch {
                layer: "mse_loss".into(),
                expected: x.shape().clone(),
                actual: target.shape().clone(),
            });
        }
        backend.mse_loss(x.buffer(), target.buffer(), dx.buffer_mut())
    }
}

impl<B: Backend> std::fmt::Debug for MixedTargets<'_, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MixedTargets")
            .field("lam", &self.lam)
            .finish_non_exhaustive()
    }
}
