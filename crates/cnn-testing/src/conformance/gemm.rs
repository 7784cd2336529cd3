//! Conformance of `gemm`.

use crate::assert::check_close;
use crate::conformance::runner::{HEAVY_CASES, run_cases};
use crate::host::{ctx, down, up};
use crate::reference as r;
use crate::strategies::{GemmCase, gemm_case, values};
use cnn_core::backend::{Backend, GemmParams};

/// Absolute tolerance for GEMM: f32 dot products of up to 40 terms in
/// [-1, 1], scaled by |alpha| <= 2, summed in any order; deeper products
/// (the block-boundary cases, up to 300 terms) get it scaled by `k / 40`,
/// as their rounding error grows at most linearly with the depth.
pub const GEMM_ABS: f64 = 1e-4;
/// Relative tolerance for GEMM (see [`GEMM_ABS`]).
pub const GEMM_REL: f64 = 1e-4;

/// `C = alpha op(A) op(B) + beta C` for every transpose combination; with
/// `beta == 0`, C starts as NaN and must not leak into the result.
pub fn check_gemm<B: Backend>(backend: &B) {
    run_cases("gemm", backend.name(), HEAVY_CASES, gemm_case(), |case| {
        check_gemm_case(backend, &case)
    });
}

/// One GEMM case against the reference.
pub fn check_gemm_case<B: Backend>(be: &B, case: &GemmCase) -> Result<(), String> {
    let p = GemmParams {
        m: case.m,
        n: case.n,
        k: case.k,
        trans_a: case.trans_a,
        trans_b: case.trans_b,
        alpha: case.alpha,
        beta: case.beta,
    };
    // A is m x k (k x m when trans_a); B is k x n (n x k when trans_b); C is m x n.
    let a = values(case.seed, 0, p.m * p.k, -1.0, 1.0);
    let b = values(case.seed, 1, p.k * p.n, -1.0, 1.0);
    let c0 = if p.beta == 0.0 {
        vec![f32::NAN; p.m * p.n]
    } else {
        values(case.seed, 2, p.m * p.n, -1.0, 1.0)
    };
    let mut c = up(be, &c0)?;
    ctx(be.gemm(&p, &up(be, &a)?, &up(be, &b)?, &mut c), "gemm")?;
    check_close(
        &down(be, &c)?,
        &r::gemm(&p, &a, &b, &c0),
        GEMM_ABS * (p.k as f64 / 40.0).max(1.0),
        GEMM_REL,
        "gemm c",
    )
}
