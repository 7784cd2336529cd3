//! The weight gradient of stride-1 convolutions with the output channels
//! in the vector lanes: a small GEMM per image, `dW (taps x c_out) +=
//! patches (taps x positions) dY^T (positions x c_out)`, whose patch operand is read in
//! place from the padded input (never an im2col matrix).
//!
//! # Layout and order
//!
//! Per image, the input is copied into the flat padded layout of the
//! parent module (`Flat`: plane stride `cs`, row length `wp`, output
//! position `(oh, ow)` at `oh wp + ow`, tap `(ci, ki, kj)` at offset
//! `ci cs + ki wp + kj`), and `dy` is transposed to `dyt[oh w_out + ow][co]` with the
//! channels rounded up to a multiple of 8 (`co8`, zeros past `c_out`).
//! Only the valid output positions are visited (no columns past `w_out`,
//! unlike the flat forward tiles). A tile holds `CV` vectors of 8 output
//! channels times `TT` taps in registers (2 x 6 = 12 on AVX2: per
//! position 2 vector loads of `dyt`, 6 broadcasts of `x`, 12 FMAs; no
//! lane reduction, as each lane is its own output channel).
//!
//! Positions run in blocks of whole output rows, about [`QB`] positions
//! (the block's `dyt` rows and the input rows it reads stay in L1 while
//! every tile of the block passes over them); on small maps a block
//! holds several whole images, so that tiles stay long. Each
//! weight-gradient element `dw[co][t]` of a part of the batch is
//! therefore
//!
//! ```text
//! part = sum over blocks in order of
//!        (FMA chain over the block's (image, position) in order, from +0)
//! ```
//!
//! added into a per-part accumulator with one plain add per block: the
//! same operations whatever the tile shapes, so the portable kernel
//! (`f32::mul_add`) and the AVX2 one (`vfmadd`) give the same bits. The
//! parts of the batch are summed in order by the parent's
//! `sum_weight_parts`, as for the other weight-gradient paths (the result
//! depends on the thread count, never on scheduling, and a data-parallel
//! step gives the same).

#![allow(clippy::needless_range_loop)]

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(test)]
mod tests;

use cnn_core::Conv2dParams;

use super::{Flat, MAX_TAPS, PAR_MIN_FLOPS, V, avx2_fma, read_end, spread, sum_weight_parts};
use crate::CpuBackend;
use crate::par::with_scratch;

/// Output positions per block: 256 rows of `dyt` (16 KB of one pair of
/// channel vectors) stay in L1 while the tiles sweep the input.
const QB: usize = 128;
/// Most images in one block (small maps).
const MAX_BLOCK_IMAGES: usize = 16;
/// Largest `c_out` the kernel takes (the per-part accumulator and the
/// transposed `dy` grow with it).
const MAX_COUT: usize = 256;

/// Whether the kernel takes `p`: stride 1, undilated, ungrouped, padding
/// below the kernel size, at most [`MAX_TAPS`] taps and [`MAX_COUT`]
/// output channels.
pub(crate) fn takes(p: &Conv2dParams) -> bool {
    p.groups == 1
        && p.stride_h == 1
        && p.stride_w == 1
        && p.dil_h == 1
        && p.dil_w == 1
        && p.pad_h < p.kh
        && p.pad_w < p.kw
        && p.c_in * p.kh * p.kw <= MAX_TAPS
        && p.c_out <= MAX_COUT
        && p.h_out > 0
        && p.w_out > 0
}

/// Whether the kernel is the default for the weight gradient of `p` (one
/// it [`takes`]): 3x3 layers with 16 to 32 channels in and out on CPUs
/// with AVX2 + FMA, where it measured 2.4-4.6x faster than Winograd
/// F(4x4,3x3), the default before it (docs/performance.md, entry 38; at
/// 64 channels it measured 0.95x). `choice.rs` still prefers Winograd
/// where `winograd::beats_cout_lanes` (32 channels on both sides since
/// entry 41).
/// Elsewhere the previous choice stands (LeNet-5's 5x5 layers and the
/// 3-channel stems keep their bits; without FMA the portable kernel's
/// `mul_add` is a library call).
pub(crate) fn pays(p: &Conv2dParams) -> bool {
    let (lo, hi) = (p.c_in.min(p.c_out), p.c_in.max(p.c_out));
    crate::cpu_features::avx2_fma() && p.kh == 3 && p.kw == 3 && lo >= 16 && hi <= 32
}

/// Scratch floats of one part: the padded input, the transposed `dy`, the
/// per-part accumulator.
fn scratch_len(f: &Flat) -> usize {
    let co8 = f.cout.next_multiple_of(V);
    block_images(f) * (f.cin * f.cs + f.h_out * f.w_out * co8) + f.taps() * co8
}

/// Weight gradient, accumulated: `dw += sum over the batch` (x is `(n,
/// c_in, h, w)`, dy `(n, c_out, h_out, w_out)`, dw `(c_out, c_in, kh,
/// kw)`), in the parts of `sum_weight_parts`. [`takes`] must hold.
pub(crate) fn backward_weight(
    be: &CpuBackend,
    p: &Conv2dParams,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) {
    let f = Flat::new(p.c_in, p.c_out, p.kh, p.kw, p.h, p.w, p.pad_h, p.pad_w);
    debug_assert_eq!((f.h_out, f.w_out), (p.h_out, p.w_out));
    let scratch = scratch_len(&f);
    let parallel = super::weight_parts(be, p) > 1 && p.forward_flops() >= PAR_MIN_FLOPS;
    let (xi, yi) = (f.x_image(), f.y_image());
    let simd = cfg!(target_arch = "x86_64") && avx2_fma();
    sum_weight_parts(be, p, parallel, dw, |first, last, out| {
        let (xs, dys) = (&x[first * xi..last * xi], &dy[first * yi..last * yi]);
        with_scratch(scratch, |s| part(&f, simd, xs, dys, out, s));
    });
}

/// `dyt[(oh w_out + ow) co8 + co] = dy[co][oh][ow]`: `dy (c_out, pos)`
/// transposed to `(pos, co8)` (the channels past `c_out` are left as they
/// are: zero).
fn transpose_dy(f: &Flat, co8: usize, dy: &[f32], dyt: &mut [f32]) {
    let pos = f.h_out * f.w_out;
    for (co, plane) in dy[..f.cout * pos].chunks_exact(pos).enumerate() {
        for (d, &v) in dyt[..pos * co8].chunks_exact_mut(co8).zip(plane) {
            d[co] = v;
        }
    }
}

/// Images per block: enough for about [`QB`] positions when one image has
/// fewer (small maps, whose tiles would otherwise be short), else one.
fn block_images(f: &Flat) -> usize {
    QB.div_ceil(f.h_out * f.w_out).clamp(1, MAX_BLOCK_IMAGES)
}

/// Output rows per block: about [`QB`] positions, at least one row; all
/// of them when a block holds several images.
fn block_rows(f: &Flat) -> usize {
    if block_images(f) > 1 {
        f.h_out
    } else {
        (QB / f.w_out).max(1)
    }
}

/// One part: `out (c_out, taps)` overwritten with the sum over the images
/// of `x` and `dy`; `simd` runs the AVX2 + FMA tiles.
fn part(f: &Flat, simd: bool, x: &[f32], dy: &[f32], out: &mut [f32], scratch: &mut [f32]) {
    let taps = f.taps();
    let co8 = f.cout.next_multiple_of(V);
    let (pos, ib) = (f.h_out * f.w_out, block_images(f));
    let (xp, rest) = scratch.split_at_mut(ib * f.cin * f.cs);
    let (dyt, acc) = rest.split_at_mut(ib * pos * co8);
    let acc = &mut acc[..taps * co8];
    xp.fill(0.0);
    dyt.fill(0.0);
    acc.fill(0.0);
    let mut offs = [0usize; MAX_TAPS];
    for ci in 0..f.cin {
        for ki in 0..f.kh {
            for kj in 0..f.kw {
                offs[(ci * f.kh + ki) * f.kw + kj] = ci * f.cs + ki * f.wp + kj;
            }
        }
    }
    let offs = &offs[..taps];
    let (xi, yi) = (f.x_image(), f.y_image());
    for (x_b, dy_b) in x.chunks(ib * xi).zip(dy.chunks(ib * yi)) {
        let imgs = x_b.len() / xi;
        let slots = xp
            .chunks_exact_mut(f.cin * f.cs)
            .zip(dyt.chunks_exact_mut(pos * co8));
        for ((x_n, dy_n), (xp_n, dyt_n)) in
            x_b.chunks_exact(xi).zip(dy_b.chunks_exact(yi)).zip(slots)
        {
            spread(x_n, f.cin, f.h, f.w, f.ph, f.pw, f.wp, f.cs, xp_n);
            #[cfg(target_arch = "x86_64")]
            if simd {
                // SAFETY: simd says the CPU has AVX2.
                unsafe { avx2::transpose_dy(f, co8, dy_n, dyt_n) };
            } else {
                transpose_dy(f, co8, dy_n, dyt_n);
            }
            #[cfg(not(target_arch = "x86_64"))]
            transpose_dy(f, co8, dy_n, dyt_n);
        }
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: simd says the CPU has AVX2 and FMA.
            unsafe { avx2::block(f, imgs, offs, xp, dyt, acc) };
            continue;
        }
        block::<false>(f, imgs, offs, xp, dyt, acc);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    for (co, o) in out[..f.cout * taps].chunks_exact_mut(taps).enumerate() {
        for (t, v) in o.iter_mut().enumerate() {
            *v = acc[t * co8 + co];
        }
    }
}

/// Adds one block of `imgs` images (slots of `xp` and `dyt`) into `acc
/// (taps, co8)`: every block of output rows, every pair of channel
/// vectors, every group of taps. `SIMD` runs the AVX2 + FMA tiles (only
/// from `avx2::block`).
#[inline(always)]
fn block<const SIMD: bool>(
    f: &Flat,
    imgs: usize,
    offs: &[usize],
    xp: &[f32],
    dyt: &[f32],
    acc: &mut [f32],
) {
    let co8 = f.cout.next_multiple_of(V);
    let nv = co8 / V;
    let (pos, xs_img) = (f.h_out * f.w_out, f.cin * f.cs);
    let last = (f.h_out - 1) * f.wp + f.w_out;
    // Bounds of every access below, checked once: x reads reach
    // (imgs - 1) cin cs + max(offs) + (h_out - 1) wp + w_out - 1 <
    // (imgs - 1) cin cs + read_end, dyt reads imgs pos co8, acc writes
    // taps co8.
    assert!(imgs >= 1 && (imgs - 1) * xs_img + read_end(f) <= xp.len());
    assert!(imgs * pos * co8 <= dyt.len());
    assert!(offs.len() == f.taps() && offs.len() * co8 <= acc.len());
    assert!(offs.iter().all(|&o| o + last <= read_end(f)));
    let rb = block_rows(f);
    for r0 in (0..f.h_out).step_by(rb) {
        let rows = rb.min(f.h_out - r0);
        let mut v0 = 0;
        while v0 < nv {
            let cv = if nv - v0 >= 2 { 2 } else { 1 };
            let mut t0 = 0;
            while t0 < offs.len() {
                let tt = (offs.len() - t0).min(6);
                let g = Group {
                    imgs,
                    xs_img,
                    dy_img: pos * co8,
                    r0,
                    rows,
                    w_out: f.w_out,
                    wp: f.wp,
                    c0: v0 * V,
                    co8,
                    t0,
                };
                // SAFETY: the group's reads and writes lie inside the
                // ranges asserted above (r0 + rows <= h_out, c0 + cv V <=
                // co8, t0 + tt <= taps).
                unsafe { dispatch::<SIMD>(cv, tt, &g, offs, xp, dyt, acc) };
                t0 += tt;
            }
            v0 += cv;
        }
    }
}

/// One tile's place: images `0..imgs` of the block (`xs_img` apart in
/// the padded input, `dy_img` in `dyt`), output rows `r0..r0 + rows` of
/// each (row length `w_out` in `dyt`, `wp` in the padded input),
/// channels `c0..c0 + CV V` of `co8`, taps `t0..t0 + TT`.
#[derive(Clone, Copy, Debug)]
struct Group {
    imgs: usize,
    xs_img: usize,
    dy_img: usize,
    r0: usize,
    rows: usize,
    w_out: usize,
    wp: usize,
    c0: usize,
    co8: usize,
    t0: usize,
}

/// Runs the tile of `cv` vectors and `tt` taps.
///
/// # Safety
/// As [`tile`]; `SIMD` only on CPUs with AVX2 and FMA.
#[inline(always)]
unsafe fn dispatch<const SIMD: bool>(
    cv: usize,
    tt: usize,
    g: &Group,
    offs: &[usize],
    xp: &[f32],
    dyt: &[f32],
    acc: &mut [f32],
) {
    macro_rules! run {
        ($cv:literal, $tt:literal) => {{
            #[cfg(target_arch = "x86_64")]
            if SIMD {
                // SAFETY: the caller's bounds; SIMD says the CPU has AVX2
                // and FMA.
                unsafe { avx2::tile::<$cv, $tt>(g, offs, xp, dyt, acc) };
                return;
            }
            // SAFETY: the caller's bounds.
            unsafe { tile::<$cv, $tt>(g, offs, xp, dyt, acc) }
        }};
    }
    match (cv, tt) {
        (2, 6) => run!(2, 6),
        (2, 5) => run!(2, 5),
        (2, 4) => run!(2, 4),
        (2, 3) => run!(2, 3),
        (2, 2) => run!(2, 2),
        (2, _) => run!(2, 1),
        (_, 6) => run!(1, 6),
        (_, 5) => run!(1, 5),
        (_, 4) => run!(1, 4),
        (_, 3) => run!(1, 3),
        (_, 2) => run!(1, 2),
        _ => run!(1, 1),
    }
}

/// The portable tile: `acc[(t0 + t) co8 + c0 + v V + l] += sum over the
/// block's images i and positions (oh, ow) of dyt[i dy_img + (oh w_out +
/// ow) co8 + c0 + v V + l] x[i xs_img + offs[t0 + t] + oh wp + ow]`, the
/// block's sum formed by fused multiply-adds in (image, position) order
/// from +0, then added.
///
/// # Safety
/// `(imgs - 1) xs_img + offs[t0 + t] + (r0 + rows - 1) wp + w_out <=
/// xp.len()`, `(imgs - 1) dy_img + (r0 + rows) w_out co8 <= dyt.len()`,
/// `c0 + CV V <= co8`, `(t0 + TT) co8 <= acc.len()`, `t0 + TT <=
/// offs.len()`.
#[inline(always)]
unsafe fn tile<const CV: usize, const TT: usize>(
    g: &Group,
    offs: &[usize],
    xp: &[f32],
    dyt: &[f32],
    acc: &mut [f32],
) {
    let mut a = [[[0.0f32; V]; CV]; TT];
    for i in 0..g.imgs {
        for r in g.r0..g.r0 + g.rows {
            let xo = i * g.xs_img + r * g.wp;
            // SAFETY (all pointer arithmetic and loads below): in bounds
            // by the caller's contract.
            let d0 = unsafe { dyt.as_ptr().add(i * g.dy_img + r * g.w_out * g.co8 + g.c0) };
            for ow in 0..g.w_out {
                let mut d = [[0.0f32; V]; CV];
                for v in 0..CV {
                    d[v] = unsafe { super::load::<V>(d0.add(ow * g.co8 + v * V)) };
                }
                for t in 0..TT {
                    let xv = unsafe { *xp.as_ptr().add(offs[g.t0 + t] + xo + ow) };
                    for v in 0..CV {
                        for l in 0..V {
                            a[t][v][l] = d[v][l].mul_add(xv, a[t][v][l]);
                        }
                    }
                }
            }
        }
    }
    for t in 0..TT {
        let row = &mut acc[(g.t0 + t) * g.co8 + g.c0..][..CV * V];
        for (r, s) in row.iter_mut().zip(a[t].iter().flatten()) {
            *r += s;
        }
    }
}
