//! The output-channel-lane weight gradient (`conv::direct::cout_lanes`,
//! `CNN_CPU_CONV=direct` for the weight gradient, the default for 3x3
//! layers with 16-32 channels on AVX2 + FMA CPUs) against the f64
//! reference kernels: the workload layers, a grid of small odd shapes,
//! accumulation into `dw`, thread counts and the algorithm choice.
//!
//! # Tolerance
//!
//! Each element is a sum of products `dy x`; its rounding error is
//! bounded by the number of roundings on the way times `u = 2^-24` times
//! `S`, the sum of the products' magnitudes (plus `|dw|` before the
//! call). The kernel adds each block of about 128 positions by fused
//! multiply-adds from zero, then adds the block sums in order, so at the
//! batches here an element sees a few hundred roundings at most. Every
//! element is held to `|err| <= TAU S + ABS` with `TAU = 1e-6` (about 17
//! `u`) and `ABS = 1e-6`: the largest `err / S` measured over these tests
//! was `2.1e-7` (3.5 `u`, printed with `--nocapture`), about the direct
//! and im2col + GEMM paths' `1.4e-7` in `tests/winograd.rs`.

use cnn_core::{Conv2dGeometry, Conv2dParams, ConvOps};
use cnn_cpu::{ConvAlgorithm, CpuBackend};
use cnn_testing::reference as r;
use cnn_testing::strategies::values;

/// Relative part of the tolerance, against `S` (module docs).
const TAU: f64 = 1e-6;
/// Absolute part of the tolerance.
const ABS: f64 = 1e-6;

fn backend(threads: usize, alg: Option<ConvAlgorithm>) -> CpuBackend {
    let be = CpuBackend::with_threads(threads).expect("a thread pool");
    match alg {
        Some(a) => be.with_conv_algorithm(a),
        None => be,
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

/// `S` per weight element: `|dw0|` plus the sum of `|dy x|` over its
/// products (positions that read padding have none).
fn magnitudes(p: &Conv2dParams, x: &[f32], dy: &[f32], dw0: &[f32]) -> Vec<f64> {
    let abs_x: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    let abs_dy: Vec<f32> = dy.iter().map(|v| v.abs()).collect();
    r::conv2d_backward_weight(p, &abs_x, &abs_dy)
        .iter()
        .zip(dw0)
        .map(|(s, d)| s + f64::from(d.abs()))
        .collect()
}

/// The weight gradient of `p` on `be`, accumulated onto random `dw0`,
/// against the reference; the largest `err / S`.
fn check(be: &CpuBackend, p: &Conv2dParams, seed: u64) -> Result<f64, String> {
    let x = values(seed, 0, p.x_len(), -1.0, 1.0);
    let dy = values(seed, 1, p.y_len(), -1.0, 1.0);
    let dw0 = values(seed, 2, p.w_len(), -1.0, 1.0);
    let mut dw = dw0.clone();
    be.conv2d_backward_weight(p, &x, &dy, &mut dw)
        .map_err(|e| e.to_string())?;
    let want = r::conv2d_backward_weight(p, &x, &dy);
    let s = magnitudes(p, &x, &dy, &dw0);
    let mut worst = 0.0f64;
    for (i, ((&g, &w), &s)) in dw.iter().zip(&want).zip(&s).enumerate() {
        let w = w + f64::from(dw0[i]);
        let err = (f64::from(g) - w).abs();
        if err.is_nan() || err > TAU * s + ABS {
            return Err(format!(
                "element {i}: {g} vs {w} (error {err:.3e}, bound {:.3e})",
                TAU * s + ABS
            ));
        }
        worst = worst.max(err / s.max(ABS / TAU));
    }
    Ok(worst)
}

fn conv(n: usize, c_in: usize, h: usize, w: usize, g: &Conv2dGeometry) -> Conv2dParams {
    Conv2dParams::new(n, c_in, h, w, g).expect("a valid layer")
}

fn geometry(c_out: usize, kh: usize, kw: usize, ph: usize, pw: usize) -> Conv2dGeometry {
    Conv2dGeometry {
        out_channels: c_out,
        kernel: [kh, kw],
        stride: [1, 1],
        padding: [ph, pw],
        dilation: [1, 1],
        groups: 1,
    }
}

/// `(c_in, c_out, side)` of ResNet-20's stride-1 3x3 layers (padding 1)
/// and the stem.
const WORKLOAD_LAYERS: [(usize, usize, usize); 4] =
    [(16, 16, 32), (32, 32, 16), (64, 64, 8), (3, 16, 32)];

#[test]
fn workload_layers_match_the_reference() {
    for threads in [1, 2] {
        for alg in [Some(ConvAlgorithm::Direct), None] {
            let be = backend(threads, alg);
            let mut worst = 0.0f64;
            for (i, &(c_in, c_out, side)) in WORKLOAD_LAYERS.iter().enumerate() {
                // The default takes the layers of 16 to 32 channels with
                // fewer than 32 on one side (the others are Winograd's and
                // the old direct kernel's).
                if alg.is_none() && !((16..32).contains(&c_in.min(c_out)) && c_in.max(c_out) <= 32)
                {
                    continue;
                }
                // Batch 3: with two threads, parts of two and one image;
                // batch 5 on 8x8 maps: blocks of two images and a last one.
                let n = if side == 8 { 5 } else { 3 };
                let p = conv(n, c_in, side, side, &geometry(c_out, 3, 3, 1, 1));
                worst = worst.max(check(&be, &p, i as u64).unwrap_or_else(|m| {
                    panic!("{alg:?}, {threads} threads, {c_in}->{c_out} @{side}: {m}")
                }));
            }
            println!("{alg:?}, {threads} threads: largest err / S = {worst:.3e}");
        }
    }
}

/// Channels 1-9, maps 1-7, every padding pair 0-2, batch 1-3, 3x3
/// kernels (and 1x1, 2x3 and 5x5 where the padding allows).
#[test]
fn small_grid_matches_the_reference() {
    let be = backend(2, Some(ConvAlgorithm::Direct));
    let mut worst = 0.0f64;
    let mut cases = 0u64;
    for c_in in 1..=9 {
        for c_out in [c_in, 10 - c_in, 9] {
            for ph in 0..=2 {
                for pw in 0..=2 {
                    for h in 1..=7 {
                        for w in [h, 8 - h] {
                            for (kh, kw) in [(3, 3), (1, 1), (2, 3), (5, 5)] {
                                if ph >= kh || pw >= kw || h + 2 * ph < kh || w + 2 * pw < kw {
                                    continue;
                                }
                                // Every kernel size on a fifth of the shapes.
                                if (kh, kw) != (3, 3) && !cases.is_multiple_of(5) {
                                    continue;
                                }
                                let n = 1 + (cases % 3) as usize;
                                let p = conv(n, c_in, h, w, &geometry(c_out, kh, kw, ph, pw));
                                let e = check(&be, &p, cases).unwrap_or_else(|m| {
                                    panic!(
                                        "{n}x{c_in}->{c_out} {h}x{w} k {kh}x{kw} pad {ph},{pw}: {m}"
                                    )
                                });
                                worst = worst.max(e);
                                cases += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(cases > 2_000, "{cases} cases");
    println!("{cases} shapes, largest err / S = {worst:.3e}");
}

/// The weight gradient accumulates: called twice on the same batch, `dw`
/// holds `dw0` plus twice the gradient (within the tolerance), and a
/// second call adds exactly what a call onto zeros gives.
#[test]
fn accumulates_into_dw() {
    let be = backend(2, Some(ConvAlgorithm::Direct));
    let p = conv(4, 16, 12, 12, &geometry(16, 3, 3, 1, 1));
    let x = values(9, 0, p.x_len(), -1.0, 1.0);
    let dy = values(9, 1, p.y_len(), -1.0, 1.0);
    let mut once = vec![0.0f32; p.w_len()];
    be.conv2d_backward_weight(&p, &x, &dy, &mut once).unwrap();
    let dw0 = values(9, 2, p.w_len(), -1.0, 1.0);
    let mut dw = dw0.clone();
    be.conv2d_backward_weight(&p, &x, &dy, &mut dw).unwrap();
    // With two threads the two parts' sums are added to dw in order.
    let mut parts = [vec![0.0f32; p.w_len()], vec![0.0f32; p.w_len()]];
    let one = backend(1, Some(ConvAlgorithm::Direct));
    let half = conv(2, 16, 12, 12, &geometry(16, 3, 3, 1, 1));
    let (xi, yi) = (p.x_len() / 4, p.y_len() / 4);
    for (k, part) in parts.iter_mut().enumerate() {
        let (xs, dys) = (&x[2 * k * xi..][..2 * xi], &dy[2 * k * yi..][..2 * yi]);
        one.conv2d_backward_weight(&half, &xs.to_vec(), &dys.to_vec(), part)
            .unwrap();
    }
    let want: Vec<f32> = dw0
        .iter()
        .zip(&parts[0])
        .zip(&parts[1])
        .map(|((&d, &a), &b)| (d + a) + b)
        .collect();
    assert_eq!(bits(&dw), bits(&want), "dw0 + part 1 + part 2, in order");
    let want_once: Vec<f32> = parts[0]
        .iter()
        .zip(&parts[1])
        .map(|(&a, &b)| (0.0 + a) + b)
        .collect();
    assert_eq!(bits(&once), bits(&want_once));
    assert!(dw.iter().zip(&dw0).any(|(a, b)| a != b), "dw changed");
}

/// Threads: the batch is summed in one contiguous part per thread (as on
/// every weight-gradient path, `sum_weight_parts`), so a two-thread call
/// is the one-thread calls on each half added in order, bit for bit, and
/// the same on every run (nothing depends on scheduling); a batch of one
/// image is one part on any thread count, so one and two threads agree
/// bit for bit there.
#[test]
fn threads_change_only_the_partition() {
    let (one, two) = (
        backend(1, Some(ConvAlgorithm::Direct)),
        backend(2, Some(ConvAlgorithm::Direct)),
    );
    for (c_in, c_out, side) in [(16, 16, 32), (32, 32, 16), (64, 64, 8)] {
        let g = geometry(c_out, 3, 3, 1, 1);
        let p = conv(6, c_in, side, side, &g);
        let x = values(3, 0, p.x_len(), -1.0, 1.0);
        let dy = values(3, 1, p.y_len(), -1.0, 1.0);
        let run = |be: &CpuBackend, p: &Conv2dParams, x: &[f32], dy: &[f32]| {
            let mut dw = vec![0.0f32; p.w_len()];
            be.conv2d_backward_weight(p, &x.to_vec(), &dy.to_vec(), &mut dw)
                .unwrap();
            dw
        };
        let both = run(&two, &p, &x, &dy);
        for _ in 0..3 {
            assert_eq!(
                bits(&run(&two, &p, &x, &dy)),
                bits(&both),
                "{c_in}->{c_out}: rerun"
            );
        }
        let half = conv(3, c_in, side, side, &g);
        let (xl, yl) = (half.x_len(), half.y_len());
        let a = run(&one, &half, &x[..xl], &dy[..yl]);
        let b = run(&one, &half, &x[xl..], &dy[yl..]);
        let want: Vec<f32> = a.iter().zip(&b).map(|(&a, &b)| (0.0 + a) + b).collect();
        assert_eq!(bits(&both), bits(&want), "{c_in}->{c_out}: halves in order");
        let single = conv(1, c_in, side, side, &g);
        let (xs, ys) = (&x[..single.x_len()], &dy[..single.y_len()]);
        assert_eq!(
            bits(&run(&one, &single, xs, ys)),
            bits(&run(&two, &single, xs, ys)),
            "{c_in}->{c_out}: one image"
        );
    }
}

/// Whether this CPU runs the AVX2 + FMA kernels (where the new kernel is
/// the default).
fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// What each `CNN_CPU_CONV` name (`CpuBackend::with_conv_algorithm`)
/// gives for the weight gradient: `direct` the new kernel on every
/// stride-1 layer; `nowinograd` the rule before Winograd (the 8-lane
/// direct kernel: other bits); `winograd` and `gemm` their own paths; the
/// default the new kernel on 3x3 layers with 16-32 channels and fewer
/// than 32 on one side (AVX2 + FMA CPUs), Winograd from 32 channels on
/// both sides (performance.md, entry 41), the old direct kernel on the
/// stem.
#[test]
fn forced_and_default_choices() {
    let weight = |alg: Option<ConvAlgorithm>, p: &Conv2dParams| {
        let x = values(7, 0, p.x_len(), -1.0, 1.0);
        let dy = values(7, 1, p.y_len(), -1.0, 1.0);
        let mut dw = vec![0.0f32; p.w_len()];
        backend(2, alg)
            .conv2d_backward_weight(p, &x, &dy, &mut dw)
            .unwrap();
        bits(&dw)
    };
    let all = |p: &Conv2dParams| {
        [
            None,
            Some(ConvAlgorithm::Direct),
            Some(ConvAlgorithm::NoWinograd),
            Some(ConvAlgorithm::Winograd),
            Some(ConvAlgorithm::Gemm),
        ]
        .map(|a| weight(a, p))
    };
    let fast = avx2_fma();
    for (c_in, c_out, side) in [(16, 16, 32), (16, 32, 8)] {
        let p = conv(4, c_in, side, side, &geometry(c_out, 3, 3, 1, 1));
        // (im2col + GEMM may agree: on 8x8 maps its blocks of two
        // images sum the same products in the same order.)
        let [default, direct, old, wino, _] = all(&p);
        assert!(direct != old && direct != wino, "{c_in}->{c_out}");
        let want = if fast { &direct } else { &wino };
        assert!(default == *want, "{c_in}->{c_out}: default");
    }
    for (c_in, c_out, side) in [(64, 64, 8), (32, 64, 8), (32, 32, 16)] {
        let p = conv(4, c_in, side, side, &geometry(c_out, 3, 3, 1, 1));
        let [default, direct, _, wino, _] = all(&p);
        assert!(
            default == wino && default != direct,
            "{c_in}->{c_out}: Winograd"
        );
    }
    // The stem and LeNet-5's 5x5 layers keep the previous rule's bits.
    for (c_in, c_out, side, k, pad) in [(3, 16, 32, 3, 1), (6, 16, 14, 5, 0), (1, 6, 28, 5, 2)] {
        let p = conv(4, c_in, side, side, &geometry(c_out, k, k, pad, pad));
        let [default, direct, old, _, _] = all(&p);
        assert!(default == old && default != direct, "{c_in}->{c_out} k {k}");
    }
    // Layers the kernel cannot take (stride 2) keep their paths under `direct`.
    let g = Conv2dGeometry::new(32, 3).stride(2).padding(1);
    let p = conv(4, 16, 16, 16, &g);
    let [default, direct, ..] = all(&p);
    assert!(default == direct, "stride 2");
}
