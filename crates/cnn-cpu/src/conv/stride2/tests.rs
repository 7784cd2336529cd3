//! Tests of the polyphase stride-2 kernels' versions: the portable one
//! (no FMA) and the AVX2 + FMA one, each against the f64 reference kernels
//! over a grid of small shapes. The public path (the default choice, the
//! forced algorithms, threads) is tested in `tests/stride2.rs`.

use super::*;
use cnn_core::Conv2dGeometry;
use cnn_testing::reference as r;
use cnn_testing::strategies::values;

/// `|got - want| <= 1e-5 + 1e-5 |want|` (inputs in [-1, 1], at most 63
/// products per output: the f32 sums' rounding is below 1e-6 here).
fn close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= 1e-5 + 1e-5 * w.abs(),
            "{what}: element {i}: {g} vs {w}"
        );
    }
}

/// Forward, input and weight gradients of `p` on one thread.
fn run(p: &Conv2dParams, seed: u64) {
    let be = CpuBackend::with_threads(1).unwrap();
    let x = values(seed, 1, p.x_len(), -1.0, 1.0);
    let w = values(seed, 2, p.w_len(), -1.0, 1.0);
    let b = values(seed, 3, p.c_out, -1.0, 1.0);
    let dy = values(seed, 4, p.y_len(), -1.0, 1.0);
    let mut y = vec![f32::NAN; p.y_len()];
    forward(&be, p, &x, &w, Some(&b), &mut y);
    close(
        &format!("forward {p:?}"),
        &y,
        &r::conv2d_forward(p, &x, &w, Some(&b)),
    );
    let mut dx = vec![f32::NAN; p.x_len()];
    backward_input(&be, p, &dy, &w, &mut dx);
    close(
        &format!("input gradient {p:?}"),
        &dx,
        &r::conv2d_backward_input(p, &dy, &w),
    );
    let dw0 = values(seed, 5, p.w_len(), -1.0, 1.0);
    let mut dw = dw0.clone();
    backward_weight(&be, p, &x, &dy, &mut dw);
    let want: Vec<f64> = r::conv2d_backward_weight(p, &x, &dy)
        .iter()
        .zip(&dw0)
        .map(|(g, &d)| g + f64::from(d))
        .collect();
    close(&format!("weight gradient {p:?}"), &dw, &want);
}

/// Both kernel versions (portable first) over odd and even maps, kernels
/// 1-3 (with rectangular ones), every padding below the kernel and
/// channel counts across the output blocks (1, 2, 4, 6 and remainders).
#[test]
fn portable_and_avx2_match_reference() {
    let mut shapes = Vec::new();
    for (kh, kw) in [(1, 1), (2, 2), (3, 3), (3, 1), (1, 3), (2, 3)] {
        for pad in 0..kh.min(kw) {
            for (h, w) in [(1, 1), (2, 3), (5, 5), (6, 7), (9, 8)] {
                for (ci, co) in [(1, 1), (3, 7), (2, 6)] {
                    let g = Conv2dGeometry {
                        out_channels: co,
                        kernel: [kh, kw],
                        stride: [2, 2],
                        padding: [pad, pad],
                        dilation: [1, 1],
                        groups: 1,
                    };
                    if let Ok(p) = Conv2dParams::new(2, ci, h, w, &g) {
                        shapes.push(p);
                    }
                }
            }
        }
    }
    assert!(shapes.len() > 100, "{} shapes", shapes.len());
    for portable in [true, false] {
        FORCE_PORTABLE.store(portable, std::sync::atomic::Ordering::Relaxed);
        for (i, p) in shapes.iter().enumerate() {
            assert!(supported(p), "{p:?}");
            run(p, i as u64);
        }
    }
    FORCE_PORTABLE.store(false, std::sync::atomic::Ordering::Relaxed);
}
