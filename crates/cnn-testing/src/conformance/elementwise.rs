//! Conformance of the elementwise ops, bias broadcast and reductions.

use proptest::prelude::*;

use crate::assert::{check_close, check_close_scalar};
use crate::conformance::runner::{CASES, all_ok, plus_times, run_cases};
use crate::host::{ctx, down, filled, up};
use crate::reference as r;
use crate::strategies::values;
use cnn_core::backend::{Backend, BiasParams};
use cnn_core::rng::CounterRng;

/// Absolute tolerance for one f32 operation on values of order 1 (a fused
/// multiply-add may round once less).
pub const ELEM_ABS: f64 = 1e-6;
/// Relative tolerance for one f32 operation.
pub const ELEM_REL: f64 = 1e-6;
/// Tolerances for reductions and bias gradients: sums of up to 300 values;
/// the trait asks for f64 accumulation, so only the bias gradient (an f32
/// buffer) sees f32 rounding.
pub const REDUCE_ABS: f64 = 1e-5;
/// See [`REDUCE_ABS`].
pub const REDUCE_REL: f64 = 1e-6;

/// add, axpy, scale, clamp, add_sign (sign(0) = 0), bias_add,
/// bias_backward (accumulating), sum, sum_squares, sum_abs and
/// count_non_finite.
pub fn check_elementwise<B: Backend>(backend: &B) {
    run_cases(
        "elementwise",
        backend.name(),
        CASES,
        (1usize..=300, any::<u64>()),
        |(len, seed)| elementwise_one(backend, len, seed),
    );
    let bias = (1usize..=4, 1usize..=6, 1usize..=20, any::<u64>());
    run_cases(
        "bias_add / bias_backward",
        backend.name(),
        CASES,
        bias,
        |(outer, channels, inner, seed)| {
            bias_one(
                backend,
                &BiasParams {
                    outer,
                    channels,
                    inner,
                },
                seed,
            )
        },
    );
}

fn elementwise_one<B: Backend>(be: &B, len: usize, seed: u64) -> Result<(), String> {
    let a = values(seed, 0, len, -1.0, 1.0);
    let b = values(seed, 1, len, -1.0, 1.0);
    let mut rng = CounterRng::new(seed, 2);
    let alpha = rng.uniform(-2.0, 2.0) as f32;
    let (lo, hi) = (rng.uniform(-1.0, 0.0) as f32, rng.uniform(0.0, 1.0) as f32);
    // Some exact zeros in w, where sign is 0.
    let w: Vec<f32> = a
        .iter()
        .enumerate()
        .map(|(i, &v)| if i % 3 == 0 { 0.0 } else { v })
        .collect();
    let (ab, bb) = (up(be, &a)?, up(be, &b)?);
    let mut results = Vec::new();

    let mut out = filled(be, len, f32::NAN)?;
    ctx(be.add(&ab, &bb, &mut out), "add")?;
    results.push(check_close(
        &down(be, &out)?,
        &r::add(&a, &b),
        ELEM_ABS,
        ELEM_REL,
        "add",
    ));

    let mut y = up(be, &b)?;
    ctx(be.axpy(alpha, &ab, &mut y), "axpy")?;
    results.push(check_close(
        &down(be, &y)?,
        &r::axpy(alpha, &a, &b),
        ELEM_ABS,
        ELEM_REL,
        "axpy",
    ));

    let mut x = up(be, &a)?;
    ctx(be.scale(alpha, &mut x), "scale")?;
    results.push(check_close(
        &down(be, &x)?,
        &r::scale(alpha, &a),
        ELEM_ABS,
        ELEM_REL,
        "scale",
    ));

    let mut x = up(be, &a)?;
    ctx(be.clamp(lo, hi, &mut x), "clamp")?;
    results.push(check_close(
        &down(be, &x)?,
        &r::clamp(lo, hi, &a),
        0.0,
        0.0,
        "clamp",
    ));

    let mut g = up(be, &b)?;
    ctx(be.add_sign(alpha, &up(be, &w)?, &mut g), "add_sign")?;
    results.push(check_close(
        &down(be, &g)?,
        &r::add_sign(alpha, &w, &b),
        ELEM_ABS,
        ELEM_REL,
        "add_sign",
    ));

    let big = values(seed, 3, len, -100.0, 100.0);
    let bigb = up(be, &big)?;
    results.push(check_close_scalar(
        ctx(be.sum(&bigb), "sum")?,
        r::sum(&big),
        REDUCE_ABS,
        REDUCE_REL,
        "sum",
    ));
    results.push(check_close_scalar(
        ctx(be.sum_squares(&bigb), "sum_squares")?,
        r::sum_squares(&big),
        REDUCE_ABS,
        REDUCE_REL,
        "sum_squares",
    ));
    results.push(check_close_scalar(
        ctx(be.sum_abs(&bigb), "sum_abs")?,
        r::sum_abs(&big),
        REDUCE_ABS,
        REDUCE_REL,
        "sum_abs",
    ));

    let mut special = a.clone();
    for i in (0..len).step_by(7) {
        special[i] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][(i / 7) % 3];
    }
    let count = ctx(be.count_non_finite(&up(be, &special)?), "count_non_finite")?;
    if count != r::count_non_finite(&special) {
        results.push(Err(format!(
            "count_non_finite: got {count}, expected {}",
            r::count_non_finite(&special)
        )));
    }
    all_ok(results)
}

fn bias_one<B: Backend>(be: &B, p: &BiasParams, seed: u64) -> Result<(), String> {
    // y and dy are (outer, channels, inner); b and db are (channels).
    let len = p.outer * p.channels * p.inner;
    let y0 = values(seed, 0, len, -1.0, 1.0);
    let b = values(seed, 1, p.channels, -1.0, 1.0);
    let dy = values(seed, 2, len, -1.0, 1.0);
    let db0 = values(seed, 3, p.channels, -1.0, 1.0);
    let mut y = up(be, &y0)?;
    ctx(be.bias_add(p, &up(be, &b)?, &mut y), "bias_add")?;
    let mut db = up(be, &db0)?;
    let dyb = up(be, &dy)?;
    ctx(be.bias_backward(p, &dyb, &mut db), "bias_backward")?;
    ctx(be.bias_backward(p, &dyb, &mut db), "bias_backward")?;
    all_ok([
        check_close(
            &down(be, &y)?,
            &r::bias_add(p, &b, &y0),
            ELEM_ABS,
            ELEM_REL,
            "bias_add",
        ),
        check_close(
            &down(be, &db)?,
            &plus_times(&db0, 2.0, &r::bias_backward(p, &dy)),
            REDUCE_ABS,
            REDUCE_REL,
            "bias_backward (two calls)",
        ),
    ])
}
