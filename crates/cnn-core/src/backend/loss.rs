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

    /// [`check`](Self::check) for the mixed cross-entropy: also its
    /// partner targets (`n` of them) and a mixing weight in `[0, 1]`.
    pub fn check_mixed(
        &self,
        lam: f64,
        logits: usize,
        targets: usize,
        partners: usize,
        dlogits: usize,
    ) -> Result<()> {
        self.check(logits, targets, dlogits)?;
        if !(0.0..=1.0).contains(&lam) {
            return Err(CnnError::value(
                "lam",
                format!("the mixing weight {lam} is outside [0, 1]"),
            ));
        }
        check_len("softmax_cross_entropy_mixed", "partners", partners, self.n)
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

    /// Softmax cross-entropy against a mix of two targets per row (mixup
    /// and CutMix, timm's `mixup_target` with `SoftTargetCrossEntropy`):
    /// the target distribution of row `i` is `lam q(targets[i]) + (1 -
    /// lam) q(partners[i])` with `q(t) = (1 - s) one_hot(t) + s / classes`,
    /// so the loss is `lam CE_s(targets) + (1 - lam) CE_s(partners)` and
    /// dlogits `(softmax - mixed target) / N`. logits and dlogits are
    /// (N, classes); targets and partners are (N); `lam` is in `[0, 1]`; a
    /// target or partner `>= classes` is an error. dlogits overwritten.
    fn softmax_cross_entropy_mixed(
        &self,
        p: &CrossEntropyParams,
        lam: f64,
        logits: &Self::Buffer,
        targets: &Self::IndexBuffer,
        partners: &Self::IndexBuffer,
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
