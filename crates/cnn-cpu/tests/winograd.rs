//! Winograd convolution (`conv::winograd`) against the f64 reference
//! kernels: every stride-1 3x3 layer of ResNet-20 and the built-in VGG at
//! a small batch, an exhaustive grid of small shapes (padding 0-2, maps
//! smaller than a tile, channel counts across the 8 lanes), and property
//! tests that draw Winograd shapes half of the time.
//!
//! # Tolerance
//!
//! Winograd's rounding error is bounded per tile, not per output
//! (Barabasz et al. 2020, "Error analysis and improving the accuracy of
//! Winograd convolution"): the transforms mix the whole `(m + 2)^2` input
//! patch of an `m x m` output tile, so an output whose own products are
//! small (at a padded edge) still carries the error of its tile's large
//! values. The bound has the form `|err| <= c u ||A|| ||G|| ||B|| sum_c
//! max|d_c| sum|g_c|` (`u = 2^-24`, norms of the transform matrices,
//! growing quickly with `m` and the interpolation points), so each output
//! is compared against `tau T + 1e-6` where `T = sum over channels of
//! sum |w| times the largest |x| in the 9 x 9 window around the output`
//! (the window holds the patch of whichever F(4x4,3x3) or F(2x2,3x3)
//! tile the output falls in); the input gradient likewise on `dy`, and
//! the weight gradient sums `|dy| max|x|` over the positions. `tau` per
//! algorithm is the largest `err / T` measured over these tests (printed
//! with `--nocapture`) times about 4: F(2x2,3x3) measured `1.24e-7` (2
//! u), `tau = 5e-7`; F(4x4,3x3) measured `2.40e-6` (40 u), `tau = 1e-5`;
//! the direct and im2col + GEMM paths measure `1.45e-7`, F(2x2,3x3)'s
//! (see docs/performance.md, entry 32). A plain relative bound
//! would not do: outputs that cancel to near zero have errors set by
//! their tile, not by themselves.

use cnn_core::ConvOps;
use cnn_core::{Conv2dGeometry, Conv2dParams};
use cnn_cpu::{ConvAlgorithm, CpuBackend};
use cnn_testing::conformance::check_conv2d_case;
use cnn_testing::reference as r;
use cnn_testing::strategies::{ConvCase, conv_case, values};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// `tau` of the module docs per algorithm.
fn tau(alg: ConvAlgorithm) -> f64 {
    match alg {
        ConvAlgorithm::Winograd => 1e-5,
        _ => 5e-7,
    }
}

/// Window of the tolerance: rows `oh - pad - 3 ..= oh - pad + 5` around
/// output row `oh` (an F(4x4,3x3) tile's patch, which holds F(2x2,3x3)'s).
const WIN_OFF: isize = -3;
const WIN_LEN: usize = 9;

/// `max |v|` of each of `planes` planes of `h x w` over the window of
/// each of `ho x wo` positions, whose rows start at `oh - pad + WIN_OFF`.
#[allow(clippy::too_many_arguments)]
fn window_max(
    v: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    ph: usize,
    pw: usize,
) -> Vec<f64> {
    let mut out = vec![0.0f64; planes * ho * wo];
    let range = |o: usize, pad: usize, len: usize| {
        let lo = (o as isize - pad as isize + WIN_OFF).max(0) as usize;
        let hi =
            ((o as isize - pad as isize + WIN_OFF + WIN_LEN as isize).max(0) as usize).min(len);
        lo..hi.max(lo)
    };
    for pl in 0..planes {
        for oh in 0..ho {
            for ow in 0..wo {
                let mut m = 0.0f64;
                for ih in range(oh, ph, h) {
                    for iw in range(ow, pw, w) {
                        m = m.max(f64::from(v[(pl * h + ih) * w + iw].abs()));
                    }
                }
                out[(pl * ho + oh) * wo + ow] = m;
            }
        }
    }
    out
}

/// Largest `|got - want| / (T + 1e-6 / tau)` over the elements, and
/// whether every element is within `tau T + 1e-6`.
fn check(what: &str, got: &[f32], want: &[f64], t: &[f64], tau: f64) -> Result<f64, String> {
    assert_eq!(got.len(), want.len());
    let mut worst = 0.0f64;
    for (i, ((&g, &w), &t)) in got.iter().zip(want).zip(t).enumerate() {
        let err = (f64::from(g) - w).abs();
        if err.is_nan() || err > tau * t + 1e-6 {
            return Err(format!(
                "{what}: element {i}: {g} vs {w} (error {err:.3e}, bound {:.3e})",
                tau * t + 1e-6
            ));
        }
        worst = worst.max(err / (t + 1e-6 / tau));
    }
    Ok(worst)
}

/// Forward, input gradient and weight gradient of `p` on `be` against the
/// reference; the largest normalised error of the three.
fn check_layer(be: &CpuBackend, p: &Conv2dParams, seed: u64) -> Result<f64, String> {
    let tau = tau(be.conv_algorithm().expect("a forced algorithm"));
    let x = values(seed, 0, p.x_len(), -1.0, 1.0);
    let w = values(seed, 1, p.w_len(), -1.0, 1.0);
    let b = values(seed, 2, p.c_out, -1.0, 1.0);
    let dy = values(seed, 3, p.y_len(), -1.0, 1.0);
    let e = |r: cnn_core::Result<()>| r.map_err(|e| e.to_string());
    let (cg, taps) = (p.c_in / p.groups, p.kh * p.kw);
    // sum |w| per (output channel, input channel of its group).
    let wsum: Vec<f64> = w
        .chunks_exact(taps)
        .map(|k| k.iter().map(|v| f64::from(v.abs())).sum())
        .collect();
    let (pos, plane) = (p.h_out * p.w_out, p.h * p.w);
    let group_of = |co: usize| co / (p.c_out / p.groups);

    let mut y = vec![f32::NAN; p.y_len()];
    e(be.conv2d_forward(p, &x, &w, Some(&b), &mut y))?;
    let want = r::conv2d_forward(p, &x, &w, Some(&b));
    let xm = window_max(
        &x,
        p.n * p.c_in,
        p.h,
        p.w,
        p.h_out,
        p.w_out,
        p.pad_h,
        p.pad_w,
    );
    let mut t = vec![0.0f64; p.y_len()];
    for n in 0..p.n {
        for co in 0..p.c_out {
            for c in 0..cg {
                let ci = group_of(co) * cg + c;
                let xs = &xm[(n * p.c_in + ci) * pos..][..pos];
                for (tv, &m) in t[(n * p.c_out + co) * pos..][..pos].iter_mut().zip(xs) {
                    *tv += wsum[co * cg + c] * m;
                }
            }
        }
    }
    let mut worst = check("forward", &y, &want, &t, tau)?;

    // The input gradient: the transposed convolution of dy (padding
    // `k - 1 - pad`), with dx's positions as its outputs.
    let mut dx = vec![f32::NAN; p.x_len()];
    e(be.conv2d_backward_input(p, &dy, &w, &mut dx))?;
    let want = r::conv2d_backward_input(p, &dy, &w);
    let (tph, tpw) = (
        (p.kh - 1).saturating_sub(p.pad_h),
        (p.kw - 1).saturating_sub(p.pad_w),
    );
    let dym = window_max(&dy, p.n * p.c_out, p.h_out, p.w_out, p.h, p.w, tph, tpw);
    let mut t = vec![0.0f64; p.x_len()];
    for n in 0..p.n {
        for co in 0..p.c_out {
            for c in 0..cg {
                let ci = group_of(co) * cg + c;
                let ds = &dym[(n * p.c_out + co) * plane..][..plane];
                for (tv, &m) in t[(n * p.c_in + ci) * plane..][..plane].iter_mut().zip(ds) {
                    *tv += wsum[co * cg + c] * m;
                }
            }
        }
    }
    worst = worst.max(check("backward input", &dx, &want, &t, tau)?);

    // The weight gradient accumulates onto what dw held.
    let dw0 = values(seed, 4, p.w_len(), -1.0, 1.0);
    let mut dw = dw0.clone();
    e(be.conv2d_backward_weight(p, &x, &dy, &mut dw))?;
    let want: Vec<f64> = r::conv2d_backward_weight(p, &x, &dy)
        .iter()
        .zip(&dw0)
        .map(|(g, &d)| g + f64::from(d))
        .collect();
    let mut t: Vec<f64> = dw0.iter().map(|d| f64::from(d.abs())).collect();
    for co in 0..p.c_out {
        for c in 0..cg {
            let ci = group_of(co) * cg + c;
            let s: f64 = (0..p.n)
                .map(|n| {
                    let dys = &dy[(n * p.c_out + co) * pos..][..pos];
                    let xs = &xm[(n * p.c_in + ci) * pos..][..pos];
                    dys.iter()
                        .zip(xs)
                        .map(|(&d, &m)| f64::from(d.abs()) * m)
                        .sum::<f64>()
                })
                .sum();
            for tv in &mut t[(co * cg + c) * taps..][..taps] {
                *tv += s;
            }
        }
    }
    worst = worst.max(check("backward weight", &dw, &want, &t, tau)?);
    Ok(worst)
}

fn backend(threads: usize, alg: ConvAlgorithm) -> CpuBackend {
    CpuBackend::with_threads(threads)
        .expect("a thread pool")
        .with_conv_algorithm(alg)
}

/// `(c_in, c_out, side)` of the stride-1 3x3 layers (padding 1) of
/// ResNet-20 and the built-in VGG on 3x32x32 images.
const WORKLOAD_LAYERS: [(usize, usize, usize); 9] = [
    // ResNet-20: stem, stage 1, stage 2 and 3 after their stride-2 conv.
    (3, 16, 32),
    (16, 16, 32),
    (32, 32, 16),
    (64, 64, 8),
    // VGG: two convolutions per block of 32, 64, 128 channels.
    (3, 32, 32),
    (32, 32, 32),
    (32, 64, 16),
    (64, 64, 16),
    (64, 128, 8),
];

#[test]
fn workload_layers_match_the_reference() {
    for alg in [ConvAlgorithm::Winograd, ConvAlgorithm::Winograd2x2] {
        for threads in [1, 2] {
            let be = backend(threads, alg);
            let mut worst = 0.0f64;
            for (i, &(c_in, c_out, side)) in WORKLOAD_LAYERS.iter().enumerate() {
                // Batch 3: with two threads, parts of two and one image.
                let g = Conv2dGeometry::new(c_out, 3).padding(1);
                let p = Conv2dParams::new(3, c_in, side, side, &g).unwrap();
                let e = check_layer(&be, &p, i as u64).unwrap_or_else(|m| {
                    panic!("{alg:?}, {threads} threads, {c_in}->{c_out} on {side}x{side}: {m}")
                });
                worst = worst.max(e);
            }
            println!("{alg:?} {threads} threads: largest error / T = {worst:.3e}");
        }
    }
}

/// The same measure for the direct and im2col + GEMM paths, for scale:
/// they meet F(2x2,3x3)'s bound.
#[test]
fn default_paths_meet_a_tighter_bound() {
    for alg in [ConvAlgorithm::Direct, ConvAlgorithm::Gemm] {
        let be = backend(2, alg);
        let mut worst = 0.0f64;
        for (i, &(c_in, c_out, side)) in WORKLOAD_LAYERS.iter().enumerate().take(4) {
            let g = Conv2dGeometry::new(c_out, 3).padding(1);
            let p = Conv2dParams::new(2, c_in, side, side, &g).unwrap();
            worst = worst.max(check_layer(&be, &p, i as u64).unwrap());
        }
        println!("{alg:?}: largest error / T = {worst:.3e}");
    }
}

#[test]
fn exhaustive_small_grid_matches_the_reference() {
    // Maps from 1x1 (padding 1-2) to 7x7, every padding pair, channel
    // counts below, at and across the 8 lanes; batch 2.
    for alg in [ConvAlgorithm::Winograd, ConvAlgorithm::Winograd2x2] {
        let be = backend(2, alg);
        let mut worst = 0.0f64;
        let mut cases = 0;
        for (c_in, c_out) in [(1, 1), (3, 9), (9, 2), (8, 8)] {
            for ph in 0..=2 {
                for pw in 0..=2 {
                    for h in 1..=7 {
                        for w in 1..=7 {
                            if h + 2 * ph < 3 || w + 2 * pw < 3 {
                                continue;
                            }
                            let g = Conv2dGeometry {
                                out_channels: c_out,
                                kernel: [3, 3],
                                stride: [1, 1],
                                padding: [ph, pw],
                                dilation: [1, 1],
                                groups: 1,
                            };
                            let p = Conv2dParams::new(2, c_in, h, w, &g).unwrap();
                            let e = check_layer(&be, &p, cases).unwrap_or_else(|m| {
                                panic!("{alg:?} {c_in}->{c_out} {h}x{w} pad {ph},{pw}: {m}")
                            });
                            worst = worst.max(e);
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert!(cases > 700, "{cases} cases");
        println!("{alg:?}: {cases} shapes, largest error / T = {worst:.3e}");
    }
}

/// Shapes Winograd takes: 3x3, stride 1, padding 0-2, 1-20 channels in and
/// out (across the 8 lanes), maps from the smallest to 12 (several tiles,
/// ragged edges), batch 1-3.
fn winograd_case() -> impl Strategy<Value = ConvCase> {
    (
        (1usize..=20, 1usize..=20),
        (0usize..=2, 0usize..=2),
        (0usize..=11, 0usize..=11),
        1usize..=3,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|((c_in, c_out), (ph, pw), (dh, dw), n, bias, seed)| {
            let h = (3 - 2 * ph.min(1)).max(1) + dh;
            let w = (3 - 2 * pw.min(1)).max(1) + dw;
            ConvCase {
                n,
                c_in,
                h,
                w,
                geom: Conv2dGeometry {
                    out_channels: c_out,
                    kernel: [3, 3],
                    stride: [1, 1],
                    padding: [ph, pw],
                    dilation: [1, 1],
                    groups: 1,
                },
                bias,
                seed,
            }
        })
}

fn run(strategy: impl Strategy<Value = ConvCase>, test: impl Fn(ConvCase) -> Result<(), String>) {
    let config = Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    if let Err(e) = runner.run(&strategy, |case| test(case).map_err(TestCaseError::fail)) {
        panic!("{e}");
    }
}

/// Whether Winograd takes `p`: 3x3, stride 1, no dilation, one group,
/// padding at most 2.
fn eligible(p: &Conv2dParams) -> bool {
    (
        p.kh, p.kw, p.stride_h, p.stride_w, p.dil_h, p.dil_w, p.groups,
    ) == (3, 3, 1, 1, 1, 1, 1)
        && p.pad_h <= 2
        && p.pad_w <= 2
}

/// Forward and both gradients of `p` on two backends, bit for bit.
fn same_bits(a: &CpuBackend, b: &CpuBackend, p: &Conv2dParams, seed: u64) -> Result<(), String> {
    let x = values(seed, 0, p.x_len(), -1.0, 1.0);
    let w = values(seed, 1, p.w_len(), -1.0, 1.0);
    let dy = values(seed, 2, p.y_len(), -1.0, 1.0);
    let outs = |be: &CpuBackend| {
        let mut y = vec![0.0; p.y_len()];
        be.conv2d_forward(p, &x, &w, None, &mut y).unwrap();
        let mut dx = vec![0.0; p.x_len()];
        be.conv2d_backward_input(p, &dy, &w, &mut dx).unwrap();
        let mut dw = vec![0.0; p.w_len()];
        be.conv2d_backward_weight(p, &x, &dy, &mut dw).unwrap();
        [y, dx, dw].map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>())
    };
    if outs(a) == outs(b) {
        Ok(())
    } else {
        Err(format!("{p:?}: the forced backend's bits differ"))
    }
}

#[test]
fn property_winograd_shapes_match_the_reference() {
    // Half Winograd shapes, half any geometry; the shapes Winograd cannot
    // take must fall back to the default path, bit for bit.
    let plain = CpuBackend::with_threads(2).unwrap();
    for alg in [ConvAlgorithm::Winograd, ConvAlgorithm::Winograd2x2] {
        let be = backend(2, alg);
        let mixed = prop_oneof![winograd_case(), conv_case()];
        run(mixed, |case| {
            let p = case.params();
            if eligible(&p) {
                check_layer(&be, &p, case.seed).map(|_| ())
            } else {
                same_bits(&plain, &be, &p, case.seed)
            }
        });
    }
}

#[test]
fn property_conformance_suite_with_winograd_forced() {
    // The shared suite's own checks (bias gradient, accumulation twice,
    // parts) on Winograd shapes, at its tolerance (values in [-1, 1], few
    // channels).
    let be = backend(2, ConvAlgorithm::Winograd);
    run(winograd_case(), |case| check_conv2d_case(&be, &case));
}

#[test]
fn layers_winograd_cannot_take_keep_their_bits() {
    // LeNet-5's 5x5 layers and a stride-2 3x3 layer: forcing Winograd
    // changes nothing.
    let plain = CpuBackend::with_threads(2).unwrap();
    let forced = backend(2, ConvAlgorithm::Winograd);
    for (c_in, h, g) in [
        (1, 32, Conv2dGeometry::new(6, 5)),
        (6, 14, Conv2dGeometry::new(16, 5)),
        (16, 32, Conv2dGeometry::new(32, 3).stride(2).padding(1)),
    ] {
        let p = Conv2dParams::new(4, c_in, h, h, &g).unwrap();
        same_bits(&plain, &forced, &p, 1).unwrap();
    }
}

#[test]
fn winograd_differs_from_the_default_path() {
    // The forcing reaches the kernels: F(4x4,3x3) rounds differently from
    // the default path on an eligible layer (so the tests above test it).
    let p = Conv2dParams::new(2, 16, 16, 16, &Conv2dGeometry::new(16, 3).padding(1)).unwrap();
    let x = values(2, 0, p.x_len(), -1.0, 1.0);
    let w = values(2, 1, p.w_len(), -1.0, 1.0);
    let y_of = |be: &CpuBackend| {
        let mut y = vec![0.0; p.y_len()];
        be.conv2d_forward(&p, &x, &w, None, &mut y).unwrap();
        y
    };
    let a = y_of(&backend(1, ConvAlgorithm::Direct));
    let b = y_of(&backend(1, ConvAlgorithm::Winograd));
    assert!(a.iter().zip(&b).any(|(u, v)| u.to_bits() != v.to_bits()));
}

#[test]
fn names_parse() {
    assert_eq!(
        ConvAlgorithm::from_name("winograd"),
        Some(ConvAlgorithm::Winograd)
    );
    assert_eq!(
        ConvAlgorithm::from_name("winograd2x2"),
        Some(ConvAlgorithm::Winograd2x2)
    );
    assert_eq!(ConvAlgorithm::from_name("gemm"), Some(ConvAlgorithm::Gemm));
    assert_eq!(
        ConvAlgorithm::from_name("direct"),
        Some(ConvAlgorithm::Direct)
    );
    assert_eq!(ConvAlgorithm::from_name("fft"), None);
}

/// The default rule (docs/performance.md, entries 32, 38 and 41):
/// F(4x4,3x3) for the forward and input gradient of layers with at least
/// 32 channels in and out, for the weight gradient from 16 (but where the
/// output-channel-lane kernel takes it: 16-32 channels with fewer than 32
/// on one side, on AVX2 + FMA CPUs, `tests/weight_lanes.rs`); the rest as
/// without Winograd.
#[test]
fn default_rule_picks_winograd_where_it_pays() {
    let plain = CpuBackend::with_threads(2).unwrap();
    let wino = backend(2, ConvAlgorithm::Winograd);
    let none = backend(2, ConvAlgorithm::NoWinograd);
    let lanes = backend(2, ConvAlgorithm::Direct);
    #[cfg(target_arch = "x86_64")]
    let fast = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    let fast = false;
    // (c_in, c_out, side, forward and input gradient by Winograd, weight gradient by Winograd)
    for (c_in, c_out, side, fwd, wgt) in [
        (64, 64, 8, true, true),
        (16, 16, 12, false, !fast),
        (32, 64, 8, true, true),
        (32, 32, 12, true, true),
        (16, 32, 8, false, !fast),
        (3, 16, 8, false, false),
    ] {
        let p = Conv2dParams::new(
            2,
            c_in,
            side,
            side,
            &Conv2dGeometry::new(c_out, 3).padding(1),
        )
        .unwrap();
        let x = values(5, 0, p.x_len(), -1.0, 1.0);
        let w = values(5, 1, p.w_len(), -1.0, 1.0);
        let dy = values(5, 2, p.y_len(), -1.0, 1.0);
        let outs = |be: &CpuBackend| {
            let mut y = vec![0.0; p.y_len()];
            be.conv2d_forward(&p, &x, &w, None, &mut y).unwrap();
            let mut dx = vec![0.0; p.x_len()];
            be.conv2d_backward_input(&p, &dy, &w, &mut dx).unwrap();
            let mut dw = vec![0.0; p.w_len()];
            be.conv2d_backward_weight(&p, &x, &dy, &mut dw).unwrap();
            [y, dx, dw].map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>())
        };
        let (d, a, n, l) = (outs(&plain), outs(&wino), outs(&none), outs(&lanes));
        let pick = |i: usize, by_winograd: bool| if by_winograd { &a[i] } else { &n[i] };
        assert!(d[0] == *pick(0, fwd), "{c_in}->{c_out}: forward");
        assert!(d[1] == *pick(1, fwd), "{c_in}->{c_out}: input gradient");
        // The weight gradient of 16-32 channels, fewer than 32 on one
        // side, by the lane kernel.
        let lane_weight = fast && (16..32).contains(&c_in.min(c_out)) && c_in.max(c_out) <= 32;
        let want = if lane_weight { &l[2] } else { pick(2, wgt) };
        assert!(d[2] == *want, "{c_in}->{c_out}: weight gradient");
        assert!(a[0] != n[0], "{c_in}->{c_out}: the two paths differ");
    }
}
