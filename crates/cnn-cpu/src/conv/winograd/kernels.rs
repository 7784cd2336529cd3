//! The per-image loops around the transforms: packing an image into the
//! channel-interleaved padded layout, the input transform of its tiles,
//! the output transform (with the bias) scattered back to NCHW, and the
//! output gradient's transform, and the kernels' transforms to and from
//! `u (A A, c, k)`. Each is compiled twice, portable and with
//! AVX2 + FMA enabled (eight lanes in one vector), and chosen at run time;
//! both give the same bits (no FMA contraction, see `transform`). The
//! AVX2 versions move whole rows of four outputs between the eight
//! channel lanes and NCHW with in-register transposes where a tile and
//! its eight channels are complete (entry 41), the portable ones one
//! value at a time.
//!
//! Layouts (see the parent module): `xp (c8 / 8, hp, wp, 8)`; the
//! transformed input `v (A A, tb, c8)` and the products `m (A A, tb, k8)`,
//! each position's plane padded (`Geo::v_plane`, `Geo::m_plane`);
//! `t0 + ti tw + tj` is the tile's row in a block of `tb` tiles.

#![allow(clippy::needless_range_loop)]

use super::Geo;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::transform::{
    L, Lanes, MAX_A, Tile, TileLanes, input_tile, kernel_grad_lanes, kernel_lanes,
    output_grad_tile, output_tile,
};

/// Whether the AVX2 + FMA versions run.
fn avx2() -> bool {
    crate::cpu_features::avx2_fma()
}

/// `xp (c8 / 8, hp, wp, 8)` from one image `x (c, h, w)`: channel `c`
/// in lane `c % 8` of block `c / 8`, shifted by the padding, zeros
/// elsewhere.
#[inline(always)]
fn pack_impl<const AVX: bool>(g: &Geo, x: &[f32], xp: &mut [f32]) {
    let xp = &mut xp[..g.xp_len()];
    xp.fill(0.0);
    let rows = g.h.min(g.hp.saturating_sub(g.ph));
    let cols = g.w.min(g.wp.saturating_sub(g.pw));
    // Blocks of eight whole channels, eight columns at a time, by
    // in-register 8x8 transposes; the rest one value at a time.
    let (full, wide) = if AVX && cfg!(target_arch = "x86_64") {
        (g.c / L, cols / L * L)
    } else {
        (0, 0)
    };
    #[cfg(target_arch = "x86_64")]
    for cb in 0..full {
        for ih in 0..rows {
            let src = &x[(cb * L * g.h + ih) * g.w..];
            let at = ((cb * g.hp + ih + g.ph) * g.wp + g.pw) * L;
            for j0 in (0..wide).step_by(L) {
                // SAFETY: AVX is true only in `pack_avx2`, which runs
                // where AVX2 was detected.
                unsafe { interleave8(&src[j0..], g.h * g.w, &mut xp[at + j0 * L..][..L * L]) };
            }
        }
    }
    for c in 0..g.c {
        let (cb, l) = (c / L, c % L);
        let done = if cb < full { wide } else { 0 };
        for ih in 0..rows {
            let src = &x[(c * g.h + ih) * g.w..][done..cols];
            let at = ((cb * g.hp + ih + g.ph) * g.wp + g.pw + done) * L;
            let dst = &mut xp[at..][..(cols - done) * L];
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
                        let at = (a * T::A + b) * g.v_plane(tb) + t * g.c8 + cb * L;
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
fn output_impl<T: Tile, const AVX: bool>(
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
                        let at = (a * T::A + b) * g.m_plane(tb) + t * g.k8 + kb * L;
                        mt[a][b].copy_from_slice(&m[at..at + L]);
                    }
                }
                output_tile::<T>(&mt, &mut yt);
                #[cfg(target_arch = "x86_64")]
                if AVX && T::M == 4 && cols == 4 && (kb + 1) * L <= g.k {
                    let bl: Lanes = std::array::from_fn(|l| bias.map_or(0.0, |b| b[kb * L + l]));
                    for (i, yr) in yt.iter().enumerate().take(rows) {
                        let at = kb * L * plane + (ti * T::M + i) * g.wo + tj * T::M;
                        // SAFETY: AVX is true only in `output_avx2`, which
                        // runs where AVX2 was detected.
                        unsafe { store_lanes_t(yr, &bl, &mut y[at..], plane) };
                    }
                    continue;
                }
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
fn output_grad_impl<T: Tile, const AVX: bool>(
    g: &Geo,
    dy: &[f32],
    dm: &mut [f32],
    tb: usize,
    t0: usize,
) {
    let mut out: TileLanes = [[[0.0; L]; MAX_A]; MAX_A];
    let plane = g.ho * g.wo;
    for ti in 0..g.th {
        let rows = T::M.min(g.ho - ti * T::M);
        for tj in 0..g.tw {
            let cols = T::M.min(g.wo - tj * T::M);
            let t = t0 + ti * g.tw + tj;
            for kb in 0..g.k8 / L {
                let mut dyt: [[Lanes; 4]; 4] = [[[0.0; L]; 4]; 4];
                #[cfg(target_arch = "x86_64")]
                let done = if AVX && T::M == 4 && cols == 4 && (kb + 1) * L <= g.k {
                    for (i, dr) in dyt.iter_mut().enumerate().take(rows) {
                        let at = kb * L * plane + (ti * T::M + i) * g.wo + tj * T::M;
                        // SAFETY: AVX is true only in `output_grad_avx2`,
                        // which runs where AVX2 was detected.
                        unsafe { load_lanes_t(&dy[at..], plane, dr) };
                    }
                    true
                } else {
                    false
                };
                #[cfg(not(target_arch = "x86_64"))]
                let done = false;
                for l in 0..if done { 0 } else { L.min(g.k - kb * L) } {
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
                        let at = (a * T::A + b) * g.m_plane(tb) + t * g.k8 + kb * L;
                        dm[at..at + L].copy_from_slice(&out[a][b]);
                    }
                }
            }
        }
    }
}

/// `u (A A, c, k)` from the kernels `w (k, c, 3, 3)`, eight output
/// channels at a time ([`kernel_lanes`]: the scalar transform's bits),
/// written in runs of eight along `k`.
#[inline(always)]
fn kernel_transform_impl<T: Tile>(g: &Geo, w: &[f32], u: &mut [f32]) {
    let mut gk = [[[0.0f32; L]; 3]; 3];
    let mut ut: TileLanes = [[[0.0; L]; MAX_A]; MAX_A];
    for c in 0..g.c {
        for kb in 0..g.k.div_ceil(L) {
            let lanes = L.min(g.k - kb * L);
            for l in 0..lanes {
                let src = &w[((kb * L + l) * g.c + c) * 9..][..9];
                for (k, &v) in src.iter().enumerate() {
                    gk[k / 3][k % 3][l] = v;
                }
            }
            kernel_lanes::<T>(&gk, &mut ut);
            for a in 0..T::A {
                for b in 0..T::A {
                    let at = ((a * T::A + b) * g.c + c) * g.k + kb * L;
                    u[at..at + lanes].copy_from_slice(&ut[a][b][..lanes]);
                }
            }
        }
    }
}

/// `out (k, c, 3, 3) = G^T dU G` from `du (A A, c, k)`, eight output
/// channels at a time ([`kernel_grad_lanes`]: the scalar transform's bits).
#[inline(always)]
fn kernel_grad_transform_impl<T: Tile>(g: &Geo, du: &[f32], out: &mut [f32]) {
    let mut dut: TileLanes = [[[0.0; L]; MAX_A]; MAX_A];
    let mut dg = [[[0.0f32; L]; 3]; 3];
    for c in 0..g.c {
        for kb in 0..g.k.div_ceil(L) {
            let lanes = L.min(g.k - kb * L);
            for a in 0..T::A {
                for b in 0..T::A {
                    let at = ((a * T::A + b) * g.c + c) * g.k + kb * L;
                    dut[a][b][..lanes].copy_from_slice(&du[at..at + lanes]);
                }
            }
            kernel_grad_lanes::<T>(&dut, &mut dg);
            for l in 0..lanes {
                let dst = &mut out[((kb * L + l) * g.c + c) * 9..][..9];
                for (k, d) in dst.iter_mut().enumerate() {
                    *d = dg[k / 3][k % 3][l];
                }
            }
        }
    }
}

/// Transposes of the four-by-four blocks in each 128-bit half: with
/// `r[j]` the eight channels of position `j`, half `h` of output `l`
/// holds channel `4 h + l` at positions `0..4` (and back: the same
/// network is its own inverse).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn transpose_halves(r: [__m256; 4]) -> [__m256; 4] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpacklo_ps(r[2], r[3]);
    let t2 = _mm256_unpackhi_ps(r[0], r[1]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    [
        _mm256_shuffle_ps::<0x44>(t0, t1),
        _mm256_shuffle_ps::<0xee>(t0, t1),
        _mm256_shuffle_ps::<0x44>(t2, t3),
        _mm256_shuffle_ps::<0xee>(t2, t3),
    ]
}

/// Eight channel rows of eight floats (`src[l plane..][..8]`) into eight
/// positions of eight lanes: `dst[q 8 + l] = src[l plane + q]`.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn interleave8(src: &[f32], plane: usize, dst: &mut [f32]) {
    let src = &src[..7 * plane + L];
    let dst = &mut dst[..L * L];
    let p = src.as_ptr();
    let r: [__m256; 8] = std::array::from_fn(|l| {
        // SAFETY: `src` holds eight floats from each of rows `l plane`.
        unsafe { _mm256_loadu_ps(p.add(l * plane)) }
    });
    let mut s = [_mm256_setzero_ps(); 8];
    for q in 0..2 {
        let lo0 = _mm256_unpacklo_ps(r[4 * q], r[4 * q + 1]);
        let hi0 = _mm256_unpackhi_ps(r[4 * q], r[4 * q + 1]);
        let lo1 = _mm256_unpacklo_ps(r[4 * q + 2], r[4 * q + 3]);
        let hi1 = _mm256_unpackhi_ps(r[4 * q + 2], r[4 * q + 3]);
        s[4 * q] = _mm256_shuffle_ps::<0x44>(lo0, lo1);
        s[4 * q + 1] = _mm256_shuffle_ps::<0xee>(lo0, lo1);
        s[4 * q + 2] = _mm256_shuffle_ps::<0x44>(hi0, hi1);
        s[4 * q + 3] = _mm256_shuffle_ps::<0xee>(hi0, hi1);
    }
    let out = dst.as_mut_ptr();
    for j in 0..4 {
        // SAFETY: `dst` holds 64 floats; rows j and j + 4 of eight.
        unsafe {
            _mm256_storeu_ps(
                out.add(j * L),
                _mm256_permute2f128_ps::<0x20>(s[j], s[4 + j]),
            );
            _mm256_storeu_ps(
                out.add((j + 4) * L),
                _mm256_permute2f128_ps::<0x31>(s[j], s[4 + j]),
            );
        }
    }
}

/// One row of a tile, four positions of eight channels (`yr[j]`) plus
/// each channel's bias, stored as four floats in each of eight channel
/// planes: `y[l plane + j] = yr[j][l] + bias[l]`.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn store_lanes_t(yr: &[Lanes; 4], bias: &Lanes, y: &mut [f32], plane: usize) {
    let y = &mut y[..7 * plane + 4];
    // SAFETY: the loads read whole `Lanes` arrays.
    let b = unsafe { _mm256_loadu_ps(bias.as_ptr()) };
    let r = std::array::from_fn(|j| {
        // SAFETY: as above.
        _mm256_add_ps(unsafe { _mm256_loadu_ps(yr[j].as_ptr()) }, b)
    });
    let q = transpose_halves(r);
    let p = y.as_mut_ptr();
    for (l, &v) in q.iter().enumerate() {
        // SAFETY: `y` holds channel planes 0..8 of four floats each
        // (its length was checked above).
        unsafe {
            _mm_storeu_ps(p.add(l * plane), _mm256_castps256_ps128(v));
            _mm_storeu_ps(p.add((l + 4) * plane), _mm256_extractf128_ps::<1>(v));
        }
    }
}

/// The inverse of [`store_lanes_t`] without the bias: `dr[j][l] =
/// dy[l plane + j]` for eight channel planes and four positions.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load_lanes_t(dy: &[f32], plane: usize, dr: &mut [Lanes; 4]) {
    let dy = &dy[..7 * plane + 4];
    let p = dy.as_ptr();
    let q: [__m256; 4] = std::array::from_fn(|l| {
        // SAFETY: `dy` holds channel planes 0..8 of four floats each.
        unsafe { _mm256_loadu2_m128(p.add((l + 4) * plane), p.add(l * plane)) }
    });
    let r = transpose_halves(q);
    for (d, v) in dr.iter_mut().zip(r) {
        // SAFETY: the store writes one whole `Lanes` array.
        unsafe { _mm256_storeu_ps(d.as_mut_ptr(), v) };
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_transform_avx2<T: Tile>(g: &Geo, w: &[f32], u: &mut [f32]) {
    kernel_transform_impl::<T>(g, w, u)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_grad_transform_avx2<T: Tile>(g: &Geo, du: &[f32], out: &mut [f32]) {
    kernel_grad_transform_impl::<T>(g, du, out)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_avx2(g: &Geo, x: &[f32], xp: &mut [f32]) {
    pack_impl::<true>(g, x, xp)
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
    output_impl::<T, true>(g, m, tb, t0, bias, y)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn output_grad_avx2<T: Tile>(g: &Geo, dy: &[f32], dm: &mut [f32], tb: usize, t0: usize) {
    output_grad_impl::<T, true>(g, dy, dm, tb, t0)
}

/// Pack one image `x (c, h, w)` into `xp` (see [`pack_impl`]).
pub(super) fn pack(g: &Geo, x: &[f32], xp: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 and FMA were detected.
        return unsafe { pack_avx2(g, x, xp) };
    }
    pack_impl::<false>(g, x, xp)
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
    output_impl::<T, false>(g, m, tb, t0, bias, y)
}

/// Transform one image's output gradient (see [`output_grad_impl`]).
pub(super) fn output_grad<T: Tile>(g: &Geo, dy: &[f32], dm: &mut [f32], tb: usize, t0: usize) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 and FMA were detected.
        return unsafe { output_grad_avx2::<T>(g, dy, dm, tb, t0) };
    }
    output_grad_impl::<T, false>(g, dy, dm, tb, t0)
}

/// Transform the kernels (see [`kernel_transform_impl`]).
pub(super) fn kernel_transform<T: Tile>(g: &Geo, w: &[f32], u: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 and FMA were detected.
        return unsafe { kernel_transform_avx2::<T>(g, w, u) };
    }
    kernel_transform_impl::<T>(g, w, u)
}

/// Transform the kernels' gradient back (see [`kernel_grad_transform_impl`]).
pub(super) fn kernel_grad_transform<T: Tile>(g: &Geo, du: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 and FMA were detected.
        return unsafe { kernel_grad_transform_avx2::<T>(g, du, out) };
    }
    kernel_grad_transform_impl::<T>(g, du, out)
}

#[cfg(test)]
mod tests {
    use cnn_core::{Conv2dGeometry, Conv2dParams};

    use super::super::transform::{F2, F4};
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5) - 1.0)
            .collect()
    }

    /// The AVX2 versions (in-register transposes where eight channels and
    /// whole rows or tiles exist) give the portable versions' bits, over
    /// channel counts and map widths with and without remainders.
    #[test]
    fn avx2_and_portable_moves_agree() {
        if !avx2() {
            return;
        }
        for (c, k, side, pad) in [
            (16, 24, 8, 1),
            (20, 13, 19, 1),
            (8, 8, 16, 0),
            (9, 17, 11, 2),
        ] {
            let geo = Conv2dGeometry::new(k, 3).padding(pad);
            let p = Conv2dParams::new(1, c, side, side, &geo).unwrap();
            for f4 in [true, false] {
                let g = if f4 {
                    Geo::new::<F4>(&p)
                } else {
                    Geo::new::<F2>(&p)
                };
                let x = values(g.x_image(), c);
                let (mut a, mut b) = (vec![1.0; g.xp_len()], vec![2.0; g.xp_len()]);
                pack_impl::<false>(&g, &x, &mut a);
                // SAFETY: AVX2 and FMA were detected.
                unsafe { pack_avx2(&g, &x, &mut b) };
                assert_eq!(a, b, "pack {c}->{k} @{side}");
                let tb = g.tiles();
                let m = values(g.m_len(tb), k);
                let bias = values(k, 3);
                let (mut ya, mut yb) = (vec![0.0; g.y_image()], vec![0.0; g.y_image()]);
                let (mut da, mut db) = (vec![0.0; g.m_len(tb)], vec![0.0; g.m_len(tb)]);
                if f4 {
                    output_impl::<F4, false>(&g, &m, tb, 0, Some(&bias), &mut ya);
                    // SAFETY: as above.
                    unsafe { output_avx2::<F4>(&g, &m, tb, 0, Some(&bias), &mut yb) };
                    output_grad_impl::<F4, false>(&g, &ya, &mut da, tb, 0);
                    // SAFETY: as above.
                    unsafe { output_grad_avx2::<F4>(&g, &ya, &mut db, tb, 0) };
                } else {
                    output_impl::<F2, false>(&g, &m, tb, 0, None, &mut ya);
                    // SAFETY: as above.
                    unsafe { output_avx2::<F2>(&g, &m, tb, 0, None, &mut yb) };
                    output_grad_impl::<F2, false>(&g, &ya, &mut da, tb, 0);
                    // SAFETY: as above.
                    unsafe { output_grad_avx2::<F2>(&g, &ya, &mut db, tb, 0) };
                }
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&ya), bits(&yb), "output {c}->{k} @{side} F4 {f4}");
                assert_eq!(bits(&da), bits(&db), "output grad {c}->{k} @{side} F4 {f4}");
            }
        }
    }
}
