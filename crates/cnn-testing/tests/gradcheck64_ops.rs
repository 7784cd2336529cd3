//! Every reference backward against central differences of its forward, in
//! f64 with `gradcheck64::TOLERANCE` (abs 1e-7 + rel 1e-6, derived in
//! `cnn_testing::gradcheck64`), at every element of every input, at several
//! shapes per op chosen to take every branch (padding, stride 2, dilation,
//! groups, odd and rectangular sizes, ceil mode, both average-pooling
//! divisors, label smoothing).
//!
//! An op with an output `y` is checked through `L = <r, y>` for a fixed
//! random cotangent `r`: the backward called with `dy = r` must be `dL/dx`.
//! Inputs are drawn away from kinks (see `gradcheck64`'s docs): activation
//! inputs at least `KINK_MARGIN` from the kink, max-pooling inputs distinct
//! values `KINK_MARGIN` apart, and each evaluation fingerprints its kink
//! sides, so a perturbation that crossed one would fail, not pass.

use cnn_core::backend::{
    BatchNormParams, BiasParams, Conv2dParams, CrossEntropyParams, DropoutParams, GemmParams,
    Pool2dParams,
};
use cnn_core::{Activation, Conv2dGeometry, Pool2dGeometry};
use cnn_testing::gradcheck64::{
    Eval, Failure, KINK_MARGIN, KinkPrint, TensorReport, check_all, distinct_values, uniform,
    uniform_away_from,
};
use cnn_testing::reference as r;

/// `<a, b>`.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Prints the report of a passing check and returns it; panics with the
/// mismatches otherwise.
fn pass(what: &str, res: Result<TensorReport, Failure>) -> TensorReport {
    match res {
        Ok(report) => {
            println!("{what}: {report}");
            assert!(report.checked > 0, "{what}: nothing compared");
            report
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

/// The convolution cases: (N, C_in, H, W, geometry, bias).
fn conv_cases() -> Vec<(usize, usize, usize, usize, Conv2dGeometry, bool)> {
    vec![
        // Plain 3x3, no padding.
        (2, 2, 5, 5, Conv2dGeometry::new(3, 3), true),
        // Stride 2, padding 1, odd non-square input.
        (
            1,
            3,
            7,
            5,
            Conv2dGeometry::new(4, 3).stride(2).padding(1),
            true,
        ),
        // Rectangular kernel, mixed strides, padding and dilation, 2 groups.
        (
            2,
            2,
            5,
            6,
            Conv2dGeometry {
                out_channels: 4,
                kernel: [3, 2],
                stride: [2, 1],
                padding: [1, 0],
                dilation: [1, 2],
                groups: 2,
            },
            true,
        ),
        // Depthwise with padding 2 (kernel taps that read only padding), no bias.
        (
            1,
            3,
            4,
            4,
            Conv2dGeometry::new(3, 3).padding(2).groups(3),
            false,
        ),
        // 1x1, stride 2 on an odd size (the last row and column are never read).
        (2, 3, 5, 5, Conv2dGeometry::new(2, 1).stride(2), true),
        // Dilation 2 with padding 2 (LeNet-like 5x5 reach).
        (
            1,
            2,
            6,
            7,
            Conv2dGeometry::new(2, 3).dilation(2).padding(2),
            true,
        ),
    ]
}

#[test]
fn conv2d_input_weight_and_bias_gradients() {
    for (case, (n, c, h, w, geom, bias)) in conv_cases().into_iter().enumerate() {
        let p = Conv2dParams::new(n, c, h, w, &geom).unwrap();
        let seed = case as u64;
        let x = uniform(seed, 0, p.x_len(), -1.0, 1.0);
        let wt = uniform(seed, 1, p.w_len(), -1.0, 1.0);
        let b = bias.then(|| uniform(seed, 2, p.c_out, -1.0, 1.0));
        let cot = uniform(seed, 3, p.y_len(), -1.0, 1.0);
        let what = format!("conv2d case {case} ({n}, {c}, {h}, {w}) {geom:?}");
        let dx = r::conv2d_backward_input(&p, &cot, &wt);
        pass(
            &format!("{what} dx"),
            check_all("x", &x, &dx, &mut |x| {
                Eval::smooth(dot(&cot, &r::conv2d_forward(&p, x, &wt, b.as_deref())))
            }),
        );
        let dw = r::conv2d_backward_weight(&p, &x, &cot);
        pass(
            &format!("{what} dw"),
            check_all("w", &wt, &dw, &mut |wt| {
                Eval::smooth(dot(&cot, &r::conv2d_forward(&p, &x, wt, b.as_deref())))
            }),
        );
        if let Some(b) = &b {
            let db = r::conv2d_backward_bias(&p, &cot);
            pass(
                &format!("{what} db"),
                check_all("b", b, &db, &mut |b| {
                    Eval::smooth(dot(&cot, &r::conv2d_forward(&p, &x, &wt, Some(b))))
                }),
            );
        }
    }
}

/// `C = alpha op(A) op(B) + beta C` with every transposition: the
/// gradients are GEMMs themselves (what the linear layer's backward runs).
#[test]
fn gemm_gradients_with_every_transposition() {
    for (case, (m, n, k)) in [(3, 4, 5), (1, 7, 2), (6, 1, 3)].into_iter().enumerate() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let p = GemmParams {
                trans_a: ta,
                trans_b: tb,
                alpha: 1.5,
                beta: -0.5,
                ..GemmParams::new(m, n, k)
            };
            let seed = case as u64 * 4 + u64::from(ta) * 2 + u64::from(tb);
            let a = uniform(seed, 0, m * k, -1.0, 1.0);
            let b = uniform(seed, 1, k * n, -1.0, 1.0);
            let c = uniform(seed, 2, m * n, -1.0, 1.0);
            let cot = uniform(seed, 3, m * n, -1.0, 1.0);
            let alpha = f64::from(p.alpha);
            // d op(A) (m x k) = alpha R op(B)^T; stored transposed: alpha op(B) R^T.
            let da = if ta {
                let q = GemmParams {
                    trans_a: tb,
                    trans_b: true,
                    alpha: p.alpha,
                    ..GemmParams::new(k, m, n)
                };
                r::gemm(&q, &b, &cot, &[])
            } else {
                let q = GemmParams {
                    trans_b: !tb,
                    alpha: p.alpha,
                    ..GemmParams::new(m, k, n)
                };
                r::gemm(&q, &cot, &b, &[])
            };
            // d op(B) (k x n) = alpha op(A)^T R; stored transposed: alpha R^T op(A).
            let db = if tb {
                let q = GemmParams {
                    trans_a: true,
                    trans_b: ta,
                    alpha: p.alpha,
                    ..GemmParams::new(n, k, m)
                };
                r::gemm(&q, &cot, &a, &[])
            } else {
                let q = GemmParams {
                    trans_a: !ta,
                    alpha: p.alpha,
                    ..GemmParams::new(k, n, m)
                };
                r::gemm(&q, &a, &cot, &[])
            };
            let dc: Vec<f64> = cot.iter().map(|g| g * f64::from(p.beta)).collect();
            let what = format!("gemm {m}x{n}x{k} trans ({ta}, {tb}) alpha {alpha}");
            let mut la = |a: &[f64]| Eval::smooth(dot(&cot, &r::gemm(&p, a, &b, &c)));
            pass(&format!("{what} dA"), check_all("a", &a, &da, &mut la));
            let mut lb = |b: &[f64]| Eval::smooth(dot(&cot, &r::gemm(&p, &a, b, &c)));
            pass(&format!("{what} dB"), check_all("b", &b, &db, &mut lb));
            let mut lc = |c: &[f64]| Eval::smooth(dot(&cot, &r::gemm(&p, &a, &b, c)));
            pass(&format!("{what} dC"), check_all("c", &c, &dc, &mut lc));
        }
    }
}

/// The linear layer, `y = x W^T + b`, with the backward the layer runs:
/// `dx = dy W`, `dW = dy^T x`, `db` the bias sum.
#[test]
fn linear_gradients() {
    for (case, (n, fin, fout)) in [(3, 5, 4), (1, 1, 6), (4, 7, 1)].into_iter().enumerate() {
        let seed = 100 + case as u64;
        let x = uniform(seed, 0, n * fin, -1.0, 1.0);
        let w = uniform(seed, 1, fout * fin, -1.0, 1.0);
        let b = uniform(seed, 2, fout, -1.0, 1.0);
        let cot = uniform(seed, 3, n * fout, -1.0, 1.0);
        let bp = BiasParams {
            outer: n,
            channels: fout,
            inner: 1,
        };
        let forward = |x: &[f64], w: &[f64], b: &[f64]| {
            let p = GemmParams {
                trans_b: true,
                ..GemmParams::new(n, fout, fin)
            };
            r::bias_add(&bp, b, &r::gemm(&p, x, w, &[]))
        };
        let dx = r::gemm(&GemmParams::new(n, fin, fout), &cot, &w, &[]);
        let pw = GemmParams {
            trans_a: true,
            ..GemmParams::new(fout, fin, n)
        };
        let dw = r::gemm(&pw, &cot, &x, &[]);
        let db = r::bias_backward(&bp, &cot);
        let what = format!("linear n {n}, {fin} -> {fout}");
        let mut lx = |x: &[f64]| Eval::smooth(dot(&cot, &forward(x, &w, &b)));
        pass(&format!("{what} dx"), check_all("x", &x, &dx, &mut lx));
        let mut lw = |w: &[f64]| Eval::smooth(dot(&cot, &forward(&x, w, &b)));
        pass(&format!("{what} dW"), check_all("w", &w, &dw, &mut lw));
        let mut lb = |b: &[f64]| Eval::smooth(dot(&cot, &forward(&x, &w, b)));
        pass(&format!("{what} db"), check_all("b", &b, &db, &mut lb));
    }
}

/// The bias broadcast over (outer, channels, inner) and its sum.
#[test]
fn bias_add_gradients() {
    for (case, (outer, channels, inner)) in
        [(2, 3, 4), (3, 4, 1), (1, 1, 5)].into_iter().enumerate()
    {
        let p = BiasParams {
            outer,
            channels,
            inner,
        };
        let len = outer * channels * inner;
        let seed = 200 + case as u64;
        let b = uniform(seed, 0, channels, -1.0, 1.0);
        let y = uniform(seed, 1, len, -1.0, 1.0);
        let cot = uniform(seed, 2, len, -1.0, 1.0);
        let what = format!("bias ({outer}, {channels}, {inner})");
        let db = r::bias_backward(&p, &cot);
        let mut lb = |b: &[f64]| Eval::smooth(dot(&cot, &r::bias_add(&p, b, &y)));
        pass(&format!("{what} db"), check_all("b", &b, &db, &mut lb));
        let mut ly = |y: &[f64]| Eval::smooth(dot(&cot, &r::bias_add(&p, &b, y)));
        pass(&format!("{what} dy"), check_all("y", &y, &cot, &mut ly));
    }
}

/// The pooling cases: (N, C, H, W, geometry).
fn pool_cases() -> Vec<(usize, usize, usize, usize, Pool2dGeometry)> {
    vec![
        // 2x2 stride 2 (the CPU's SIMD fast path's shape), even sizes.
        (2, 3, 4, 6, Pool2dGeometry::new(2)),
        // 3x3 stride 2 padding 1 on an odd size: windows clipped at both ends.
        (1, 2, 7, 5, Pool2dGeometry::new(3).stride(2).padding(1)),
        // Overlapping windows: one input in up to 9 windows.
        (1, 2, 5, 5, Pool2dGeometry::new(3).stride(1)),
        // Rectangular window, ceil mode: the last window hangs over the edge.
        (
            2,
            1,
            5,
            7,
            Pool2dGeometry {
                kernel: [3, 2],
                stride: [2, 2],
                ..Pool2dGeometry::new(1).ceil_mode(true)
            },
        ),
        // 2x2 stride 2 on an odd size (the last row and column are never read).
        (1, 1, 5, 5, Pool2dGeometry::new(2)),
    ]
}

#[test]
fn max_pool2d_gradients_away_from_ties() {
    for (case, (n, c, h, w, geom)) in pool_cases().into_iter().enumerate() {
        let p = Pool2dParams::new(n, c, h, w, &geom).unwrap();
        let seed = 300 + case as u64;
        // Distinct values KINK_MARGIN apart: no window holds a near-tie.
        let x = distinct_values(seed, 0, p.x_len(), -1.0);
        let cot = uniform(seed, 1, p.y_len(), -1.0, 1.0);
        let (_, argmax) = r::max_pool2d_forward(&p, &x);
        let dx = r::max_pool2d_backward(&p, &cot, &argmax);
        let mut l = |x: &[f64]| {
            let (y, idx) = r::max_pool2d_forward(&p, x);
            let mut k = KinkPrint::default();
            idx.iter().for_each(|&i| k.push(i));
            Eval {
                value: dot(&cot, &y),
                kinks: k.finish(),
            }
        };
        pass(
            &format!("max_pool2d case {case} ({n}, {c}, {h}, {w}) {geom:?}"),
            check_all("x", &x, &dx, &mut l),
        );
    }
}

#[test]
fn avg_pool2d_gradients_with_both_divisors() {
    for (case, (n, c, h, w, geom)) in pool_cases().into_iter().enumerate() {
        for include_pad in [true, false] {
            let geom = geom.count_include_pad(include_pad);
            let p = Pool2dParams::new(n, c, h, w, &geom).unwrap();
            let seed = 400 + case as u64;
            let x = uniform(seed, 0, p.x_len(), -1.0, 1.0);
            let cot = uniform(seed, 1, p.y_len(), -1.0, 1.0);
            let dx = r::avg_pool2d_backward(&p, &cot);
            let mut l = |x: &[f64]| Eval::smooth(dot(&cot, &r::avg_pool2d_forward(&p, x)));
            pass(
                &format!("avg_pool2d case {case} ({n}, {c}, {h}, {w}) {geom:?}"),
                check_all("x", &x, &dx, &mut l),
            );
        }
    }
}

#[test]
fn global_avg_pool_gradients() {
    for (case, (n, c, hw)) in [(2, 3, 5), (1, 1, 1), (3, 2, 16)].into_iter().enumerate() {
        let seed = 500 + case as u64;
        let x = uniform(seed, 0, n * c * hw, -1.0, 1.0);
        let cot = uniform(seed, 1, n * c, -1.0, 1.0);
        let dx = r::global_avg_pool_backward(n, c, hw, &cot);
        let mut l = |x: &[f64]| Eval::smooth(dot(&cot, &r::global_avg_pool_forward(n, c, hw, x)));
        pass(
            &format!("global_avg_pool ({n}, {c}, {hw})"),
            check_all("x", &x, &dx, &mut l),
        );
    }
}

/// Every activation kind, with non-default parameters where it has them.
const ACTIVATIONS: [Activation; 12] = [
    Activation::Relu,
    Activation::LEAKY_RELU,
    Activation::LeakyRelu {
        negative_slope: -0.3,
    },
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Gelu,
    Activation::GeluTanh,
    Activation::ELU,
    Activation::Elu { alpha: 0.5 },
    Activation::Silu,
    Activation::SOFTPLUS,
    Activation::Softplus {
        beta: 2.0,
        threshold: 3.0,
    },
];

/// Where an activation's derivative jumps (ReLU's, leaky ReLU's and ELU's
/// 0, softplus's switch to the identity at `threshold / beta`), if it has
/// such a point.
fn kink_of(act: Activation) -> Option<f64> {
    match act {
        Activation::Relu | Activation::LeakyRelu { .. } | Activation::Elu { .. } => Some(0.0),
        Activation::Softplus { beta, threshold } => Some(f64::from(threshold) / f64::from(beta)),
        _ => None,
    }
}

#[test]
fn every_activation_gradient_away_from_its_kink() {
    for (a, act) in ACTIVATIONS.into_iter().enumerate() {
        for (s, len) in [1usize, 7, 64].into_iter().enumerate() {
            let seed = 600 + (a * 3 + s) as u64;
            // Over [-4, 4): both sides of every kink, and GELU's and SiLU's
            // curved region; the smooth ones are drawn away from 0 too (harmless).
            let kink = kink_of(act).unwrap_or(0.0);
            let x = uniform_away_from(seed, 0, len, (-4.0, 4.0), kink, KINK_MARGIN);
            let cot = uniform(seed, 1, len, -1.0, 1.0);
            let dx = r::activation_backward(act, &x, &cot);
            let mut l = |x: &[f64]| {
                let mut k = KinkPrint::default();
                if let Some(kink) = kink_of(act) {
                    x.iter().for_each(|&v| k.push(u32::from(v > kink)));
                }
                Eval {
                    value: dot(&cot, &r::activation_forward(act, x)),
                    kinks: k.finish(),
                }
            };
            pass(
                &format!("{act:?} len {len}"),
                check_all("x", &x, &dx, &mut l),
            );
        }
    }
}

/// Training-mode batch norm: the batch statistics depend on every input,
/// so `dx` has the two reduction terms; gamma and beta too.
#[test]
fn batch_norm_training_gradients() {
    for (case, (n, c, hw)) in [(2, 3, 5), (1, 2, 7), (4, 1, 1), (3, 2, 4)]
        .into_iter()
        .enumerate()
    {
        let p = BatchNormParams {
            n,
            c,
            hw,
            eps: 1e-5,
            momentum: 0.1,
        };
        let len = n * c * hw;
        let seed = 700 + case as u64;
        let x = uniform(seed, 0, len, -1.0, 1.0);
        let gamma = uniform(seed, 1, c, 0.5, 1.5);
        let beta = uniform(seed, 2, c, -0.5, 0.5);
        let cot = uniform(seed, 3, len, -1.0, 1.0);
        let (rm, rv) = (vec![0.0f64; c], vec![1.0f64; c]);
        let y = |x: &[f64], g: &[f64], b: &[f64]| {
            r::batch_norm2d_forward_train(&p, x, g, b, &rm, &rv).y
        };
        let grads = r::batch_norm2d_backward(&p, &x, &gamma, &cot);
        let what = format!("batch_norm2d ({n}, {c}, {hw})");
        let mut lx = |x: &[f64]| Eval::smooth(dot(&cot, &y(x, &gamma, &beta)));
        pass(
            &format!("{what} dx"),
            check_all("x", &x, &grads.dx, &mut lx),
        );
        let mut lg = |g: &[f64]| Eval::smooth(dot(&cot, &y(&x, g, &beta)));
        pass(
            &format!("{what} dgamma"),
            check_all("gamma", &gamma, &grads.dgamma, &mut lg),
        );
        let mut lb = |b: &[f64]| Eval::smooth(dot(&cot, &y(&x, &gamma, b)));
        pass(
            &format!("{what} dbeta"),
            check_all("beta", &beta, &grads.dbeta, &mut lb),
        );
    }
}

/// Dropout with a fixed mask (fixed seed, stream and step).
#[test]
fn dropout_gradients_with_a_fixed_mask() {
    for (case, (prob, len)) in [(0.3f32, 40), (0.5, 9), (0.0, 5)].into_iter().enumerate() {
        let p = DropoutParams {
            prob,
            seed: 11,
            stream: case as u64,
            step: 3,
        };
        let seed = 800 + case as u64;
        let x = uniform(seed, 0, len, -1.0, 1.0);
        let cot = uniform(seed, 1, len, -1.0, 1.0);
        let dx = r::dropout_backward(&p, &cot);
        if prob > 0.0 {
            assert!(dx.contains(&0.0), "p = {prob}: some element is dropped");
        }
        let mut l = |x: &[f64]| Eval::smooth(dot(&cot, &r::dropout_forward(&p, x)));
        pass(
            &format!("dropout p {prob} len {len}"),
            check_all("x", &x, &dx, &mut l),
        );
    }
}

/// The mean softmax cross-entropy with and without label smoothing.
#[test]
fn softmax_cross_entropy_gradients_with_label_smoothing() {
    let cases = [(3, 5, 0.0f32), (4, 2, 0.1), (1, 10, 0.25), (2, 3, 0.5)];
    for (case, (n, classes, smoothing)) in cases.into_iter().enumerate() {
        let p = CrossEntropyParams {
            n,
            classes,
            label_smoothing: smoothing,
        };
        let seed = 900 + case as u64;
        let logits = uniform(seed, 0, n * classes, -3.0, 3.0);
        let targets: Vec<u32> = (0..n as u32)
            .map(|i| (i * 7 + 2) % classes as u32)
            .collect();
        let (_, d) = r::softmax_cross_entropy(&p, &logits, &targets);
        let mut l = |z: &[f64]| Eval::smooth(r::softmax_cross_entropy(&p, z, &targets).0);
        pass(
            &format!("cross-entropy n {n}, {classes} classes, smoothing {smoothing}"),
            check_all("logits", &logits, &d, &mut l),
        );
    }
}

#[test]
fn mse_loss_gradient() {
    for (case, len) in [1usize, 6, 33].into_iter().enumerate() {
        let seed = 1000 + case as u64;
        let x = uniform(seed, 0, len, -2.0, 2.0);
        let t = uniform(seed, 1, len, -2.0, 2.0);
        let (_, d) = r::mse_loss(&x, &t);
        let mut l = |x: &[f64]| Eval::smooth(r::mse_loss(x, &t).0);
        pass(&format!("mse len {len}"), check_all("x", &x, &d, &mut l));
    }
}

/// The residual add: its backward hands `dy` to both operands (as the
/// graph's backward does).
#[test]
fn residual_add_gradients() {
    for (case, len) in [1usize, 12].into_iter().enumerate() {
        let seed = 1100 + case as u64;
        let a = uniform(seed, 0, len, -1.0, 1.0);
        let b = uniform(seed, 1, len, -1.0, 1.0);
        let cot = uniform(seed, 2, len, -1.0, 1.0);
        let mut la = |a: &[f64]| Eval::smooth(dot(&cot, &r::add(a, &b)));
        pass(
            &format!("add len {len} da"),
            check_all("a", &a, &cot, &mut la),
        );
        let mut lb = |b: &[f64]| Eval::smooth(dot(&cot, &r::add(&a, b)));
        pass(
            &format!("add len {len} db"),
            check_all("b", &b, &cot, &mut lb),
        );
    }
}
