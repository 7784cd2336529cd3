//! Trainable parameters and their gradients.

use crate::backend::MemoryOps;
use crate::tensor::Tensor;

/// What a parameter is for; optimizers use it to form parameter groups
/// (PyTorch practice: no weight decay on biases and normalisation params).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    /// A convolution or linear weight.
    Weight,
    /// A convolution or linear bias.
    Bias,
    /// A normalisation layer's scale (gamma, PyTorch's `weight`).
    NormScale,
    /// A normalisation layer's shift (beta, PyTorch's `bias`).
    NormShift,
}

impl ParamKind {
    /// Whether weight decay applies by default (weights only).
    pub fn decays_by_default(self) -> bool {
        matches!(self, ParamKind::Weight)
    }
}

/// A trainable tensor with its PyTorch state_dict name (`conv1.weight`) and
/// its gradient, which backward passes accumulate into until zeroed.
pub struct Param<B: MemoryOps> {
    /// The state_dict name, e.g. `conv1.weight`.
    pub name: String,
    pub kind: ParamKind,
    pub value: Tensor<B>,
    /// Same shape as `value`; accumulated by backward, zeroed by the optimizer.
    pub grad: Tensor<B>,
}

impl<B: MemoryOps> std::fmt::Debug for Param<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Param")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("shape", self.value.shape())
            .finish()
    }
}

impl<B: MemoryOps> Param<B> {
    /// A parameter with the given initial values and a zero gradient.
    pub fn new(
        backend: &B,
        name: impl Into<String>,
        kind: ParamKind,
        value: Tensor<B>,
    ) -> crate::Result<Self> {
        let grad = Tensor::zeros(backend, value.shape().clone())?;
        Ok(Param {
            name: name.into(),
            kind,
            value,
            grad,
        })
    }

    /// Set the gradient to zero.
    pub fn zero_grad(&mut self, backend: &B) -> crate::Result<()> {
        backend.fill(self.grad.buffer_mut(), 0.0)
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.value.numel()
    }
}
