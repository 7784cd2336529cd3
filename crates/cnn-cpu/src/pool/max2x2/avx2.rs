//! The AVX2 versions of the 2x2 max pooling: eight windows per step, the
//! even and odd input columns separated with shuffles, the winner chosen
//! with compare masks and blends (the scalar version's scan order and
//! update rule, so the same bits).

use std::arch::x86_64::*;

/// Even and odd elements of the 16 floats `lo ++ hi`, in order.
#[target_feature(enable = "avx2")]
#[inline]
fn deinterleave(lo: __m256, hi: __m256) -> (__m256, __m256) {
    // Per 128-bit lane the shuffles give (lo0 lo2 hi0 hi2 | lo4 lo6 hi4
    // hi6); swapping the middle 64-bit quads puts them in order.
    let even = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
    let odd = _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi);
    (
        _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
            even,
        ))),
        _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
            odd,
        ))),
    )
}

/// Take `(v, i)` over `(best, best_i)` where `v > best` or `v` is NaN.
#[target_feature(enable = "avx2")]
#[inline]
fn update(best: &mut __m256, best_i: &mut __m256i, v: __m256, i: __m256i) {
    let take = _mm256_or_ps(
        _mm256_cmp_ps::<_CMP_GT_OQ>(v, *best),
        _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v),
    );
    *best = _mm256_blendv_ps(*best, v, take);
    *best_i = _mm256_castps_si256(_mm256_blendv_ps(
        _mm256_castsi256_ps(*best_i),
        _mm256_castsi256_ps(i),
        take,
    ));
}

/// Lanes `0..count` set (count clamped to 0..=8).
#[target_feature(enable = "avx2")]
#[inline]
fn first_lanes(count: usize) -> __m256i {
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(count.min(8) as i32), iota)
}

/// The 16 floats at `p` (`lanes == 8`), or the first `2 lanes` of them.
///
/// # Safety
/// AVX2 must be available and those floats readable.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load_pair(p: *const f32, lanes: usize) -> (__m256, __m256) {
    // SAFETY: the caller guarantees the floats read are in bounds;
    // masked loads touch only the selected lanes.
    unsafe {
        if lanes == 8 {
            (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
        } else {
            (
                _mm256_maskload_ps(p, first_lanes(2 * lanes)),
                _mm256_maskload_ps(p.add(8), first_lanes((2 * lanes).saturating_sub(8))),
            )
        }
    }
}

/// [`super::backward_portable`], eight windows per step.
///
/// # Safety
/// AVX2 must be available; `dx.len() >= 2 h_out w`, `w >= 2 w_out`,
/// `dy.len() == argmax.len() == h_out w_out`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn backward_plane(
    w: usize,
    h_out: usize,
    w_out: usize,
    dy: &[f32],
    argmax: &[u32],
    dx: &mut [f32],
) -> bool {
    assert!(dx.len() >= 2 * h_out * w && w >= 2 * w_out);
    assert!(dy.len() == h_out * w_out && argmax.len() == h_out * w_out);
    let even_cols = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    let one = _mm256_set1_epi32(1);
    let row = _mm256_set1_epi32(w as i32);
    let zero = _mm256_setzero_ps();
    for oh in 0..h_out {
        let r0 = 2 * oh * w;
        let mut ow = 0;
        while ow < w_out {
            let lanes = (w_out - ow).min(8);
            let start = r0 + 2 * ow;
            let o = oh * w_out + ow;
            // SAFETY: reads of dy and argmax cover `o .. o + lanes`,
            // inside both; writes cover `start .. start + 2 lanes` in
            // rows `2 oh` and `2 oh + 1` of dx, inside the plane because
            // `2 (ow + lanes) <= w` and `2 oh + 1 < 2 h_out`. Partial
            // vectors use masked loads and stores.
            unsafe {
                let m = first_lanes(lanes);
                let (g, a) = if lanes == 8 {
                    (
                        _mm256_loadu_ps(dy.as_ptr().add(o)),
                        _mm256_loadu_si256(argmax.as_ptr().add(o).cast()),
                    )
                } else {
                    (
                        _mm256_maskload_ps(dy.as_ptr().add(o), m),
                        _mm256_maskload_epi32(argmax.as_ptr().add(o).cast(), m),
                    )
                };
                // +0 turns -0 into +0, as the scatter's `0 + g` does.
                let g = _mm256_add_ps(g, zero);
                let i0 = _mm256_add_epi32(_mm256_set1_epi32(start as i32), even_cols);
                let i2 = _mm256_add_epi32(i0, row);
                let hit = |i: __m256i| _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, i));
                let (m0, m1) = (hit(i0), hit(_mm256_add_epi32(i0, one)));
                let (m2, m3) = (hit(i2), hit(_mm256_add_epi32(i2, one)));
                let any = _mm256_or_ps(_mm256_or_ps(m0, m1), _mm256_or_ps(m2, m3));
                let want = (1i32 << lanes) - 1;
                if _mm256_movemask_ps(any) & want != want {
                    return false;
                }
                for (r, (ma, mb)) in [(0, (m0, m1)), (w, (m2, m3))] {
                    let (va, vb) = (_mm256_and_ps(g, ma), _mm256_and_ps(g, mb));
                    let (ul, uh) = (_mm256_unpacklo_ps(va, vb), _mm256_unpackhi_ps(va, vb));
                    let lo = _mm256_permute2f128_ps::<0x20>(ul, uh);
                    let hi = _mm256_permute2f128_ps::<0x31>(ul, uh);
                    let pd = dx.as_mut_ptr().add(start + r);
                    if lanes == 8 {
                        _mm256_storeu_ps(pd, lo);
                        _mm256_storeu_ps(pd.add(8), hi);
                    } else {
                        _mm256_maskstore_ps(pd, first_lanes(2 * lanes), lo);
                        _mm256_maskstore_ps(
                            pd.add(8),
                            first_lanes((2 * lanes).saturating_sub(8)),
                            hi,
                        );
                    }
                }
            }
            ow += lanes;
        }
    }
    true
}

/// # Safety
/// AVX2 must be available; `x.len() >= 2 h_out w`, `w >= 2 w_out`,
/// `y.len() == argmax.len() == h_out w_out`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn plane(
    w: usize,
    h_out: usize,
    w_out: usize,
    x: &[f32],
    y: &mut [f32],
    argmax: &mut [u32],
) {
    assert!(x.len() >= 2 * h_out * w && w >= 2 * w_out);
    assert!(y.len() == h_out * w_out && argmax.len() == h_out * w_out);
    let even_cols = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    let one = _mm256_set1_epi32(1);
    let row = _mm256_set1_epi32(w as i32);
    for oh in 0..h_out {
        let r0 = 2 * oh * w;
        let mut ow = 0;
        while ow < w_out {
            let lanes = (w_out - ow).min(8);
            let start = r0 + 2 * ow;
            // SAFETY: the inputs read are `start .. start + 2 lanes` in
            // rows `2 oh` and `2 oh + 1`, inside the plane because
            // `2 (ow + lanes) <= 2 w_out <= w` and `2 oh + 1 < 2 h_out`;
            // partial vectors use masked loads and stores, which touch
            // only the selected lanes. The outputs `oh w_out + ow ..
            // + lanes` are inside `y` and `argmax`.
            unsafe {
                let p0 = x.as_ptr().add(start);
                let p1 = p0.add(w);
                let (lo0, hi0) = load_pair(p0, lanes);
                let (lo1, hi1) = load_pair(p1, lanes);
                let (a, b) = deinterleave(lo0, hi0);
                let (c, d) = deinterleave(lo1, hi1);
                let ia = _mm256_add_epi32(_mm256_set1_epi32(start as i32), even_cols);
                let ic = _mm256_add_epi32(ia, row);
                let (mut best, mut best_i) = (a, ia);
                update(&mut best, &mut best_i, b, _mm256_add_epi32(ia, one));
                update(&mut best, &mut best_i, c, ic);
                update(&mut best, &mut best_i, d, _mm256_add_epi32(ic, one));
                let out = oh * w_out + ow;
                let py = y.as_mut_ptr().add(out);
                let pa = argmax.as_mut_ptr().add(out).cast::<i32>();
                if lanes == 8 {
                    _mm256_storeu_ps(py, best);
                    _mm256_storeu_si256(pa.cast(), best_i);
                } else {
                    let m = first_lanes(lanes);
                    _mm256_maskstore_ps(py, m, best);
                    _mm256_maskstore_epi32(pa, m, best_i);
                }
            }
            ow += lanes;
        }
    }
}
