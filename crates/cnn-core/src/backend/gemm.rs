//! General matrix multiply.

use crate::error::{CnnError, Result, check_len};

/// `C = alpha * op(A) * op(B) + beta * C`, all row-major and contiguous.
///
/// `op(A)` is `m x k`: A is stored `m x k`, or `k x m` when `trans_a`.
/// `op(B)` is `k x n`: B is stored `k x n`, or `n x k` when `trans_b`.
/// C is `m x n`. With `beta == 0` the old contents of C are ignored (NaN in C
/// does not propagate).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GemmParams {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
}

impl GemmParams {
    /// `C = A B` with no transposes.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        GemmParams {
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        }
    }

    /// Validate the buffer lengths for this product.
    pub fn check(&self, a_len: usize, b_len: usize, c_len: usize) -> Result<()> {
        if !self.alpha.is_finite() || !self.beta.is_finite() {
            return Err(CnnError::value("gemm alpha/beta", "must be finite"));
        }
        check_len("gemm", "a", a_len, self.m * self.k)?;
        check_len("gemm", "b", b_len, self.k * self.n)?;
        check_len("gemm", "c", c_len, self.m * self.n)
    }
}

/// Matrix multiplication.
pub trait GemmOps: super::MemoryOps {
    /// `c = alpha * op(a) * op(b) + beta * c` (see [`GemmParams`]).
    fn gemm(
        &self,
        p: &GemmParams,
        a: &Self::Buffer,
        b: &Self::Buffer,
        c: &mut Self::Buffer,
    ) -> Result<()>;
}
