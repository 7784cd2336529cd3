//! Direct convolution for small layers (no im2col, no GEMM packing).
//!
//! Used for stride 1, dilation 1, one group and padding below the kernel
//! size when the layer is small (see [`use_direct`]); everything else goes
//! through im2col + GEMM (the parent module, `conv`).
//!
//! # The flat padded layout
//!
//! Each input channel is copied into a zero-padded plane of row length
//! `wp = w + 2 pad_w`; an output position `(oh, ow)` becomes the flat index
//! `q = oh wp + ow`, and the tap `(ki, kj)` reads the padded plane at
//! `q + ki wp + kj`. The kernels compute every `q` in `0..Q` (`Q = h_out wp`
//! rounded up to [`QT`]), so the inner loops run over contiguous memory with
//! no per-row tail; the `kw - 1` columns per row with `ow >= w_out` (and
//! the round-up) are computed and thrown away. Every channel plane has
//! enough trailing zeros that those extra reads stay inside it.
//!
//! - forward: `out[co][q] = sum_{ci,ki,kj} w[co][ci][ki][kj] xp[ci][q + ki wp + kj]`,
//!   register-blocked over [`QT`] positions and up to four output channels;
//! - backward input: the forward kernel on `dy` padded by
//!   `k - 1 - pad`, with the weights transposed and flipped;
//! - backward weight: `dw[co][ci][ki][kj] = sum_q dy[co][q] xp[ci][q + ki wp + kj]`
//!   with `dy` spread to the same row length (zeros where `ow >= w_out`),
//!   one accumulator vector per `(co, kj)` held across the whole image.
//!
//! The batch is split into one contiguous chunk of images per thread;
//! weight gradients are summed per chunk and the chunks added in order, so
//! results do not depend on scheduling. On x86-64 with AVX2 and FMA the
//! kernels are compiled a second time for those features (module `avx2`),
//! and with AVX-512F a third (module `avx512`), and chosen at run time
//! (the crate is built for baseline x86-64). All versions give the same
//! bits (for finite weights, see `Flat::tap_rows`): each output and each
//! 8-lane weight-gradient partial adds its products in one order.
//!
//! The weight gradient of 3x3 layers with 16-64 channels runs instead in
//! [`cout_lanes`]: the output channels in the lanes, no lane reduction.

#![allow(clippy::needless_range_loop)]

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub(crate) mod cout_lanes;
#[cfg(test)]
mod tests;

use std::sync::OnceLock;

use cnn_core::Conv2dParams;
use rayon::prelude::*;

use crate::CpuBackend;
use crate::par::{with_reduce_scratch, with_scratch};

/// Lanes of one accumulator vector.
const V: usize = 8;
/// Output positions per forward tile (two vectors).
const QT: usize = 2 * V;

/// Largest `c_in kh kw` (taps per output) for which the direct kernels are
/// used; above it im2col + GEMM reuses each loaded input value over more
/// output channels than the direct tiles do.
const DIRECT_MAX_TAPS: usize = 512;
/// [`DIRECT_MAX_TAPS`] on CPUs with AVX-512: 576 = 64 channels x 3 x 3,
/// W3's layer and the 64-channel stages of ResNet-20 and VGG, where the
/// AVX-512 direct kernels measured 0.6x the GEMM path's time on one
/// thread and about 0.9x on two (performance.md, entry 19).
const DIRECT_MAX_TAPS_AVX512: usize = 576;
/// Largest `c_out` for the direct kernels.
const DIRECT_MAX_COUT: usize = 64;

/// Below this many forward FLOPs the direct kernels run on the calling thread.
const PAR_MIN_FLOPS: f64 = 4.0e5;

/// Whether the direct kernels handle `p`: shape support, then `forced`
/// (`Some(true)`: direct, `Some(false)`: im2col + GEMM, from
/// `CNN_CPU_CONV=direct|gemm` or the backend's
/// [`crate::ConvAlgorithm`]) or else the cost rule.
pub(crate) fn use_direct(p: &Conv2dParams, forced: Option<bool>) -> bool {
    let supported = p.groups == 1
        && p.stride_h == 1
        && p.stride_w == 1
        && p.dil_h == 1
        && p.dil_w == 1
        && p.pad_h < p.kh
        && p.pad_w < p.kw
        && p.c_in.max(p.c_out) * p.kh * p.kw <= MAX_TAPS;
    if !supported {
        return false;
    }
    let max_taps = if avx512() {
        DIRECT_MAX_TAPS_AVX512
    } else {
        DIRECT_MAX_TAPS
    };
    forced.unwrap_or(p.c_in * p.kh * p.kw <= max_taps && p.c_out <= DIRECT_MAX_COUT)
}

/// Set by tests to run the portable kernels on an AVX2 machine.
static FORCE_PORTABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this CPU runs the AVX2 + FMA versions of the kernels.
fn avx2_fma() -> bool {
    if FORCE_PORTABLE.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    crate::cpu_features::avx2_fma()
}

/// Set by tests to run the AVX2 kernels on an AVX-512 machine.
static FORCE_AVX2: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this CPU runs the AVX-512 versions of the kernels (which also
/// use AVX2 and FMA).
fn avx512() -> bool {
    if FORCE_AVX2.load(std::sync::atomic::Ordering::Relaxed) || !avx2_fma() {
        return false;
    }
    // `CNN_CPU_SIMD=avx2` keeps the AVX2 kernels (for measurements).
    static WANTED: OnceLock<bool> = OnceLock::new();
    *WANTED.get_or_init(|| std::env::var("CNN_CPU_SIMD").as_deref() != Ok("avx2"))
        && crate::cpu_features::avx512f()
}

/// `a * b + c`, fused when the kernel is compiled with FMA.
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// One direct correlation in the flat padded layout: `cin` input planes of
/// `h x w` padded by `(ph, pw)`, `cout` outputs of `h_out x w_out`.
#[derive(Clone, Copy, Debug)]
struct Flat {
    cin: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    h: usize,
    w: usize,
    ph: usize,
    pw: usize,
    h_out: usize,
    w_out: usize,
    /// Padded row length.
    wp: usize,
    /// Flat output positions computed per channel (multiple of [`QT`]).
    q: usize,
    /// Stride between padded input planes (with trailing zeros).
    cs: usize,
}

impl Flat {
    #[allow(clippy::too_many_arguments)]
    fn new(
        cin: usize,
        cout: usize,
        kh: usize,
        kw: usize,
        h: usize,
        w: usize,
        ph: usize,
        pw: usize,
    ) -> Self {
        let hp = h + 2 * ph;
        let wp = w + 2 * pw;
        let h_out = hp + 1 - kh;
        let w_out = wp + 1 - kw;
        let q = (h_out * wp).next_multiple_of(QT);
        // Reads reach q - 1 + (kh - 1) wp + kw - 1.
        let cs = (q + (kh - 1) * wp + kw).max(hp * wp).next_multiple_of(V);
        Flat {
            cin,
            cout,
            kh,
            kw,
            h,
            w,
            ph,
            pw,
            h_out,
            w_out,
            wp,
            q,
            cs,
        }
    }
    fn taps(&self) -> usize {
        self.cin * self.kh * self.kw
    }
    /// The kernel rows `ki` that can reach the input for a tile of `len`
    /// positions from `q0`: the others read only zero padding rows for
    /// every valid output of the tile (stride 1: output row `r` reads
    /// padded row `r + ki`). Skipping them leaves every valid output's bits
    /// unchanged for finite weights (a finite weight times zero adds a
    /// signed zero to a sum that starts at +0, which never changes it),
    /// and saves the border tiles' work: with `k - 1` rows of padding (the
    /// input gradient) about a sixth of the taps on LeNet-5's conv2. With a
    /// non-finite weight, whose product with a padding zero is NaN, the
    /// border outputs that turn NaN depend on the tile width, so there the
    /// kernel versions may differ (a padding tap is not part of the
    /// mathematical sum).
    fn tap_rows(&self, q0: usize, len: usize) -> std::ops::Range<usize> {
        let r0 = q0 / self.wp;
        let r1 = ((q0 + len - 1) / self.wp).min(self.h_out.saturating_sub(1));
        if r0 > r1 {
            return 0..0;
        }
        self.ph.saturating_sub(r1)..self.kh.min((self.ph + self.h).saturating_sub(r0))
    }
    fn x_image(&self) -> usize {
        self.cin * self.h * self.w
    }
    fn y_image(&self) -> usize {
        self.cout * self.h_out * self.w_out
    }
}

/// Copy `c` planes of `h x w` from `src` into `dst` (plane stride `cs`, row
/// stride `ld`, offset by `(r0, c0)`). Only those elements are written: the
/// caller zeroes `dst[..c cs]` once per chunk, and every image of the chunk
/// writes the same positions, so the rest stays zero.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn spread(
    src: &[f32],
    c: usize,
    h: usize,
    w: usize,
    r0: usize,
    c0: usize,
    ld: usize,
    cs: usize,
    dst: &mut [f32],
) {
    let dst = &mut dst[..c * cs];
    if w == 0 {
        return;
    }
    for (plane, d) in src[..c * h * w]
        .chunks_exact(h * w)
        .zip(dst.chunks_exact_mut(cs))
    {
        for (row, drow) in plane.chunks_exact(w).zip(d[r0 * ld + c0..].chunks_mut(ld)) {
            drow[..w].copy_from_slice(row);
        }
    }
}

/// `N` floats from `p` (unaligned).
///
/// # Safety
/// `p..p + N` must be readable.
#[inline(always)]
unsafe fn load<const N: usize>(p: *const f32) -> [f32; N] {
    // SAFETY: the caller guarantees the range is readable.
    unsafe { p.cast::<[f32; N]>().read_unaligned() }
}

/// Largest number of taps (`c_in kh kw`, and `c_out kh kw` for the input
/// gradient) the direct kernels take (their offset table lives on the stack).
const MAX_TAPS: usize = 1024;

/// The last index the kernels read in a padded image, plus one: tap
/// offsets reach `(cin - 1) cs + (kh - 1) wp + kw - 1`, positions `q - 1`.
fn read_end(f: &Flat) -> usize {
    (f.cin - 1) * f.cs + (f.kh - 1) * f.wp + f.kw - 1 + f.q
}

/// `out[co0 + b][q]` for `b < CB` and every `q` (see the module docs).
/// `offs[t]` is tap `t`'s offset in the padded image; `wpk[t CB + b]` its
/// weight for output channel `co0 + b`.
#[inline(always)]
fn fwd_tile<const CB: usize, const FMA: bool>(
    f: &Flat,
    offs: &[u32],
    xp: &[f32],
    wpk: &[f32],
    co0: usize,
    out: &mut [f32],
) {
    let taps = f.taps();
    let offs = &offs[..taps];
    let wpk = &wpk[..taps * CB];
    assert!(read_end(f) <= xp.len() && f.q.is_multiple_of(QT));
    let out = &mut out[co0 * f.q..(co0 + CB) * f.q];
    for q0 in (0..f.q).step_by(QT) {
        let mut acc = [[0.0f32; QT]; CB];
        // SAFETY: every offset is at most read_end - q, and q0 + QT <= q,
        // so each load lies inside xp (asserted above).
        let xb = unsafe { xp.as_ptr().add(q0) };
        let rows = f.tap_rows(q0, QT);
        // Taps come in runs of kw per kernel row (ci, ki); skip the rows
        // outside `rows` a run at a time.
        let runs = offs.chunks_exact(f.kw).zip(wpk.chunks_exact(f.kw * CB));
        for (r, (offs_run, w_run)) in runs.enumerate() {
            if !rows.contains(&(r % f.kh)) {
                continue;
            }
            for (&off, wt) in offs_run.iter().zip(w_run.chunks_exact(CB)) {
                // SAFETY: see above.
                let xv: [f32; QT] = unsafe { load(xb.add(off as usize)) };
                for b in 0..CB {
                    let wv = wt[b];
                    for l in 0..QT {
                        acc[b][l] = madd::<FMA>(wv, xv[l], acc[b][l]);
                    }
                }
            }
        }
        for (b, a) in acc.iter().enumerate() {
            out[b * f.q + q0..][..QT].copy_from_slice(a);
        }
    }
}

/// [`fwd_tile`], with explicit AVX-512 vectors when `WIDE`, AVX2 + FMA
/// vectors when `FMA`. All three sum each output's taps in the same order
/// with fused multiply-adds, so their results are bit-identical.
#[inline(always)]
fn fwd_tile_any<const CB: usize, const FMA: bool, const WIDE: bool>(
    f: &Flat,
    offs: &[u32],
    xp: &[f32],
    wpk: &[f32],
    co0: usize,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if WIDE {
        // SAFETY: WIDE = true is only instantiated from avx512::fwd_chunk,
        // which runs only on CPUs with AVX-512F, AVX2 and FMA.
        unsafe { avx512::fwd_tile::<CB>(f, xp, wpk, co0, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: FMA = true is only instantiated from avx2::fwd_chunk,
        // which runs only on CPUs with AVX2 and FMA.
        unsafe { avx2::fwd_tile::<CB>(f, xp, wpk, co0, out) };
        return;
    }
    fwd_tile::<CB, FMA>(f, offs, xp, wpk, co0, out);
}

/// The output-channel blocks of the forward tiles: 6 (8 with AVX-512,
/// whose 32 registers hold 8 x 3 accumulators), then 4, 2, 1.
fn co_blocks(cout: usize, wide: bool) -> impl Iterator<Item = (usize, usize)> {
    let mut co = 0;
    std::iter::from_fn(move || {
        let left = cout - co;
        let cb = if wide && left >= 8 {
            8
        } else if left >= 6 {
            6
        } else if left >= 4 {
            4
        } else if left >= 2 {
            2
        } else {
            left
        };
        (cb > 0).then(|| {
            co += cb;
            (co - cb, cb)
        })
    })
}

/// Forward of a chunk of images: `y (n, cout, h_out, w_out)` from
/// `x (n, cin, h, w)`; `w` is `(cout, taps)`. `scratch` holds the padded
/// image, the flat output and the packed weights.
#[inline(always)]
fn fwd_chunk<const FMA: bool, const WIDE: bool>(
    f: &Flat,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    let taps = f.taps();
    let (xp, rest) = scratch.split_at_mut(f.cin * f.cs);
    let (out, wpk) = rest.split_at_mut(f.cout * f.q);
    let wpk = &mut wpk[..f.cout * taps];
    // Weights of each block of cb channels as (taps, cb).
    for (co0, cb) in co_blocks(f.cout, WIDE) {
        for b in 0..cb {
            for t in 0..taps {
                wpk[co0 * taps + t * cb + b] = w[(co0 + b) * taps + t];
            }
        }
    }
    let mut offs = [0u32; MAX_TAPS];
    for ci in 0..f.cin {
        for ki in 0..f.kh {
            for kj in 0..f.kw {
                offs[(ci * f.kh + ki) * f.kw + kj] = (ci * f.cs + ki * f.wp + kj) as u32;
            }
        }
    }
    let (xi, yi) = (f.x_image(), f.y_image());
    let pos = f.h_out * f.w_out;
    xp.fill(0.0);
    for (x_n, y_n) in x.chunks_exact(xi).zip(y.chunks_exact_mut(yi)) {
        spread(x_n, f.cin, f.h, f.w, f.ph, f.pw, f.wp, f.cs, xp);
        for (co0, cb) in co_blocks(f.cout, WIDE) {
            let wb = &wpk[co0 * taps..];
            match cb {
                8 => fwd_tile_any::<8, FMA, WIDE>(f, &offs, xp, wb, co0, out),
                6 => fwd_tile_any::<6, FMA, WIDE>(f, &offs, xp, wb, co0, out),
                4 => fwd_tile_any::<4, FMA, WIDE>(f, &offs, xp, wb, co0, out),
                2 => fwd_tile_any::<2, FMA, WIDE>(f, &offs, xp, wb, co0, out),
                _ => fwd_tile_any::<1, FMA, WIDE>(f, &offs, xp, wb, co0, out),
            }
        }
        for (c, (y_c, o_c)) in y_n
            .chunks_exact_mut(pos)
            .zip(out.chunks_exact(f.q))
            .enumerate()
        {
            let bv = bias.map_or(0.0, |b| b[c]);
            for (y_r, o_r) in y_c.chunks_exact_mut(f.w_out).zip(o_c.chunks(f.wp)) {
                for (yv, &ov) in y_r.iter_mut().zip(o_r) {
                    *yv = ov + bv;
                }
            }
        }
    }
}

/// Adds `sum_q dy[co0 + b][q] xp[ci][q + ki wp + kj0 + j]` into lane
/// vector `acc_v[((co0 + b) taps + (ci kh + ki) kw + kj0 + j) V..][..V]`
/// for `b < CB`, `j < KW`, every `ci`, `ki`.
#[inline(always)]
fn bw_tile<const CB: usize, const KW: usize, const FMA: bool>(
    f: &Flat,
    xp: &[f32],
    dyq: &[f32],
    co0: usize,
    kj0: usize,
    acc_v: &mut [f32],
) {
    let taps = f.taps();
    assert!(read_end(f) <= xp.len() && (co0 + CB) * f.q <= dyq.len() && kj0 + KW <= f.kw);
    assert!(f.q.is_multiple_of(V) && (co0 + CB) * taps * V <= acc_v.len());
    for ci in 0..f.cin {
        for ki in 0..f.kh {
            // SAFETY (all loads below): x reads reach
            // ci cs + ki wp + kj0 + KW - 1 + q - 1 < read_end, dy reads
            // (co0 + CB) q - 1; both asserted above.
            let xr = unsafe { xp.as_ptr().add(ci * f.cs + ki * f.wp + kj0) };
            let dr = unsafe { dyq.as_ptr().add(co0 * f.q) };
            let mut acc = [[[0.0f32; V]; KW]; CB];
            for q0 in (0..f.q).step_by(V) {
                let dv: [[f32; V]; CB] =
                    std::array::from_fn(|b| unsafe { load(dr.add(b * f.q + q0)) });
                for j in 0..KW {
                    let xv: [f32; V] = unsafe { load(xr.add(q0 + j)) };
                    for b in 0..CB {
                        for l in 0..V {
                            acc[b][j][l] = madd::<FMA>(dv[b][l], xv[l], acc[b][j][l]);
                        }
                    }
                }
            }
            let t0 = (ci * f.kh + ki) * f.kw + kj0;
            for (b, a_b) in acc.iter().enumerate() {
                let dst = &mut acc_v[((co0 + b) * taps + t0) * V..][..KW * V];
                for (d, a) in dst.chunks_exact_mut(V).zip(a_b) {
                    for l in 0..V {
                        d[l] += a[l];
                    }
                }
            }
        }
    }
}

/// [`bw_tile`], with explicit AVX2 + FMA vectors when `FMA` (the
/// portable loop's overlapping loads are turned into shuffles by the
/// compiler otherwise).
#[inline(always)]
fn bw_tile_any<const CB: usize, const KW: usize, const FMA: bool>(
    f: &Flat,
    xp: &[f32],
    dyq: &[f32],
    co0: usize,
    kj0: usize,
    acc_v: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: FMA = true is only instantiated from avx2::bw_chunk,
        // which runs only on CPUs with AVX2 and FMA.
        unsafe { avx2::bw_tile::<CB, KW>(f, xp, dyq, co0, kj0, acc_v) };
        return;
    }
    bw_tile::<CB, KW, FMA>(f, xp, dyq, co0, kj0, acc_v);
}

/// Weight gradient of a chunk of images: `dw_part (cout, taps)` is
/// overwritten with the chunk's sum. `scratch` holds the padded image, the
/// spread `dy` and the lane accumulators.
#[inline(always)]
fn bw_chunk<const FMA: bool>(
    f: &Flat,
    x: &[f32],
    dy: &[f32],
    dw_part: &mut [f32],
    scratch: &mut [f32],
) {
    let taps = f.taps();
    let (xp, rest) = scratch.split_at_mut(f.cin * f.cs);
    let (dyq, acc_v) = rest.split_at_mut(f.cout * f.q);
    let acc_v = &mut acc_v[..f.cout * taps * V];
    acc_v.fill(0.0);
    let (xi, yi) = (f.x_image(), f.y_image());
    xp[..f.cin * f.cs].fill(0.0);
    dyq[..f.cout * f.q].fill(0.0);
    for (x_n, dy_n) in x.chunks_exact(xi).zip(dy.chunks_exact(yi)) {
        spread(x_n, f.cin, f.h, f.w, f.ph, f.pw, f.wp, f.cs, xp);
        spread(dy_n, f.cout, f.h_out, f.w_out, 0, 0, f.wp, f.q, dyq);
        let mut co = 0;
        while co < f.cout {
            let cb = match f.kw {
                5 => 2,
                _ => 4,
            }
            .min(f.cout - co);
            match (cb, f.kw) {
                (2, 5) => bw_tile_any::<2, 5, FMA>(f, xp, dyq, co, 0, acc_v),
                (1, 5) => bw_tile_any::<1, 5, FMA>(f, xp, dyq, co, 0, acc_v),
                (4, 3) => bw_tile_any::<4, 3, FMA>(f, xp, dyq, co, 0, acc_v),
                (_, 3) => {
                    for c in co..co + cb {
                        bw_tile_any::<1, 3, FMA>(f, xp, dyq, c, 0, acc_v);
                    }
                }
                (4, _) => {
                    for kj in 0..f.kw {
                        bw_tile_any::<4, 1, FMA>(f, xp, dyq, co, kj, acc_v);
                    }
                }
                _ => {
                    for c in co..co + cb {
                        for kj in 0..f.kw {
                            bw_tile_any::<1, 1, FMA>(f, xp, dyq, c, kj, acc_v);
                        }
                    }
                }
            }
            co += cb;
        }
    }
    reduce_lanes(acc_v, dw_part);
}

/// `dw_part[i]` = the sum of lane vector `i` of `acc_v`, pairwise in a
/// fixed order.
#[inline(always)]
fn reduce_lanes(acc_v: &[f32], dw_part: &mut [f32]) {
    for (d, a) in dw_part.iter_mut().zip(acc_v.chunks_exact(V)) {
        let s4: [f32; 4] = std::array::from_fn(|l| a[l] + a[l + 4]);
        *d = (s4[0] + s4[2]) + (s4[1] + s4[3]);
    }
}

fn fwd_dispatch(
    f: &Flat,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: avx512() checked the CPU features.
        unsafe { avx512::fwd_chunk(f, x, w, bias, y, scratch) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: avx2_fma() checked the CPU features.
        unsafe { avx2::fwd_chunk(f, x, w, bias, y, scratch) };
        return;
    }
    fwd_chunk::<false, false>(f, x, w, bias, y, scratch);
}

fn bw_dispatch(f: &Flat, x: &[f32], dy: &[f32], dw_part: &mut [f32], scratch: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: avx512() checked the CPU features.
        unsafe { avx512::bw_chunk(f, x, dy, dw_part, scratch) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: avx2_fma() checked the CPU features.
        unsafe { avx2::bw_chunk(f, x, dy, dw_part, scratch) };
        return;
    }
    bw_chunk::<false>(f, x, dy, dw_part, scratch);
}

/// Number of contiguous batch chunks (one per thread, or one when the
/// layer is too small to be worth waking the pool).
pub(crate) fn parts(be: &CpuBackend, p: &Conv2dParams) -> usize {
    if be.threads() > 1 && p.n > 1 && p.forward_flops() >= PAR_MIN_FLOPS {
        be.threads().min(p.n)
    } else {
        1
    }
}

/// Number of contiguous batch parts the weight gradient is summed in: one
/// per thread (fewer for a smaller batch).
pub(crate) fn weight_parts(be: &CpuBackend, p: &Conv2dParams) -> usize {
    be.threads().min(p.n).max(1)
}

/// `dw += the weight gradient of the batch`, summed in [`weight_parts`]
/// contiguous parts of `ceil(n / parts)` images: `part_sum(first, last,
/// out)` overwrites `out` with the sum over images `first..last` (never
/// empty), each part into its own partial (a reusable scratch buffer, so
/// nothing is allocated after the first call), in parallel when
/// `parallel`; then the partials are added to `dw` in part order. The
/// result depends on the thread count only, and a data-parallel step (one
/// part per replica, each a one-part sum) gives the same.
pub(crate) fn sum_weight_parts(
    be: &CpuBackend,
    p: &Conv2dParams,
    parallel: bool,
    dw: &mut [f32],
    part_sum: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    let parts = weight_parts(be, p);
    let per = p.n.div_ceil(parts);
    let wl = dw.len();
    with_reduce_scratch(parts * wl, |partials| {
        let run = |t: usize, out: &mut [f32]| {
            let first = (t * per).min(p.n);
            let last = ((t + 1) * per).min(p.n);
            if first == last {
                out.fill(0.0);
            } else {
                part_sum(first, last, out);
            }
        };
        if parallel {
            be.install(|| {
                partials
                    .par_chunks_mut(wl)
                    .enumerate()
                    .for_each(|(t, out)| run(t, out));
            });
        } else {
            for (t, out) in partials.chunks_exact_mut(wl).enumerate() {
                run(t, out);
            }
        }
        for part in partials.chunks_exact(wl) {
            for (a, &b) in dw.iter_mut().zip(part) {
                *a += b;
            }
        }
    });
}

/// Run `f(in_chunk, out_chunk)` over `parts` contiguous batch chunks.
#[allow(clippy::too_many_arguments)]
pub(crate) fn for_chunks(
    be: &CpuBackend,
    parts: usize,
    n: usize,
    input: &[f32],
    in_image: usize,
    output: &mut [f32],
    out_image: usize,
    f: impl Fn(&[f32], &mut [f32]) + Sync + Send,
) {
    if parts <= 1 {
        f(input, output);
        return;
    }
    let per = n.div_ceil(parts);
    be.install(|| {
        output
            .par_chunks_mut(per * out_image)
            .zip(input.par_chunks(per * in_image))
            .for_each(|(o, i)| f(i, o));
    });
}

/// Forward convolution (`y` overwritten). `use_direct(p)` must hold.
pub(crate) fn forward(
    be: &CpuBackend,
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    let f = Flat::new(p.c_in, p.c_out, p.kh, p.kw, p.h, p.w, p.pad_h, p.pad_w);
    debug_assert_eq!((f.h_out, f.w_out), (p.h_out, p.w_out));
    let scratch = f.cin * f.cs + f.cout * f.q + f.cout * f.taps();
    for_chunks(
        be,
        parts(be, p),
        p.n,
        x,
        f.x_image(),
        y,
        f.y_image(),
        |xc, yc| with_scratch(scratch, |s| fwd_dispatch(&f, xc, w, b, yc, s)),
    );
}

/// Input gradient (`dx` overwritten): the forward kernel on `dy` padded by
/// `k - 1 - pad` with `w` transposed and flipped. `use_direct(p)` must hold.
pub(crate) fn backward_input(
    be: &CpuBackend,
    p: &Conv2dParams,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) {
    let f = Flat::new(
        p.c_out,
        p.c_in,
        p.kh,
        p.kw,
        p.h_out,
        p.w_out,
        p.kh - 1 - p.pad_h,
        p.kw - 1 - p.pad_w,
    );
    debug_assert_eq!((f.h_out, f.w_out), (p.h, p.w));
    let (kh, kw) = (p.kh, p.kw);
    let scratch = f.cin * f.cs + f.cout * f.q + f.cout * f.taps();
    with_reduce_scratch(w.len(), |wt| {
        // wt[ci][co][a][b] = w[co][ci][kh - 1 - a][kw - 1 - b].
        for co in 0..p.c_out {
            for ci in 0..p.c_in {
                let src = &w[(co * p.c_in + ci) * kh * kw..][..kh * kw];
                let dst = &mut wt[(ci * p.c_out + co) * kh * kw..][..kh * kw];
                for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                    *d = *s;
                }
            }
        }
        let wt: &[f32] = wt;
        for_chunks(
            be,
            parts(be, p),
            p.n,
            dy,
            f.x_image(),
            dx,
            f.y_image(),
            |dyc, dxc| with_scratch(scratch, |s| fwd_dispatch(&f, dyc, wt, None, dxc, s)),
        );
    });
}

/// Weight gradient, accumulated: `dw += sum over the batch`. The batch is
/// cut into one contiguous part per thread whether or not the layer is
/// large enough to run them in parallel, each part's sum goes to its own
/// partial, and the partials are added in part order: so the result depends
/// on the thread count only, and a data-parallel step (one part per
/// replica) gives the same. `use_direct(p)` must hold.
pub(crate) fn backward_weight(
    be: &CpuBackend,
    p: &Conv2dParams,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) {
    let f = Flat::new(p.c_in, p.c_out, p.kh, p.kw, p.h, p.w, p.pad_h, p.pad_w);
    #[cfg(target_arch = "x86_64")]
    let scratch = avx512::bw_scratch_len(&f);
    #[cfg(not(target_arch = "x86_64"))]
    let scratch = f.cin * f.cs + f.cout * f.q + dw.len() * V;
    let parallel = weight_parts(be, p) > 1 && p.forward_flops() >= PAR_MIN_FLOPS;
    let (xi, yi) = (f.x_image(), f.y_image());
    sum_weight_parts(be, p, parallel, dw, |first, last, out| {
        let (xs, dys) = (&x[first * xi..last * xi], &dy[first * yi..last * yi]);
        with_scratch(scratch, |s| bw_dispatch(&f, xs, dys, out, s));
    });
}
