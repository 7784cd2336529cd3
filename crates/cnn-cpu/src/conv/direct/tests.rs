//! Tests of the direct convolution: against a naive f64 reference, and
//! its kernel versions (portable, AVX2, AVX-512) against each other bit
//! for bit.

use super::*;
use cnn_core::Conv2dGeometry;

/// Serialises the tests that set the process-wide kernel overrides.
pub(super) static FORCE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn data(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + seed * 104_729) % 1013) as f32 / 506.5) - 1.0)
        .collect()
}

fn naive_fwd(p: &Conv2dParams, x: &[f32], w: &[f32]) -> Vec<f64> {
    let mut y = vec![0.0f64; p.y_len()];
    for n in 0..p.n {
        for co in 0..p.c_out {
            for oh in 0..p.h_out {
                for ow in 0..p.w_out {
                    let mut s = 0.0;
                    for ci in 0..p.c_in {
                        for ki in 0..p.kh {
                            for kj in 0..p.kw {
                                let ih = (oh + ki) as isize - p.pad_h as isize;
                                let iw = (ow + kj) as isize - p.pad_w as isize;
                                if ih < 0 || iw < 0 || ih >= p.h as isize || iw >= p.w as isize {
                                    continue;
                                }
                                let xv =
                                    x[((n * p.c_in + ci) * p.h + ih as usize) * p.w + iw as usize];
                                let wv = w[((co * p.c_in + ci) * p.kh + ki) * p.kw + kj];
                                s += f64::from(xv) * f64::from(wv);
                            }
                        }
                    }
                    y[((n * p.c_out + co) * p.h_out + oh) * p.w_out + ow] = s;
                }
            }
        }
    }
    y
}

fn close(got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= 1e-4 + 1e-4 * w.abs(),
            "element {i}: {g} vs {w}"
        );
    }
}

/// Kernel rows that read only padding are skipped (`Flat::tap_rows`);
/// that must not change a bit: the same layer on the input padded by
/// hand (no padding rows to skip) gives the same outputs, on every
/// kernel version. Shapes: LeNet-5's conv1 and its conv2 input
/// gradient (dy padded by 4), and an asymmetric one.
#[test]
fn skipping_padding_rows_keeps_the_bits() {
    let _guard = FORCE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let be = CpuBackend::with_threads(1).unwrap();
    for (n, c, h, w, co, k, pad) in [
        (3, 1, 28, 28, 6, 5, 2),
        (2, 16, 10, 10, 6, 5, 4),
        (2, 3, 9, 11, 7, 4, 3),
    ] {
        let p = Conv2dParams::new(n, c, h, w, &Conv2dGeometry::new(co, k).padding(pad)).unwrap();
        let (hp, wp) = (h + 2 * pad, w + 2 * pad);
        let q = Conv2dParams::new(n, c, hp, wp, &Conv2dGeometry::new(co, k)).unwrap();
        let (x, wt) = (data(p.x_len(), 11), data(p.w_len(), 12));
        let mut xp = vec![0.0f32; q.x_len()];
        for (plane, dst) in x.chunks_exact(h * w).zip(xp.chunks_exact_mut(hp * wp)) {
            for (row, d) in plane.chunks_exact(w).zip(dst[pad * wp..].chunks_mut(wp)) {
                d[pad..pad + w].copy_from_slice(row);
            }
        }
        for (name, portable, avx2_only) in [
            ("portable", true, false),
            ("AVX2", false, true),
            ("widest", false, false),
        ] {
            FORCE_PORTABLE.store(portable, std::sync::atomic::Ordering::Relaxed);
            FORCE_AVX2.store(avx2_only, std::sync::atomic::Ordering::Relaxed);
            let (mut y, mut y_ref) = (vec![f32::NAN; p.y_len()], vec![f32::NAN; q.y_len()]);
            forward(&be, &p, &x, &wt, None, &mut y);
            forward(&be, &q, &xp, &wt, None, &mut y_ref);
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&y),
                bits(&y_ref),
                "{name}: {c}->{co}, {k}x{k}, pad {pad}"
            );
        }
        FORCE_PORTABLE.store(false, std::sync::atomic::Ordering::Relaxed);
        FORCE_AVX2.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Every op of the direct path against nested loops, on shapes that hit
/// each tile size (kw 5, 3 and others; odd channel counts).
#[test]
fn direct_matches_naive() {
    let shapes = [
        (3, 1, 28, 28, 6, 5, 2),
        (3, 6, 14, 14, 16, 5, 0),
        (2, 3, 9, 7, 5, 3, 1),
        (2, 2, 6, 5, 3, 2, 1),
        (5, 4, 5, 5, 7, 4, 3),
        (1, 3, 3, 3, 1, 1, 0),
    ];
    let _guard = FORCE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for (threads, portable, avx2_only) in [
        (1, false, false),
        (2, false, false),
        (2, false, true),
        (2, true, false),
    ] {
        FORCE_PORTABLE.store(portable, std::sync::atomic::Ordering::Relaxed);
        FORCE_AVX2.store(avx2_only, std::sync::atomic::Ordering::Relaxed);
        let be = CpuBackend::with_threads(threads).unwrap();
        for &(n, c, h, w, co, k, pad) in &shapes {
            let g = Conv2dGeometry::new(co, k).padding(pad);
            let p = Conv2dParams::new(n, c, h, w, &g).unwrap();
            let x = data(p.x_len(), 1);
            let wt = data(p.w_len(), 2);
            let b = data(co, 3);
            let mut y = vec![f32::NAN; p.y_len()];
            forward(&be, &p, &x, &wt, Some(&b), &mut y);
            let mut want = naive_fwd(&p, &x, &wt);
            let pos = p.h_out * p.w_out;
            for (i, v) in want.iter_mut().enumerate() {
                *v += f64::from(b[(i / pos) % co]);
            }
            close(&y, &want);
            // Scatter form of both gradients.
            let dy = data(p.y_len(), 4);
            let mut want_dx = vec![0.0f64; p.x_len()];
            let mut want_dw = vec![0.5f64; p.w_len()];
            for n in 0..p.n {
                for o in 0..co {
                    for oh in 0..p.h_out {
                        for ow in 0..p.w_out {
                            let g = f64::from(dy[((n * co + o) * p.h_out + oh) * p.w_out + ow]);
                            for ci in 0..c {
                                for ki in 0..k {
                                    for kj in 0..k {
                                        let ih = (oh + ki) as isize - pad as isize;
                                        let iw = (ow + kj) as isize - pad as isize;
                                        if ih < 0 || iw < 0 || ih >= h as isize || iw >= w as isize
                                        {
                                            continue;
                                        }
                                        let xi = ((n * c + ci) * h + ih as usize) * w + iw as usize;
                                        let wi = ((o * c + ci) * k + ki) * k + kj;
                                        want_dx[xi] += g * f64::from(wt[wi]);
                                        want_dw[wi] += g * f64::from(x[xi]);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let mut dx = vec![f32::NAN; p.x_len()];
            backward_input(&be, &p, &dy, &wt, &mut dx);
            close(&dx, &want_dx);
            let mut dw = vec![0.5f32; p.w_len()];
            backward_weight(&be, &p, &x, &dy, &mut dw);
            close(&dw, &want_dw);
        }
    }
    FORCE_PORTABLE.store(false, std::sync::atomic::Ordering::Relaxed);
    FORCE_AVX2.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// The AVX-512 tiles add each output's (forward, input gradient) or
/// each lane's (weight gradient) products in the AVX2 tiles' order, so
/// both give the same bits: LeNet-5's shapes at batch 64 on two
/// threads, a 3x3 layer, and channel counts that leave a single
/// channel and a flat output count that is not a multiple of the
/// 32-position tile.
#[test]
fn avx512_equals_avx2_bit_for_bit() {
    if !avx512() {
        cnn_testing::skip(
            "avx512_equals_avx2_bit_for_bit",
            "CNN_REQUIRE_AVX512",
            "this CPU has no AVX-512F",
        );
        return;
    }
    let _guard = FORCE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let be = CpuBackend::with_threads(2).unwrap();
    for (n, c, h, w, co, k, pad) in [
        (64, 1, 28, 28, 6, 5, 2),
        (64, 6, 14, 14, 16, 5, 0),
        (4, 3, 32, 32, 7, 3, 1),
        (3, 5, 9, 11, 9, 4, 1),
        // 18 channels: tiles of 8 + 8 + 2 (forward), 4 + 4 + 1 pairs (weights).
        (2, 20, 8, 8, 18, 3, 1),
    ] {
        let p = Conv2dParams::new(n, c, h, w, &Conv2dGeometry::new(co, k).padding(pad)).unwrap();
        let f = Flat::new(p.c_in, p.c_out, p.kh, p.kw, p.h, p.w, p.pad_h, p.pad_w);
        let (x, wt, b) = (data(p.x_len(), 5), data(p.w_len(), 6), data(co, 7));
        let dy = data(p.y_len(), 8);
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let run = |avx2_only: bool| {
            FORCE_AVX2.store(avx2_only, std::sync::atomic::Ordering::Relaxed);
            let mut y = vec![f32::NAN; p.y_len()];
            forward(&be, &p, &x, &wt, Some(&b), &mut y);
            let mut dx = vec![f32::NAN; p.x_len()];
            backward_input(&be, &p, &dy, &wt, &mut dx);
            let mut dw = vec![0.25f32; p.w_len()];
            backward_weight(&be, &p, &x, &dy, &mut dw);
            (bits(&y), bits(&dx), bits(&dw))
        };
        let (wide, narrow) = (run(false), run(true));
        FORCE_AVX2.store(false, std::sync::atomic::Ordering::Relaxed);
        let what = format!("{c}->{co} channels, {k}x{k}, {h}x{w} (q = {})", f.q);
        assert_eq!(wide.0, narrow.0, "forward, {what}");
        assert_eq!(wide.1, narrow.1, "input gradient, {what}");
        assert_eq!(wide.2, narrow.2, "weight gradient, {what}");
    }
}
