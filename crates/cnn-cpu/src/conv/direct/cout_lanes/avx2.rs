//! The output-channel-lane weight-gradient tile with AVX2 + FMA
//! intrinsics: the same fused multiply-adds in the same order as the
//! portable [`super::tile`], so the same bits; and the transposition of
//! `dy` in 8 x 8 blocks.

use super::{Flat, Group, V};

/// [`super::tile`] with AVX2 + FMA vectors: per position `CV` loads of
/// `dyt`, `TT` broadcasts of `x`, `CV TT` FMAs into registers.
///
/// # Safety
/// The CPU must support AVX2 and FMA; the bounds of [`super::tile`].
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn tile<const CV: usize, const TT: usize>(
    g: &Group,
    offs: &[usize],
    xp: &[f32],
    dyt: &[f32],
    acc: &mut [f32],
) {
    use std::arch::x86_64::*;
    // SAFETY (all pointer arithmetic, loads and stores below): in bounds
    // by the caller's contract, as in the portable tile.
    unsafe {
        let mut a = [[_mm256_setzero_ps(); CV]; TT];
        for i in 0..g.imgs {
            for r in g.r0..g.r0 + g.rows {
                let mut xs = [xp.as_ptr(); TT];
                for t in 0..TT {
                    xs[t] = xp.as_ptr().add(offs[g.t0 + t] + i * g.xs_img + r * g.wp);
                }
                let d0 = dyt.as_ptr().add(i * g.dy_img + r * g.w_out * g.co8 + g.c0);
                for ow in 0..g.w_out {
                    let dq = d0.add(ow * g.co8);
                    let mut d = [_mm256_setzero_ps(); CV];
                    for v in 0..CV {
                        d[v] = _mm256_loadu_ps(dq.add(v * V));
                    }
                    for t in 0..TT {
                        let xv = _mm256_broadcast_ss(&*xs[t].add(ow));
                        for v in 0..CV {
                            a[t][v] = _mm256_fmadd_ps(d[v], xv, a[t][v]);
                        }
                    }
                }
            }
        }
        for t in 0..TT {
            let row = acc.as_mut_ptr().add((g.t0 + t) * g.co8 + g.c0);
            for v in 0..CV {
                let p = row.add(v * V);
                _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), a[t][v]));
            }
        }
    }
}

/// [`super::block`] compiled for AVX2 + FMA, its tiles inlined.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn block(
    f: &Flat,
    imgs: usize,
    offs: &[usize],
    xp: &[f32],
    dyt: &[f32],
    acc: &mut [f32],
) {
    super::block::<true>(f, imgs, offs, xp, dyt, acc);
}

/// [`super::transpose_dy`] with blocks of 8 channels x 8 positions
/// transposed in registers (the same values; the channels and positions
/// past the last full block one by one).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn transpose_dy(f: &Flat, co8: usize, dy: &[f32], dyt: &mut [f32]) {
    use std::arch::x86_64::*;
    let pos = f.h_out * f.w_out;
    assert!(f.cout * pos <= dy.len() && f.cout <= co8 && pos * co8 <= dyt.len());
    let (cfull, pfull) = (f.cout / V * V, pos / V * V);
    for c0 in (0..cfull).step_by(V) {
        for p0 in (0..pfull).step_by(V) {
            // SAFETY: channels c0..c0 + 8 at positions p0..p0 + 8 lie in dy
            // and in dyt (asserted above).
            unsafe {
                let src = dy.as_ptr().add(c0 * pos + p0);
                let mut r = [_mm256_setzero_ps(); V];
                for (i, ri) in r.iter_mut().enumerate() {
                    *ri = _mm256_loadu_ps(src.add(i * pos));
                }
                let t0 = _mm256_unpacklo_ps(r[0], r[1]);
                let t1 = _mm256_unpackhi_ps(r[0], r[1]);
                let t2 = _mm256_unpacklo_ps(r[2], r[3]);
                let t3 = _mm256_unpackhi_ps(r[2], r[3]);
                let t4 = _mm256_unpacklo_ps(r[4], r[5]);
                let t5 = _mm256_unpackhi_ps(r[4], r[5]);
                let t6 = _mm256_unpacklo_ps(r[6], r[7]);
                let t7 = _mm256_unpackhi_ps(r[6], r[7]);
                let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                let cols = [
                    _mm256_permute2f128_ps::<0x20>(s0, s4),
                    _mm256_permute2f128_ps::<0x20>(s1, s5),
                    _mm256_permute2f128_ps::<0x20>(s2, s6),
                    _mm256_permute2f128_ps::<0x20>(s3, s7),
                    _mm256_permute2f128_ps::<0x31>(s0, s4),
                    _mm256_permute2f128_ps::<0x31>(s1, s5),
                    _mm256_permute2f128_ps::<0x31>(s2, s6),
                    _mm256_permute2f128_ps::<0x31>(s3, s7),
                ];
                let dst = dyt.as_mut_ptr().add(p0 * co8 + c0);
                for (j, c) in cols.iter().enumerate() {
                    _mm256_storeu_ps(dst.add(j * co8), *c);
                }
            }
        }
        for p in pfull..pos {
            for c in c0..c0 + V {
                dyt[p * co8 + c] = dy[c * pos + p];
            }
        }
    }
    for c in cfull..f.cout {
        for p in 0..pos {
            dyt[p * co8 + c] = dy[c * pos + p];
        }
    }
}
