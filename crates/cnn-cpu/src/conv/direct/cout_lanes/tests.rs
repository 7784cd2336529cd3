//! The output-channel-lane weight gradient: its portable and AVX2 + FMA
//! versions bit for bit, the block structure (several images per block
//! on small maps, row blocks on large ones) against nested f64 loops,
//! and the transposition of `dy` against the scalar one.

use std::sync::atomic::Ordering;

use super::super::FORCE_PORTABLE;
use super::super::tests::FORCE_LOCK;
use super::*;
use cnn_core::Conv2dGeometry;

fn data(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + seed * 104_729) % 1013) as f32 / 506.5) - 1.0)
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

/// `(n, c_in, h, w, c_out, k, pad)`: the workload layers at a small
/// batch, maps small enough for several images per block (with a last
/// block of fewer), channel counts off the 8 lanes, tap counts off the
/// groups of 6, and kernels other than 3x3.
const SHAPES: [(usize, usize, usize, usize, usize, usize, usize); 9] = [
    (2, 16, 32, 32, 16, 3, 1),
    (3, 32, 16, 16, 32, 3, 1),
    (5, 64, 8, 8, 64, 3, 1),
    (2, 3, 32, 32, 16, 3, 1),
    (7, 5, 5, 6, 11, 3, 2),
    (3, 9, 7, 7, 17, 3, 0),
    (4, 2, 9, 13, 3, 5, 2),
    (3, 6, 14, 14, 16, 5, 0),
    (2, 7, 4, 5, 9, 2, 1),
];

fn params(
    &(n, c, h, w, co, k, pad): &(usize, usize, usize, usize, usize, usize, usize),
) -> Conv2dParams {
    Conv2dParams::new(n, c, h, w, &Conv2dGeometry::new(co, k).padding(pad)).unwrap()
}

/// `dw0 + the gradient` in f64 by nested loops over the unpadded input.
fn naive(p: &Conv2dParams, x: &[f32], dy: &[f32], dw0: &[f32]) -> Vec<f64> {
    let mut dw: Vec<f64> = dw0.iter().map(|&v| f64::from(v)).collect();
    for n in 0..p.n {
        for co in 0..p.c_out {
            for oh in 0..p.h_out {
                for ow in 0..p.w_out {
                    let g = f64::from(dy[((n * p.c_out + co) * p.h_out + oh) * p.w_out + ow]);
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
                                dw[((co * p.c_in + ci) * p.kh + ki) * p.kw + kj] +=
                                    g * f64::from(xv);
                            }
                        }
                    }
                }
            }
        }
    }
    dw
}

/// Every shape, portable and (where the CPU has them) AVX2 + FMA, on one
/// and two threads, against nested f64 loops: `|err| <= 1e-5 (1 +
/// |want|)` (the values are in [-1, 1] and at most a few thousand terms
/// are summed; the tight bound is in `tests/weight_lanes.rs`).
#[test]
fn matches_nested_loops() {
    let _guard = FORCE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for portable in [true, false] {
        FORCE_PORTABLE.store(portable, Ordering::Relaxed);
        for threads in [1, 2] {
            let be = CpuBackend::with_threads(threads).unwrap();
            for (i, s) in SHAPES.iter().enumerate() {
                let p = params(s);
                assert!(takes(&p), "{s:?}");
                let (x, dy, dw0) = (
                    data(p.x_len(), i),
                    data(p.y_len(), i + 20),
                    data(p.w_len(), i + 40),
                );
                let mut dw = dw0.clone();
                backward_weight(&be, &p, &x, &dy, &mut dw);
                for (j, (&g, &w)) in dw.iter().zip(&naive(&p, &x, &dy, &dw0)).enumerate() {
                    assert!(
                        (f64::from(g) - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{s:?}, portable {portable}, {threads} threads, element {j}: {g} vs {w}"
                    );
                }
            }
        }
    }
    FORCE_PORTABLE.store(false, Ordering::Relaxed);
}

/// The portable kernel (`f32::mul_add`) and the AVX2 + FMA one give the
/// same bits: the same fused multiply-adds in the same order.
#[test]
fn portable_equals_avx2_bit_for_bit() {
    if !crate::cpu_features::avx2_fma() {
        cnn_testing::skip(
            "portable_equals_avx2_bit_for_bit",
            "CNN_REQUIRE_AVX2",
            "this CPU has no AVX2 + FMA",
        );
        return;
    }
    let _guard = FORCE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for threads in [1, 2] {
        let be = CpuBackend::with_threads(threads).unwrap();
        for (i, s) in SHAPES.iter().enumerate() {
            let p = params(s);
            let (x, dy, dw0) = (
                data(p.x_len(), i),
                data(p.y_len(), i + 20),
                data(p.w_len(), i + 40),
            );
            let run = |portable: bool| {
                FORCE_PORTABLE.store(portable, Ordering::Relaxed);
                let mut dw = dw0.clone();
                backward_weight(&be, &p, &x, &dy, &mut dw);
                bits(&dw)
            };
            let (a, b) = (run(true), run(false));
            FORCE_PORTABLE.store(false, Ordering::Relaxed);
            assert_eq!(a, b, "{s:?} on {threads} threads");
        }
    }
}

/// The AVX2 transposition of `dy` (8 x 8 blocks, then the ragged
/// channels and positions) writes what the scalar loop writes.
#[test]
fn avx2_transpose_equals_scalar() {
    if !crate::cpu_features::avx2_fma() {
        cnn_testing::skip(
            "avx2_transpose_equals_scalar",
            "CNN_REQUIRE_AVX2",
            "this CPU has no AVX2 + FMA",
        );
        return;
    }
    for (cout, h, w) in [(16, 32, 32), (11, 5, 7), (8, 3, 3), (3, 4, 4), (24, 1, 9)] {
        let f = Flat::new(2, cout, 3, 3, h, w, 1, 1);
        let co8 = cout.next_multiple_of(V);
        let dy = data(f.y_image(), cout);
        let mut a = vec![0.0f32; h * w * co8];
        let mut b = a.clone();
        transpose_dy(&f, co8, &dy, &mut a);
        // SAFETY: avx2_fma() checked the CPU.
        unsafe { avx2::transpose_dy(&f, co8, &dy, &mut b) };
        assert_eq!(bits(&a), bits(&b), "{cout} channels, {h}x{w}");
        let q = (w + 1).min(h * w - 1);
        assert_eq!(a[q * co8 + cout - 1], dy[(cout - 1) * h * w + q]);
    }
}

/// Blocks: whole images, several per block, on small maps; rows of one
/// image on large ones; about [`QB`] positions either way.
#[test]
fn blocks_hold_about_qb_positions() {
    let f = |h: usize, w: usize| Flat::new(16, 16, 3, 3, h, w, 1, 1);
    assert_eq!((block_images(&f(32, 32)), block_rows(&f(32, 32))), (1, 4));
    assert_eq!((block_images(&f(16, 16)), block_rows(&f(16, 16))), (1, 8));
    assert_eq!((block_images(&f(8, 8)), block_rows(&f(8, 8))), (2, 8));
    assert_eq!(
        (block_images(&f(1, 1)), block_rows(&f(1, 1))),
        (MAX_BLOCK_IMAGES, 1)
    );
    assert_eq!(block_rows(&f(3, 300)), 1);
}
