//! The direct-convolution kernels compiled for AVX-512F, bit-identical to
//! the AVX2 ones.
//!
//! The forward tiles add each output's taps in the same order, with twice
//! the positions per instruction. The weight-gradient tiles keep the AVX2
//! tiles' 8-lane partial sums (summing 16 positions per lane instead
//! changes the rounding, and with it where the LeNet-5 curve leaves
//! PyTorch's): each 16-lane vector holds two output channels at the same
//! 8 positions, multiplied by those 8 inputs broadcast to both halves.

use super::{Flat, QT, V, read_end, reduce_lanes, spread};

/// Output-channel pairs (the last one half zeros when `cout` is odd).
fn pairs(f: &Flat) -> usize {
    f.cout.div_ceil(2)
}

/// Scratch floats [`bw_chunk`] needs (with room to align its vectors).
pub(super) fn bw_scratch_len(f: &Flat) -> usize {
    2 * V + pairs(f) * 2 * f.q + f.cin * f.cs + f.cout * f.q + f.cout * f.taps() * V
}

/// Adds `sum_q dy[co][q] xp[ci][q + ki wp + kj0 + j]` into the lane
/// vectors of `acc_v` (as [`super::bw_tile`] does, the same 8-lane
/// partial sums) for the channels `co` of pairs `cp0..cp0 + CP`,
/// `j < KW`, every `ci`, `ki`.
///
/// `dyp[(cp nq + qb) 2V..][..2V]` holds positions `8 qb..8 qb + 8` of
/// channel `2 cp`, then of channel `2 cp + 1` (`nq = q / V`).
///
/// # Safety
/// The CPU must support AVX-512F and AVX2.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn bw_tile<const CP: usize, const KW: usize>(
    f: &Flat,
    xp: &[f32],
    dyp: &[f32],
    cp0: usize,
    kj0: usize,
    acc_v: &mut [f32],
) {
    use std::arch::x86_64::*;
    let taps = f.taps();
    let nq = f.q / V;
    assert!(read_end(f) <= xp.len() && (cp0 + CP) * nq * 2 * V <= dyp.len());
    assert!(kj0 + KW <= f.kw && 2 * cp0 < f.cout && f.q.is_multiple_of(V));
    assert!(f.cout * taps * V <= acc_v.len());
    for ci in 0..f.cin {
        for ki in 0..f.kh {
            // SAFETY (all loads and stores below): x reads reach
            // ci cs + ki wp + kj0 + KW - 1 + q - 1 < read_end, dy reads
            // (cp0 + CP) nq 2V - 1, acc_v at most cout taps V - 1 (the
            // second channel of a pair is stored only when it exists);
            // all asserted above.
            unsafe {
                let xr = xp.as_ptr().add(ci * f.cs + ki * f.wp + kj0);
                let dr = dyp.as_ptr().add(cp0 * nq * 2 * V);
                let mut acc = [[_mm512_setzero_ps(); KW]; CP];
                for qb in 0..nq {
                    let dv: [__m512; CP] =
                        std::array::from_fn(|b| _mm512_loadu_ps(dr.add((b * nq + qb) * 2 * V)));
                    for j in 0..KW {
                        let x8 = _mm256_loadu_ps(xr.add(qb * V + j));
                        let xv = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(x8)));
                        for b in 0..CP {
                            acc[b][j] = _mm512_fmadd_ps(dv[b], xv, acc[b][j]);
                        }
                    }
                }
                let t0 = (ci * f.kh + ki) * f.kw + kj0;
                for (b, a_b) in acc.iter().enumerate() {
                    let co = 2 * (cp0 + b);
                    for (j, a) in a_b.iter().enumerate() {
                        let halves = [
                            _mm512_castps512_ps256(*a),
                            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(*a))),
                        ];
                        for (h, half) in halves.iter().enumerate().take(f.cout - co) {
                            let p = acc_v.as_mut_ptr().add(((co + h) * taps + t0 + j) * V);
                            _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), *half));
                        }
                    }
                }
            }
        }
    }
}

/// The weight gradient of a chunk of images (see [`super::bw_chunk`]),
/// two output channels per vector.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn bw_chunk(
    f: &Flat,
    x: &[f32],
    dy: &[f32],
    dw_part: &mut [f32],
    scratch: &mut [f32],
) {
    use std::arch::x86_64::*;
    let (taps, nq, np) = (f.taps(), f.q / V, pairs(f));
    // Start the paired dy on a cache line, so its loads are aligned.
    let skip = scratch.as_ptr().align_offset(64).min(2 * V);
    let (dyp, rest) = scratch[skip..].split_at_mut(np * 2 * f.q);
    let (xp, rest) = rest.split_at_mut(f.cin * f.cs);
    let (dyq, rest) = rest.split_at_mut(f.cout * f.q);
    let acc_v = &mut rest[..f.cout * taps * V];
    for buf in [&mut *acc_v, &mut *xp, &mut *dyq, &mut *dyp] {
        buf.fill(0.0);
    }
    let (xi, yi) = (f.x_image(), f.y_image());
    for (x_n, dy_n) in x.chunks_exact(xi).zip(dy.chunks_exact(yi)) {
        spread(x_n, f.cin, f.h, f.w, f.ph, f.pw, f.wp, f.cs, xp);
        spread(dy_n, f.cout, f.h_out, f.w_out, 0, 0, f.wp, f.q, dyq);
        // Channel pairs; an odd last channel keeps zeros beside it.
        for (co, plane) in dyq.chunks_exact(f.q).enumerate() {
            let (cp, h) = (co / 2, co % 2);
            for qb in 0..nq {
                // SAFETY: qb V + V <= q and (cp nq + qb) 2V + (h + 1) V
                // <= np 2 q = dyp.len(); AVX2 per the caller.
                unsafe {
                    let v = _mm256_loadu_ps(plane.as_ptr().add(qb * V));
                    _mm256_storeu_ps(dyp.as_mut_ptr().add((cp * nq + qb) * 2 * V + h * V), v);
                }
            }
        }
        // Pairs per tile: four for 3-wide kernels (12 accumulators,
        // W3's weight gradient -8% against three; six measured slower),
        // three otherwise (four made no difference for 5-wide ones).
        let widest = if f.kw == 3 { 4 } else { 3 };
        let mut cp = 0;
        while cp < np {
            let cpb = (np - cp).min(widest);
            // SAFETY: the caller guarantees AVX-512F, AVX2 and FMA.
            unsafe {
                match (cpb, f.kw) {
                    (4, 3) => bw_tile::<4, 3>(f, xp, dyp, cp, 0, acc_v),
                    (3, 3) => bw_tile::<3, 3>(f, xp, dyp, cp, 0, acc_v),
                    (2, 3) => bw_tile::<2, 3>(f, xp, dyp, cp, 0, acc_v),
                    (_, 3) => bw_tile::<1, 3>(f, xp, dyp, cp, 0, acc_v),
                    (3, 5) => bw_tile::<3, 5>(f, xp, dyp, cp, 0, acc_v),
                    (2, 5) => bw_tile::<2, 5>(f, xp, dyp, cp, 0, acc_v),
                    (_, 5) => bw_tile::<1, 5>(f, xp, dyp, cp, 0, acc_v),
                    (3, _) => {
                        for kj in 0..f.kw {
                            bw_tile::<3, 1>(f, xp, dyp, cp, kj, acc_v);
                        }
                    }
                    (2, _) => {
                        for kj in 0..f.kw {
                            bw_tile::<2, 1>(f, xp, dyp, cp, kj, acc_v);
                        }
                    }
                    _ => {
                        for kj in 0..f.kw {
                            bw_tile::<1, 1>(f, xp, dyp, cp, kj, acc_v);
                        }
                    }
                }
            }
            cp += cpb;
        }
    }
    reduce_lanes(acc_v, dw_part);
}

/// 16-position vectors per AVX-512 forward tile: `CB` channels x `NV`
/// accumulators (at most 8 x 3 = 24 of the 32 registers; 48 positions
/// also divide conv2 of LeNet-5 exactly, q = 144).
const NV: usize = 3;

/// `out[co0 + b][q0..q0 + N QT]` for `b < CB` (see [`super::fwd_tile`]).
///
/// # Safety
/// The CPU must support AVX-512F; the caller asserts the bounds of
/// [`fwd_tile`] and `q0 + N QT <= q`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn fwd_block<const CB: usize, const N: usize>(
    f: &Flat,
    xp: &[f32],
    wpk: &[f32],
    co0: usize,
    out: &mut [f32],
    q0: usize,
) {
    use std::arch::x86_64::*;
    // SAFETY (all loads and stores below): x reads reach
    // (cin - 1) cs + (kh - 1) wp + kw - 1 + q - 1 < read_end, weight
    // reads taps CB - 1, out writes (co0 + CB) q - 1; all asserted by
    // the caller.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); N]; CB];
        let rows = f.tap_rows(q0, N * QT);
        for ci in 0..f.cin {
            for ki in rows.clone() {
                let xr = xp.as_ptr().add(ci * f.cs + ki * f.wp + q0);
                let wr = wpk.as_ptr().add((ci * f.kh + ki) * f.kw * CB);
                for kj in 0..f.kw {
                    let xv: [__m512; N] =
                        std::array::from_fn(|v| _mm512_loadu_ps(xr.add(kj + v * QT)));
                    for b in 0..CB {
                        let wv = _mm512_set1_ps(*wr.add(kj * CB + b));
                        for v in 0..N {
                            acc[b][v] = _mm512_fmadd_ps(wv, xv[v], acc[b][v]);
                        }
                    }
                }
            }
        }
        for (b, a) in acc.iter().enumerate() {
            let o = out.as_mut_ptr().add((co0 + b) * f.q + q0);
            for (v, a) in a.iter().enumerate() {
                _mm512_storeu_ps(o.add(v * QT), *a);
            }
        }
    }
}

/// [`super::fwd_tile`] with AVX-512F intrinsics: tiles of [`NV`]
/// vectors, then one tile of the vectors left.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
pub(super) unsafe fn fwd_tile<const CB: usize>(
    f: &Flat,
    xp: &[f32],
    wpk: &[f32],
    co0: usize,
    out: &mut [f32],
) {
    let taps = f.taps();
    assert!(read_end(f) <= xp.len() && f.q.is_multiple_of(QT));
    assert!(taps * CB <= wpk.len() && (co0 + CB) * f.q <= out.len());
    let full = f.q - f.q % (NV * QT);
    // SAFETY: bounds asserted above; every block ends at or before q.
    unsafe {
        for q0 in (0..full).step_by(NV * QT) {
            fwd_block::<CB, NV>(f, xp, wpk, co0, out, q0);
        }
        match (f.q - full) / QT {
            0 => {}
            1 => fwd_block::<CB, 1>(f, xp, wpk, co0, out, full),
            2 => fwd_block::<CB, 2>(f, xp, wpk, co0, out, full),
            _ => fwd_block::<CB, 3>(f, xp, wpk, co0, out, full),
        }
    }
}

/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn fwd_chunk(
    f: &Flat,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    super::fwd_chunk::<true, true>(f, x, w, bias, y, scratch);
}
