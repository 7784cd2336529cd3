//! proptest: for random shapes and values every op of `CudaBackend` equals
//! `CpuBackend`, within the tolerance stated beside each family. Each
//! family has one generic "exercise" function run on both backends; its
//! named outputs are compared. Skips without a GPU unless
//! `CNN_REQUIRE_CUDA=1`.
//!
//! Tolerances (|cuda - cpu| <= abs + rel |cpu|), and why:
//! - exact (0, 0): data movement, dropout (same Philox bits), max pooling
//!   and argmax (its backward adds overlapping windows in the CPU's order),
//!   elementwise arithmetic (one rounding each, no FMA contraction: kernels
//!   are built with `--fmad=false`).
//! - GEMM and convolution (1e-5, 1e-4): cuBLAS sums in another order than
//!   matrixmultiply; sums of up to a few hundred products of values of order 1.
//! - activations (1e-6, 1e-5): CUDA's expf/tanhf/log1pf are within 2 ulp,
//!   Rust's libm within 1 ulp.
//! - batch norm (1e-5, 1e-4): f64 statistics in another order, then f32.
//! - average pooling, bias gradients, losses (1e-6, 1e-5): f32/f64 sums in
//!   another order.
//! - f64 reductions (1e-9 relative): the same f64 terms in another order.
//! - optimizer updates (1e-6, 1e-5) after three steps: identical formulas;
//!   the margin covers sqrt/division rounding if the compiler reorders.

mod common;

use cnn_core::backend::*;
use cnn_core::rng::CounterRng;
use cnn_cpu::CpuBackend;
use cnn_cuda::CudaBackend;
use cnn_testing::check_close;
use cnn_testing::strategies::{
    ConvCase, GemmCase, PoolCase, conv_case, gemm_case, len_and_seed, pool_case, values,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

type Outputs = Vec<(&'static str, Vec<f64>)>;

const EXACT: (f64, f64) = (0.0, 0.0);
const GEMM_TOL: (f64, f64) = (1e-5, 1e-4);
const ACT_TOL: (f64, f64) = (1e-6, 1e-5);
const BN_TOL: (f64, f64) = (1e-5, 1e-4);
const SUM_TOL: (f64, f64) = (1e-6, 1e-5);
const F64_REL: (f64, f64) = (1e-12, 1e-9);
const OPTIM_TOL: (f64, f64) = (1e-6, 1e-5);

fn f(v: Vec<f32>) -> Vec<f64> {
    v.into_iter().map(f64::from).collect()
}

fn idx(v: Vec<u32>) -> Vec<f64> {
    v.into_iter().map(f64::from).collect()
}

fn down<B: Backend>(be: &B, x: &B::Buffer) -> Vec<f64> {
    f(be.download(x).unwrap())
}

/// Run `exercise` on the CPU and on CUDA for `cases` random values of
/// `strategy`; compare every output within `tol(output name)`.
fn compare<S: Strategy>(
    what: &str,
    cuda: &CudaBackend,
    cases: u32,
    strategy: S,
    tol: impl Fn(&str) -> (f64, f64),
    exercise_cpu: impl Fn(&CpuBackend, &S::Value) -> Outputs,
    exercise_cuda: impl Fn(&CudaBackend, &S::Value) -> Outputs,
) where
    S::Value: std::fmt::Debug,
{
    let cpu = CpuBackend::with_threads(2).unwrap();
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let result = runner.run(&strategy, |case| {
        let want = exercise_cpu(&cpu, &case);
        let got = exercise_cuda(cuda, &case);
        let mut errors = Vec::new();
        for ((name, g), (_, w)) in got.iter().zip(&want) {
            let (abs, rel) = tol(name);
            if let Err(e) = check_close(g, w, abs, rel, name) {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TestCaseError::fail(errors.join("\n")))
        }
    });
    if let Err(e) = result {
        panic!("cuda vs cpu `{what}`:\n{e}");
    }
}

fn gemm_ex<B: Backend>(be: &B, c: &GemmCase) -> Outputs {
    let p = GemmParams {
        m: c.m,
        n: c.n,
        k: c.k,
        trans_a: c.trans_a,
        trans_b: c.trans_b,
        alpha: c.alpha,
        beta: c.beta,
    };
    let a = be.upload(&values(c.seed, 0, c.m * c.k, -1.0, 1.0)).unwrap();
    let b = be.upload(&values(c.seed, 1, c.k * c.n, -1.0, 1.0)).unwrap();
    let mut out = be.upload(&values(c.seed, 2, c.m * c.n, -1.0, 1.0)).unwrap();
    be.gemm(&p, &a, &b, &mut out).unwrap();
    vec![("c", down(be, &out))]
}

fn conv_ex<B: Backend>(be: &B, c: &ConvCase) -> Outputs {
    let p = c.params();
    let x = be.upload(&values(c.seed, 0, p.x_len(), -1.0, 1.0)).unwrap();
    let w = be.upload(&values(c.seed, 1, p.w_len(), -1.0, 1.0)).unwrap();
    let b = be.upload(&values(c.seed, 2, p.c_out, -1.0, 1.0)).unwrap();
    let dy = be.upload(&values(c.seed, 3, p.y_len(), -1.0, 1.0)).unwrap();
    let mut y = be.upload(&vec![f32::NAN; p.y_len()]).unwrap();
    be.conv2d_forward(&p, &x, &w, c.bias.then_some(&b), &mut y)
        .unwrap();
    let mut dx = be.upload(&vec![f32::NAN; p.x_len()]).unwrap();
    be.conv2d_backward_input(&p, &dy, &w, &mut dx).unwrap();
    let mut dw = be.upload(&values(c.seed, 4, p.w_len(), -1.0, 1.0)).unwrap();
    be.conv2d_backward_weight(&p, &x, &dy, &mut dw).unwrap();
    let mut db = be.upload(&values(c.seed, 5, p.c_out, -1.0, 1.0)).unwrap();
    be.conv2d_backward_bias(&p, &dy, &mut db).unwrap();
    vec![
        ("y", down(be, &y)),
        ("dx", down(be, &dx)),
        ("dw", down(be, &dw)),
        ("db", down(be, &db)),
    ]
}

fn pool_ex<B: Backend>(be: &B, c: &PoolCase) -> Outputs {
    let p = c.params();
    let xs = if c.tied {
        cnn_testing::strategies::tied_values(c.seed, 0, p.x_len())
    } else {
        values(c.seed, 0, p.x_len(), -1.0, 1.0)
    };
    let x = be.upload(&xs).unwrap();
    let dy = be.upload(&values(c.seed, 1, p.y_len(), -1.0, 1.0)).unwrap();
    let mut y = be.upload(&vec![f32::NAN; p.y_len()]).unwrap();
    let mut am = be.alloc_indices(p.y_len()).unwrap();
    be.max_pool2d_forward(&p, &x, &mut y, &mut am).unwrap();
    let mut dx = be.upload(&vec![f32::NAN; p.x_len()]).unwrap();
    be.max_pool2d_backward(&p, &dy, &am, &mut dx).unwrap();
    let mut ya = be.upload(&vec![f32::NAN; p.y_len()]).unwrap();
    be.avg_pool2d_forward(&p, &x, &mut ya).unwrap();
    let mut dxa = be.upload(&vec![f32::NAN; p.x_len()]).unwrap();
    be.avg_pool2d_backward(&p, &dy, &mut dxa).unwrap();
    let (n, ch, hw) = (p.n, p.c, p.h * p.w);
    let mut g = be.upload(&vec![f32::NAN; n * ch]).unwrap();
    be.global_avg_pool_forward(n, ch, hw, &x, &mut g).unwrap();
    let gdy = be.upload(&values(c.seed, 2, n * ch, -1.0, 1.0)).unwrap();
    let mut gdx = be.upload(&vec![f32::NAN; n * ch * hw]).unwrap();
    be.global_avg_pool_backward(n, ch, hw, &gdy, &mut gdx)
        .unwrap();
    vec![
        ("max_y", down(be, &y)),
        ("argmax", idx(be.download_indices(&am).unwrap())),
        ("max_dx", down(be, &dx)),
        ("avg_y", down(be, &ya)),
        ("avg_dx", down(be, &dxa)),
        ("global_y", down(be, &g)),
        ("global_dx", down(be, &gdx)),
    ]
}

fn pool_tol(name: &str) -> (f64, f64) {
    match name {
        "max_y" | "argmax" | "max_dx" => EXACT,
        _ => SUM_TOL,
    }
}

fn activation(i: usize) -> Activation {
    [
        Activation::Relu,
        Activation::LeakyRelu {
            negative_slope: 0.1,
        },
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Elu { alpha: 1.5 },
        Activation::Silu,
        Activation::Softplus {
            beta: 2.0,
            threshold: 5.0,
        },
    ][i % 9]
}

fn act_ex<B: Backend>(be: &B, &(which, len, seed): &(usize, usize, u64)) -> Outputs {
    let act = activation(which);
    let x = be.upload(&values(seed, 0, len, -6.0, 6.0)).unwrap();
    let dy = be.upload(&values(seed, 1, len, -1.0, 1.0)).unwrap();
    let mut y = be.upload(&vec![f32::NAN; len]).unwrap();
    be.activation_forward(act, &x, &mut y).unwrap();
    let mut dx = be.upload(&vec![f32::NAN; len]).unwrap();
    be.activation_backward(act, &x, &y, &dy, &mut dx).unwrap();
    vec![("y", down(be, &y)), ("dx", down(be, &dx))]
}

fn bn_ex<B: Backend>(be: &B, &(n, c, hw, seed): &(usize, usize, usize, u64)) -> Outputs {
    let p = BatchNormParams {
        n,
        c,
        hw,
        eps: 1e-5,
        momentum: 0.1,
    };
    let len = n * c * hw;
    let x = be.upload(&values(seed, 0, len, -2.0, 3.0)).unwrap();
    let gamma = be.upload(&values(seed, 1, c, 0.5, 1.5)).unwrap();
    let beta = be.upload(&values(seed, 2, c, -1.0, 1.0)).unwrap();
    let mut rm = be.upload(&values(seed, 3, c, -1.0, 1.0)).unwrap();
    let mut rv = be.upload(&values(seed, 4, c, 0.5, 2.0)).unwrap();
    let mut y = be.upload(&vec![f32::NAN; len]).unwrap();
    let mut sm = be.upload(&vec![f32::NAN; c]).unwrap();
    let mut si = be.upload(&vec![f32::NAN; c]).unwrap();
    be.batch_norm2d_forward_train(
        &p, &x, &gamma, &beta, &mut rm, &mut rv, &mut y, &mut sm, &mut si,
    )
    .unwrap();
    let mut ye = be.upload(&vec![f32::NAN; len]).unwrap();
    be.batch_norm2d_forward_eval(&p, &x, &gamma, &beta, &rm, &rv, &mut ye)
        .unwrap();
    let dy = be.upload(&values(seed, 5, len, -1.0, 1.0)).unwrap();
    let mut dx = be.upload(&vec![f32::NAN; len]).unwrap();
    let mut dg = be.upload(&values(seed, 6, c, -1.0, 1.0)).unwrap();
    let mut db = be.upload(&values(seed, 7, c, -1.0, 1.0)).unwrap();
    be.batch_norm2d_backward(&p, &x, &gamma, &sm, &si, &dy, &mut dx, &mut dg, &mut db)
        .unwrap();
    vec![
        ("y", down(be, &y)),
        ("running_mean", down(be, &rm)),
        ("running_var", down(be, &rv)),
        ("save_mean", down(be, &sm)),
        ("save_invstd", down(be, &si)),
        ("y_eval", down(be, &ye)),
        ("dx", down(be, &dx)),
        ("dgamma", down(be, &dg)),
        ("dbeta", down(be, &db)),
    ]
}

fn dropout_ex<B: Backend>(be: &B, &(len, seed, prob): &(usize, u64, f32)) -> Outputs {
    let p = DropoutParams {
        prob,
        seed,
        stream: seed.rotate_left(17),
        step: seed >> 3,
    };
    let x = be.upload(&values(seed, 0, len, -1.0, 1.0)).unwrap();
    let mut y = be.upload(&vec![f32::NAN; len]).unwrap();
    be.dropout_forward(&p, &x, &mut y).unwrap();
    let mut dx = be.upload(&vec![f32::NAN; len]).unwrap();
    be.dropout_backward(&p, &x, &mut dx).unwrap();
    vec![("y", down(be, &y)), ("dx", down(be, &dx))]
}

fn loss_ex<B: Backend>(be: &B, &(n, classes, seed): &(usize, usize, u64)) -> Outputs {
    let p = CrossEntropyParams {
        n,
        classes,
        label_smoothing: if seed % 2 == 0 { 0.0 } else { 0.1 },
    };
    let logits = be.upload(&values(seed, 0, n * classes, -8.0, 8.0)).unwrap();
    let mut rng = CounterRng::new(seed, 1);
    let t: Vec<u32> = (0..n).map(|_| rng.next_u32() % classes as u32).collect();
    let targets = be.upload_indices(&t).unwrap();
    let mut d = be.upload(&vec![f32::NAN; n * classes]).unwrap();
    let loss = be
        .softmax_cross_entropy(&p, &logits, &targets, &mut d)
        .unwrap();
    let tgt = be.upload(&values(seed, 2, n * classes, -1.0, 1.0)).unwrap();
    let mut dm = be.upload(&vec![f32::NAN; n * classes]).unwrap();
    let mse = be.mse_loss(&logits, &tgt, &mut dm).unwrap();
    let mut am = be.alloc_indices(n).unwrap();
    be.argmax_rows(n, classes, &logits, &mut am).unwrap();
    vec![
        ("ce_loss", vec![f64::from(loss)]),
        ("ce_dlogits", down(be, &d)),
        ("mse_loss", vec![f64::from(mse)]),
        ("mse_dx", down(be, &dm)),
        ("argmax", idx(be.download_indices(&am).unwrap())),
    ]
}

fn ew_ex<B: Backend>(be: &B, &(len, seed): &(usize, u64)) -> Outputs {
    let mut av = values(seed, 0, len, -2.0, 2.0);
    if len > 3 {
        av[3] = 0.0;
    }
    let a = be.upload(&av).unwrap();
    let b = be.upload(&values(seed, 1, len, -2.0, 2.0)).unwrap();
    let mut out = be.upload(&vec![f32::NAN; len]).unwrap();
    be.add(&a, &b, &mut out).unwrap();
    let mut y = be.upload(&values(seed, 2, len, -1.0, 1.0)).unwrap();
    be.axpy(0.3, &a, &mut y).unwrap();
    be.scale(-1.7, &mut y).unwrap();
    be.clamp(-1.0, 0.5, &mut y).unwrap();
    be.add_sign(0.01, &a, &mut y).unwrap();
    // Bias over (outer, channels, inner) = a factorisation of len.
    let channels = (1..=len.min(7)).rev().find(|c| len % c == 0).unwrap_or(1);
    let inner = if seed % 2 == 0 { 1 } else { len / channels };
    let outer = len / (channels * inner);
    let bp = BiasParams {
        outer,
        channels,
        inner,
    };
    let bias = be.upload(&values(seed, 3, channels, -1.0, 1.0)).unwrap();
    let mut yb = be.upload(&values(seed, 4, len, -1.0, 1.0)).unwrap();
    be.bias_add(&bp, &bias, &mut yb).unwrap();
    let mut db = be.upload(&values(seed, 5, channels, -1.0, 1.0)).unwrap();
    be.bias_backward(&bp, &a, &mut db).unwrap();
    let mut with_nan = av.clone();
    with_nan[seed as usize % len] = f32::INFINITY;
    let nf = be.upload(&with_nan).unwrap();
    vec![
        ("add", down(be, &out)),
        ("axpy_scale_clamp_sign", down(be, &y)),
        ("bias_add", down(be, &yb)),
        ("bias_backward", down(be, &db)),
        (
            "sums",
            vec![
                be.sum(&a).unwrap(),
                be.sum_squares(&a).unwrap(),
                be.sum_abs(&a).unwrap(),
            ],
        ),
        ("non_finite", vec![be.count_non_finite(&nf).unwrap() as f64]),
    ]
}

fn ew_tol(name: &str) -> (f64, f64) {
    match name {
        "bias_backward" => SUM_TOL,
        "sums" => F64_REL,
        _ => EXACT,
    }
}

/// Three steps of every update rule (with its optional state) on the same
/// weights and gradients.
fn optim_ex<B: Backend>(be: &B, &(len, seed, flag): &(usize, u64, bool)) -> Outputs {
    let w0 = values(seed, 0, len, -1.0, 1.0);
    let gs: Vec<_> = (0..3)
        .map(|t| be.upload(&values(seed, 1 + t, len, -1.0, 1.0)).unwrap())
        .collect();
    let zeros = || be.alloc_zeros(len).unwrap();
    let mut out = Outputs::new();
    let wd = if flag { 0.01 } else { 0.0 };
    // SGD
    let (mut w, mut b) = (be.upload(&w0).unwrap(), zeros());
    for (t, g) in gs.iter().enumerate() {
        let s = SgdStep {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.1,
            weight_decay: wd,
            nesterov: flag,
            first_step: t == 0,
        };
        be.sgd_update(&s, &mut w, g, Some(&mut b)).unwrap();
    }
    out.push(("sgd", down(be, &w)));
    // Adam / AdamW (+ amsgrad)
    let (mut w, mut m, mut v, mut vm) = (be.upload(&w0).unwrap(), zeros(), zeros(), zeros());
    for (t, g) in gs.iter().enumerate() {
        let t = t as i32 + 1;
        let s = AdamStep {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            decoupled: flag,
            amsgrad: flag,
            bias_correction1: 1.0 - 0.9f32.powi(t),
            bias_correction2: 1.0 - 0.999f32.powi(t),
        };
        be.adam_update(&s, &mut w, g, &mut m, &mut v, Some(&mut vm))
            .unwrap();
    }
    out.push(("adam", down(be, &w)));
    // RMSprop (momentum, centered)
    let (mut w, mut sq, mut mb, mut ga) = (be.upload(&w0).unwrap(), zeros(), zeros(), zeros());
    for g in &gs {
        let s = RmspropStep {
            lr: 0.01,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: wd,
            momentum: if flag { 0.9 } else { 0.0 },
            centered: flag,
        };
        be.rmsprop_update(&s, &mut w, g, &mut sq, Some(&mut mb), Some(&mut ga))
            .unwrap();
    }
    out.push(("rmsprop", down(be, &w)));
    // Adagrad
    let (mut w, mut sum) = (be.upload(&w0).unwrap(), zeros());
    for g in &gs {
        let s = AdagradStep {
            clr: 0.01,
            eps: 1e-10,
            weight_decay: wd,
        };
        be.adagrad_update(&s, &mut w, g, &mut sum).unwrap();
    }
    out.push(("adagrad", down(be, &w)));
    // Adadelta
    let (mut w, mut sq, mut acc) = (be.upload(&w0).unwrap(), zeros(), zeros());
    for g in &gs {
        let s = AdadeltaStep {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: wd,
        };
        be.adadelta_update(&s, &mut w, g, &mut sq, &mut acc)
            .unwrap();
    }
    out.push(("adadelta", down(be, &w)));
    // NAdam
    let (mut w, mut m, mut v) = (be.upload(&w0).unwrap(), zeros(), zeros());
    let mut mu_product = 1.0f32;
    for (t, g) in gs.iter().enumerate() {
        let t = t as i32 + 1;
        let mu = |t: i32| 0.9 * (1.0 - 0.5 * 0.96f32.powf(t as f32 * 0.004));
        mu_product *= mu(t);
        let s = NadamStep {
            lr: 0.002,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: wd,
            mu_t: mu(t),
            mu_next: mu(t + 1),
            mu_product,
            mu_product_next: mu_product * mu(t + 1),
            bias_correction2: 1.0 - 0.999f32.powi(t),
        };
        be.nadam_update(&s, &mut w, g, &mut m, &mut v).unwrap();
    }
    out.push(("nadam", down(be, &w)));
    // RAdam
    let (mut w, mut m, mut v) = (be.upload(&w0).unwrap(), zeros(), zeros());
    for (t, g) in gs.iter().enumerate() {
        let t = t as i32 + 1;
        let s = RadamStep {
            lr: 0.001,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: wd,
            bias_correction1: 1.0 - 0.9f32.powi(t),
            bias_correction2: 1.0 - 0.999f32.powi(t),
            rectify: t > 1,
            rect: 0.5,
        };
        be.radam_update(&s, &mut w, g, &mut m, &mut v).unwrap();
    }
    out.push(("radam", down(be, &w)));
    // Adamax
    let (mut w, mut m, mut u) = (be.upload(&w0).unwrap(), zeros(), zeros());
    for (t, g) in gs.iter().enumerate() {
        let s = AdamaxStep {
            lr: 0.002,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: wd,
            bias_correction1: 1.0 - 0.9f32.powi(t as i32 + 1),
        };
        be.adamax_update(&s, &mut w, g, &mut m, &mut u).unwrap();
    }
    out.push(("adamax", down(be, &w)));
    // Lion
    let (mut w, mut m) = (be.upload(&w0).unwrap(), zeros());
    for g in &gs {
        let s = LionStep {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.99,
            weight_decay: wd,
        };
        be.lion_update(&s, &mut w, g, &mut m).unwrap();
    }
    out.push(("lion", down(be, &w)));
    out.push(("lion exp_avg", down(be, &m)));
    // ASGD: the first step copies w into ax (mu = 1), the later average.
    let (mut w, mut ax) = (be.upload(&w0).unwrap(), zeros());
    for (t, g) in gs.iter().enumerate() {
        let s = AsgdStep {
            eta: 0.01,
            decay: 1.0 - 1e-4 * 0.01,
            mu: if t == 0 { 1.0 } else { 0.5 },
            weight_decay: wd,
        };
        be.asgd_update(&s, &mut w, g, &mut ax).unwrap();
    }
    out.push(("asgd", down(be, &w)));
    out.push(("asgd ax", down(be, &ax)));
    // Rprop
    let (mut w, mut prev, mut step) = (be.upload(&w0).unwrap(), zeros(), zeros());
    be.fill(&mut step, 0.01).unwrap();
    for g in &gs {
        let s = RpropStep {
            etaminus: 0.5,
            etaplus: 1.2,
            step_size_min: 1e-6,
            step_size_max: 50.0,
        };
        be.rprop_update(&s, &mut w, g, &mut prev, &mut step)
            .unwrap();
    }
    out.push(("rprop", down(be, &w)));
    out.push(("rprop step_size", down(be, &step)));
    out
}

#[test]
fn gemm_matches_cpu() {
    let Some(cuda) = common::cuda("gemm_matches_cpu") else {
        return;
    };
    compare(
        "gemm",
        &cuda,
        64,
        gemm_case(),
        |_| GEMM_TOL,
        gemm_ex,
        gemm_ex,
    );
}

#[test]
fn conv2d_matches_cpu() {
    let Some(cuda) = common::cuda("conv2d_matches_cpu") else {
        return;
    };
    compare(
        "conv2d",
        &cuda,
        64,
        conv_case(),
        |_| GEMM_TOL,
        conv_ex,
        conv_ex,
    );
}

/// The 64-bit-index im2col/col2im, which only layers of 2^31 elements or
/// more take otherwise, give the 32-bit variant's bits at small shapes
/// (forced through `set_wide_indices`); at a shape that needs 64 bits,
/// `conv2d_past_32_bit_indices_matches_cpu` checks them against the CPU.
#[test]
fn conv2d_wide_indices_give_the_same_bits() {
    let (Some(narrow), Some(wide)) = (
        common::cuda("conv2d_wide_indices_give_the_same_bits"),
        common::cuda("conv2d_wide_indices_give_the_same_bits"),
    ) else {
        return;
    };
    wide.set_wide_indices(true);
    let config = Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let result = runner.run(&conv_case(), |case| {
        for ((name, a), (_, b)) in conv_ex(&wide, &case).iter().zip(&conv_ex(&narrow, &case)) {
            let same =
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            prop_assert!(same, "`{name}` differs between 64- and 32-bit indices");
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The forward output and input gradient of `p` (seed 7).
fn wide_conv_ex<B: Backend>(be: &B, p: &Conv2dParams) -> (Vec<f32>, Vec<f32>) {
    let x = be.upload(&values(7, 0, p.x_len(), -1.0, 1.0)).unwrap();
    let w = be.upload(&values(7, 1, p.w_len(), -1.0, 1.0)).unwrap();
    let dy = be.upload(&values(7, 3, p.y_len(), -1.0, 1.0)).unwrap();
    let mut y = be.upload(&vec![f32::NAN; p.y_len()]).unwrap();
    be.conv2d_forward(p, &x, &w, None, &mut y).unwrap();
    let mut dx = be.upload(&vec![f32::NAN; p.x_len()]).unwrap();
    be.conv2d_backward_input(p, &dy, &w, &mut dx).unwrap();
    (be.download(&y).unwrap(), be.download(&dx).unwrap())
}

/// im2col and col2im at a layer whose one image needs 64-bit indices: 16
/// channels of 6144 x 6144 under a 3x3 kernel make a col buffer of
/// 16 * 9 * 6144^2 = 5.4e9 floats, past 2^32 (the 32-bit variant, taken
/// below 2^31, would wrap). The forward output (im2col, then GEMM) and the
/// input gradient (GEMM, then col2im) equal the CPU's within the GEMM
/// tolerance: each is a sum of at most 144 products. Needs about 25 GiB of
/// GPU memory and 60 GiB of host memory; the H100 and H200 machines of
/// `cargo xtask gpu-check` have both.
#[test]
fn conv2d_past_32_bit_indices_matches_cpu() {
    let Some(cuda) = common::cuda("conv2d_past_32_bit_indices_matches_cpu") else {
        return;
    };
    let geom = Conv2dGeometry {
        out_channels: 2,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    };
    let p = Conv2dParams::new(1, 16, 6144, 6144, &geom).unwrap();
    assert!(
        p.c_in * 9 * p.h_out * p.w_out > 1 << 32,
        "the col buffer needs 64 bits"
    );
    let (y, dx) = wide_conv_ex(&cuda, &p);
    let (want_y, want_dx) = wide_conv_ex(&CpuBackend::new(), &p);
    let (abs, rel) = GEMM_TOL;
    for (name, got, want) in [("y", &y, &want_y), ("dx", &dx, &want_dx)] {
        if let Err(e) = check_close(got, want, abs, rel, name) {
            panic!("{e}");
        }
    }
}

#[test]
fn pooling_matches_cpu() {
    let Some(cuda) = common::cuda("pooling_matches_cpu") else {
        return;
    };
    compare(
        "pooling",
        &cuda,
        64,
        pool_case(),
        pool_tol,
        pool_ex,
        pool_ex,
    );
}

#[test]
fn activations_match_cpu() {
    let Some(cuda) = common::cuda("activations_match_cpu") else {
        return;
    };
    let s = (0usize..9, 1usize..=3000, any::<u64>());
    compare("activations", &cuda, 64, s, |_| ACT_TOL, act_ex, act_ex);
}

#[test]
fn batch_norm_matches_cpu() {
    let Some(cuda) = common::cuda("batch_norm_matches_cpu") else {
        return;
    };
    let s = (1usize..=4, 1usize..=6, 1usize..=300, any::<u64>());
    compare("batch_norm", &cuda, 48, s, |_| BN_TOL, bn_ex, bn_ex);
}

#[test]
fn dropout_matches_cpu_bit_for_bit() {
    let Some(cuda) = common::cuda("dropout_matches_cpu_bit_for_bit") else {
        return;
    };
    let s = (1usize..=5000, any::<u64>(), 0.0f32..0.95);
    compare("dropout", &cuda, 64, s, |_| EXACT, dropout_ex, dropout_ex);
}

#[test]
fn losses_match_cpu() {
    let Some(cuda) = common::cuda("losses_match_cpu") else {
        return;
    };
    let s = (1usize..=64, 1usize..=40, any::<u64>());
    let tol = |name: &str| if name == "argmax" { EXACT } else { SUM_TOL };
    compare("losses", &cuda, 64, s, tol, loss_ex, loss_ex);
}

#[test]
fn elementwise_matches_cpu() {
    let Some(cuda) = common::cuda("elementwise_matches_cpu") else {
        return;
    };
    compare(
        "elementwise",
        &cuda,
        64,
        len_and_seed(5000),
        ew_tol,
        ew_ex,
        ew_ex,
    );
}

#[test]
fn optimizer_updates_match_cpu() {
    let Some(cuda) = common::cuda("optimizer_updates_match_cpu") else {
        return;
    };
    let s = (1usize..=3000, any::<u64>(), any::<bool>());
    compare("optim", &cuda, 32, s, |_| OPTIM_TOL, optim_ex, optim_ex);
}
