//! The AVX-512F versions of the 2x2 max pooling: sixteen windows per step,
//! the same scan order and update rule (so the same bits), with mask
//! registers for the comparisons and the partial last vector of a row.

use std::arch::x86_64::*;

/// Lanes `0..count` of a 16-lane mask (count clamped to 0..=16).
fn first(count: usize) -> __mmask16 {
    ((1u32 << count.min(16)) - 1) as __mmask16
}

/// Take `(v, i)` over `(best, best_i)` where `v > best` or `v` is NaN.
#[target_feature(enable = "avx512f")]
#[inline]
fn update(best: &mut __m512, best_i: &mut __m512i, v: __m512, i: __m512i) {
    let take =
        _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, *best) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
    *best = _mm512_mask_mov_ps(*best, take, v);
    *best_i = _mm512_mask_mov_epi32(*best_i, take, i);
}

/// [`super::avx2::plane`], sixteen outputs per step.
///
/// # Safety
/// AVX-512F must be available; `x.len() >= 2 h_out w`, `w >= 2 w_out`,
/// `y.len() == argmax.len() == h_out w_out`.
#[target_feature(enable = "avx512f")]
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
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    let one = _mm512_set1_epi32(1);
    let row = _mm512_set1_epi32(w as i32);
    for oh in 0..h_out {
        let r0 = 2 * oh * w;
        let mut ow = 0;
        while ow < w_out {
            let lanes = (w_out - ow).min(16);
            let start = r0 + 2 * ow;
            let (m_lo, m_hi) = (first(2 * lanes), first((2 * lanes).saturating_sub(16)));
            // SAFETY: the inputs read are `start .. start + 2 lanes` in
            // rows `2 oh` and `2 oh + 1`, inside the plane because
            // `2 (ow + lanes) <= 2 w_out <= w` and `2 oh + 1 < 2 h_out`;
            // masked loads and stores touch only the selected lanes.
            // The outputs `oh w_out + ow .. + lanes` are inside `y`
            // and `argmax`.
            unsafe {
                let p0 = x.as_ptr().add(start);
                let p1 = p0.add(w);
                let (lo0, hi0) = (
                    _mm512_maskz_loadu_ps(m_lo, p0),
                    _mm512_maskz_loadu_ps(m_hi, p0.add(16)),
                );
                let (lo1, hi1) = (
                    _mm512_maskz_loadu_ps(m_lo, p1),
                    _mm512_maskz_loadu_ps(m_hi, p1.add(16)),
                );
                let a = _mm512_permutex2var_ps(lo0, even, hi0);
                let b = _mm512_permutex2var_ps(lo0, odd, hi0);
                let c = _mm512_permutex2var_ps(lo1, even, hi1);
                let d = _mm512_permutex2var_ps(lo1, odd, hi1);
                let ia = _mm512_add_epi32(_mm512_set1_epi32(start as i32), even);
                let ic = _mm512_add_epi32(ia, row);
                let (mut best, mut best_i) = (a, ia);
                update(&mut best, &mut best_i, b, _mm512_add_epi32(ia, one));
                update(&mut best, &mut best_i, c, ic);
                update(&mut best, &mut best_i, d, _mm512_add_epi32(ic, one));
                let out = oh * w_out + ow;
                let m = first(lanes);
                _mm512_mask_storeu_ps(y.as_mut_ptr().add(out), m, best);
                _mm512_mask_storeu_epi32(argmax.as_mut_ptr().add(out).cast(), m, best_i);
            }
            ow += lanes;
        }
    }
}

/// [`super::avx2::backward_plane`], sixteen windows per step.
///
/// # Safety
/// AVX-512F must be available; `dx.len() >= 2 h_out w`, `w >= 2 w_out`,
/// `dy.len() == argmax.len() == h_out w_out`.
#[target_feature(enable = "avx512f")]
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
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    // Interleaving two vectors: lanes 0..8 of both, then 8..16.
    let zip_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let zip_hi = _mm512_add_epi32(zip_lo, _mm512_set1_epi32(8));
    let one = _mm512_set1_epi32(1);
    let row = _mm512_set1_epi32(w as i32);
    let zero = _mm512_setzero_ps();
    for oh in 0..h_out {
        let r0 = 2 * oh * w;
        let mut ow = 0;
        while ow < w_out {
            let lanes = (w_out - ow).min(16);
            let start = r0 + 2 * ow;
            let o = oh * w_out + ow;
            let m = first(lanes);
            // SAFETY: reads of dy and argmax cover `o .. o + lanes`,
            // inside both; writes cover `start .. start + 2 lanes` in
            // rows `2 oh` and `2 oh + 1` of dx, inside the plane because
            // `2 (ow + lanes) <= w` and `2 oh + 1 < 2 h_out`. Masked
            // loads and stores touch only the selected lanes.
            unsafe {
                let g = _mm512_maskz_loadu_ps(m, dy.as_ptr().add(o));
                let a = _mm512_maskz_loadu_epi32(m, argmax.as_ptr().add(o).cast());
                // +0 turns -0 into +0, as the scatter's `0 + g` does.
                let g = _mm512_add_ps(g, zero);
                let i0 = _mm512_add_epi32(_mm512_set1_epi32(start as i32), even);
                let i2 = _mm512_add_epi32(i0, row);
                let (m0, m1) = (
                    _mm512_cmpeq_epi32_mask(a, i0),
                    _mm512_cmpeq_epi32_mask(a, _mm512_add_epi32(i0, one)),
                );
                let (m2, m3) = (
                    _mm512_cmpeq_epi32_mask(a, i2),
                    _mm512_cmpeq_epi32_mask(a, _mm512_add_epi32(i2, one)),
                );
                if (m0 | m1 | m2 | m3) & m != m {
                    return false;
                }
                let (s_lo, s_hi) = (first(2 * lanes), first((2 * lanes).saturating_sub(16)));
                for (r, (ma, mb)) in [(0, (m0, m1)), (w, (m2, m3))] {
                    let (va, vb) = (_mm512_maskz_mov_ps(ma, g), _mm512_maskz_mov_ps(mb, g));
                    let pd = dx.as_mut_ptr().add(start + r);
                    _mm512_mask_storeu_ps(pd, s_lo, _mm512_permutex2var_ps(va, zip_lo, vb));
                    _mm512_mask_storeu_ps(pd.add(16), s_hi, _mm512_permutex2var_ps(va, zip_hi, vb));
                }
            }
            ow += lanes;
        }
    }
    true
}
