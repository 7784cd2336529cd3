//! Max pooling over full, unpadded 2x2 windows at stride 2 (LeNet's, the
//! article's and VGG's pooling), forward and backward.
//!
//! Both versions keep the generic loop's scan order (row by row) and update
//! rule (a larger value or a NaN wins, the first of equal values is kept),
//! so values and argmax indices are bit-identical to `pool::max_pool_plane`.
//! On x86-64 with AVX2 eight outputs are computed at once (sixteen with
//! AVX-512F): the even and odd columns of each input row are separated
//! with shuffles, and the winner is chosen with compare masks and blends
//! instead of branches (`avx2`, `avx512`; the scalar version is here).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

use cnn_core::Pool2dParams;

/// Whether every window of `p` is a full, unpadded 2x2 block at stride 2.
pub(crate) fn is_2x2(p: &Pool2dParams) -> bool {
    p.kh == 2
        && p.kw == 2
        && p.stride_h == 2
        && p.stride_w == 2
        && p.pad_h == 0
        && p.pad_w == 0
        && 2 * p.h_out <= p.h
        && 2 * p.w_out <= p.w
}

/// Pool one `h x w` plane into `h_out x w_out` outputs and their argmax
/// (flat index into the plane). Requires [`is_2x2`].
pub(crate) fn max_pool_plane_2x2(p: &Pool2dParams, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    debug_assert!(is_2x2(p));
    let (x, y, argmax) = (
        &x[..p.h * p.w],
        &mut y[..p.h_out * p.w_out],
        &mut argmax[..p.h_out * p.w_out],
    );
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: AVX-512F is present; sizes as for `avx2::plane` below.
        unsafe { avx512::plane(p.w, p.h_out, p.w_out, x, y, argmax) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 is present (checked above); the slices were cut to
        // the plane sizes, which is what `avx2::plane` requires with
        // `2 h_out <= h` and `2 w_out <= w` (from `is_2x2`).
        unsafe { avx2::plane(p.w, p.h_out, p.w_out, x, y, argmax) };
        return;
    }
    portable(p.w, p.h_out, p.w_out, x, y, argmax);
}

/// The input gradient of one plane: each window's four positions get its
/// output gradient where the argmax points and zero elsewhere (rows and
/// columns outside every window get zero), in one pass instead of a fill
/// and a scatter. Bit-identical to `fill(0)` then `dx[a] += g` (which
/// turns -0 into +0). Returns `false`, with `dx` partly written, when an
/// argmax lies outside its own window (possible only for hand-made
/// indices); the caller then runs the general scatter.
pub(crate) fn max_pool_backward_plane_2x2(
    p: &Pool2dParams,
    dy: &[f32],
    argmax: &[u32],
    dx: &mut [f32],
) -> bool {
    debug_assert!(is_2x2(p));
    let (dy, argmax, dx) = (
        &dy[..p.h_out * p.w_out],
        &argmax[..p.h_out * p.w_out],
        &mut dx[..p.h * p.w],
    );
    // Rows below the last window and columns right of it.
    dx[2 * p.h_out * p.w..].fill(0.0);
    if p.w > 2 * p.w_out {
        for row in dx[..2 * p.h_out * p.w].chunks_exact_mut(p.w) {
            row[2 * p.w_out..].fill(0.0);
        }
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: AVX-512F is present; sizes as for the AVX2 version.
        return unsafe { avx512::backward_plane(p.w, p.h_out, p.w_out, dy, argmax, dx) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 is present; the slices were cut to the plane sizes,
        // with `2 h_out <= h` and `2 w_out <= w` (from `is_2x2`).
        return unsafe { avx2::backward_plane(p.w, p.h_out, p.w_out, dy, argmax, dx) };
    }
    backward_portable(p.w, p.h_out, p.w_out, dy, argmax, dx)
}

/// The scalar version of [`max_pool_backward_plane_2x2`]'s window pass.
fn backward_portable(
    w: usize,
    h_out: usize,
    w_out: usize,
    dy: &[f32],
    argmax: &[u32],
    dx: &mut [f32],
) -> bool {
    for oh in 0..h_out {
        for ow in 0..w_out {
            let o = oh * w_out + ow;
            let i0 = 2 * oh * w + 2 * ow;
            let (a, g) = (argmax[o] as usize, dy[o] + 0.0);
            let mut hit = false;
            for i in [i0, i0 + 1, i0 + w, i0 + w + 1] {
                dx[i] = if a == i { g } else { 0.0 };
                hit |= a == i;
            }
            if !hit {
                return false;
            }
        }
    }
    true
}

#[cfg(target_arch = "x86_64")]
use crate::cpu_features::{avx2 as has_avx2, avx512f as has_avx512};

/// The scalar version (other CPUs, and the reference for the AVX2 one).
fn portable(w: usize, h_out: usize, w_out: usize, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    for oh in 0..h_out {
        let r0 = &x[2 * oh * w..2 * oh * w + w];
        let r1 = &x[(2 * oh + 1) * w..(2 * oh + 2) * w];
        let y_row = &mut y[oh * w_out..(oh + 1) * w_out];
        let a_row = &mut argmax[oh * w_out..(oh + 1) * w_out];
        let base = (2 * oh * w) as u32;
        for (ow, (yo, ao)) in y_row.iter_mut().zip(a_row.iter_mut()).enumerate() {
            let c = 2 * ow;
            let mut best = r0[c];
            let mut best_i = base + c as u32;
            for (v, i) in [
                (r0[c + 1], base + c as u32 + 1),
                (r1[c], base + (w + c) as u32),
                (r1[c + 1], base + (w + c) as u32 + 1),
            ] {
                // Select with a bit mask: which value wins is data-dependent
                // and unpredictable, and LLVM turns a plain `if` on floats
                // into branches that mispredict about half the time.
                let take = ((v > best) | v.is_nan()) as u32;
                let mask = take.wrapping_neg();
                best = f32::from_bits((v.to_bits() & mask) | (best.to_bits() & !mask));
                best_i = (i & mask) | (best_i & !mask);
            }
            *yo = best;
            *ao = best_i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values with many ties, negative zeros, infinities and NaNs.
    fn tricky(seed: u64, len: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                match s % 16 {
                    0 => f32::NAN,
                    1 => -0.0,
                    2 => 0.0,
                    3 => f32::INFINITY,
                    4 => f32::NEG_INFINITY,
                    5..=8 => 1.0,
                    _ => ((s >> 20) % 1000) as f32 / 100.0 - 5.0,
                }
            })
            .collect()
    }

    /// The SIMD versions this CPU has, by name.
    #[cfg(target_arch = "x86_64")]
    type Forward = unsafe fn(usize, usize, usize, &[f32], &mut [f32], &mut [u32]);
    #[cfg(target_arch = "x86_64")]
    type Backward = unsafe fn(usize, usize, usize, &[f32], &[u32], &mut [f32]) -> bool;
    #[cfg(target_arch = "x86_64")]
    fn simd_versions() -> Vec<(&'static str, Forward, Backward)> {
        let mut v: Vec<(&'static str, Forward, Backward)> = Vec::new();
        if has_avx2() {
            v.push(("AVX2", avx2::plane, avx2::backward_plane));
        } else {
            cnn_testing::skip(
                "the AVX2 max-pooling versions",
                "CNN_REQUIRE_AVX2",
                "this CPU has no AVX2",
            );
        }
        if has_avx512() {
            v.push(("AVX-512", avx512::plane, avx512::backward_plane));
        } else {
            cnn_testing::skip(
                "the AVX-512 max-pooling versions",
                "CNN_REQUIRE_AVX512",
                "this CPU has no AVX-512F",
            );
        }
        v
    }

    /// Plane widths from 1 to 40 outputs cover a full and a partial
    /// vector for both the 8- and the 16-lane versions.
    #[test]
    fn simd_matches_portable_bit_for_bit() {
        #[cfg(target_arch = "x86_64")]
        for (name, plane, _) in simd_versions() {
            for (h_out, w_out, extra_h, extra_w) in (1..9)
                .flat_map(|a| (1..41).map(move |b| (a, b)))
                .flat_map(|(a, b)| (0..2).flat_map(move |c| (0..2).map(move |d| (a, b, c, d))))
            {
                let (h, w) = (2 * h_out + extra_h, 2 * w_out + extra_w);
                let x = tricky((h * 131 + w) as u64, h * w);
                let n = h_out * w_out;
                let (mut y0, mut a0) = (vec![7.0f32; n], vec![7u32; n]);
                let (mut y1, mut a1) = (vec![9.0f32; n], vec![9u32; n]);
                portable(w, h_out, w_out, &x, &mut y0, &mut a0);
                // SAFETY: simd_versions() checked the CPU; sizes as the
                // SIMD planes require.
                unsafe { plane(w, h_out, w_out, &x, &mut y1, &mut a1) };
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&y0), bits(&y1), "{name} values, {h}x{w} plane");
                assert_eq!(a0, a1, "{name} argmax, {h}x{w} plane");
            }
        }
    }

    /// The one-pass backward (both versions) against fill + scatter, with
    /// the forward's own argmax, then with an index outside its window.
    #[test]
    fn backward_matches_scatter_and_rejects_foreign_indices() {
        for (h_out, w_out, extra_h, extra_w) in [
            (1, 1, 0, 0),
            (3, 5, 1, 0),
            (4, 9, 0, 1),
            (7, 17, 1, 1),
            (2, 33, 0, 1),
        ] {
            let (h, w) = (2 * h_out + extra_h, 2 * w_out + extra_w);
            let p = Pool2dParams::new(1, 1, h, w, &cnn_core::Pool2dGeometry::new(2)).unwrap();
            let x = tricky((h * 7 + w) as u64, h * w);
            let n = h_out * w_out;
            let (mut y, mut a) = (vec![0.0f32; n], vec![0u32; n]);
            portable(w, h_out, w_out, &x, &mut y, &mut a);
            let mut dy = tricky(99, n);
            dy[0] = -0.0;
            let mut want = vec![0.0f32; h * w];
            for (&i, &g) in a.iter().zip(&dy) {
                want[i as usize] += g;
            }
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            let mut dx = vec![f32::NAN; h * w];
            assert!(max_pool_backward_plane_2x2(&p, &dy, &a, &mut dx));
            assert_eq!(bits(&dx), bits(&want), "dispatch, {h}x{w}");
            let mut dx = vec![f32::NAN; h * w];
            dx[2 * h_out * w..].fill(0.0);
            for row in dx[..2 * h_out * w].chunks_exact_mut(w) {
                row[2 * w_out..].fill(0.0);
            }
            assert!(backward_portable(w, h_out, w_out, &dy, &a, &mut dx));
            assert_eq!(bits(&dx), bits(&want), "portable, {h}x{w}");
            #[cfg(target_arch = "x86_64")]
            for (name, _, backward) in simd_versions() {
                // NaN where the windows lie (the rest is zeroed by the
                // caller, as above).
                let mut dx_simd = dx.clone();
                for row in dx_simd[..2 * h_out * w].chunks_exact_mut(w) {
                    row[..2 * w_out].fill(f32::NAN);
                }
                // SAFETY: simd_versions() checked the CPU; sizes as the
                // SIMD versions require.
                assert!(unsafe { backward(w, h_out, w_out, &dy, &a, &mut dx_simd) });
                assert_eq!(bits(&dx_simd), bits(&want), "{name}, {h}x{w}");
            }
            let mut foreign = a.clone();
            foreign[n - 1] = 0;
            if n > 1 {
                assert!(!max_pool_backward_plane_2x2(&p, &dy, &foreign, &mut dx));
                assert!(!backward_portable(w, h_out, w_out, &dy, &foreign, &mut dx));
                #[cfg(target_arch = "x86_64")]
                for (name, _, backward) in simd_versions() {
                    // SAFETY: as above.
                    let ok = unsafe { backward(w, h_out, w_out, &dy, &foreign, &mut dx) };
                    assert!(!ok, "{name} accepted an index outside its window");
                }
            }
        }
    }
}
