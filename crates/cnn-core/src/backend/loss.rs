//! Losses with their gradients, fused.

use crate::error::{CnnError, Result, check_len};

/// Softmax cross-entropy over logits `(n, classes)` with class targets,
/// mean over the batch, with optional label smoothing (PyTorch:
/// the target distribution is `(1 - s) one_hot + s / classes`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrossEntropyParams {
    pub n: usize,
    pub classes: usize,
    pub label_smoothing: f32,
}

impl CrossEntropyParams {
    /// Validate the params and buffer lengths.
    pub fn check(&self, logits: usize, targets: usize, dlogits: usize) -> Result<()> {
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return Err(CnnError::value(
                "label_smoothing",
                format!("{} is outside [0, 1]", self.label_smoothing),
            ));
        }
        if self.n == 0 || self.classes == 0 {
            return Err(CnnError::geometry(
                "cross-entropy needs at least one row and one class",
            ));
        }
        check_len(
            "softmax_cross_entropy",
            "logits",
            logits,
            self.n * self.classes,
        )?;
        check_len("softmax_cross_entropy", "targets", targets, self.n)?;
        check_len(
            "softmax_cross_entropy",
            "dlogits",
            dlogits,
            self.n * self.classes,
        )
    }
}

/// Losses. Each returns the mean loss as a host scalar and writes the
/// gradient of that mean with respect to its input.
pub trait LossOps: super::MemoryOps {
    /// Numerically stable (log-sum-exp) softmax cross-entropy.
    /// logits and dlogits are (N, classes); targets are (N) class indices;
    /// a target `>= classes` is an error. dlogits overwritten.
    fn softmax_cross_entropy(
        &self,
        p: &CrossEntropyParams,
        logits: &Self::Buffer,
        targets: &Self::IndexBuffer,
        dlogits: &mut Self::Buffer,
    ) -> Result<f32>;

    /// Mean squared error `mean((x - target)^2)`; dx overwritten with
    /// `2 (x - target) / len`.
    fn mse_loss(
        &self,
        x: &Self::Buffer,
        target: &Self::Buffer,
        dx: &mut Self::Buffer,
    ) -> Result<f32>;

    /// Index of the largest value in each row of x (N, classes) (first on ties).
    fn argmax_rows(
        &self,
        n: usize,
        classes: usize,
        x: &Self::Buffer,
        out: &mut Self::IndexBuffer,
    ) -> Result<()>;
}
