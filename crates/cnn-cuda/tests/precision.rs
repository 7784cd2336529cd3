//! The precision modes of `CudaBackend` (`Backend::with_precision`)
//! against the CPU emulation of `cnn_testing::mixed`: GEMMs (the linear
//! layers' products) and convolutions (forward, input and weight
//! gradients) in `tf32`, `bf16` and `f16`, as proptests over the shapes
//! the f32 comparison (`vs_cpu.rs`) uses; the conversion kernels value by
//! value; the f32 mode's bits; the scratch buffers' reuse. Skips without a
//! GPU unless `CNN_REQUIRE_CUDA=1`.
//!
//! Tolerances, per output element (`cnn_testing::mixed`'s module docs
//! derive them): `|cuda - emulation| <= (operand + (K + 3) 2^-23) M +
//! 2^-126`, where `M` is the sum of the absolute rounded products plus
//! what is added in f32 (bias, `beta C`, the old weight gradient), `K` the
//! number of f32 additions (GEMM: `k`; forward: `c_in/groups kh kw`;
//! input gradient: `c_out/groups + kh kw`; weight gradient: `h_out w_out +
//! n`), and `operand` 0 for bf16/f16 (the backend rounds them itself, to
//! nearest even as the emulation) and `2^-9 + 2^-18` for TF32 (cuBLAS's
//! operand rounding is unspecified). The bias gradient does not change
//! with the mode: (1e-6, 1e-5) against the f64 reference, as in
//! `vs_cpu.rs`. The f32 mode keeps `vs_cpu.rs`'s tests and tolerances and
//! is checked here for identical bits before and after other modes ran.

mod common;

use cnn_core::backend::*;
use cnn_cuda::CudaBackend;
use cnn_testing::mixed;
use cnn_testing::strategies::{ConvCase, GemmCase, conv_case, gemm_case, values};
use cnn_testing::{check_close, reference};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// The modes that differ from f32.
const MODES: [Precision; 3] = [Precision::Tf32, Precision::Bf16, Precision::F16];

fn params(c: &GemmCase) -> GemmParams {
    GemmParams {
        m: c.m,
        n: c.n,
        k: c.k,
        trans_a: c.trans_a,
        trans_b: c.trans_b,
        alpha: c.alpha,
        beta: c.beta,
    }
}

/// Run `check` on `cases` random values of `strategy` (deterministic seed).
fn run<S: proptest::strategy::Strategy>(
    what: &str,
    cases: u32,
    strategy: S,
    check: impl Fn(&S::Value) -> Result<(), String>,
) where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    if let Err(e) = runner.run(&strategy, |case| check(&case).map_err(TestCaseError::fail)) {
        panic!("{what}:\n{e}");
    }
}

fn gemm_on(be: &CudaBackend, c: &GemmCase) -> Vec<f32> {
    let p = params(c);
    let a = be.upload(&values(c.seed, 0, c.m * c.k, -1.0, 1.0)).unwrap();
    let b = be.upload(&values(c.seed, 1, c.k * c.n, -1.0, 1.0)).unwrap();
    let mut out = be.upload(&values(c.seed, 2, c.m * c.n, -1.0, 1.0)).unwrap();
    be.gemm(&p, &a, &b, &mut out).unwrap();
    be.download(&out).unwrap()
}

fn check_gemm(be: &CudaBackend, c: &GemmCase) -> Result<(), String> {
    let mode = be.precision();
    let p = params(c);
    let a = values(c.seed, 0, c.m * c.k, -1.0, 1.0);
    let b = values(c.seed, 1, c.k * c.n, -1.0, 1.0);
    let old = values(c.seed, 2, c.m * c.n, -1.0, 1.0);
    let got = gemm_on(be, c);
    let want = mixed::gemm(mode, &p, &a, &b, &old);
    let bound = mixed::gemm_bound(mode, &p, &a, &b, &old);
    mixed::check_within(&got, &want, &bound, &format!("{mode} gemm"))
}

/// The four convolution ops on `be`: (y, dx, dw, db).
fn conv_on(be: &CudaBackend, c: &ConvCase) -> [Vec<f32>; 4] {
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
    [&y, &dx, &dw, &db].map(|t| be.download(t).unwrap())
}

fn check_conv(be: &CudaBackend, c: &ConvCase) -> Result<(), String> {
    let mode = be.precision();
    let p = c.params();
    let x = values(c.seed, 0, p.x_len(), -1.0, 1.0);
    let w = values(c.seed, 1, p.w_len(), -1.0, 1.0);
    let b = values(c.seed, 2, p.c_out, -1.0, 1.0);
    let bias = c.bias.then_some(&b[..]);
    let dy = values(c.seed, 3, p.y_len(), -1.0, 1.0);
    let dw_old = values(c.seed, 4, p.w_len(), -1.0, 1.0);
    let db_old = values(c.seed, 5, p.c_out, -1.0, 1.0);
    let [y, dx, dw, db] = conv_on(be, c);
    let mut errors = Vec::new();
    let mut note = |r: Result<(), String>| {
        if let Err(e) = r {
            errors.push(e);
        }
    };
    note(mixed::check_within(
        &y,
        &mixed::conv2d_forward(mode, &p, &x, &w, bias),
        &mixed::conv2d_forward_bound(mode, &p, &x, &w, bias),
        &format!("{mode} conv2d y"),
    ));
    note(mixed::check_within(
        &dx,
        &mixed::conv2d_backward_input(mode, &p, &dy, &w),
        &mixed::conv2d_backward_input_bound(mode, &p, &dy, &w),
        &format!("{mode} conv2d dx"),
    ));
    let mut dw_want = mixed::conv2d_backward_weight(mode, &p, &x, &dy);
    for (v, old) in dw_want.iter_mut().zip(&dw_old) {
        *v += f64::from(*old);
    }
    note(mixed::check_within(
        &dw,
        &dw_want,
        &mixed::conv2d_backward_weight_bound(mode, &p, &x, &dy, &dw_old),
        &format!("{mode} conv2d dw"),
    ));
    let db_want: Vec<f64> = reference::conv2d_backward_bias(&p, &dy)
        .iter()
        .zip(&db_old)
        .map(|(g, old)| g + f64::from(*old))
        .collect();
    note(check_close(
        &db,
        &db_want,
        1e-6,
        1e-5,
        &format!("{mode} conv2d db"),
    ));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

#[test]
fn handles_carry_their_precision() {
    let Some(be) = common::cuda("handles_carry_their_precision") else {
        return;
    };
    assert_eq!(be.precision(), Precision::F32);
    for mode in Precision::ALL {
        let h = be.clone().with_precision(mode).unwrap();
        assert_eq!(h.precision(), mode);
        assert_eq!(h.clone().precision(), mode, "clones keep the mode");
        assert_eq!(h.shard_handle().precision(), mode);
        assert!(format!("{h:?}").contains(&format!("{mode:?}")));
        let back = h.with_precision(Precision::F32).unwrap();
        assert_eq!(back.precision(), Precision::F32);
    }
    assert_eq!(be.precision(), Precision::F32, "the original is unchanged");
}

#[test]
fn gemm_matches_the_emulation_in_every_mode() {
    let Some(be) = common::cuda("gemm_matches_the_emulation_in_every_mode") else {
        return;
    };
    for mode in MODES {
        let h = be.clone().with_precision(mode).unwrap();
        run(&format!("{mode} gemm"), 64, gemm_case(), |c| {
            check_gemm(&h, c)
        });
    }
}

#[test]
fn conv2d_matches_the_emulation_in_every_mode() {
    let Some(be) = common::cuda("conv2d_matches_the_emulation_in_every_mode") else {
        return;
    };
    for mode in MODES {
        let h = be.clone().with_precision(mode).unwrap();
        run(&format!("{mode} conv2d"), 64, conv_case(), |c| {
            check_conv(&h, c)
        });
    }
}

/// The conversion kernels value by value: a GEMM with `k = 1` and B = 1
/// writes the converted A, exactly (a product by one and a sum of one
/// term). Ties to even, overflow, f16 subnormals, infinities and NaN.
#[test]
fn conversions_round_like_pytorch() {
    let Some(be) = common::cuda("conversions_round_like_pytorch") else {
        return;
    };
    let p2 = |e: i32| 2f32.powi(e);
    let mut a = vec![
        1.0 + p2(-8),
        1.0 + 3.0 * p2(-8),
        1.0 + p2(-8) + p2(-20),
        -(1.0 + 3.0 * p2(-8)),
        1.0 + p2(-11),
        1.0 + 3.0 * p2(-11),
        65504.0,
        65519.0,
        65520.0,
        -1e5,
        p2(-24),
        p2(-25),
        1.5 * p2(-24),
        p2(-14),
        f32::MAX,
        (2.0 - p2(-7)) * p2(127),
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        0.0,
        -0.0,
    ];
    a.extend(values(11, 0, 4096, -3.0, 3.0));
    a.extend(values(12, 0, 1024, -1e-4, 1e-4));
    let m = a.len();
    let p = GemmParams::new(m, 1, 1);
    let a_dev = be.upload(&a).unwrap();
    let one = be.upload(&[1.0]).unwrap();
    for mode in [Precision::Bf16, Precision::F16] {
        let h = be.clone().with_precision(mode).unwrap();
        let mut c = h.upload(&vec![0.0; m]).unwrap();
        h.gemm(&p, &a_dev, &one, &mut c).unwrap();
        let got = h.download(&c).unwrap();
        for (i, (&x, &g)) in a.iter().zip(&got).enumerate() {
            let want = mixed::round(mode, x);
            let same = if want.is_nan() { g.is_nan() } else { g == want };
            assert!(
                same,
                "{mode}: a[{i}] = {x:e} converted to {g:e}, want {want:e}"
            );
        }
    }
}

/// The f32 mode is today's path: the same bits from a fresh handle, from
/// `with_precision(F32)`, and after the other modes ran (and filled the
/// scratch buffers).
#[test]
fn f32_mode_keeps_its_bits() {
    let Some(be) = common::cuda("f32_mode_keeps_its_bits") else {
        return;
    };
    let gc = GemmCase {
        m: 37,
        n: 29,
        k: 301,
        trans_a: true,
        trans_b: false,
        alpha: 0.5,
        beta: 1.0,
        seed: 3,
    };
    let cc = ConvCase {
        n: 3,
        c_in: 6,
        h: 11,
        w: 9,
        geom: Conv2dGeometry::new(8, 3).padding(1).groups(2),
        bias: true,
        seed: 4,
    };
    let before = (gemm_on(&be, &gc), conv_on(&be, &cc));
    for mode in MODES {
        let h = be.clone().with_precision(mode).unwrap();
        gemm_on(&h, &gc);
        conv_on(&h, &cc);
    }
    let f32_handle = be.clone().with_precision(Precision::F32).unwrap();
    for (what, handle) in [("the original", &be), ("with_precision(F32)", &f32_handle)] {
        let after = (gemm_on(handle, &gc), conv_on(handle, &cc));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&before.0), bits(&after.0), "gemm bits of {what}");
        for (i, (x, y)) in before.1.iter().zip(&after.1).enumerate() {
            assert_eq!(bits(x), bits(y), "conv output {i} bits of {what}");
        }
    }
}

/// The conversion buffers grow to the largest operand and are then
/// reused: repeating a step (or a smaller one) allocates nothing, and the
/// f32 and TF32 modes never touch them.
#[test]
fn scratch_buffers_grow_then_are_reused() {
    let Some(be) = common::cuda("scratch_buffers_grow_then_are_reused") else {
        return;
    };
    let big = ConvCase {
        n: 4,
        c_in: 8,
        h: 16,
        w: 16,
        geom: Conv2dGeometry::new(16, 3).padding(1),
        bias: false,
        seed: 5,
    };
    let small = ConvCase {
        n: 2,
        c_in: 4,
        h: 8,
        w: 8,
        geom: Conv2dGeometry::new(4, 3),
        bias: false,
        seed: 6,
    };
    conv_on(&be, &big);
    let tf32 = be.clone().with_precision(Precision::Tf32).unwrap();
    conv_on(&tf32, &big);
    assert_eq!(
        be.mixed_scratch_lens(),
        (0, 0),
        "f32 and tf32 convert nothing"
    );
    let bf16 = be.clone().with_precision(Precision::Bf16).unwrap();
    conv_on(&bf16, &big);
    let grown = be.mixed_scratch_lens();
    assert!(grown.0 > 0 && grown.1 > 0, "{grown:?}");
    // The forward's columns of all 4 images are one operand: 8*9 rows of
    // 16*16 columns each.
    assert!(grown.1 >= 4 * 8 * 9 * 256, "{grown:?}");
    for case in [&big, &small, &big] {
        conv_on(&bf16, case);
        assert_eq!(be.mixed_scratch_lens(), grown, "reused, not reallocated");
    }
    let f16 = be.clone().with_precision(Precision::F16).unwrap();
    conv_on(&f16, &big);
    assert_eq!(be.mixed_scratch_lens(), grown, "shared by every handle");
}

/// The largest `|got - want|` over the largest `|want|`.
fn relative_to_max(got: &[f32], want: &[f32]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, w| m.max(f64::from(w.abs())));
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (g, w)| m.max(f64::from(g - w).abs()));
    diff / scale.max(f64::MIN_POSITIVE)
}

/// One LeNet-5 training forward and backward (batch 16, from the same
/// weights) in each mode against the f32 mode: the layers reach the mixed
/// GEMMs (bf16 and f16 change the logits' bits) and stay near f32. The
/// tolerances, relative to each tensor's largest value, are loose on
/// purpose: five layers of operands rounded to 8 (bf16) or 11 (f16, TF32)
/// significant bits; 5% for bf16, 1% for f16 and TF32, against the
/// unit roundoff of one operand, 2^-8 (bf16) and 2^-11 (f16, TF32).
#[test]
fn a_lenet5_step_in_each_mode_stays_near_f32() {
    let Some(be) = common::cuda("a_lenet5_step_in_each_mode_stays_near_f32") else {
        return;
    };
    use cnn_core::models::{ModelOptions, lenet5};
    use cnn_core::{Graph, Mode, Tensor};
    let spec = lenet5(&ModelOptions::new([1, 28, 28], 10)).unwrap();
    let n = 16;
    let x = values(21, 0, n * 28 * 28, 0.0, 1.0);
    let dlogits = values(21, 1, n * 10, -0.1, 0.1);
    let step = |handle: &CudaBackend, init: Option<&[cnn_core::NamedArray]>| {
        let mut graph = Graph::new(handle, spec.clone(), 7).unwrap();
        if let Some(init) = init {
            graph.load_state_dict(init).unwrap();
        }
        let state = graph.state_dict().unwrap();
        let logits = graph
            .forward_host(&x, n, Mode::Train)
            .unwrap()
            .to_vec(handle)
            .unwrap();
        let dy = Tensor::from_slice(handle, [n, 10], &dlogits).unwrap();
        graph.backward(&dy).unwrap();
        let grads: Vec<(String, Vec<f32>)> = graph
            .params_iter()
            .map(|p| (p.name.clone(), p.grad.to_vec(handle).unwrap()))
            .collect();
        (state, logits, grads)
    };
    let (init, want_logits, want_grads) = step(&be, None);
    for (mode, tol) in [
        (Precision::Tf32, 1e-2),
        (Precision::Bf16, 5e-2),
        (Precision::F16, 1e-2),
    ] {
        let h = be.clone().with_precision(mode).unwrap();
        let (_, logits, grads) = step(&h, Some(&init));
        let r = relative_to_max(&logits, &want_logits);
        assert!(r <= tol, "{mode}: logits {r:.2e} from f32 (> {tol})");
        if mode != Precision::Tf32 {
            assert!(
                logits.iter().zip(&want_logits).any(|(a, b)| a != b),
                "{mode}: the logits have f32's bits: the mode did not reach the GEMMs"
            );
        }
        for ((name, g), (_, w)) in grads.iter().zip(&want_grads) {
            let r = relative_to_max(g, w);
            assert!(
                r <= tol,
                "{mode}: {name} gradient {r:.2e} from f32 (> {tol})"
            );
        }
        println!("{mode}: LeNet-5 step within {tol} of f32");
    }
}
