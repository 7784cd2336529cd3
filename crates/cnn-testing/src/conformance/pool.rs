//! Conformance of max, average and global-average pooling.

use proptest::prelude::*;

use crate::assert::check_close;
use crate::conformance::runner::{CASES, all_ok, run_cases};
use crate::host::{ctx, down, down_indices, filled, up};
use crate::reference as r;
use crate::strategies::{PoolCase, pool_case, tied_values, values};
use cnn_core::backend::Backend;

/// Absolute tolerance for average pooling: a sum of at most 16 values in
/// [-1, 1] and one division, in f32.
pub const POOL_ABS: f64 = 1e-6;
/// Relative tolerance for average pooling.
pub const POOL_REL: f64 = 1e-5;

/// Max pooling (values exact, argmax exact including the first-maximum
/// rule on ties, backward through the argmax), average pooling with every
/// padding / ceil-mode / count_include_pad combination, and global
/// average pooling.
pub fn check_pooling<B: Backend>(backend: &B) {
    run_cases("max_pool2d", backend.name(), CASES, pool_case(), |case| {
        check_max_pool_case(backend, &case)
    });
    run_cases("avg_pool2d", backend.name(), CASES, pool_case(), |case| {
        avg_pool_one(backend, &case)
    });
    let global = (1usize..=3, 1usize..=5, 1usize..=50, any::<u64>());
    run_cases(
        "global_avg_pool",
        backend.name(),
        CASES,
        global,
        |(n, c, hw, seed)| global_one(backend, n, c, hw, seed),
    );
}

fn pool_input(case: &PoolCase, len: usize) -> Vec<f32> {
    if case.tied {
        tied_values(case.seed, 0, len)
    } else {
        values(case.seed, 0, len, -1.0, 1.0)
    }
}

/// One max-pooling case against the reference: values, argmax (first
/// maximum on ties) and the backward pass.
pub fn check_max_pool_case<B: Backend>(be: &B, case: &PoolCase) -> Result<(), String> {
    let p = case.params();
    // x is (N, C, H, W); y, argmax and dy are (N, C, H_out, W_out).
    let x = pool_input(case, p.x_len());
    let dy = values(case.seed, 1, p.y_len(), -1.0, 1.0);
    let (y_ref, argmax_ref) = r::max_pool2d_forward(&p, &x);
    let mut y = filled(be, p.y_len(), f32::NAN)?;
    let mut argmax = ctx(be.alloc_indices(p.y_len()), "alloc_indices")?;
    ctx(
        be.max_pool2d_forward(&p, &up(be, &x)?, &mut y, &mut argmax),
        "max_pool2d_forward",
    )?;
    let argmax_got = down_indices(be, &argmax)?;
    if argmax_got != argmax_ref {
        let first = argmax_got
            .iter()
            .zip(&argmax_ref)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return Err(format!(
            "max_pool2d_forward argmax differs first at output {first}: got {}, expected {} (first maximum in row-major window order)",
            argmax_got[first], argmax_ref[first]
        ));
    }
    let mut dx = filled(be, p.x_len(), f32::NAN)?;
    ctx(
        be.max_pool2d_backward(&p, &up(be, &dy)?, &argmax, &mut dx),
        "max_pool2d_backward",
    )?;
    all_ok([
        check_close(&down(be, &y)?, &y_ref, 0.0, 0.0, "max_pool2d_forward y"),
        // Sums of at most a few dy where windows overlap.
        check_close(
            &down(be, &dx)?,
            &r::max_pool2d_backward(&p, &dy, &argmax_ref),
            POOL_ABS,
            POOL_REL,
            "max_pool2d_backward dx",
        ),
    ])
}

fn avg_pool_one<B: Backend>(be: &B, case: &PoolCase) -> Result<(), String> {
    let p = case.params();
    let x = pool_input(case, p.x_len());
    let dy = values(case.seed, 1, p.y_len(), -1.0, 1.0);
    let mut y = filled(be, p.y_len(), f32::NAN)?;
    ctx(
        be.avg_pool2d_forward(&p, &up(be, &x)?, &mut y),
        "avg_pool2d_forward",
    )?;
    let mut dx = filled(be, p.x_len(), f32::NAN)?;
    ctx(
        be.avg_pool2d_backward(&p, &up(be, &dy)?, &mut dx),
        "avg_pool2d_backward",
    )?;
    all_ok([
        check_close(
            &down(be, &y)?,
            &r::avg_pool2d_forward(&p, &x),
            POOL_ABS,
            POOL_REL,
            "avg_pool2d_forward y",
        ),
        check_close(
            &down(be, &dx)?,
            &r::avg_pool2d_backward(&p, &dy),
            POOL_ABS,
            POOL_REL,
            "avg_pool2d_backward dx",
        ),
    ])
}

fn global_one<B: Backend>(be: &B, n: usize, c: usize, hw: usize, seed: u64) -> Result<(), String> {
    // x is (N, C, HW); y and dy are (N, C).
    let x = values(seed, 0, n * c * hw, -1.0, 1.0);
    let dy = values(seed, 1, n * c, -1.0, 1.0);
    let mut y = filled(be, n * c, f32::NAN)?;
    ctx(
        be.global_avg_pool_forward(n, c, hw, &up(be, &x)?, &mut y),
        "global_avg_pool_forward",
    )?;
    let mut dx = filled(be, n * c * hw, f32::NAN)?;
    ctx(
        be.global_avg_pool_backward(n, c, hw, &up(be, &dy)?, &mut dx),
        "global_avg_pool_backward",
    )?;
    all_ok([
        check_close(
            &down(be, &y)?,
            &r::global_avg_pool_forward(n, c, hw, &x),
            POOL_ABS,
            POOL_REL,
            "global_avg_pool_forward y",
        ),
        check_close(
            &down(be, &dx)?,
            &r::global_avg_pool_backward(n, c, hw, &dy),
            POOL_ABS,
            POOL_REL,
            "global_avg_pool_backward dx",
        ),
    ])
}
