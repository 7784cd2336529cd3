//! Elementwise arithmetic, bias broadcast and reductions.

use crate::error::{Result, check_len};

/// A bias broadcast over a tensor viewed as `(outer, channels, inner)`:
/// a linear layer's output is `(N, F, 1)`, a convolution's `(N, C, H*W)`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BiasParams {
    pub outer: usize,
    pub channels: usize,
    pub inner: usize,
}

impl BiasParams {
    /// Validate the lengths of the tensor and the bias.
    pub fn check(&self, op: &'static str, y: usize, b: usize) -> Result<()> {
        check_len(op, "tensor", y, self.outer * self.channels * self.inner)?;
        check_len(op, "bias", b, self.channels)
    }
}

/// Elementwise ops and reductions. Binary ops require equal lengths.
pub trait ElementwiseOps: super::MemoryOps {
    /// `out = a + b` (the residual add).
    fn add(&self, a: &Self::Buffer, b: &Self::Buffer, out: &mut Self::Buffer) -> Result<()>;
    /// `y += alpha * x`.
    fn axpy(&self, alpha: f32, x: &Self::Buffer, y: &mut Self::Buffer) -> Result<()>;
    /// `x *= alpha`.
    fn scale(&self, alpha: f32, x: &mut Self::Buffer) -> Result<()>;
    /// `x = clamp(x, lo, hi)` (gradient clipping by value).
    fn clamp(&self, lo: f32, hi: f32, x: &mut Self::Buffer) -> Result<()>;
    /// `x = relu(x)` in place, as `clamp(0, inf)`: clamp's `x < 0 ? 0 : x`
    /// is ReLU's formula (NaN and -0 pass through) on every backend, so
    /// the bits are those of the out-of-place ReLU.
    fn relu_in_place(&self, x: &mut Self::Buffer) -> Result<()> {
        self.clamp(0.0, f32::INFINITY, x)
    }
    /// `g += lambda * sign(w)` (the L1 subgradient; sign(0) = 0).
    fn add_sign(&self, lambda: f32, w: &Self::Buffer, g: &mut Self::Buffer) -> Result<()>;

    /// `y[o, c, i] += b[c]`.
    fn bias_add(&self, p: &BiasParams, b: &Self::Buffer, y: &mut Self::Buffer) -> Result<()>;
    /// `db[c] += sum over (o, i) of dy[o, c, i]` (accumulates).
    fn bias_backward(&self, p: &BiasParams, dy: &Self::Buffer, db: &mut Self::Buffer)
    -> Result<()>;

    /// Sum of all elements (accumulated in f64).
    fn sum(&self, x: &Self::Buffer) -> Result<f64>;
    /// Sum of squares (accumulated in f64), for gradient norms and L2 penalties.
    fn sum_squares(&self, x: &Self::Buffer) -> Result<f64>;
    /// Sum of absolute values (accumulated in f64), for L1 penalties.
    fn sum_abs(&self, x: &Self::Buffer) -> Result<f64>;
    /// Number of NaN or infinite elements.
    fn count_non_finite(&self, x: &Self::Buffer) -> Result<usize>;
}
