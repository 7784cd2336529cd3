//! Direct convolution for small layers (no im2col, no GEMM packing).
//!
//! Used for stride 1, dilation 1, one group and padding below the kernel
//! size when the layer is small (see [`use_direct`]); everything else goes
//! through im2col + GEMM (`conv.rs`).
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
//! kernels are compiled a second time for those features, and with
//! AVX-512F a third, and chosen at run time (the crate is built for
//! baseline x86-64). All versions give the same bits (for finite
//! weights, see `Flat::tap_rows`): each output and each 8-lane
//! weight-gradient partial adds its products in one order.

#![allow(clippy::needless_range_loop)]

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

/// `CNN_CPU_CONV=direct|gemm` forces one path where the direct kernels are
/// possible (for measurements); unset or anything else: the cost rule.
fn forced() -> Option<bool> {
    static FORCED: OnceLock<Option<bool>> = OnceLock::new();
    *FORCED.get_or_init(|| match std::env::var("CNN_CPU_CONV").as_deref() {
        Ok("direct") => Some(true),
        Ok("gemm") => Some(false),
        _ => None,
    })
}

/// Whether the direct kernels handle `p` (shape support and cost rule).
pub(crate) fn use_direct(p: &Conv2dParams) -> bool {
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
    forced().unwrap_or(p.c_in * p.kh * p.kw <= max_taps && p.c_out <= DIRECT_MAX_COUT)
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
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
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

/// The kernels compiled for AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
mod avx2 {
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
}

/// The kernels compiled for AVX-512F, bit-identical to the AVX2 ones.
///
/// The forward tiles add each output's taps in the same order, with twice
/// the positions per instruction. The weight-gradient tiles keep the AVX2
/// tiles' 8-lane partial sums (summing 16 positions per lane instead
/// changes the rounding, and with it where the LeNet-5 curve leaves
/// PyTorch's): each 16-lane vector holds two output channels at the same
/// 8 positions, multiplied by those 8 inputs broadcast to both halves.
#[cfg(target_arch = "x86_64")]
mod avx512 {
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
fn parts(be: &CpuBackend, p: &Conv2dParams) -> usize {
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
fn for_chunks(
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

#[cfg(test)]
mod tests {
    use super::*;
    use cnn_core::Conv2dGeometry;

    /// Serialises the tests that set the process-wide kernel overrides.
    static FORCE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn data(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104_729) % 1013) as f32 / 506.5) - 1.0)
            .collect()
    }

    fn naive_fwd(p: &Conv2dParams, x: &[f32], w: &[f32]) -> Vec<f64> {
        let mut y = vec![0.0f64; p.y_len()];
        for n in 0..p.n {
            for co in 0..p.c_out {
                for oh in 0..p.h_out {
                    for ow in 0..p.w_out {
                        let mut s = 0.0;
                        for ci in 0..p.c_in {
                            for ki in 0..p.kh {
                                for kj in 0..p.kw {
                                    let ih = (oh + ki) as isize - p.pad_h as isize;
                                    let iw = (ow + kj) as isize - p.pad_w as isize;
                                    if ih < 0 || iw < 0 || ih >= p.h as isize || iw >= p.w as isize
                                    {
                                        continue;
                                    }
                                    let xv = x[((n * p.c_in + ci) * p.h + ih as usize) * p.w
                                        + iw as usize];
                                    let wv = w[((co * p.c_in + ci) * p.kh + ki) * p.kw + kj];
                                    s += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                        y[((n * p.c_out + co) * p.h_out + oh) * p.w_out + ow] = s;
                    }
                }
            }
        }
        y
    }

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= 1e-4 + 1e-4 * w.abs(),
                "element {i}: {g} vs {w}"
            );
        }
    }

    /// Kernel rows that read only padding are skipped (`Flat::tap_rows`);
    /// that must not change a bit: the same layer on the input padded by
    /// hand (no padding rows to skip) gives the same outputs, on every
    /// kernel version. Shapes: LeNet-5's conv1 and its conv2 input
    /// gradient (dy padded by 4), and an asymmetric one.
    #[test]
    fn skipping_padding_rows_keeps_the_bits() {
        let _guard = FORCE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let be = CpuBackend::with_threads(1).unwrap();
        for (n, c, h, w, co, k, pad) in [
            (3, 1, 28, 28, 6, 5, 2),
            (2, 16, 10, 10, 6, 5, 4),
            (2, 3, 9, 11, 7, 4, 3),
        ] {
            let p =
                Conv2dParams::new(n, c, h, w, &Conv2dGeometry::new(co, k).padding(pad)).unwrap();
            let (hp, wp) = (h + 2 * pad, w + 2 * pad);
            let q = Conv2dParams::new(n, c, hp, wp, &Conv2dGeometry::new(co, k)).unwrap();
            let (x, wt) = (data(p.x_len(), 11), data(p.w_len(), 12));
            let mut xp = vec![0.0f32; q.x_len()];
            for (plane, dst) in x.chunks_exact(h * w).zip(xp.chunks_exact_mut(hp * wp)) {
                for (row, d) in plane.chunks_exact(w).zip(dst[pad * wp..].chunks_mut(wp)) {
                    d[pad..pad + w].copy_from_slice(row);
                }
            }
            for (name, portable, avx2_only) in [
                ("portable", true, false),
                ("AVX2", false, true),
                ("widest", false, false),
            ] {
                FORCE_PORTABLE.store(portable, std::sync::atomic::Ordering::Relaxed);
                FORCE_AVX2.store(avx2_only, std::sync::atomic::Ordering::Relaxed);
                let (mut y, mut y_ref) = (vec![f32::NAN; p.y_len()], vec![f32::NAN; q.y_len()]);
                forward(&be, &p, &x, &wt, None, &mut y);
                forward(&be, &q, &xp, &wt, None, &mut y_ref);
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&y),
                    bits(&y_ref),
                    "{name}: {c}->{co}, {k}x{k}, pad {pad}"
                );
            }
            FORCE_PORTABLE.store(false, std::sync::atomic::Ordering::Relaxed);
            FORCE_AVX2.store(false, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Every op of the direct path against nested loops, on shapes that hit
    /// each tile size (kw 5, 3 and others; odd channel counts).
    #[test]
    fn direct_matches_naive() {
        let shapes = [
            (3, 1, 28, 28, 6, 5, 2),
            (3, 6, 14, 14, 16, 5, 0),
            (2, 3, 9, 7, 5, 3, 1),
            (2, 2, 6, 5, 3, 2, 1),
            (5, 4, 5, 5, 7, 4, 3),
            (1, 3, 3, 3, 1, 1, 0),
        ];
        let _guard = FORCE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for (threads, portable, avx2_only) in [
            (1, false, false),
            (2, false, false),
            (2, false, true),
            (2, true, false),
        ] {
            FORCE_PORTABLE.store(portable, std::sync::atomic::Ordering::Relaxed);
            FORCE_AVX2.store(avx2_only, std::sync::atomic::Ordering::Relaxed);
            let be = CpuBackend::with_threads(threads).unwrap();
            for &(n, c, h, w, co, k, pad) in &shapes {
                let g = Conv2dGeometry::new(co, k).padding(pad);
                let p = Conv2dParams::new(n, c, h, w, &g).unwrap();
                let x = data(p.x_len(), 1);
                let wt = data(p.w_len(), 2);
                let b = data(co, 3);
                let mut y = vec![f32::NAN; p.y_len()];
                forward(&be, &p, &x, &wt, Some(&b), &mut y);
                let mut want = naive_fwd(&p, &x, &wt);
                let pos = p.h_out * p.w_out;
                for (i, v) in want.iter_mut().enumerate() {
                    *v += f64::from(b[(i / pos) % co]);
                }
                close(&y, &want);
                // Scatter form of both gradients.
                let dy = data(p.y_len(), 4);
                let mut want_dx = vec![0.0f64; p.x_len()];
                let mut want_dw = vec![0.5f64; p.w_len()];
                for n in 0..p.n {
                    for o in 0..co {
                        for oh in 0..p.h_out {
                            for ow in 0..p.w_out {
                                let g = f64::from(dy[((n * co + o) * p.h_out + oh) * p.w_out + ow]);
                                for ci in 0..c {
                                    for ki in 0..k {
                                        for kj in 0..k {
                                            let ih = (oh + ki) as isize - pad as isize;
                                            let iw = (ow + kj) as isize - pad as isize;
                                            if ih < 0
                                                || iw < 0
                                                || ih >= h as isize
                                                || iw >= w as isize
                                            {
                                                continue;
                                            }
                                            let xi =
                                                ((n * c + ci) * h + ih as usize) * w + iw as usize;
                                            let wi = ((o * c + ci) * k + ki) * k + kj;
                                            want_dx[xi] += g * f64::from(wt[wi]);
                                            want_dw[wi] += g * f64::from(x[xi]);
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                let mut dx = vec![f32::NAN; p.x_len()];
                backward_input(&be, &p, &dy, &wt, &mut dx);
                close(&dx, &want_dx);
                let mut dw = vec![0.5f32; p.w_len()];
                backward_weight(&be, &p, &x, &dy, &mut dw);
                close(&dw, &want_dw);
            }
        }
        FORCE_PORTABLE.store(false, std::sync::atomic::Ordering::Relaxed);
        FORCE_AVX2.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// The AVX-512 tiles add each output's (forward, input gradient) or
    /// each lane's (weight gradient) products in the AVX2 tiles' order, so
    /// both give the same bits: LeNet-5's shapes at batch 64 on two
    /// threads, a 3x3 layer, and channel counts that leave a single
    /// channel and a flat output count that is not a multiple of the
    /// 32-position tile.
    #[test]
    fn avx512_equals_avx2_bit_for_bit() {
        if !avx512() {
            eprintln!("skipping the AVX-512 comparison: this CPU has no AVX-512F");
            return;
        }
        let _guard = FORCE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let be = CpuBackend::with_threads(2).unwrap();
        for (n, c, h, w, co, k, pad) in [
            (64, 1, 28, 28, 6, 5, 2),
            (64, 6, 14, 14, 16, 5, 0),
            (4, 3, 32, 32, 7, 3, 1),
            (3, 5, 9, 11, 9, 4, 1),
            // 18 channels: tiles of 8 + 8 + 2 (forward), 4 + 4 + 1 pairs (weights).
            (2, 20, 8, 8, 18, 3, 1),
        ] {
            let p =
                Conv2dParams::new(n, c, h, w, &Conv2dGeometry::new(co, k).padding(pad)).unwrap();
            let f = Flat::new(p.c_in, p.c_out, p.kh, p.kw, p.h, p.w, p.pad_h, p.pad_w);
            let (x, wt, b) = (data(p.x_len(), 5), data(p.w_len(), 6), data(co, 7));
            let dy = data(p.y_len(), 8);
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let run = |avx2_only: bool| {
                FORCE_AVX2.store(avx2_only, std::sync::atomic::Ordering::Relaxed);
                let mut y = vec![f32::NAN; p.y_len()];
                forward(&be, &p, &x, &wt, Some(&b), &mut y);
                let mut dx = vec![f32::NAN; p.x_len()];
                backward_input(&be, &p, &dy, &wt, &mut dx);
                let mut dw = vec![0.25f32; p.w_len()];
                backward_weight(&be, &p, &x, &dy, &mut dw);
                (bits(&y), bits(&dx), bits(&dw))
            };
            let (wide, narrow) = (run(false), run(true));
            FORCE_AVX2.store(false, std::sync::atomic::Ordering::Relaxed);
            let what = format!("{c}->{co} channels, {k}x{k}, {h}x{w} (q = {})", f.q);
            assert_eq!(wide.0, narrow.0, "forward, {what}");
            assert_eq!(wide.1, narrow.1, "input gradient, {what}");
            assert_eq!(wide.2, narrow.2, "weight gradient, {what}");
        }
    }
}
