//! AVX-512F microkernel: a 14 x 32 tile of C held in 28 zmm accumulators.
//!
//! Per depth step it loads one 32-float row of the packed B panel (two
//! vectors) and broadcasts each of the 14 packed A values, for 28 FMAs;
//! 28 accumulators + 2 B vectors + 1 broadcast fit the 32 zmm registers and
//! hide the FMA latency (4 cycles, two FMA ports) many times over. With a
//! unit column stride C is updated with masked vector loads and stores, so
//! a partial last column tile needs no scalar path.

use std::arch::x86_64::*;

use super::driver::{Microkernel, Tile};

/// The AVX-512F kernel (see the module docs).
#[derive(Debug)]
pub(super) struct Avx512;

/// zmm vectors per tile row.
const NV: usize = 2;

impl Microkernel for Avx512 {
    const MR: usize = 14;
    const NR: usize = 16 * NV;
    // A 256 x 32 B panel is 32 KiB of the 48 KiB L1; a 14-row A panel
    // (14 KiB) streams past it from L2.
    const KC: usize = 256;
    const MC: usize = 14 * 24;
    const NC: usize = 32 * 128;

    unsafe fn transpose_a(runs: &[&[f32]], dst: &mut [f32]) {
        // SAFETY: the trait's contract; lanes 0..14 of the 14-float stride.
        unsafe { transpose_group(runs, dst, Self::MR, 0, 0x3fff) }
    }

    unsafe fn transpose_b(runs: &[&[f32]], dst: &mut [f32]) {
        let (lo, hi) = runs.split_at(runs.len().min(16));
        // SAFETY: the trait's contract; lanes 0..16 and 16..32 of the
        // 32-float stride.
        unsafe {
            transpose_group(lo, dst, Self::NR, 0, 0xffff);
            transpose_group(hi, dst, Self::NR, 16, 0xffff);
        }
    }

    unsafe fn tile(t: &Tile) {
        // SAFETY: the trait's contract (CPU features, pointers, mr range).
        unsafe { tile(t) }
    }
}

/// `dst[p stride + lane0 + l] = runs[l][p]` for the lanes `l` set in
/// `store_mask`, zero for `l >= runs.len()`, `p < dst.len() / stride`:
/// 16 x 16 blocks loaded from the runs, transposed in registers, stored as
/// panel rows.
///
/// # Safety
/// AVX-512F; `runs.len() <= 16`; every run has at least `dst.len() / stride`
/// floats; `lane0` plus the highest bit of `store_mask` is below `stride`.
#[target_feature(enable = "avx512f")]
unsafe fn transpose_group(
    runs: &[&[f32]],
    dst: &mut [f32],
    stride: usize,
    lane0: usize,
    store_mask: __mmask16,
) {
    let steps = dst.len() / stride;
    let n = runs.len();
    let out = dst.as_mut_ptr();
    for p0 in (0..steps).step_by(16) {
        let len = (steps - p0).min(16);
        let load_mask: __mmask16 = if len == 16 { !0 } else { (1 << len) - 1 };
        let mut r = [_mm512_setzero_ps(); 16];
        for (i, v) in r.iter_mut().enumerate() {
            if i < n {
                // SAFETY: the masked lanes are p0..p0 + len <= steps, inside
                // the run (caller's promise).
                *v = unsafe { _mm512_maskz_loadu_ps(load_mask, runs[i].as_ptr().add(p0)) };
            }
        }
        let t = transpose16(&r);
        for (c, &v) in t.iter().enumerate() {
            if c < len {
                // SAFETY: step p0 + c < steps; the stored lanes end below
                // (p0 + c + 1) stride <= dst.len().
                unsafe { _mm512_mask_storeu_ps(out.add((p0 + c) * stride + lane0), store_mask, v) };
            }
        }
    }
}

/// 16 x 16 transpose: lane `i` of `out[c]` is lane `c` of `r[i]`.
///
/// Unpacks interleave row pairs, `shuffle_ps` gathers four rows per
/// 128-bit lane (so `s[4 q + j]` holds, in lane `L`, column `4 L + j` of
/// rows `4 q..4 q + 4`), and two rounds of 128-bit lane shuffles finish
/// the 4 x 4 lane transpose.
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose16(r: &[__m512; 16]) -> [__m512; 16] {
    let mut s = [_mm512_setzero_ps(); 16];
    for q in 0..4 {
        let lo0 = _mm512_unpacklo_ps(r[4 * q], r[4 * q + 1]);
        let hi0 = _mm512_unpackhi_ps(r[4 * q], r[4 * q + 1]);
        let lo1 = _mm512_unpacklo_ps(r[4 * q + 2], r[4 * q + 3]);
        let hi1 = _mm512_unpackhi_ps(r[4 * q + 2], r[4 * q + 3]);
        s[4 * q] = _mm512_shuffle_ps::<0x44>(lo0, lo1);
        s[4 * q + 1] = _mm512_shuffle_ps::<0xee>(lo0, lo1);
        s[4 * q + 2] = _mm512_shuffle_ps::<0x44>(hi0, hi1);
        s[4 * q + 3] = _mm512_shuffle_ps::<0xee>(hi0, hi1);
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for j in 0..4 {
        let (s0, s1, s2, s3) = (s[j], s[4 + j], s[8 + j], s[12 + j]);
        let x0 = _mm512_shuffle_f32x4::<0x44>(s0, s1);
        let x1 = _mm512_shuffle_f32x4::<0xee>(s0, s1);
        let x2 = _mm512_shuffle_f32x4::<0x44>(s2, s3);
        let x3 = _mm512_shuffle_f32x4::<0xee>(s2, s3);
        out[j] = _mm512_shuffle_f32x4::<0x88>(x0, x2);
        out[4 + j] = _mm512_shuffle_f32x4::<0xdd>(x0, x2);
        out[8 + j] = _mm512_shuffle_f32x4::<0x88>(x1, x3);
        out[12 + j] = _mm512_shuffle_f32x4::<0xdd>(x1, x3);
    }
    out
}

/// Dispatch on the tile height so each height gets a fully unrolled body.
///
/// # Safety
/// As [`Microkernel::tile`] with `MR = 14`, `NR = 32`, on a CPU with AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn tile(t: &Tile) {
    // SAFETY: forwarded contract; each arm's M equals t.mr.
    unsafe {
        match t.mr {
            14 => tile_m::<14, { Avx512::MR }>(t),
            13 => tile_m::<13, { Avx512::MR }>(t),
            12 => tile_m::<12, { Avx512::MR }>(t),
            11 => tile_m::<11, { Avx512::MR }>(t),
            10 => tile_m::<10, { Avx512::MR }>(t),
            9 => tile_m::<9, { Avx512::MR }>(t),
            8 => tile_m::<8, { Avx512::MR }>(t),
            7 => tile_m::<7, { Avx512::MR }>(t),
            6 => tile_m::<6, { Avx512::MR }>(t),
            5 => tile_m::<5, { Avx512::MR }>(t),
            4 => tile_m::<4, { Avx512::MR }>(t),
            3 => tile_m::<3, { Avx512::MR }>(t),
            2 => tile_m::<2, { Avx512::MR }>(t),
            1 => tile_m::<1, { Avx512::MR }>(t),
            _ => unreachable!("tile height {} outside 1..=14", t.mr),
        }
    }
}

/// `M` rows of the tile; `MR` is the packed A panel's row stride.
///
/// # Safety
/// As [`tile`], with `t.mr == M <= MR`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile_m<const M: usize, const MR: usize>(t: &Tile) {
    let mut acc = [[_mm512_setzero_ps(); NV]; M];
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.kc {
        // SAFETY: the panels hold kc steps of MR (A) and NR (B) floats, and
        // this loop runs kc steps.
        unsafe {
            let mut bv = [_mm512_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(b.add(16 * v));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*a.add(i));
                for (r, &bj) in row.iter_mut().zip(&bv) {
                    *r = _mm512_fmadd_ps(ai, bj, *r);
                }
            }
            a = a.add(MR);
            b = b.add(16 * NV);
        }
    }
    let alpha = _mm512_set1_ps(t.alpha);
    let beta = _mm512_set1_ps(t.beta);
    if t.csc == 1 && t.nr == 16 * NV {
        // Full width, unit column stride: straight from the registers.
        for (i, row) in acc.iter().enumerate() {
            for (v, &r) in row.iter().enumerate() {
                // SAFETY: row i < mr, columns 16 v..16 v + 16 <= nr: elements
                // of C with unit column stride (Microkernel contract).
                unsafe {
                    let cp = t.c.add(i * t.rsc + 16 * v);
                    let mut out = _mm512_mul_ps(alpha, r);
                    if t.beta != 0.0 {
                        out = _mm512_fmadd_ps(beta, _mm512_loadu_ps(cp), out);
                    }
                    _mm512_storeu_ps(cp, out);
                }
            }
        }
        return;
    }
    // Edge tiles leave the accumulators through a stack tile: every use of
    // `acc` is then a constant index after unrolling, which keeps all of it
    // in registers through the depth loop (a data-dependent index in the
    // masked write-back made LLVM store the 28 accumulators on every step).
    let mut spill = Spill([[0.0; 16 * NV]; M]);
    for (s, row) in spill.0.iter_mut().zip(&acc) {
        for (v, &r) in row.iter().enumerate() {
            // SAFETY: `s` has 16 NV floats; vector v covers 16 v..16 v + 16.
            unsafe { _mm512_store_ps(s.as_mut_ptr().add(16 * v), r) };
        }
    }
    if t.csc == 1 {
        // Lane masks of the columns that exist in a partial last tile.
        let bits: u64 = if t.nr >= 64 { !0 } else { (1u64 << t.nr) - 1 };
        for (i, s) in spill.0.iter().enumerate() {
            let cr = t.c.wrapping_add(i * t.rsc);
            for v in 0..NV {
                let mask = (bits >> (16 * v)) as __mmask16;
                if mask == 0 {
                    break;
                }
                let cp = cr.wrapping_add(16 * v);
                // SAFETY: the stack tile row has 16 NV floats; the masked
                // lanes are columns j < nr of row i < mr, elements of C
                // (Microkernel contract); masked-off lanes are not accessed.
                unsafe {
                    let mut out = _mm512_mul_ps(alpha, _mm512_load_ps(s.as_ptr().add(16 * v)));
                    if t.beta != 0.0 {
                        let old = _mm512_maskz_loadu_ps(mask, cp);
                        out = _mm512_fmadd_ps(beta, old, out);
                    }
                    _mm512_mask_storeu_ps(cp, mask, out);
                }
            }
        }
    } else {
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
}

/// The accumulators in memory, aligned for whole-vector stores.
#[repr(C, align(64))]
struct Spill<const M: usize>([[f32; 16 * NV]; M]);
