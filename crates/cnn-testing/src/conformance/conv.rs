//! Conformance of `conv2d_forward` and its three backward ops.

use crate::assert::check_close;
use crate::conformance::runner::{HEAVY_CASES, all_ok, plus_times, run_cases};
use crate::host::{ctx, down, filled, up};
use crate::reference as r;
use crate::strategies::{ConvCase, conv_case, values};
use cnn_core::backend::Backend;

/// Absolute tolerance for convolutions: f32 sums of up to a few hundred
/// products of values in [-1, 1] (the weight gradient sums over batch and
/// output pixels), in whatever order the backend's GEMM chooses.
pub const CONV_ABS: f64 = 1e-4;
/// Relative tolerance for convolutions (see [`CONV_ABS`]).
pub const CONV_REL: f64 = 1e-4;

/// Forward, input gradient, and weight and bias gradients (which must
/// accumulate: two calls add twice) against the reference, on random
/// geometry with groups, stride, padding, dilation and rectangular kernels.
pub fn check_conv2d<B: Backend>(backend: &B) {
    run_cases("conv2d", backend.name(), HEAVY_CASES, conv_case(), |case| {
        check_conv2d_case(backend, &case)
    });
}

/// One convolution case against the reference: forward, input gradient
/// and the accumulating weight and bias gradients.
pub fn check_conv2d_case<B: Backend>(be: &B, case: &ConvCase) -> Result<(), String> {
    let p = case.params();
    let s = case.seed;
    // x is (N, C_in, H, W); w is (C_out, C_in/groups, kh, kw); dy is (N, C_out, H_out, W_out).
    let x = values(s, 0, p.x_len(), -1.0, 1.0);
    let w = values(s, 1, p.w_len(), -1.0, 1.0);
    let b = values(s, 2, p.c_out, -1.0, 1.0);
    let dy = values(s, 3, p.y_len(), -1.0, 1.0);
    let dw0 = values(s, 4, p.w_len(), -1.0, 1.0);
    let db0 = values(s, 5, p.c_out, -1.0, 1.0);
    let (xb, wb, bb, dyb) = (up(be, &x)?, up(be, &w)?, up(be, &b)?, up(be, &dy)?);

    let mut y = filled(be, p.y_len(), f32::NAN)?;
    ctx(
        be.conv2d_forward(&p, &xb, &wb, case.bias.then_some(&bb), &mut y),
        "conv2d_forward",
    )?;
    let y_ref = r::conv2d_forward(&p, &x, &w, case.bias.then_some(b.as_slice()));

    let mut dx = filled(be, p.x_len(), f32::NAN)?;
    ctx(
        be.conv2d_backward_input(&p, &dyb, &wb, &mut dx),
        "conv2d_backward_input",
    )?;
    let dx_ref = r::conv2d_backward_input(&p, &dy, &w);

    // Parameter gradients accumulate: start from dw0, add twice.
    let mut dw = up(be, &dw0)?;
    ctx(
        be.conv2d_backward_weight(&p, &xb, &dyb, &mut dw),
        "conv2d_backward_weight",
    )?;
    let dw_once = down(be, &dw)?;
    ctx(
        be.conv2d_backward_weight(&p, &xb, &dyb, &mut dw),
        "conv2d_backward_weight",
    )?;
    let dw_ref = r::conv2d_backward_weight(&p, &x, &dy);

    let mut db = up(be, &db0)?;
    ctx(
        be.conv2d_backward_bias(&p, &dyb, &mut db),
        "conv2d_backward_bias",
    )?;
    ctx(
        be.conv2d_backward_bias(&p, &dyb, &mut db),
        "conv2d_backward_bias",
    )?;
    let db_ref = r::conv2d_backward_bias(&p, &dy);

    // The same bias gradient from the batch cut into contiguous parts (the
    // first image alone, then the rest), as a data-parallel step asks.
    let image = p.y_len() / p.n.max(1);
    let cut = image.min(dy.len());
    let (dy_head, dy_tail) = (up(be, &dy[..cut])?, up(be, &dy[cut..])?);
    let mut db_parts = up(be, &db0)?;
    ctx(
        be.conv2d_backward_bias_parts(&p, &[&dy_head, &dy_tail], &mut db_parts),
        "conv2d_backward_bias_parts",
    )?;

    all_ok([
        check_close(
            &down(be, &y)?,
            &y_ref,
            CONV_ABS,
            CONV_REL,
            "conv2d_forward y",
        ),
        check_close(
            &down(be, &dx)?,
            &dx_ref,
            CONV_ABS,
            CONV_REL,
            "conv2d_backward_input dx",
        ),
        check_close(
            &dw_once,
            &plus_times(&dw0, 1.0, &dw_ref),
            CONV_ABS,
            CONV_REL,
            "conv2d_backward_weight dw (one call)",
        ),
        check_close(
            &down(be, &dw)?,
            &plus_times(&dw0, 2.0, &dw_ref),
            CONV_ABS,
            CONV_REL,
            "conv2d_backward_weight dw (two calls)",
        ),
        check_close(
            &down(be, &db)?,
            &plus_times(&db0, 2.0, &db_ref),
            CONV_ABS,
            CONV_REL,
            "conv2d_backward_bias db (two calls)",
        ),
        check_close(
            &down(be, &db_parts)?,
            &plus_times(&db0, 1.0, &db_ref),
            CONV_ABS,
            CONV_REL,
            "conv2d_backward_bias_parts db (two parts)",
        ),
    ])
}
