//! General matrix multiply: the only module that calls `matrixmultiply::sgemm`.
//!
//! # Stride conventions
//!
//! [`sgemm`] computes `C <- alpha * A * B + beta * C` where A is `m x k`,
//! B is `k x n` and C is `m x n`. Every matrix is a slice plus a row stride
//! and a column stride in elements: element `(i, j)` of A lives at
//! `a[i * rsa + j * csa]`. A row-major contiguous `m x k` matrix has
//! `rsa = k, csa = 1`; its transpose (stored `k x m`) read as `m x k` has
//! `rsa = 1, csa = m`. The slices start at element `(0, 0)`; [`sgemm`]
//! checks that the last element `(rows - 1, cols - 1)` lies inside each slice,
//! so no stride combination can read or write out of bounds.
//!
//! With `beta == 0` C is only written, never read (matrixmultiply's
//! contract), so NaN in an uninitialised C does not propagate. With `k == 0`
//! the product is empty and `C <- beta * C`.
//!
//! matrixmultiply is built without its `threading` feature: [`sgemm`] is
//! single-threaded, and [`gemm_rows_par`] parallelises over row blocks of C
//! with the backend's rayon pool, so a rayon task never nests a threaded GEMM.

use cnn_core::{GemmOps, GemmParams, Result};
use rayon::prelude::*;

use crate::CpuBackend;

/// A read-only strided matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major contiguous matrix with `cols` columns (`trans == false`),
    /// or the transpose of a row-major matrix with `rows` columns stored
    /// `cols x rows` (`trans == true`).
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize, trans: bool) -> Self {
        if trans {
            MatRef {
                data,
                rs: 1,
                cs: rows,
            }
        } else {
            MatRef {
                data,
                rs: cols,
                cs: 1,
            }
        }
    }

    /// The view starting at row `r0` (the same strides).
    fn skip_rows(self, r0: usize) -> Self {
        MatRef {
            data: &self.data[(r0 * self.rs).min(self.data.len())..],
            ..self
        }
    }
}

fn last_index(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    (rows - 1) * rs + (cols - 1) * cs
}

/// `C <- alpha * A * B + beta * C`, single-threaded (see the module docs for
/// strides). C has row stride `rsc` and column stride `csc`.
///
/// Panics if a view is too short for its dimensions: callers in this crate
/// derive every view from validated lengths, so that is a bug, not bad input.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
    csc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        last_index(m, n, rsc, csc) < c.len(),
        "sgemm: C view out of bounds"
    );
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                let cij = &mut c[i * rsc + j * csc];
                *cij = if beta == 0.0 { 0.0 } else { beta * *cij };
            }
        }
        return;
    }
    assert!(
        last_index(m, k, a.rs, a.cs) < a.data.len(),
        "sgemm: A view out of bounds"
    );
    assert!(
        last_index(k, n, b.rs, b.cs) < b.data.len(),
        "sgemm: B view out of bounds"
    );
    // SAFETY: the asserts above guarantee that every element (i, j) addressed
    // through the given strides lies inside the corresponding slice; C is
    // borrowed mutably and does not alias A or B (distinct Rust borrows).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            csc as isize,
        );
    }
}

/// Below this many multiply-adds a GEMM runs on the calling thread.
const PAR_GEMM_MIN_WORK: usize = 1 << 18;

/// `C <- alpha * A * B + beta * C` with C row-major contiguous (`m x n`),
/// split into row blocks run in parallel on the current rayon pool when
/// large enough. Call it inside `CpuBackend::install`, never from a rayon
/// task that already runs per-image work.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_rows_par(
    threads: usize,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: &mut [f32],
) {
    let work = m * n * k;
    if threads <= 1 || work < PAR_GEMM_MIN_WORK || m < 16 || n == 0 {
        sgemm(m, k, n, alpha, a, b, beta, c, n, 1);
        return;
    }
    // Row blocks that are multiples of 8 (the microkernel height), about
    // two per thread for load balance.
    let blocks = (threads * 2).min(m / 8).max(1);
    let rows = m.div_ceil(blocks).next_multiple_of(8);
    c[..m * n]
        .par_chunks_mut(rows * n)
        .enumerate()
        .for_each(|(bi, c_blk)| {
            let r0 = bi * rows;
            let mb = c_blk.len() / n;
            sgemm(mb, k, n, alpha, a.skip_rows(r0), b, beta, c_blk, n, 1);
        });
}

impl GemmOps for CpuBackend {
    fn gemm(&self, p: &GemmParams, a: &Vec<f32>, b: &Vec<f32>, c: &mut Vec<f32>) -> Result<()> {
        p.check(a.len(), b.len(), c.len())?;
        let av = MatRef::row_major(a, p.m, p.k, p.trans_a);
        let bv = MatRef::row_major(b, p.k, p.n, p.trans_b);
        let threads = self.threads;
        if threads > 1 && p.m * p.n * p.k >= PAR_GEMM_MIN_WORK {
            self.install(|| gemm_rows_par(threads, p.m, p.k, p.n, p.alpha, av, bv, p.beta, c));
        } else {
            sgemm(p.m, p.k, p.n, p.alpha, av, bv, p.beta, c, p.n, 1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(p: &GemmParams, a: &[f32], b: &[f32], c: &mut [f32]) {
        for i in 0..p.m {
            for j in 0..p.n {
                let mut s = 0.0f64;
                for q in 0..p.k {
                    let av = if p.trans_a {
                        a[q * p.m + i]
                    } else {
                        a[i * p.k + q]
                    };
                    let bv = if p.trans_b {
                        b[j * p.k + q]
                    } else {
                        b[q * p.n + j]
                    };
                    s += f64::from(av) * f64::from(bv);
                }
                let old = if p.beta == 0.0 {
                    0.0
                } else {
                    f64::from(p.beta) * f64::from(c[i * p.n + j])
                };
                c[i * p.n + j] = (f64::from(p.alpha) * s + old) as f32;
            }
        }
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn gemm_matches_naive_all_transposes() {
        let be = CpuBackend::with_threads(2).unwrap();
        for &(m, n, k) in &[(3, 5, 4), (1, 1, 1), (70, 90, 50), (33, 7, 0)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let p = GemmParams {
                        m,
                        n,
                        k,
                        trans_a: ta,
                        trans_b: tb,
                        alpha: 0.5,
                        beta: 2.0,
                    };
                    let a = data(m * k, 1);
                    let b = data(k * n, 2);
                    let c0 = data(m * n, 3);
                    let mut c = c0.clone();
                    let mut want = c0.clone();
                    be.gemm(&p, &a, &b, &mut c).unwrap();
                    naive(&p, &a, &b, &mut want);
                    for (x, y) in c.iter().zip(&want) {
                        assert!(
                            (x - y).abs() <= 1e-4 + 1e-4 * y.abs(),
                            "{x} vs {y} ({m},{n},{k},{ta},{tb})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_parallel_path_and_beta_zero_ignores_nan() {
        let be = CpuBackend::with_threads(2).unwrap();
        let (m, n, k) = (130, 70, 40);
        let p = GemmParams::new(m, n, k);
        let a = data(m * k, 4);
        let b = data(k * n, 5);
        let mut c = vec![f32::NAN; m * n];
        let mut want = vec![0.0; m * n];
        be.gemm(&p, &a, &b, &mut c).unwrap();
        naive(&p, &a, &b, &mut want);
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() <= 1e-4 + 1e-4 * y.abs(), "{x} vs {y}");
        }
    }

    #[test]
    fn gemm_bad_lengths_are_errors() {
        let be = CpuBackend::with_threads(1).unwrap();
        let p = GemmParams::new(2, 3, 4);
        assert!(
            be.gemm(&p, &vec![0.0; 7], &vec![0.0; 12], &mut vec![0.0; 6])
                .is_err()
        );
        assert!(
            be.gemm(&p, &vec![0.0; 8], &vec![0.0; 12], &mut vec![0.0; 5])
                .is_err()
        );
        let bad = GemmParams {
            alpha: f32::NAN,
            ..p
        };
        assert!(
            be.gemm(&bad, &vec![0.0; 8], &vec![0.0; 12], &mut vec![0.0; 6])
                .is_err()
        );
    }
}
