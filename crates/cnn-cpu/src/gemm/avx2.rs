//! AVX2 + FMA microkernel: a 6 x 16 tile of C held in 12 ymm accumulators.
//!
//! Per depth step it loads one 16-float row of the packed B panel (two
//! vectors) and broadcasts each of the 6 packed A values, for 12 FMAs;
//! 12 accumulators + 2 B vectors + 1 broadcast fit the 16 ymm registers.
//! Full tiles with a unit column stride update C with vector loads and
//! stores; edge tiles and other strides go through a small stack tile.

use std::arch::x86_64::*;

use super::driver::{Microkernel, Tile};

/// The AVX2 + FMA kernel (see the module docs).
#[derive(Debug)]
pub(super) struct Avx2;

/// ymm vectors per tile row.
const NV: usize = 2;

impl Microkernel for Avx2 {
    const MR: usize = 6;
    const NR: usize = 8 * NV;
    // A 256 x 16 B panel is 16 KiB, half of a 32 KiB L1.
    const KC: usize = 256;
    const MC: usize = 6 * 40;
    const NC: usize = 16 * 256;

    unsafe fn transpose_a(runs: &[&[f32]], dst: &mut [f32]) {
        // SAFETY: the trait's contract; lanes 0..6 of the 6-float stride.
        unsafe { transpose_group(runs, dst, Self::MR, 0, Self::MR) }
    }

    unsafe fn transpose_b(runs: &[&[f32]], dst: &mut [f32]) {
        let (lo, hi) = runs.split_at(runs.len().min(8));
        // SAFETY: the trait's contract; lanes 0..8 and 8..16 of the
        // 16-float stride.
        unsafe {
            transpose_group(lo, dst, Self::NR, 0, 8);
            transpose_group(hi, dst, Self::NR, 8, 8);
        }
    }

    unsafe fn tile(t: &Tile) {
        // SAFETY: the trait's contract (CPU features, pointers, mr range).
        unsafe { tile(t) }
    }
}

/// Lanes `0..len` set (all bits of each 32-bit lane), for masked moves.
#[target_feature(enable = "avx2")]
#[inline]
fn lane_mask(len: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(len as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// `dst[p stride + lane0 + l] = runs[l][p]` for `l < width`, zero for
/// `l >= runs.len()`, `p < dst.len() / stride`: 8 x 8 blocks loaded from
/// the runs, transposed in registers, stored as panel rows.
///
/// # Safety
/// AVX2; `runs.len() <= width <= 8`; every run has at least
/// `dst.len() / stride` floats; `lane0 + width <= stride`.
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose_group(
    runs: &[&[f32]],
    dst: &mut [f32],
    stride: usize,
    lane0: usize,
    width: usize,
) {
    let steps = dst.len() / stride;
    let n = runs.len();
    let out = dst.as_mut_ptr();
    let store_mask = lane_mask(width);
    for p0 in (0..steps).step_by(8) {
        let len = (steps - p0).min(8);
        let load_mask = lane_mask(len);
        let mut r = [_mm256_setzero_ps(); 8];
        for (i, v) in r.iter_mut().enumerate() {
            if i < n {
                // SAFETY: the masked lanes are p0..p0 + len <= steps, inside
                // the run (caller's promise).
                *v = unsafe { _mm256_maskload_ps(runs[i].as_ptr().add(p0), load_mask) };
            }
        }
        let t = transpose8(&r);
        for (c, &v) in t.iter().enumerate() {
            if c < len {
                // SAFETY: step p0 + c < steps; the stored lanes end below
                // (p0 + c + 1) stride <= dst.len().
                unsafe { _mm256_maskstore_ps(out.add((p0 + c) * stride + lane0), store_mask, v) };
            }
        }
    }
}

/// 8 x 8 transpose: lane `i` of `out[c]` is lane `c` of `r[i]` (unpacks,
/// `shuffle_ps` within 128-bit lanes, then swapping 128-bit halves).
#[target_feature(enable = "avx2")]
#[inline]
fn transpose8(r: &[__m256; 8]) -> [__m256; 8] {
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
    let mut out = [_mm256_setzero_ps(); 8];
    for j in 0..4 {
        out[j] = _mm256_permute2f128_ps::<0x20>(s[j], s[4 + j]);
        out[4 + j] = _mm256_permute2f128_ps::<0x31>(s[j], s[4 + j]);
    }
    out
}

/// Dispatch on the tile height so each height gets a fully unrolled body.
///
/// # Safety
/// As [`Microkernel::tile`] with `MR = 6`, `NR = 16`, on a CPU with AVX2
/// and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile(t: &Tile) {
    // SAFETY: forwarded contract; each arm's M equals t.mr.
    unsafe {
        match t.mr {
            6 => tile_m::<6, { Avx2::MR }>(t),
            5 => tile_m::<5, { Avx2::MR }>(t),
            4 => tile_m::<4, { Avx2::MR }>(t),
            3 => tile_m::<3, { Avx2::MR }>(t),
            2 => tile_m::<2, { Avx2::MR }>(t),
            1 => tile_m::<1, { Avx2::MR }>(t),
            _ => unreachable!("tile height {} outside 1..=6", t.mr),
        }
    }
}

/// `M` rows of the tile; `MR` is the packed A panel's row stride.
///
/// # Safety
/// As [`tile`], with `t.mr == M <= MR`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_m<const M: usize, const MR: usize>(t: &Tile) {
    let mut acc = [[_mm256_setzero_ps(); NV]; M];
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.kc {
        // SAFETY: the panels hold kc steps of MR (A) and NR (B) floats, and
        // this loop runs kc steps.
        unsafe {
            let mut bv = [_mm256_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(b.add(8 * v));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*a.add(i));
                for (r, &bj) in row.iter_mut().zip(&bv) {
                    *r = _mm256_fmadd_ps(ai, bj, *r);
                }
            }
            a = a.add(MR);
            b = b.add(8 * NV);
        }
    }
    if t.csc == 1 && t.nr == 8 * NV {
        // Full width, unit column stride: straight from the registers.
        let alpha = _mm256_set1_ps(t.alpha);
        let beta = _mm256_set1_ps(t.beta);
        for (i, row) in acc.iter().enumerate() {
            for (v, &r) in row.iter().enumerate() {
                // SAFETY: row i < mr, columns 8 v..8 v + 8 <= nr: elements
                // of C with unit column stride (Microkernel contract).
                unsafe {
                    let cp = t.c.add(i * t.rsc + 8 * v);
                    let mut out = _mm256_mul_ps(alpha, r);
                    if t.beta != 0.0 {
                        out = _mm256_fmadd_ps(beta, _mm256_loadu_ps(cp), out);
                    }
                    _mm256_storeu_ps(cp, out);
                }
            }
        }
        return;
    }
    // Edge tiles and other strides go element by element from a stack
    // tile (constant indices into `acc` only, which keeps it in registers
    // through the depth loop).
    let mut spill = Spill([[0.0; 8 * NV]; M]);
    for (s, row) in spill.0.iter_mut().zip(&acc) {
        for (v, &r) in row.iter().enumerate() {
            // SAFETY: `s` has 8 NV floats; vector v covers 8 v..8 v + 8.
            unsafe { _mm256_store_ps(s.as_mut_ptr().add(8 * v), r) };
        }
    }
    for (i, s) in spill.0.iter().enumerate() {
        for (j, &x) in s[..t.nr].iter().enumerate() {
            // SAFETY: (i, j) with i < mr, j < nr is an element of C.
            unsafe {
                let cp = t.c.add(i * t.rsc + j * t.csc);
                *cp = if t.beta == 0.0 {
                    t.alpha * x
                } else {
                    t.alpha * x + t.beta * *cp
                };
            }
        }
    }
}

/// The accumulators in memory, aligned for whole-vector stores.
#[repr(C, align(32))]
struct Spill<const M: usize>([[f32; 8 * NV]; M]);
