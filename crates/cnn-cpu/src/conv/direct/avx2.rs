//! The direct-convolution kernels compiled for AVX2 + FMA.

use super::{Flat, QT, V, read_end};

/// [`super::fwd_tile`] with AVX2 + FMA intrinsics (taps walked as
/// `(ci, ki)` rows of `kw`, no offset table).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn fwd_tile<const CB: usize>(
    f: &Flat,
    xp: &[f32],
    wpk: &[f32],
    co0: usize,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let taps = f.taps();
    assert!(read_end(f) <= xp.len() && f.q.is_multiple_of(QT));
    assert!(taps * CB <= wpk.len() && (co0 + CB) * f.q <= out.len());
    for q0 in (0..f.q).step_by(QT) {
        // SAFETY (all loads and stores below): x reads reach
        // (cin - 1) cs + (kh - 1) wp + kw - 1 + q - 1 < read_end, weight
        // reads taps CB - 1, out writes (co0 + CB) q - 1; all asserted.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); 2]; CB];
            let rows = f.tap_rows(q0, QT);
            for ci in 0..f.cin {
                for ki in rows.clone() {
                    let xr = xp.as_ptr().add(ci * f.cs + ki * f.wp + q0);
                    let wr = wpk.as_ptr().add((ci * f.kh + ki) * f.kw * CB);
                    for kj in 0..f.kw {
                        let x0 = _mm256_loadu_ps(xr.add(kj));
                        let x1 = _mm256_loadu_ps(xr.add(kj + V));
                        for b in 0..CB {
                            let wv = _mm256_broadcast_ss(&*wr.add(kj * CB + b));
                            acc[b][0] = _mm256_fmadd_ps(wv, x0, acc[b][0]);
                            acc[b][1] = _mm256_fmadd_ps(wv, x1, acc[b][1]);
                        }
                    }
                }
            }
            for (b, a) in acc.iter().enumerate() {
                let o = out.as_mut_ptr().add((co0 + b) * f.q + q0);
                _mm256_storeu_ps(o, a[0]);
                _mm256_storeu_ps(o.add(V), a[1]);
            }
        }
    }
}

/// [`super::bw_tile`] with AVX2 + FMA intrinsics.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn bw_tile<const CB: usize, const KW: usize>(
    f: &Flat,
    xp: &[f32],
    dyq: &[f32],
    co0: usize,
    kj0: usize,
    acc_v: &mut [f32],
) {
    use std::arch::x86_64::*;
    let taps = f.taps();
    assert!(read_end(f) <= xp.len() && (co0 + CB) * f.q <= dyq.len() && kj0 + KW <= f.kw);
    assert!(f.q.is_multiple_of(V) && (co0 + CB) * taps * V <= acc_v.len());
    for ci in 0..f.cin {
        for ki in 0..f.kh {
            // SAFETY (all loads and stores below): x reads reach
            // ci cs + ki wp + kj0 + KW - 1 + q - 1 < read_end, dy reads
            // (co0 + CB) q - 1, acc_v (co0 + CB) taps V - 1; all
            // asserted above.
            unsafe {
                let xr = xp.as_ptr().add(ci * f.cs + ki * f.wp + kj0);
                let dr = dyq.as_ptr().add(co0 * f.q);
                let mut acc = [[_mm256_setzero_ps(); KW]; CB];
                for q0 in (0..f.q).step_by(V) {
                    let dv: [__m256; CB] =
                        std::array::from_fn(|b| _mm256_loadu_ps(dr.add(b * f.q + q0)));
                    for j in 0..KW {
                        let xv = _mm256_loadu_ps(xr.add(q0 + j));
                        for b in 0..CB {
                            acc[b][j] = _mm256_fmadd_ps(dv[b], xv, acc[b][j]);
                        }
                    }
                }
                let t0 = (ci * f.kh + ki) * f.kw + kj0;
                for (b, a_b) in acc.iter().enumerate() {
                    let d = acc_v.as_mut_ptr().add(((co0 + b) * taps + t0) * V);
                    for (j, a) in a_b.iter().enumerate() {
                        let p = d.add(j * V);
                        _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), *a));
                    }
                }
            }
        }
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn fwd_chunk(
    f: &Flat,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    super::fwd_chunk::<true, false>(f, x, w, bias, y, scratch);
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn bw_chunk(
    f: &Flat,
    x: &[f32],
    dy: &[f32],
    dw_part: &mut [f32],
    scratch: &mut [f32],
) {
    super::bw_chunk::<true>(f, x, dy, dw_part, scratch);
}
