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
        let p = CrossEntropyParams {
            n,
            classes,
            label_smoothing: self.label_smoothing,
        };
        backend.softmax_cross_entropy(&p, logits.buffer(), targets, dlogits.buffer_mut())
    }
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
