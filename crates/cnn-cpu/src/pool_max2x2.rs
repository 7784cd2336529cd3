//! Max pooling over full, unpadded 2x2 windows at stride 2 (LeNet's, the
//! article's and VGG's pooling), forward and backward.
//!
//! Both versions keep the generic loop's scan order (row by row) and update
//! rule (a larger value or a NaN wins, the first of equal values is kept),
//! so values and argmax indices are bit-identical to `pool::max_pool_plane`.
//! On x86-64 with AVX2 eight outputs are computed at once (sixteen with
//! AVX-512F): the even and odd columns of each input row are separated
//! with shuffles, and the winner is chosen with compare masks and blends
//! instead of branches.

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

#[cfg(target_arch = "x86_64")]
mod avx2 {
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
}

/// The AVX-512F versions: sixteen windows per step, the same scan order
/// and update rule (so the same bits), with mask registers for the
/// comparisons and the partial last vector of a row.
#[cfg(target_arch = "x86_64")]
mod avx512 {
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
                        _mm512_mask_storeu_ps(
                            pd.add(16),
                            s_hi,
                            _mm512_permutex2var_ps(va, zip_hi, vb),
                        );
                    }
                }
                ow += lanes;
            }
        }
        true
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
            eprintln!("skipping the AVX2 max-pooling versions: this CPU has no AVX2");
        }
        if has_avx512() {
            v.push(("AVX-512", avx512::plane, avx512::backward_plane));
        } else {
            eprintln!("skipping the AVX-512 max-pooling versions: this CPU has no AVX-512F");
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
