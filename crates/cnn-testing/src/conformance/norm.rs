//! Conformance of batch norm (train, eval, backward) and dropout.

use proptest::prelude::*;

use crate::assert::check_close;
use crate::conformance::runner::{CASES, all_ok, plus_times, run_cases};
use crate::host::{ctx, down, filled, up};
use crate::reference as r;
use crate::strategies::values;
use cnn_core::backend::{Backend, BatchNormParams, DropoutParams};

/// Absolute tolerance for batch norm: f32 mean and variance over up to 80
/// values, then `invstd` (up to ~3 here) multiplies every error; the input
/// gradient subtracts two such sums.
pub const BN_ABS: f64 = 5e-5;
/// Relative tolerance for batch norm.
pub const BN_REL: f64 = 1e-4;
/// Dropout multiplies by the f32 scale once: one rounding.
pub const DROPOUT_REL: f64 = 1e-6;

/// Batch-norm params: batch 1-4, 1-4 channels, 1-20 pixels, at least 3
/// values per channel (PyTorch refuses one; two make the variance erratic).
fn bn_params() -> impl Strategy<Value = (BatchNormParams, u64)> {
    (
        1usize..=4,
        1usize..=4,
        1usize..=20,
        prop_oneof![Just(1e-5f32), Just(1e-3f32)],
        0.0f32..=1.0,
        any::<u64>(),
    )
        .prop_filter("at least 3 values per channel", |(n, _, hw, ..)| {
            n * hw >= 3
        })
        .prop_map(|(n, c, hw, eps, momentum, seed)| {
            (
                BatchNormParams {
                    n,
                    c,
                    hw,
                    eps,
                    momentum,
                },
                seed,
            )
        })
}

/// Training forward (y, saved mean and inverse std, running-stat update
/// with the unbiased variance), eval forward, and backward (dx overwritten,
/// dgamma and dbeta accumulated).
pub fn check_batch_norm<B: Backend>(backend: &B) {
    run_cases(
        "batch_norm2d",
        backend.name(),
        CASES,
        bn_params(),
        |(p, seed)| bn_one(backend, &p, seed),
    );
}

fn bn_one<B: Backend>(be: &B, p: &BatchNormParams, seed: u64) -> Result<(), String> {
    let (len, c) = (p.n * p.c * p.hw, p.c);
    // x is (N, C, HW) with a per-channel offset and spread; per-channel buffers are (C).
    let offset = values(seed, 0, c, -2.0, 2.0);
    let spread = values(seed, 1, c, 0.5, 2.0);
    let x: Vec<f32> = values(seed, 2, len, -1.0, 1.0)
        .iter()
        .enumerate()
        .map(|(i, v)| offset[(i / p.hw) % c] + spread[(i / p.hw) % c] * v)
        .collect();
    let gamma = values(seed, 3, c, 0.5, 1.5);
    let beta = values(seed, 4, c, -1.0, 1.0);
    let rm0 = values(seed, 5, c, -1.0, 1.0);
    let rv0 = values(seed, 6, c, 0.5, 2.0);
    let dy = values(seed, 7, len, -1.0, 1.0);
    let dgamma0 = values(seed, 8, c, -1.0, 1.0);
    let dbeta0 = values(seed, 9, c, -1.0, 1.0);
    let (xb, gb, bb) = (up(be, &x)?, up(be, &gamma)?, up(be, &beta)?);

    let mut rm = up(be, &rm0)?;
    let mut rv = up(be, &rv0)?;
    let mut y = filled(be, len, f32::NAN)?;
    let mut save_mean = filled(be, c, f32::NAN)?;
    let mut save_invstd = filled(be, c, f32::NAN)?;
    ctx(
        be.batch_norm2d_forward_train(
            p,
            &xb,
            &gb,
            &bb,
            &mut rm,
            &mut rv,
            &mut y,
            &mut save_mean,
            &mut save_invstd,
        ),
        "batch_norm2d_forward_train",
    )?;
    let t = r::batch_norm2d_forward_train(p, &x, &gamma, &beta, &rm0, &rv0);

    let mut dx = filled(be, len, f32::NAN)?;
    let mut dgamma = up(be, &dgamma0)?;
    let mut dbeta = up(be, &dbeta0)?;
    ctx(
        be.batch_norm2d_backward(
            p,
            &xb,
            &gb,
            &save_mean,
            &save_invstd,
            &up(be, &dy)?,
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        ),
        "batch_norm2d_backward",
    )?;
    let g = r::batch_norm2d_backward(p, &x, &gamma, &dy);

    // Eval with the (random) initial running stats.
    let mut y_eval = filled(be, len, f32::NAN)?;
    ctx(
        be.batch_norm2d_forward_eval(
            p,
            &xb,
            &gb,
            &bb,
            &up(be, &rm0)?,
            &up(be, &rv0)?,
            &mut y_eval,
        ),
        "batch_norm2d_forward_eval",
    )?;
    let y_eval_ref = r::batch_norm2d_forward_eval(p, &x, &gamma, &beta, &rm0, &rv0);

    all_ok([
        check_close(
            &down(be, &y)?,
            &t.y,
            BN_ABS,
            BN_REL,
            "batch_norm2d_forward_train y",
        ),
        check_close(
            &down(be, &save_mean)?,
            &t.mean,
            BN_ABS,
            BN_REL,
            "batch_norm2d_forward_train save_mean",
        ),
        check_close(
            &down(be, &save_invstd)?,
            &t.invstd,
            BN_ABS,
            BN_REL,
            "batch_norm2d_forward_train save_invstd",
        ),
        check_close(
            &down(be, &rm)?,
            &t.running_mean,
            BN_ABS,
            BN_REL,
            "batch_norm2d_forward_train running_mean",
        ),
        check_close(
            &down(be, &rv)?,
            &t.running_var,
            BN_ABS,
            BN_REL,
            "batch_norm2d_forward_train running_var",
        ),
        check_close(
            &down(be, &dx)?,
            &g.dx,
            BN_ABS,
            BN_REL,
            "batch_norm2d_backward dx",
        ),
        check_close(
            &down(be, &dgamma)?,
            &plus_times(&dgamma0, 1.0, &g.dgamma),
            BN_ABS,
            BN_REL,
            "batch_norm2d_backward dgamma (accumulated)",
        ),
        check_close(
            &down(be, &dbeta)?,
            &plus_times(&dbeta0, 1.0, &g.dbeta),
            BN_ABS,
            BN_REL,
            "batch_norm2d_backward dbeta (accumulated)",
        ),
        check_close(
            &down(be, &y_eval)?,
            &y_eval_ref,
            BN_ABS,
            BN_REL,
            "batch_norm2d_forward_eval y",
        ),
    ])
}

/// Batch norm fused with a residual add and a ReLU
/// (`batch_norm2d_relu_forward_train`, with and without the residual):
/// `relu(bn(x) + residual)` against the reference kernels, with the
/// statistics of the training forward; and its backward
/// (`batch_norm2d_relu_backward`): dx, dgamma and dbeta against the
/// reference batch norm backward of the ReLU-masked dy, and the masked dy
/// left in dy after a residual, exactly; and the eval-mode fused op, out
/// of place and in place (`bn_relu_eval`).
pub fn check_batch_norm_relu<B: Backend>(backend: &B) {
    run_cases(
        "batch_norm2d_relu",
        backend.name(),
        CASES,
        bn_params(),
        |(p, seed)| bn_relu_one(backend, &p, seed),
    );
}

fn bn_relu_one<B: Backend>(be: &B, p: &BatchNormParams, seed: u64) -> Result<(), String> {
    let (len, c) = (p.n * p.c * p.hw, p.c);
    // x, residual and y are (N, C, HW); the rest (C). The residual shifts
    // values across zero, so the ReLU cuts some.
    let x = values(seed, 0, len, -2.0, 2.0);
    let residual = values(seed, 1, len, -1.0, 1.0);
    let gamma = values(seed, 2, c, -1.5, 1.5);
    let beta = values(seed, 3, c, -0.5, 0.5);
    let rm0 = values(seed, 4, c, -1.0, 1.0);
    let rv0 = values(seed, 5, c, 0.5, 2.0);
    let t = r::batch_norm2d_forward_train(p, &x, &gamma, &beta, &rm0, &rv0);
    let (xb, rb, gb, bb) = (
        up(be, &x)?,
        up(be, &residual)?,
        up(be, &gamma)?,
        up(be, &beta)?,
    );
    let mut results = Vec::new();
    for add in [false, true] {
        let mut rm = up(be, &rm0)?;
        let mut rv = up(be, &rv0)?;
        let mut y = filled(be, len, f32::NAN)?;
        let mut save_mean = filled(be, c, f32::NAN)?;
        let mut save_invstd = filled(be, c, f32::NAN)?;
        ctx(
            be.batch_norm2d_relu_forward_train(
                p,
                &xb,
                add.then_some(&rb),
                &gb,
                &bb,
                &mut rm,
                &mut rv,
                &mut y,
                &mut save_mean,
                &mut save_invstd,
            ),
            "batch_norm2d_relu_forward_train",
        )?;
        let want: Vec<f64> =
            t.y.iter()
                .zip(&residual)
                .map(|(&v, &r)| (if add { v + f64::from(r) } else { v }).max(0.0))
                .collect();
        results.extend([
            check_close(
                &down(be, &y)?,
                &want,
                BN_ABS,
                BN_REL,
                "batch_norm2d_relu_forward_train y",
            ),
            check_close(
                &down(be, &save_mean)?,
                &t.mean,
                BN_ABS,
                BN_REL,
                "batch_norm2d_relu_forward_train save_mean",
            ),
            check_close(
                &down(be, &save_invstd)?,
                &t.invstd,
                BN_ABS,
                BN_REL,
                "batch_norm2d_relu_forward_train save_invstd",
            ),
            check_close(
                &down(be, &rv)?,
                &t.running_var,
                BN_ABS,
                BN_REL,
                "batch_norm2d_relu_forward_train running_var",
            ),
        ]);
        // The backward of the same group from a random dy: ReLU's mask
        // from this y, then batch norm's backward against the reference.
        let yh = down(be, &y)?;
        let dy = values(seed, 6 + u64::from(add), len, -1.0, 1.0);
        let dz: Vec<f32> = dy
            .iter()
            .zip(&yh)
            .map(|(&d, &v)| if v > 0.0 { d } else { 0.0 })
            .collect();
        let g = r::batch_norm2d_backward(p, &x, &gamma, &dz);
        let mut dyb = up(be, &dy)?;
        let mut dx = filled(be, len, f32::NAN)?;
        let (mut dgamma, mut dbeta) = (filled(be, c, 0.0)?, filled(be, c, 0.0)?);
        ctx(
            be.batch_norm2d_relu_backward(
                p,
                &xb,
                &y,
                &gb,
                &save_mean,
                &save_invstd,
                &mut dyb,
                add,
                &mut dx,
                &mut dgamma,
                &mut dbeta,
            ),
            "batch_norm2d_relu_backward",
        )?;
        let what = |s: &str| format!("batch_norm2d_relu_backward {s} (residual {add})");
        results.extend([
            check_close(&down(be, &dx)?, &g.dx, BN_ABS, BN_REL, &what("dx")),
            check_close(
                &down(be, &dgamma)?,
                &g.dgamma,
                BN_ABS,
                BN_REL,
                &what("dgamma"),
            ),
            check_close(&down(be, &dbeta)?, &g.dbeta, BN_ABS, BN_REL, &what("dbeta")),
        ]);
        if add && down(be, &dyb)? != dz {
            results.push(Err(what("dy: not overwritten with the masked gradient")));
        }
        results.extend(bn_relu_eval(
            be,
            p,
            [&x, &residual],
            [&gamma, &beta, &rm0, &rv0],
            add,
        )?);
    }
    all_ok(results)
}

/// The eval-mode fused op (`batch_norm2d_relu_forward_eval`) and its
/// in-place form (`batch_norm2d_relu_forward_eval_in_place`, x in y)
/// against the reference eval batch norm, the add and the ReLU; the two
/// give the same bits.
fn bn_relu_eval<B: Backend>(
    be: &B,
    p: &BatchNormParams,
    [x, residual]: [&[f32]; 2],
    [gamma, beta, rm, rv]: [&[f32]; 4],
    add: bool,
) -> Result<Vec<Result<(), String>>, String> {
    let bn = r::batch_norm2d_forward_eval(p, x, gamma, beta, rm, rv);
    let want: Vec<f64> = bn
        .iter()
        .zip(residual)
        .map(|(&v, &r)| (if add { v + f64::from(r) } else { v }).max(0.0))
        .collect();
    let (xb, rb) = (up(be, x)?, up(be, residual)?);
    let [gb, bb, rmb, rvb] = [up(be, gamma)?, up(be, beta)?, up(be, rm)?, up(be, rv)?];
    let mut y = filled(be, x.len(), f32::NAN)?;
    ctx(
        be.batch_norm2d_relu_forward_eval(p, &xb, add.then_some(&rb), &gb, &bb, &rmb, &rvb, &mut y),
        "batch_norm2d_relu_forward_eval",
    )?;
    let mut in_place = up(be, x)?;
    ctx(
        be.batch_norm2d_relu_forward_eval_in_place(
            p,
            add.then_some(&rb),
            &gb,
            &bb,
            &rmb,
            &rvb,
            &mut in_place,
        ),
        "batch_norm2d_relu_forward_eval_in_place",
    )?;
    let (y, in_place) = (down(be, &y)?, down(be, &in_place)?);
    let what = |s: &str| format!("batch_norm2d_relu_forward_eval{s} y (residual {add})");
    let same = y
        .iter()
        .map(|v| v.to_bits())
        .eq(in_place.iter().map(|v| v.to_bits()));
    Ok(vec![
        check_close(&y, &want, BN_ABS, BN_REL, &what("")),
        if same {
            Ok(())
        } else {
            Err(what("_in_place: bits differ from the out-of-place op's"))
        },
    ])
}

/// The dropout mask is exactly [`DropoutParams::keep`] (element by
/// element, for any seed, stream, step and length), kept values are scaled
/// by `1 / (1 - prob)`, and backward regenerates the same mask.
pub fn check_dropout<B: Backend>(backend: &B) {
    let prob = prop_oneof![Just(0.0f32), 0.0f32..0.95];
    let strategy = (
        prob,
        any::<u64>(),
        0u64..8,
        0u64..1_000_000,
        1usize..=600,
        any::<u64>(),
    );
    run_cases(
        "dropout",
        backend.name(),
        CASES,
        strategy,
        |(prob, seed, stream, step, len, vseed)| {
            dropout_one(
                backend,
                &DropoutParams {
                    prob,
                    seed,
                    stream,
                    step,
                },
                len,
                vseed,
            )
        },
    );
}

fn dropout_one<B: Backend>(
    be: &B,
    p: &DropoutParams,
    len: usize,
    vseed: u64,
) -> Result<(), String> {
    // Values away from zero, so a kept element is never 0.
    let x: Vec<f32> = values(vseed, 0, len, 0.5, 2.0);
    let dy: Vec<f32> = values(vseed, 1, len, -2.0, -0.5);
    let mut y = filled(be, len, f32::NAN)?;
    ctx(
        be.dropout_forward(p, &up(be, &x)?, &mut y),
        "dropout_forward",
    )?;
    let mut dx = filled(be, len, f32::NAN)?;
    ctx(
        be.dropout_backward(p, &up(be, &dy)?, &mut dx),
        "dropout_backward",
    )?;
    let (y, dx) = (down(be, &y)?, down(be, &dx)?);
    let mask = r::dropout_mask(p, len);
    for (i, &keep) in mask.iter().enumerate() {
        if keep != (y[i] != 0.0) || keep != (dx[i] != 0.0) {
            return Err(format!(
                "dropout mask differs at element {i}: reference keeps it: {keep}; forward gave {}, backward {}",
                y[i], dx[i]
            ));
        }
    }
    all_ok([
        check_close(
            &y,
            &r::dropout_forward(p, &x),
            0.0,
            DROPOUT_REL,
            "dropout_forward y",
        ),
        check_close(
            &dx,
            &r::dropout_backward(p, &dy),
            0.0,
            DROPOUT_REL,
            "dropout_backward dx",
        ),
    ])
}
