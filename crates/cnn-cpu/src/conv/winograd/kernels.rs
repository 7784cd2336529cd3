//! The per-image loops around the transforms: packing an image into the
//! channel-interleaved padded layout, the input transform of its tiles,
//! the output transform (with the bias) scattered back to NCHW, and the
//! output gradient's transform. Each is compiled twice, portable and with
//! AVX2 + FMA enabled (eight lanes in one vector), and chosen at run time;
//! both give the same bits (no FMA contraction, see `transform`).
//!
//! Layouts (see the parent module): `xp (c8 / 8, hp, wp, 8)`; the
//! transformed input `v (A A, tb, c8)`; the products `m (A A, tb, k8)`;
//! `t0 + ti tw + tj` is the tile's row in a block of `tb` tiles.

#![allow(clippy::needless_range_loop)]

use super::Geo;
use super::transform::{
    L, Lanes, MAX_A, Tile, TileLanes, input_tile, output_grad_tile, output_tile,
};

/// Whether the AVX2 + FMA versions run.
fn avx2() -> bool {
    crate::cpu_features::avx2_fma()
}

/// `xp (c8 / 8, hp, wp, 8)` from one image `x (c, h, w)`: channel `c`
/// in lane `c % 8` of block `c / 8`, shifted by the padding, zeros
/// elsewhere.
#[inline(always)]
fn pack_impl(g: &Geo, x: &[f32], xp: &mut [f32]) {
    let xp = &mut xp[..g.xp_len()];
    xp.fill(0.0);
    let rows = g.h.min(g.hp.saturating_sub(g.ph));
    let cols = g.w.min(g.wp.saturating_sub(g.pw));
    for c in 0..g.c {
        let (cb, l) = (c / L, c % L);
        for ih in 0..rows {
            let src = &x[(c * g.h + ih) * g.w..][..cols];
            let dst = &mut xp[((cb * g.hp + ih + g.ph) * g.wp + g.pw) * L..][..cols * L];
            for (d, &s) in dst.chunks_exact_mut(L).zip(src) {
                d[l] = s;
            }
        }
    }
}

/// Input transform of every tile of one packed image into rows
/// `t0..t0 + tiles` of `v (A A, tb, c8)`.
#[inline(always)]
fn input_impl<T: Tile>(g: &Geo, xp: &[f32], v: &mut [f32], tb: usize, t0: usize) {
    let mut d: TileLanes = [[[0.0; L]; MAX_A]; MAX_A];
    let mut out: TileLanes = [[[0.0; L]; MAX_A]; MAX_A];
    for cb in 0..g.c8 / L {
        for ti in 0..g.th {
            for tj in 0..g.tw {
                for a in 0..T::A {
                    let row = &xp[((cb * g.hp + ti * T::M + a) * g.wp + tj * T::M) * L..];
                    for b in 0..T::A {
                        d[a][b].copy_from_slice(&row[b * L..][..L]);
                    }
                }
                input_tile::<T>(&d, &mut out);
                let t = t0 + ti * g.tw + tj;
                for a in 0..T::A {
                    for b in 0..T::A {
                        let at = ((a * T::A + b) * tb + t) * g.c8 + cb * L;
                        v[at..at + L].copy_from_slice(&out[a][b]);
                    }
                }
            }
        }
    }
}

/// Output transform of rows `t0..` of `m (A A, tb, k8)` into one image
/// `y (k, h_out, w_out)`, plus the bias; positions past the map's edge are
/// dropped.
#[inline(always)]
fn output_impl<T: Tile>(
    g: &Geo,
    m: &[f32],
    tb: usize,
    t0: usize,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let mut mt: TileLanes = [[[0.0; L]; MAX_A]; MAX_A];
    let mut yt = [[[0.0; L]; 4]; 4];
    let plane = g.ho * g.wo;
    for ti in 0..g.th {
        let rows = T::M.min(g.ho - ti * T::M);
        for tj in 0..g.tw {
            let cols = T::M.min(g.wo - tj * T::M);
            let t = t0 + ti * g.tw + tj;
            for kb in 0..g.k8 / L {
                for a in 0..T::A {
                    for b in 0..T::A {
                        let at = ((a * T::A + b) * tb + t) * g.k8 + kb * L;
                        mt[a][b].copy_from_slice(&m[at..at + L]);
                    }
                }
                output_tile::<T>(&mt, &mut yt);
                for l in 0..L.min(g.k - kb * L) {
                    let k = kb * L + l;
                    let bv = bias.map_or(0.0, |b| b[k]);
                    let at = k * plane + ti * T::M * g.wo + tj * T::M;
                    for i in 0..rows {
                        // One row of the tile, gathered from the lanes and
                        // stored at once.
                        let row: [f32; 4] = std::array::from_fn(|j| yt[i][j][l] + bv);
                        y[at + i * g.wo..][..cols].copy_from_slice(&row[..cols]);
                    }
                }
            }
        }
    }
}

/// The output gradient's transform `A dy A^T` of one image
/// `dy (k, h_out, w_out)` (zeros past the map's edge) into rows `t0..` of
/// `dm (A A, tb, k8)`.
#[inline(always)]
fn output_grad_impl<T: Tile>(g: &Geo, dy: &[f32], dm: &mut [f32], tb: usize, t0: usize) {
    let mut out: TileLanes = [[[0.0; L]; MAX_A]; MAX_A];
    let plane = g.ho * g.wo;
    for ti in 0..g.th {
        let rows = T::M.min(g.ho - ti * T::M);
        for tj in 0..g.tw {
            let cols = T::M.min(g.wo - tj * T::M);
            let t = t0 + ti * g.tw + tj;
            for kb in 0..g.k8 / L {
                let mut dyt: [[Lanes; 4]; 4] = [[[0.0; L]; 4]; 4];
                for l in 0..L.min(g.k - kb * L) {
                    let k = kb * L + l;
                    let at = k * plane + ti * T::M * g.wo + tj * T::M;
                    for i in 0..rows {
                        for (j, &v) in dy[at + i * g.wo..][..cols].iter().enumerate() {
                            dyt[i][j][l] = v;
                        }
                    }
                }
                output_grad_tile::<T>(&dyt, &mut out);
                for a in 0..T::A {
                    for b in 0..T::A {
                        let at = ((a * T::A + b) * tb + t) * g.k8 + kb * L;
                        dm[at..at + L].copy_from_slice(&out[a][b]);
                    }
                }
            }
        }
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_avx2(g: &Geo, x: &[f32], xp: &mut [f32]) {
    pack_impl(g, x, xp)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn input_avx2<T: Tile>(g: &Geo, xp: &[f32], v: &mut [f32], tb: usize, t0: usize) {
    input_impl::<T>(g, xp, v, tb, t0)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn output_avx2<T: Tile>(
    g: &Geo,
    m: &[f32],
    tb: usize,
    t0: usize,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    output_impl::<T>(g, m, tb, t0, bias, y)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn output_grad_avx2<T: Tile>(g: &Geo, dy: &[f32], dm: &mut [f32], tb: usize, t0: usize) {
    output_grad_impl::<T>(g, dy, dm, tb, t0)
}

/// Pack one image `x (c, h, w)` into `xp` (see [`pack_impl`]).
pub(super) fn pack(g: &Geo, x: &[f32], xp: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 and FMA were detected.
        return unsafe { pack_avx2(g, x, xp) };
    }
    pack_impl(g, x, xp)
}

/// Transform the tiles of one packed image (see [`input_impl`]).
pub(super) fn input<T: Tile>(g: &Geo, xp: &[f32], v: &mut [f32], tb: usize, t0: usize) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 and FMA were detected.
        return unsafe { input_avx2::<T>(g, xp, v, tb, t0) };
    }
    input_impl::<T>(g, xp, v, tb, t0)
}

/// Transform one image's products back (see [`output_impl`]).
pub(super) fn output<T: Tile>(
    g: &Geo,
    m: &[f32],
    tb: usize,
    t0: usize,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 and FMA were detected.
        return unsafe { output_avx2::<T>(g, m, tb, t0, bias, y) };
    }
    output_impl::<T>(g, m, tb, t0, bias, y)
}

/// Transform one image's output gradient (see [`output_grad_impl`]).
pub(super) fn output_grad<T: Tile>(g: &Geo, dy: &[f32], dm: &mut [f32], tb: usize, t0: usize) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 and FMA were detected.
        return unsafe { output_grad_avx2::<T>(g, dy, dm, tb, t0) };
    }
    output_grad_impl::<T>(g, dy, dm, tb, t0)
}
