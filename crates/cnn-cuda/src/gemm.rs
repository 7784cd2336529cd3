//! General matrix multiply: every cuBLAS product starts here (f32 mode
//! here, the other precision modes in `mixed.rs`, the only other caller).
//!
//! # Layout conventions
//!
//! The trait's matrices are row-major; cuBLAS is column-major. A row-major
//! `r x c` matrix with row stride `c` is, byte for byte, the column-major
//! `c x r` matrix (its transpose) with leading dimension `c`. So
//! `C = op(A) op(B)` (row-major, `m x n`) is computed as the column-major
//! product `C^T = op(B)^T op(A)^T` (`n x m`): cuBLAS gets `(m', n', k') =
//! (n, m, k)`, B in the first slot and A in the second, with
//! - B: `N`, `ldb = n` when stored `k x n`; `T`, `ldb = k` when stored
//!   `n x k` (`trans_b`);
//! - A: `N`, `lda = k` when stored `m x k`; `T`, `lda = m` when stored
//!   `k x m` (`trans_a`);
//! - C: `ldc = n`.
//!
//! [`RowMajorGemm`] adds a batch of such products with element strides
//! between consecutive A, B and C matrices (0 to reuse one matrix), run as
//! one `cublasSgemmStridedBatched`.
//!
//! With `beta == 0` cuBLAS never reads C (NaN in C does not propagate).
//! In the f32 precision mode (the default) every product is a
//! `cublasSgemm[StridedBatched]` in cuBLAS's default math mode (full FP32,
//! no TF32); in the other modes [`CudaBackend::row_major_gemm`] hands the
//! same product to `mixed.rs` (`cublasGemm[StridedBatched]Ex` on TF32,
//! bf16 or f16 operands).

use cnn_core::{CnnError, GemmOps, GemmParams, Result};
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};

use crate::mixed::{ExGemm, ExPlan};
use crate::{CudaBackend, cublas_err, driver_err};

/// `C_i = alpha op(A_i) op(B_i) + beta C_i` for `i < batch`, row-major.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowMajorGemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
    pub batch: usize,
    pub stride_a: usize,
    pub stride_b: usize,
    pub stride_c: usize,
}

impl RowMajorGemm {
    pub fn single(p: &GemmParams) -> Self {
        RowMajorGemm {
            m: p.m,
            n: p.n,
            k: p.k,
            trans_a: p.trans_a,
            trans_b: p.trans_b,
            alpha: p.alpha,
            beta: p.beta,
            batch: 1,
            stride_a: 0,
            stride_b: 0,
            stride_c: 0,
        }
    }

    /// cuBLAS's column-major view of this product (`C^T = op(B)^T
    /// op(A)^T`: B in cuBLAS's first slot, see the module docs).
    pub fn column_major(&self) -> Result<GemmConfig<f32>> {
        let ldb = if self.trans_b { self.k } else { self.n };
        let lda = if self.trans_a { self.m } else { self.k };
        Ok(GemmConfig {
            transa: op(self.trans_b),
            transb: op(self.trans_a),
            m: int("n", self.n)?,
            n: int("m", self.m)?,
            k: int("k", self.k)?,
            alpha: self.alpha,
            lda: int("ldb", ldb.max(1))?,
            ldb: int("lda", lda.max(1))?,
            beta: self.beta,
            ldc: int("ldc", self.n.max(1))?,
        })
    }
}

fn int(what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| CnnError::Backend {
        backend: "cuda",
        message: format!("gemm {what} = {v} exceeds cuBLAS's 32-bit limit"),
    })
}

fn op(trans: bool) -> cublasOperation_t {
    if trans {
        cublasOperation_t::CUBLAS_OP_T
    } else {
        cublasOperation_t::CUBLAS_OP_N
    }
}

impl CudaBackend {
    /// Run `g` (see the module docs). The caller guarantees that every
    /// matrix of the batch lies inside its buffer; `m`, `n`, `k` and the
    /// batch must be non-zero.
    pub(crate) fn row_major_gemm<A, B, C>(
        &self,
        g: &RowMajorGemm,
        a: &A,
        b: &B,
        c: &mut C,
    ) -> Result<()>
    where
        A: DevicePtr<f32>,
        B: DevicePtr<f32>,
        C: DevicePtrMut<f32>,
    {
        debug_assert!(g.m > 0 && g.n > 0 && g.k > 0 && g.batch > 0);
        let cfg = g.column_major()?;
        if let Some(plan) = ExPlan::of(self.precision) {
            let ex = ExGemm {
                cfg,
                batch: g.batch,
                batch_i32: int("batch", g.batch)?,
                len_a: g.m * g.k,
                len_b: g.k * g.n,
                stride_a: g.stride_a,
                stride_b: g.stride_b,
                stride_c: g.stride_c,
            };
            return self.mixed_gemm(plan, &ex, a, b, c);
        }
        self.inner.ctx.bind_to_thread().map_err(driver_err)?;
        let blas = &self.inner.blas;
        // SAFETY: the dimensions and leading dimensions describe matrices
        // that the caller has checked lie inside `a`, `b` and `c`.
        unsafe {
            if g.batch == 1 {
                blas.gemm(cfg, b, a, c)
            } else {
                blas.gemm_strided_batched(
                    StridedBatchedConfig {
                        gemm: cfg,
                        batch_size: int("batch", g.batch)?,
                        stride_a: g.stride_b as i64,
                        stride_b: g.stride_a as i64,
                        stride_c: g.stride_c as i64,
                    },
                    b,
                    a,
                    c,
                )
            }
        }
        .map_err(cublas_err)
    }
}

impl GemmOps for CudaBackend {
    fn gemm(
        &self,
        p: &GemmParams,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        c: &mut CudaSlice<f32>,
    ) -> Result<()> {
        p.check(a.len(), b.len(), c.len())?;
        if p.m == 0 || p.n == 0 {
            return Ok(());
        }
        if p.k == 0 {
            // An empty product: C = beta C (C written, not read, when beta is 0).
            return if p.beta == 0.0 {
                cnn_core::MemoryOps::fill(self, c, 0.0)
            } else {
                cnn_core::ElementwiseOps::scale(self, p.beta, c)
            };
        }
        self.row_major_gemm(&RowMajorGemm::single(p), a, b, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_major_product_is_cublas_s_transposed_one() {
        // C (2 x 3) = A^T B with A stored 4 x 2, B stored 4 x 3.
        let g = RowMajorGemm {
            trans_a: true,
            alpha: 0.5,
            ..RowMajorGemm::single(&GemmParams::new(2, 3, 4))
        };
        let cfg = g.column_major().unwrap();
        // cuBLAS computes C^T (3 x 2) = B^T A: B first, untransposed (its
        // column-major view is B^T), A second, transposed.
        assert_eq!((cfg.m, cfg.n, cfg.k), (3, 2, 4));
        assert_eq!(cfg.transa, cublasOperation_t::CUBLAS_OP_N);
        assert_eq!(cfg.transb, cublasOperation_t::CUBLAS_OP_T);
        assert_eq!((cfg.lda, cfg.ldb, cfg.ldc), (3, 2, 3));
        assert_eq!((cfg.alpha, cfg.beta), (0.5, 0.0));
        let big = RowMajorGemm { k: 1 << 31, ..g };
        assert!(
            big.column_major()
                .unwrap_err()
                .to_string()
                .contains("32-bit limit")
        );
    }
}
