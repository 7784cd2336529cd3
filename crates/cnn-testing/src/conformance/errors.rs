//! Bad input must come back as `Err`, never as a panic or a silent
//! out-of-bounds write: geometry that cannot be computed (built by hand,
//! bypassing the params constructors), wrong buffer lengths, and values out
//! of their domain. A few inputs the trait does not promise to detect
//! (an argmax index outside its plane) must merely not panic.

use std::panic::{AssertUnwindSafe, catch_unwind};

use cnn_core::backend::{
    Activation, AdamStep, Backend, BatchNormParams, BiasParams, Conv2dGeometry, Conv2dParams,
    CrossEntropyParams, DropoutParams, GemmParams, Pool2dGeometry, Pool2dParams, SgdStep,
};

/// A valid 3x3 convolution over (2, 4, 6, 6) with 2 groups.
fn good_conv() -> Conv2dParams {
    Conv2dParams::new(2, 4, 6, 6, &Conv2dGeometry::new(4, 3).padding(1).groups(2))
        .expect("valid geometry")
}

/// A valid 2x2 pooling over (1, 2, 4, 4).
fn good_pool() -> Pool2dParams {
    Pool2dParams::new(1, 2, 4, 4, &Pool2dGeometry::new(2)).expect("valid geometry")
}

/// Each case must return `Err`; an `Ok` or a panic is reported.
pub fn check_errors<B: Backend>(backend: &B) {
    let be = backend;
    let cases = build_cases::<B>();
    let mut failures = Vec::new();
    for (what, expect, case) in &cases {
        match catch_unwind(AssertUnwindSafe(|| case(be))) {
            Ok(Err(_)) => {}
            Ok(Ok(())) if *expect == Expect::NoPanic => {}
            Ok(Ok(())) => failures.push(format!("{what}: returned Ok")),
            Err(_) => failures.push(format!("{what}: panicked")),
        }
    }
    assert!(
        failures.is_empty(),
        "conformance check `errors` failed on backend `{}`: {} of {} bad inputs were not handled as required:\n{}",
        backend.name(),
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// What a bad input must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// An `Err`.
    Err,
    /// `Ok` or `Err`, but no panic.
    NoPanic,
}

type Case<B> = (
    &'static str,
    Expect,
    Box<dyn Fn(&B) -> cnn_core::Result<()>>,
);

/// A call that must return `Err`.
fn case<B: Backend>(
    what: &'static str,
    f: impl Fn(&B) -> cnn_core::Result<()> + 'static,
) -> Case<B> {
    (what, Expect::Err, Box::new(f))
}

/// A call that must not panic.
fn no_panic<B: Backend>(
    what: &'static str,
    f: impl Fn(&B) -> cnn_core::Result<()> + 'static,
) -> Case<B> {
    (what, Expect::NoPanic, Box::new(f))
}

/// Buffers of the given lengths, filled with ones.
fn bufs<B: Backend, const N: usize>(be: &B, lens: [usize; N]) -> cnn_core::Result<[B::Buffer; N]> {
    let mut out = Vec::with_capacity(N);
    for len in lens {
        out.push(be.upload(&vec![1.0; len])?);
    }
    Ok(out
        .try_into()
        .unwrap_or_else(|_| unreachable!("N buffers were made")))
}

/// Run `conv2d_forward` with `p` and buffers of the lengths `p` asks for
/// (so only the geometry is wrong).
fn conv_forward_with<B: Backend>(be: &B, p: &Conv2dParams) -> cnn_core::Result<()> {
    let cin_g = (p.c_in / p.groups.max(1)).max(1);
    let [x, w, mut y] = bufs(
        be,
        [
            p.n * p.c_in * p.h * p.w,
            p.c_out * cin_g * p.kh * p.kw,
            (p.n * p.c_out * p.h_out * p.w_out).max(1),
        ],
    )?;
    be.conv2d_forward(p, &x, &w, None, &mut y)
}

fn pool_with<B: Backend>(be: &B, p: &Pool2dParams, max: bool) -> cnn_core::Result<()> {
    let [x, mut y] = bufs(
        be,
        [
            p.n * p.c * p.h * p.w,
            (p.n * p.c * p.h_out * p.w_out).max(1),
        ],
    )?;
    if max {
        let mut argmax = be.alloc_indices((p.n * p.c * p.h_out * p.w_out).max(1))?;
        be.max_pool2d_forward(p, &x, &mut y, &mut argmax)
    } else {
        be.avg_pool2d_forward(p, &x, &mut y)
    }
}

fn dropout_with<B: Backend>(be: &B, prob: f32) -> cnn_core::Result<()> {
    let [x, mut y] = bufs(be, [10, 10])?;
    be.dropout_forward(
        &DropoutParams {
            prob,
            seed: 1,
            stream: 0,
            step: 0,
        },
        &x,
        &mut y,
    )
}

fn build_cases<B: Backend>() -> Vec<Case<B>> {
    let c = good_conv();
    let pl = good_pool();
    vec![
        // ---- convolution geometry (hand-built params) ----
        case("conv2d_forward with stride 0", |be: &B| {
            conv_forward_with(
                be,
                &Conv2dParams {
                    stride_h: 0,
                    ..good_conv()
                },
            )
        }),
        case("conv2d_forward with dilation 0", |be: &B| {
            conv_forward_with(
                be,
                &Conv2dParams {
                    dil_w: 0,
                    ..good_conv()
                },
            )
        }),
        case(
            "conv2d_forward with a kernel larger than the padded input",
            |be: &B| {
                conv_forward_with(
                    be,
                    &Conv2dParams {
                        kh: 9,
                        h_out: 1,
                        ..good_conv()
                    },
                )
            },
        ),
        case(
            "conv2d_forward with groups not dividing the channels",
            |be: &B| {
                conv_forward_with(
                    be,
                    &Conv2dParams {
                        groups: 3,
                        ..good_conv()
                    },
                )
            },
        ),
        case("conv2d_forward with groups 0", |be: &B| {
            conv_forward_with(
                be,
                &Conv2dParams {
                    groups: 0,
                    ..good_conv()
                },
            )
        }),
        case(
            "conv2d_forward with an inconsistent output size",
            |be: &B| {
                conv_forward_with(
                    be,
                    &Conv2dParams {
                        h_out: 7,
                        ..good_conv()
                    },
                )
            },
        ),
        // ---- convolution buffer lengths ----
        case("conv2d_forward with a short x", move |be: &B| {
            let [x, w, b, mut y] = bufs(be, [c.x_len() - 1, c.w_len(), c.c_out, c.y_len()])?;
            be.conv2d_forward(&c, &x, &w, Some(&b), &mut y)
        }),
        case("conv2d_forward with a long bias", move |be: &B| {
            let [x, w, b, mut y] = bufs(be, [c.x_len(), c.w_len(), c.c_out + 1, c.y_len()])?;
            be.conv2d_forward(&c, &x, &w, Some(&b), &mut y)
        }),
        case("conv2d_forward with a short y", move |be: &B| {
            let [x, w, mut y] = bufs(be, [c.x_len(), c.w_len(), c.y_len() - 1])?;
            be.conv2d_forward(&c, &x, &w, None, &mut y)
        }),
        case("conv2d_backward_input with a short dx", move |be: &B| {
            let [dy, w, mut dx] = bufs(be, [c.y_len(), c.w_len(), c.x_len() - 1])?;
            be.conv2d_backward_input(&c, &dy, &w, &mut dx)
        }),
        case("conv2d_backward_input with a long w", move |be: &B| {
            let [dy, w, mut dx] = bufs(be, [c.y_len(), c.w_len() + 1, c.x_len()])?;
            be.conv2d_backward_input(&c, &dy, &w, &mut dx)
        }),
        case("conv2d_backward_weight with a short dw", move |be: &B| {
            let [x, dy, mut dw] = bufs(be, [c.x_len(), c.y_len(), c.w_len() - 1])?;
            be.conv2d_backward_weight(&c, &x, &dy, &mut dw)
        }),
        case("conv2d_backward_weight with a short dy", move |be: &B| {
            let [x, dy, mut dw] = bufs(be, [c.x_len(), c.y_len() - 1, c.w_len()])?;
            be.conv2d_backward_weight(&c, &x, &dy, &mut dw)
        }),
        case("conv2d_backward_bias with a short db", move |be: &B| {
            let [dy, mut db] = bufs(be, [c.y_len(), c.c_out - 1])?;
            be.conv2d_backward_bias(&c, &dy, &mut db)
        }),
        case(
            "conv2d_backward_bias_parts with parts one value short",
            move |be: &B| {
                let [head, tail, mut db] = bufs(be, [c.y_len() / 2, c.y_len() / 2 - 1, c.c_out])?;
                be.conv2d_backward_bias_parts(&c, &[&head, &tail], &mut db)
            },
        ),
        case(
            "conv2d_backward_weight with a stride-0 geometry",
            |be: &B| {
                let p = Conv2dParams {
                    stride_w: 0,
                    ..good_conv()
                };
                let [x, dy, mut dw] = bufs(be, [p.x_len(), p.y_len(), p.w_len()])?;
                be.conv2d_backward_weight(&p, &x, &dy, &mut dw)
            },
        ),
        // ---- pooling ----
        case("max_pool2d_forward with stride 0", |be: &B| {
            pool_with(
                be,
                &Pool2dParams {
                    stride_h: 0,
                    ..good_pool()
                },
                true,
            )
        }),
        case("avg_pool2d_forward with stride 0", |be: &B| {
            pool_with(
                be,
                &Pool2dParams {
                    stride_w: 0,
                    ..good_pool()
                },
                false,
            )
        }),
        case(
            "max_pool2d_forward with a window larger than the padded input",
            |be: &B| {
                pool_with(
                    be,
                    &Pool2dParams {
                        kh: 6,
                        stride_h: 6,
                        h_out: 1,
                        ..good_pool()
                    },
                    true,
                )
            },
        ),
        case(
            "avg_pool2d_forward with padding over half the window",
            |be: &B| {
                pool_with(
                    be,
                    &Pool2dParams {
                        pad_h: 2,
                        pad_w: 2,
                        h_out: 4,
                        w_out: 4,
                        ..good_pool()
                    },
                    false,
                )
            },
        ),
        case("max_pool2d_forward with a short argmax", move |be: &B| {
            let [x, mut y] = bufs(be, [pl.x_len(), pl.y_len()])?;
            let mut argmax = be.alloc_indices(pl.y_len() - 1)?;
            be.max_pool2d_forward(&pl, &x, &mut y, &mut argmax)
        }),
        case("max_pool2d_backward with a short dx", move |be: &B| {
            let [dy, mut dx] = bufs(be, [pl.y_len(), pl.x_len() - 1])?;
            let argmax = be.alloc_indices(pl.y_len())?;
            be.max_pool2d_backward(&pl, &dy, &argmax, &mut dx)
        }),
        no_panic(
            "max_pool2d_backward with an argmax outside the plane",
            move |be: &B| {
                let [dy, mut dx] = bufs(be, [pl.y_len(), pl.x_len()])?;
                let argmax = be.upload_indices(&vec![(pl.h * pl.w) as u32; pl.y_len()])?;
                be.max_pool2d_backward(&pl, &dy, &argmax, &mut dx)
            },
        ),
        case("avg_pool2d_backward with a long dy", move |be: &B| {
            let [dy, mut dx] = bufs(be, [pl.y_len() + 1, pl.x_len()])?;
            be.avg_pool2d_backward(&pl, &dy, &mut dx)
        }),
        case("global_avg_pool_forward with a short x", |be: &B| {
            let [x, mut y] = bufs(be, [2 * 3 * 5 - 1, 6])?;
            be.global_avg_pool_forward(2, 3, 5, &x, &mut y)
        }),
        case("global_avg_pool_backward with a short dx", |be: &B| {
            let [dy, mut dx] = bufs(be, [6, 2 * 3 * 5 - 1])?;
            be.global_avg_pool_backward(2, 3, 5, &dy, &mut dx)
        }),
        // ---- activations ----
        case("activation_forward with y shorter than x", |be: &B| {
            let [x, mut y] = bufs(be, [10, 9])?;
            be.activation_forward(Activation::Relu, &x, &mut y)
        }),
        case("activation_backward with a short dy", |be: &B| {
            let [x, y, dy, mut dx] = bufs(be, [10, 10, 9, 10])?;
            be.activation_backward(Activation::Tanh, &x, &y, &dy, &mut dx)
        }),
        case("activation_forward with softplus beta 0", |be: &B| {
            let [x, mut y] = bufs(be, [10, 10])?;
            be.activation_forward(
                Activation::Softplus {
                    beta: 0.0,
                    threshold: 20.0,
                },
                &x,
                &mut y,
            )
        }),
        case("activation_forward with a NaN leaky slope", |be: &B| {
            let [x, mut y] = bufs(be, [10, 10])?;
            be.activation_forward(
                Activation::LeakyRelu {
                    negative_slope: f32::NAN,
                },
                &x,
                &mut y,
            )
        }),
        // ---- batch norm and dropout ----
        case("batch_norm2d_forward_train with a short gamma", |be: &B| {
            let p = BatchNormParams {
                n: 2,
                c: 3,
                hw: 4,
                eps: 1e-5,
                momentum: 0.1,
            };
            let [x, g, b, mut rm, mut rv, mut y, mut sm, mut si] =
                bufs(be, [24, 2, 3, 3, 3, 24, 3, 3])?;
            be.batch_norm2d_forward_train(
                &p, &x, &g, &b, &mut rm, &mut rv, &mut y, &mut sm, &mut si,
            )
        }),
        case("batch_norm2d_forward_train with eps 0", |be: &B| {
            let p = BatchNormParams {
                n: 2,
                c: 3,
                hw: 4,
                eps: 0.0,
                momentum: 0.1,
            };
            let [x, g, b, mut rm, mut rv, mut y, mut sm, mut si] =
                bufs(be, [24, 3, 3, 3, 3, 24, 3, 3])?;
            be.batch_norm2d_forward_train(
                &p, &x, &g, &b, &mut rm, &mut rv, &mut y, &mut sm, &mut si,
            )
        }),
        case("batch_norm2d_forward_eval with a short y", |be: &B| {
            let p = BatchNormParams {
                n: 2,
                c: 3,
                hw: 4,
                eps: 1e-5,
                momentum: 0.1,
            };
            let [x, g, b, rm, rv, mut y] = bufs(be, [24, 3, 3, 3, 3, 23])?;
            be.batch_norm2d_forward_eval(&p, &x, &g, &b, &rm, &rv, &mut y)
        }),
        case("batch_norm2d_backward with a short dbeta", |be: &B| {
            let p = BatchNormParams {
                n: 2,
                c: 3,
                hw: 4,
                eps: 1e-5,
                momentum: 0.1,
            };
            let [x, g, sm, si, dy, mut dx, mut dg, mut db] = bufs(be, [24, 3, 3, 3, 24, 24, 3, 2])?;
            be.batch_norm2d_backward(&p, &x, &g, &sm, &si, &dy, &mut dx, &mut dg, &mut db)
        }),
        case("dropout_forward with prob 1.0", |be: &B| {
            dropout_with(be, 1.0)
        }),
        case("dropout_forward with prob NaN", |be: &B| {
            dropout_with(be, f32::NAN)
        }),
        case("dropout_forward with prob -0.1", |be: &B| {
            dropout_with(be, -0.1)
        }),
        case("dropout_forward with y shorter than x", |be: &B| {
            let [x, mut y] = bufs(be, [10, 9])?;
            be.dropout_forward(
                &DropoutParams {
                    prob: 0.5,
                    seed: 1,
                    stream: 0,
                    step: 0,
                },
                &x,
                &mut y,
            )
        }),
        case("dropout_backward with prob 1.0", |be: &B| {
            let [dy, mut dx] = bufs(be, [10, 10])?;
            be.dropout_backward(
                &DropoutParams {
                    prob: 1.0,
                    seed: 1,
                    stream: 0,
                    step: 0,
                },
                &dy,
                &mut dx,
            )
        }),
        // ---- losses ----
        case(
            "softmax_cross_entropy with a target out of range",
            |be: &B| {
                let p = CrossEntropyParams {
                    n: 2,
                    classes: 3,
                    label_smoothing: 0.0,
                };
                let [x, mut d] = bufs(be, [6, 6])?;
                let t = be.upload_indices(&[0, 3])?;
                be.softmax_cross_entropy(&p, &x, &t, &mut d).map(|_| ())
            },
        ),
        case("softmax_cross_entropy with too few targets", |be: &B| {
            let p = CrossEntropyParams {
                n: 2,
                classes: 3,
                label_smoothing: 0.0,
            };
            let [x, mut d] = bufs(be, [6, 6])?;
            let t = be.upload_indices(&[0])?;
            be.softmax_cross_entropy(&p, &x, &t, &mut d).map(|_| ())
        }),
        case(
            "softmax_cross_entropy with label smoothing 1.5",
            |be: &B| {
                let p = CrossEntropyParams {
                    n: 2,
                    classes: 3,
                    label_smoothing: 1.5,
                };
                let [x, mut d] = bufs(be, [6, 6])?;
                let t = be.upload_indices(&[0, 1])?;
                be.softmax_cross_entropy(&p, &x, &t, &mut d).map(|_| ())
            },
        ),
        case("mse_loss with a short target", |be: &B| {
            let [x, t, mut d] = bufs(be, [5, 4, 5])?;
            be.mse_loss(&x, &t, &mut d).map(|_| ())
        }),
        case("argmax_rows with a short output", |be: &B| {
            let [x] = bufs(be, [6])?;
            let mut out = be.alloc_indices(1)?;
            be.argmax_rows(2, 3, &x, &mut out)
        }),
        // ---- gemm and elementwise ----
        case("gemm with a short b", |be: &B| {
            let [a, b, mut c] = bufs(be, [6, 5, 4])?;
            be.gemm(&GemmParams::new(2, 2, 3), &a, &b, &mut c)
        }),
        case("gemm with a NaN alpha", |be: &B| {
            let [a, b, mut c] = bufs(be, [6, 6, 4])?;
            be.gemm(
                &GemmParams {
                    alpha: f32::NAN,
                    ..GemmParams::new(2, 2, 3)
                },
                &a,
                &b,
                &mut c,
            )
        }),
        case("add with mismatched lengths", |be: &B| {
            let [a, b, mut c] = bufs(be, [5, 4, 5])?;
            be.add(&a, &b, &mut c)
        }),
        case("axpy with mismatched lengths", |be: &B| {
            let [x, mut y] = bufs(be, [5, 6])?;
            be.axpy(1.0, &x, &mut y)
        }),
        case("add_sign with mismatched lengths", |be: &B| {
            let [w, mut g] = bufs(be, [5, 6])?;
            be.add_sign(1.0, &w, &mut g)
        }),
        case("bias_add with a long bias", |be: &B| {
            let [b, mut y] = bufs(be, [4, 12])?;
            be.bias_add(
                &BiasParams {
                    outer: 2,
                    channels: 3,
                    inner: 2,
                },
                &b,
                &mut y,
            )
        }),
        case("bias_backward with a short dy", |be: &B| {
            let [dy, mut db] = bufs(be, [11, 3])?;
            be.bias_backward(
                &BiasParams {
                    outer: 2,
                    channels: 3,
                    inner: 2,
                },
                &dy,
                &mut db,
            )
        }),
        // ---- optimizers ----
        case("sgd_update with a short gradient", |be: &B| {
            let s = SgdStep {
                lr: 0.1,
                momentum: 0.0,
                dampening: 0.0,
                weight_decay: 0.0,
                nesterov: false,
                first_step: true,
            };
            let [mut w, g] = bufs(be, [5, 4])?;
            be.sgd_update(&s, &mut w, &g, None)
        }),
        case(
            "sgd_update with momentum and a short momentum buffer",
            |be: &B| {
                let s = SgdStep {
                    lr: 0.1,
                    momentum: 0.9,
                    dampening: 0.0,
                    weight_decay: 0.0,
                    nesterov: false,
                    first_step: false,
                };
                let [mut w, g, mut b] = bufs(be, [5, 5, 4])?;
                be.sgd_update(&s, &mut w, &g, Some(&mut b))
            },
        ),
        case("adam_update with a short v", |be: &B| {
            let s = AdamStep {
                lr: 0.1,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
                decoupled: false,
                amsgrad: false,
                bias_correction1: 0.1,
                bias_correction2: 0.001,
            };
            let [mut w, g, mut m, mut v] = bufs(be, [5, 5, 5, 4])?;
            be.adam_update(&s, &mut w, &g, &mut m, &mut v, None)
        }),
        // ---- memory ----
        case("upload_into a buffer of another length", |be: &B| {
            let [mut b] = bufs(be, [5])?;
            be.upload_into(&[1.0; 4], &mut b)
        }),
        case("download_into a slice of another length", |be: &B| {
            let [b] = bufs(be, [5])?;
            be.download_into(&b, &mut [0.0; 6])
        }),
        case("copy between buffers of different lengths", |be: &B| {
            let [a, mut b] = bufs(be, [5, 6])?;
            be.copy(&a, &mut b)
        }),
        case(
            "upload_indices_into an index buffer of another length",
            |be: &B| {
                let mut b = be.alloc_indices(3)?;
                be.upload_indices_into(&[1, 2], &mut b)
            },
        ),
    ]
}
