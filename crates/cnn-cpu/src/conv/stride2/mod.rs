//! Stride-2 convolutions as polyphase stride-1 correlations (no im2col,
//! no GEMM packing): ResNet-20's downsampling 3x3 layers and its 1x1
//! shortcuts.
//!
//! # The polyphase split
//!
//! With the input padded (`xp`, `hp x wp`) and split into its four 2x2
//! phases `x_rs[i][j] = xp[2i + r][2j + s]` (`hh = ceil(hp / 2)` by
//! `wh = ceil(wp / 2)` each), a stride-2 correlation is a sum of four
//! stride-1 ones: tap `(ki, kj)` reads phase `(ki % 2, kj % 2)` at
//! `(oh + ki / 2, ow + kj / 2)`. The phase planes are laid out flat with
//! row length `wh`, as in the direct kernels' flat padded layout
//! (`conv::direct`): output position `q = oh wh + ow`, tap `(ci, ki, kj)`
//! at the fixed offset `plane(ci, ki % 2, kj % 2) + (ki / 2) wh + kj / 2`,
//! so one register-blocked tile loop walks an offset table of the layer's
//! `c_in kh kw` real taps (no zero taps).
//!
//! - forward: `out[co][q] = sum_t w[co][t] xph[off_t + q]`, taps in
//!   `(ci, ki, kj)` order, [`QT`] positions by up to six output channels;
//! - backward input (a transposed convolution): each phase `(r, s)` of the
//!   padded `dx` is a stride-1 full correlation of `dy` with the sub-kernel
//!   `w[co][ci][2a + r][2b + s]` flipped, so the same tile loop runs four
//!   times on `dy` padded by `ceil(k / 2) - 1`, with per-phase offset
//!   tables (taps in `(co, a, b)` order), and the four phase outputs are
//!   interleaved back into `dx`;
//! - backward weight: `dw[co][t] = sum_q dy[co][q] xph[off_t + q]` with `dy`
//!   spread to row length `wh` (zeros past `w_out`), one lane vector of
//!   [`V`] partial sums per `(co, t)` across the images of a part, reduced
//!   pairwise at the end, and the parts added in order
//!   ([`direct::sum_weight_parts`]).
//!
//! Forward and input gradient split the batch into one contiguous chunk
//! per thread and compute each image alone, so their bits do not depend on
//! the thread count; the weight gradient depends on the thread count only
//! (one part per thread, like every other path of the crate). On x86-64
//! with AVX2 and FMA the same loops are compiled for those features and
//! chosen at run time; every version sums each output (and each lane of a
//! weight-gradient partial) in one order, so the AVX2 + FMA versions give
//! the same bits whatever the vector width the compiler picks (the
//! portable build, without FMA, rounds each product separately).

#![allow(clippy::needless_range_loop)]

#[cfg(test)]
mod tests;

use cnn_core::Conv2dParams;

use super::direct::{self, madd};
use crate::CpuBackend;
use crate::par::with_scratch;

/// Lanes of one weight-gradient accumulator vector.
const V: usize = 8;
/// Output positions per forward tile (two AVX2 vectors).
const QT: usize = 16;
/// Largest `c_in kh kw` and `c_out kh kw` the kernels take (their offset
/// tables live on the stack).
const MAX_TAPS: usize = 1024;
/// Largest `c_in kh kw` for which the cost rule picks this path (the
/// direct kernels' limit: above it a GEMM reuses each input value over
/// more output channels than the tiles do).
const COST_MAX_TAPS: usize = 576;
/// Largest `c_out` for which the cost rule picks this path.
const COST_MAX_COUT: usize = 64;
/// Below this many forward FLOPs the kernels run on the calling thread.
const PAR_MIN_FLOPS: f64 = 4.0e5;

/// Whether the polyphase kernels can take `p`: stride 2 both ways,
/// dilation 1, one group, padding below the kernel size, at most
/// [`MAX_TAPS`] taps per output (and per input-gradient output).
pub(crate) fn supported(p: &Conv2dParams) -> bool {
    p.groups == 1
        && p.stride_h == 2
        && p.stride_w == 2
        && p.dil_h == 1
        && p.dil_w == 1
        && p.kh >= 1
        && p.kw >= 1
        && p.pad_h < p.kh
        && p.pad_w < p.kw
        && p.c_in.max(p.c_out) * p.kh * p.kw <= MAX_TAPS
}

/// Whether a stride-2 layer takes the polyphase kernels: shape support,
/// then `forced` (`Some(true)`: these kernels, `Some(false)`: im2col and
/// GEMM) or else the cost rule: within the direct kernels' limits on taps
/// and output channels, for every op and kernel size. Entry 39 kept the
/// GEMM path for the 1x1 shortcuts' forward and input gradient and for
/// their weight gradient on maps below 256 positions (0.7-1.0x there);
/// since the split reads only phase `(0, 0)` of a 1x1 layer (half of
/// `x`'s cache lines) and the input gradient writes the other three
/// phases as zeros without reading them, all six 1x1 ops measured
/// 1.1-2.0x the GEMM path (performance.md, entry 42).
pub(crate) fn use_stride2(p: &Conv2dParams, forced: Option<bool>) -> bool {
    let small = p.c_in * p.kh * p.kw <= COST_MAX_TAPS && p.c_out <= COST_MAX_COUT;
    supported(p) && forced.unwrap_or(small)
}

/// The forward geometry: the four phase planes of each padded input
/// channel and the flat output.
#[derive(Clone, Copy, Debug)]
struct Poly {
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
    /// Phase plane rows: `ceil(hp / 2)`.
    hh: usize,
    /// Phase plane row length: `ceil(wp / 2)`.
    wh: usize,
    /// Flat output positions per channel (multiple of [`QT`]).
    q: usize,
    /// Stride between phase planes (with trailing zeros).
    cs: usize,
}

impl Poly {
    fn new(p: &Conv2dParams) -> Self {
        let (hp, wp) = (p.h + 2 * p.pad_h, p.w + 2 * p.pad_w);
        let (hh, wh) = (hp.div_ceil(2), wp.div_ceil(2));
        let q = (p.h_out * wh).next_multiple_of(QT);
        // Reads reach q - 1 + (ceil(kh / 2) - 1) wh + ceil(kw / 2) - 1.
        let reach = (p.kh.div_ceil(2) - 1) * wh + p.kw.div_ceil(2) - 1;
        let cs = (q + reach).max(hh * wh).next_multiple_of(V);
        Poly {
            cin: p.c_in,
            cout: p.c_out,
            kh: p.kh,
            kw: p.kw,
            h: p.h,
            w: p.w,
            ph: p.pad_h,
            pw: p.pad_w,
            h_out: p.h_out,
            w_out: p.w_out,
            hh,
            wh,
            q,
            cs,
        }
    }
    /// The geometry of `nb` images stacked in each phase plane, image `k`
    /// from phase row `k hh` on (for the weight gradient, whose per-call
    /// overhead a longer `q` amortises): the rows between images hold
    /// `dy = 0`, so the positions reading across images add nothing.
    fn stacked(&self, nb: usize) -> Self {
        let rows = nb * self.hh * self.wh;
        let q = rows.next_multiple_of(QT);
        let reach = (self.kh.div_ceil(2) - 1) * self.wh + self.kw.div_ceil(2) - 1;
        Poly {
            q,
            cs: (q + reach).max(rows).next_multiple_of(V),
            ..*self
        }
    }
    fn taps(&self) -> usize {
        self.cin * self.kh * self.kw
    }
    fn x_image(&self) -> usize {
        self.cin * self.h * self.w
    }
    fn y_image(&self) -> usize {
        self.cout * self.h_out * self.w_out
    }
    /// Floats of the phase planes of one image.
    fn phases_len(&self) -> usize {
        self.cin * 4 * self.cs
    }
    /// Offset of tap `(ci, ki, kj)` in the phase planes.
    fn offset(&self, ci: usize, ki: usize, kj: usize) -> usize {
        ((ci * 2 + ki % 2) * 2 + kj % 2) * self.cs + (ki / 2) * self.wh + kj / 2
    }
    /// The offsets of every tap in `(ci, ki, kj)` order.
    fn offsets(&self, offs: &mut [u32; MAX_TAPS]) {
        for ci in 0..self.cin {
            for ki in 0..self.kh {
                for kj in 0..self.kw {
                    offs[(ci * self.kh + ki) * self.kw + kj] = self.offset(ci, ki, kj) as u32;
                }
            }
        }
    }
}

/// Split one image `x (cin, h, w)` into its padded phase planes, from
/// phase row `row0` on (a stack of images, see [`Poly::stacked`]). Only
/// the input's positions are written: the caller zeroes `xph` once per chunk,
/// and every image writes the same positions, so the padding stays zero.
/// The phases no tap reads are left alone (a 1x1 kernel reads phase
/// `(0, 0)` only: its odd input rows are skipped, its odd columns not
/// stored), so a 1x1 layer reads half of `x`'s cache lines.
#[inline(always)]
fn split_phases(g: &Poly, x: &[f32], row0: usize, xph: &mut [f32]) {
    if g.w == 0 {
        return;
    }
    if g.kw == 1 {
        split_phase0_columns(g, x, row0, xph);
        return;
    }
    for (ci, plane) in x.chunks_exact(g.h * g.w).enumerate() {
        for (ih, row) in plane.chunks_exact(g.w).enumerate() {
            let i2 = ih + g.ph;
            if g.kh == 1 && i2 % 2 == 1 {
                continue; // phase row 1: no tap reads it
            }
            // Input column iw goes to phase column (iw + pw) % 2 at
            // (iw + pw) / 2: even columns to s0 = pw % 2 from pw / 2 on,
            // odd ones to 1 - s0 from (pw + 1) / 2 on (pairs, so that the
            // loop vectorises).
            let planes = (ci * 2 + i2 % 2) * 2 * g.cs;
            let (p0, p1) = xph[planes..planes + 2 * g.cs].split_at_mut(g.cs);
            let (even, odd) = if g.pw.is_multiple_of(2) {
                (p0, p1)
            } else {
                (p1, p0)
            };
            let at = (row0 + i2 / 2) * g.wh;
            let even = &mut even[at + g.pw / 2..];
            let odd = &mut odd[at + g.pw.div_ceil(2)..];
            let pairs = row.chunks_exact(2);
            if let [last] = pairs.remainder() {
                even[g.w / 2] = *last;
            }
            for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(pairs) {
                *e = pair[0];
                *o = pair[1];
            }
        }
    }
}

/// [`split_phases`] for kernels one column wide (so `pw = 0`): only the
/// even columns, phase column 0, are stored (and for one row, only the
/// even rows).
#[inline(always)]
fn split_phase0_columns(g: &Poly, x: &[f32], row0: usize, xph: &mut [f32]) {
    for (ci, plane) in x.chunks_exact(g.h * g.w).enumerate() {
        for (ih, row) in plane.chunks_exact(g.w).enumerate() {
            let i2 = ih + g.ph;
            if g.kh == 1 && i2 % 2 == 1 {
                continue;
            }
            let at = (ci * 2 + i2 % 2) * 2 * g.cs + (row0 + i2 / 2) * g.wh;
            let even = &mut xph[at..at + g.w.div_ceil(2)];
            // Pairs of columns, as in `split_phases`, so that it vectorises.
            let pairs = row.chunks_exact(2);
            if let [last] = pairs.remainder() {
                even[g.w / 2] = *last;
            }
            for (e, pair) in even.iter_mut().zip(pairs) {
                *e = pair[0];
            }
        }
    }
}

/// Copy `c` planes of `h x w` from `src` into `dst` (plane stride `cs`,
/// row stride `ld`, offset by `(r0, c0)`); the rest of `dst` is left alone.
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
    if w == 0 || h == 0 {
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

/// `out[b ld + q] = sum_t wpk[t CB + b] xp[offs[t] + q]` for `b < CB` and
/// every `q < len` (a multiple of [`QT`], at most `ld`).
#[inline(always)]
fn tile<const CB: usize, const FMA: bool>(
    offs: &[u32],
    wpk: &[f32],
    xp: &[f32],
    len: usize,
    ld: usize,
    out: &mut [f32],
) {
    let wpk = &wpk[..offs.len() * CB];
    for q0 in (0..len).step_by(QT) {
        let mut acc = [[0.0f32; QT]; CB];
        for (&off, wt) in offs.iter().zip(wpk.chunks_exact(CB)) {
            let at = off as usize + q0;
            let xv: &[f32; QT] = xp[at..at + QT].try_into().expect("QT floats");
            for b in 0..CB {
                let wv = wt[b];
                for l in 0..QT {
                    acc[b][l] = madd::<FMA>(wv, xv[l], acc[b][l]);
                }
            }
        }
        for (b, a) in acc.iter().enumerate() {
            out[b * ld + q0..][..QT].copy_from_slice(a);
        }
    }
}

/// Output-channel blocks of the tiles: 6 (12 AVX2 accumulators), 4, 2, 1,
/// ending on two blocks of 4 rather than 6 and 2 (2 x 2 accumulators wait
/// on the FMA latency): 32 = 4 x 6 + 2 x 4, 64 = 10 x 6 + 4.
fn co_blocks(cout: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut co = 0;
    std::iter::from_fn(move || {
        let cb = match cout - co {
            8 => 4,
            l if l >= 6 => 6,
            l if l >= 4 => 4,
            l if l >= 2 => 2,
            l => l,
        };
        (cb > 0).then(|| {
            co += cb;
            (co - cb, cb)
        })
    })
}

/// [`tile`] for every block of `cout` channels: `wpk` holds each block's
/// weights as `(taps, cb)` from `co0 taps` on, `out` the `cout` rows of
/// `ld` (the first `len` of each written).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tiles<const FMA: bool>(
    cout: usize,
    offs: &[u32],
    wpk: &[f32],
    xp: &[f32],
    len: usize,
    ld: usize,
    out: &mut [f32],
) {
    let taps = offs.len();
    for (co0, cb) in co_blocks(cout) {
        let wb = &wpk[co0 * taps..];
        let ob = &mut out[co0 * ld..];
        match cb {
            6 => tile::<6, FMA>(offs, wb, xp, len, ld, ob),
            4 => tile::<4, FMA>(offs, wb, xp, len, ld, ob),
            2 => tile::<2, FMA>(offs, wb, xp, len, ld, ob),
            _ => tile::<1, FMA>(offs, wb, xp, len, ld, ob),
        }
    }
}

/// Pack `cout` rows of `taps` weights, `weight(co, t)`, as each channel
/// block's `(taps, cb)` matrix from `co0 taps` on.
fn pack(cout: usize, taps: usize, wpk: &mut [f32], weight: impl Fn(usize, usize) -> f32) {
    for (co0, cb) in co_blocks(cout) {
        for b in 0..cb {
            for t in 0..taps {
                wpk[co0 * taps + t * cb + b] = weight(co0 + b, t);
            }
        }
    }
}

/// Forward of a chunk of images: `y (n, cout, h_out, w_out)` from
/// `x (n, cin, h, w)`. `scratch` holds the phase planes, the flat output
/// and the packed weights.
#[inline(always)]
fn fwd_chunk<const FMA: bool>(
    g: &Poly,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    let taps = g.taps();
    let (xph, rest) = scratch.split_at_mut(g.phases_len());
    let (out, wpk) = rest.split_at_mut(g.cout * g.q);
    pack(g.cout, taps, wpk, |co, t| w[co * taps + t]);
    let mut offs = [0u32; MAX_TAPS];
    g.offsets(&mut offs);
    let offs = &offs[..taps];
    let pos = g.h_out * g.w_out;
    xph.fill(0.0);
    for (x_n, y_n) in x
        .chunks_exact(g.x_image())
        .zip(y.chunks_exact_mut(g.y_image()))
    {
        split_phases(g, x_n, 0, xph);
        tiles::<FMA>(g.cout, offs, wpk, xph, g.q, g.q, out);
        for (c, (y_c, o_c)) in y_n
            .chunks_exact_mut(pos)
            .zip(out.chunks_exact(g.q))
            .enumerate()
        {
            let bv = bias.map_or(0.0, |b| b[c]);
            for (y_r, o_r) in y_c.chunks_exact_mut(g.w_out).zip(o_c.chunks(g.wh)) {
                for (yv, &ov) in y_r.iter_mut().zip(o_r) {
                    *yv = ov + bv;
                }
            }
        }
    }
}

/// The input-gradient geometry: `dy` padded by `(pa, pb)` =
/// `(ceil(kh / 2) - 1, ceil(kw / 2) - 1)` with row length `wl = wh + pb`,
/// and four phase outputs of `hh` rows of `wl`.
#[derive(Clone, Copy, Debug)]
struct Back {
    g: Poly,
    pa: usize,
    pb: usize,
    wl: usize,
    /// Flat phase-output positions per channel (multiple of [`QT`]).
    qd: usize,
    /// Stride between padded `dy` planes.
    csd: usize,
}

impl Back {
    fn new(p: &Conv2dParams) -> Self {
        let g = Poly::new(p);
        let (pa, pb) = (p.kh.div_ceil(2) - 1, p.kw.div_ceil(2) - 1);
        let wl = g.wh + pb;
        let qd = (g.hh * wl).next_multiple_of(QT);
        // A phase's tiles start at its first needed row (below hh) and
        // cover at most qd positions: reads reach hh wl + QT + pa wl + pb.
        let csd = (g.hh * wl + QT + pa * wl + pb).next_multiple_of(V);
        Back {
            g,
            pa,
            pb,
            wl,
            qd,
            csd,
        }
    }
    /// Sub-kernel rows (columns) of phase `r` of a kernel of `k` rows.
    fn sub(k: usize, r: usize) -> usize {
        (k - r).div_ceil(2)
    }
    /// The rows `lo..hi` of phase row `r` that `dx` needs: `i` with
    /// `ph <= 2 i + r < ph + h`.
    fn rows(&self, r: usize) -> (usize, usize) {
        let g = &self.g;
        let lo = g.ph.saturating_sub(r).div_ceil(2);
        let hi = (g.ph + g.h).saturating_sub(r).div_ceil(2);
        (lo, hi.max(lo))
    }
    fn scratch_len(&self) -> usize {
        let g = &self.g;
        g.cout * self.csd + 4 * g.cin * self.qd + g.cin * g.cout * g.kh * g.kw
    }
}

/// Input gradient of a chunk of images: `dx (n, cin, h, w)` overwritten
/// from `dy (n, cout, h_out, w_out)`.
#[inline(always)]
fn bwd_input_chunk<const FMA: bool>(
    b: &Back,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    scratch: &mut [f32],
) {
    let g = &b.g;
    let (kh, kw) = (g.kh, g.kw);
    let (dyp, rest) = scratch.split_at_mut(g.cout * b.csd);
    let (outs, wpk) = rest.split_at_mut(4 * g.cin * b.qd);
    // Per phase: its taps (co, a, b) in that order, their offsets in the
    // padded dy and the packed weights w[co][ci][2a + r][2b + s].
    let mut offs = [0u32; MAX_TAPS];
    let mut starts = [0usize; 5];
    for ph in 0..4 {
        let (r, s) = (ph / 2, ph % 2);
        let (ka, kb) = (Back::sub(kh, r), Back::sub(kw, s));
        let t0 = starts[ph];
        let taps = g.cout * ka * kb;
        for co in 0..g.cout {
            for a in 0..ka {
                for bb in 0..kb {
                    let off = co * b.csd + (b.pa - a) * b.wl + (b.pb - bb);
                    offs[t0 + (co * ka + a) * kb + bb] = off as u32;
                }
            }
        }
        pack(g.cin, taps, &mut wpk[g.cin * t0..], |ci, t| {
            let (co, ab) = (t / (ka * kb), t % (ka * kb));
            let (ki, kj) = (2 * (ab / kb) + r, 2 * (ab % kb) + s);
            w[((co * g.cin + ci) * kh + ki) * kw + kj]
        });
        starts[ph + 1] = t0 + taps;
    }
    dyp.fill(0.0);
    outs.fill(0.0);
    let plane = g.h * g.w;
    for (dy_n, dx_n) in dy
        .chunks_exact(g.y_image())
        .zip(dx.chunks_exact_mut(g.x_image()))
    {
        spread(dy_n, g.cout, g.h_out, g.w_out, b.pa, b.pb, b.wl, b.csd, dyp);
        for ph in 0..4 {
            let (t0, t1) = (starts[ph], starts[ph + 1]);
            if t0 == t1 {
                continue; // a phase no tap reaches stays zero
            }
            // Only the rows dx needs, the first at the output's row 0.
            let (lo, hi) = b.rows(ph / 2);
            let len = ((hi - lo) * b.wl).next_multiple_of(QT);
            if len == 0 {
                continue;
            }
            let out = &mut outs[ph * g.cin * b.qd..][..g.cin * b.qd];
            let xs = &dyp[lo * b.wl..];
            tiles::<FMA>(g.cin, &offs[t0..t1], &wpk[g.cin * t0..], xs, len, b.qd, out);
        }
        if kh == 1 && kw == 1 {
            scatter_phase0(b, outs, dx_n);
            continue;
        }
        // Interleave the phases back: dx[ci][ih][iw] is phase
        // ((ih + ph) % 2, (iw + pw) % 2) at ((ih + ph) / 2, (iw + pw) / 2).
        for ci in 0..g.cin {
            for ih in 0..g.h {
                let i2 = ih + g.ph;
                let row = &mut dx_n[ci * plane + ih * g.w..][..g.w];
                // As in `split_phases`: even columns from phase column
                // s0 = pw % 2 at pw / 2 on, odd ones from 1 - s0.
                let at = |s: usize| {
                    let ph = (i2 % 2) * 2 + s;
                    (ph * g.cin + ci) * b.qd + (i2 / 2 - b.rows(i2 % 2).0) * b.wl
                };
                let s0 = g.pw % 2;
                let even = &outs[at(s0) + g.pw / 2..];
                let odd = &outs[at(1 - s0) + g.pw.div_ceil(2)..];
                let mut pairs = row.chunks_exact_mut(2);
                for ((pair, &e), &o) in pairs.by_ref().zip(even).zip(odd) {
                    pair[0] = e;
                    pair[1] = o;
                }
                if let [last] = pairs.into_remainder() {
                    *last = even[g.w / 2];
                }
            }
        }
    }
}

/// The input gradient's interleave for a 1x1 kernel (no padding): only
/// phase `(0, 0)` has taps, so `dx`'s even rows take its values at even
/// columns and zeros between, its odd rows are zero.
#[inline(always)]
fn scatter_phase0(b: &Back, outs: &[f32], dx_n: &mut [f32]) {
    let g = &b.g;
    if g.w == 0 {
        return;
    }
    for (dx_c, src) in dx_n
        .chunks_exact_mut(g.h * g.w)
        .zip(outs.chunks_exact(b.qd))
    {
        for (ih, row) in dx_c.chunks_exact_mut(g.w).enumerate() {
            if ih % 2 == 1 {
                row.fill(0.0);
                continue;
            }
            let even = &src[(ih / 2) * b.wl..][..g.w.div_ceil(2)];
            let mut pairs = row.chunks_exact_mut(2);
            for (pair, &e) in pairs.by_ref().zip(even) {
                pair[0] = e;
                pair[1] = 0.0;
            }
            if let [last] = pairs.into_remainder() {
                *last = even[g.w / 2];
            }
        }
    }
}

/// Adds `sum_q dyq[co0 + b][q] xph[offs[j] + q]` into lane vector
/// `acc_v[((co0 + b) taps + t0 + j) V..][..V]` for `b < CB`, `j < G`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn bw_tile<const CB: usize, const G: usize, const FMA: bool>(
    offs: &[u32; G],
    xph: &[f32],
    dyq: &[f32],
    q: usize,
    co0: usize,
    taps: usize,
    t0: usize,
    acc_v: &mut [f32],
) {
    let xs: [&[f32]; G] = std::array::from_fn(|j| &xph[offs[j] as usize..][..q]);
    let ds: [&[f32]; CB] = std::array::from_fn(|b| &dyq[(co0 + b) * q..][..q]);
    let mut acc = [[[0.0f32; V]; G]; CB];
    for q0 in (0..q).step_by(V) {
        let dv: [&[f32; V]; CB] =
            std::array::from_fn(|b| ds[b][q0..q0 + V].try_into().expect("V floats"));
        for j in 0..G {
            let xv: &[f32; V] = xs[j][q0..q0 + V].try_into().expect("V floats");
            for b in 0..CB {
                for l in 0..V {
                    acc[b][j][l] = madd::<FMA>(dv[b][l], xv[l], acc[b][j][l]);
                }
            }
        }
    }
    for (b, a_b) in acc.iter().enumerate() {
        let dst = &mut acc_v[((co0 + b) * taps + t0) * V..][..G * V];
        for (d, a) in dst.chunks_exact_mut(V).zip(a_b) {
            for l in 0..V {
                d[l] += a[l];
            }
        }
    }
}

/// [`bw_tile`], with explicit AVX2 + FMA vectors when `FMA` (the portable
/// loop's arrays of slices are not kept in registers by the compiler: it
/// ran at a tenth of the GEMM path's speed).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn bw_tile_any<const CB: usize, const G: usize, const FMA: bool>(
    offs: &[u32; G],
    xph: &[f32],
    dyq: &[f32],
    q: usize,
    co0: usize,
    taps: usize,
    t0: usize,
    acc_v: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: FMA = true is only instantiated from avx2::bw, which
        // runs only on CPUs with AVX2 and FMA.
        unsafe { avx2::bw_tile::<CB, G>(offs, xph, dyq, q, co0, taps, t0, acc_v) };
        return;
    }
    bw_tile::<CB, G, FMA>(offs, xph, dyq, q, co0, taps, t0, acc_v);
}

/// [`bw_tile`] over the kernel rows `(ci, ki)` for output channels
/// `co0..co0 + CB`: a row's `kw` taps at once for `kw <= 3`.
#[inline(always)]
fn bw_rows<const CB: usize, const FMA: bool>(
    g: &Poly,
    xph: &[f32],
    dyq: &[f32],
    co0: usize,
    acc_v: &mut [f32],
) {
    let taps = g.taps();
    for ci in 0..g.cin {
        for ki in 0..g.kh {
            let t0 = (ci * g.kh + ki) * g.kw;
            let off = |kj: usize| g.offset(ci, ki, kj) as u32;
            match g.kw {
                3 => {
                    let offs = [off(0), off(1), off(2)];
                    bw_tile_any::<CB, 3, FMA>(&offs, xph, dyq, g.q, co0, taps, t0, acc_v);
                }
                2 => {
                    let offs = [off(0), off(1)];
                    bw_tile_any::<CB, 2, FMA>(&offs, xph, dyq, g.q, co0, taps, t0, acc_v);
                }
                _ => {
                    for kj in 0..g.kw {
                        let offs = [off(kj)];
                        bw_tile_any::<CB, 1, FMA>(&offs, xph, dyq, g.q, co0, taps, t0 + kj, acc_v);
                    }
                }
            }
        }
    }
}

/// Phase-plane positions a weight-gradient block aims for (images per
/// block: this over one image's `hh wh`).
const DW_TARGET: usize = 512;

/// Images per weight-gradient block for parts of up to `per` images.
fn dw_block(g: &Poly, per: usize) -> usize {
    (DW_TARGET / (g.hh * g.wh).max(1)).clamp(1, per.max(1))
}

/// Weight gradient of a chunk of images: `dw_part (cout, taps)` is
/// overwritten with the chunk's sum, in blocks of `nb` images stacked as
/// `g` (= [`Poly::stacked`]`(nb)`) says. `scratch` holds the phase
/// planes, the spread `dy` and the lane accumulators.
#[inline(always)]
fn bw_chunk<const FMA: bool>(
    g: &Poly,
    nb: usize,
    x: &[f32],
    dy: &[f32],
    dw_part: &mut [f32],
    scratch: &mut [f32],
) {
    let taps = g.taps();
    let (xi, yi) = (g.x_image(), g.y_image());
    let (xph, rest) = scratch.split_at_mut(g.phases_len());
    let (dyq, acc_v) = rest.split_at_mut(g.cout * g.q);
    let acc_v = &mut acc_v[..g.cout * taps * V];
    acc_v.fill(0.0);
    xph.fill(0.0);
    dyq.fill(0.0);
    for (x_b, dy_b) in x.chunks(nb * xi).zip(dy.chunks(nb * yi)) {
        if dy_b.len() < nb * yi {
            // A last, shorter block: no earlier image's dy or x left behind.
            xph.fill(0.0);
            dyq.fill(0.0);
        }
        for (k, (x_n, dy_n)) in x_b.chunks_exact(xi).zip(dy_b.chunks_exact(yi)).enumerate() {
            split_phases(g, x_n, k * g.hh, xph);
            spread(dy_n, g.cout, g.h_out, g.w_out, k * g.hh, 0, g.wh, g.q, dyq);
        }
        let mut co = 0;
        while co + 4 <= g.cout {
            bw_rows::<4, FMA>(g, xph, dyq, co, acc_v);
            co += 4;
        }
        for c in co..g.cout {
            bw_rows::<1, FMA>(g, xph, dyq, c, acc_v);
        }
    }
    for (d, a) in dw_part.iter_mut().zip(acc_v.chunks_exact(V)) {
        let s4: [f32; 4] = std::array::from_fn(|l| a[l] + a[l + 4]);
        *d = (s4[0] + s4[2]) + (s4[1] + s4[3]);
    }
}

/// The kernels compiled for AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Back, Poly, V, bw_chunk, bwd_input_chunk, fwd_chunk};

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fwd(
        g: &Poly,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        y: &mut [f32],
        s: &mut [f32],
    ) {
        fwd_chunk::<true>(g, x, w, bias, y, s);
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn bwd_input(b: &Back, dy: &[f32], w: &[f32], dx: &mut [f32], s: &mut [f32]) {
        bwd_input_chunk::<true>(b, dy, w, dx, s);
    }

    /// [`super::bw_tile`] with AVX2 + FMA intrinsics: the same
    /// fused multiply-adds per lane in the same order, so the same bits.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) unsafe fn bw_tile<const CB: usize, const G: usize>(
        offs: &[u32; G],
        xph: &[f32],
        dyq: &[f32],
        q: usize,
        co0: usize,
        taps: usize,
        t0: usize,
        acc_v: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        assert!(q.is_multiple_of(V) && (co0 + CB) * q <= dyq.len());
        assert!(offs.iter().all(|&o| o as usize + q <= xph.len()));
        assert!(((co0 + CB - 1) * taps + t0 + G) * V <= acc_v.len());
        // SAFETY (all loads and stores below): x reads reach
        // offs[j] + q - 1, dy reads (co0 + CB) q - 1, acc_v accesses
        // ((co0 + CB - 1) taps + t0 + G) V - 1; all asserted above.
        unsafe {
            let xp = xph.as_ptr();
            let dr = dyq.as_ptr().add(co0 * q);
            let mut acc = [[_mm256_setzero_ps(); G]; CB];
            // The G x vectors first, then one channel's dy at a time: 12
            // accumulators + 3 + 1 fit the 16 registers (dy for every
            // channel first spilled an accumulator to the stack).
            for q0 in (0..q).step_by(V) {
                let xv: [__m256; G] =
                    std::array::from_fn(|j| _mm256_loadu_ps(xp.add(offs[j] as usize + q0)));
                for b in 0..CB {
                    let dv = _mm256_loadu_ps(dr.add(b * q + q0));
                    for j in 0..G {
                        acc[b][j] = _mm256_fmadd_ps(dv, xv[j], acc[b][j]);
                    }
                }
            }
            for (b, a_b) in acc.iter().enumerate() {
                let dst = acc_v.as_mut_ptr().add(((co0 + b) * taps + t0) * V);
                for (j, a) in a_b.iter().enumerate() {
                    let d = dst.add(j * V);
                    _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), *a));
                }
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn bw(
        g: &Poly,
        nb: usize,
        x: &[f32],
        dy: &[f32],
        dw: &mut [f32],
        s: &mut [f32],
    ) {
        bw_chunk::<true>(g, nb, x, dy, dw, s);
    }
}

/// Set by unit tests to run the portable kernels on an AVX2 machine.
static FORCE_PORTABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this CPU runs the AVX2 + FMA versions of the kernels.
fn avx2_fma() -> bool {
    !FORCE_PORTABLE.load(std::sync::atomic::Ordering::Relaxed) && crate::cpu_features::avx2_fma()
}

/// Forward convolution (`y` overwritten). [`supported`] must hold.
pub(crate) fn forward(
    be: &CpuBackend,
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    let g = Poly::new(p);
    let scratch = g.phases_len() + g.cout * g.q + g.cout * g.taps();
    let run = |xc: &[f32], yc: &mut [f32]| {
        with_scratch(scratch, |s| {
            #[cfg(target_arch = "x86_64")]
            if avx2_fma() {
                // SAFETY: avx2_fma() checked the CPU features.
                unsafe { avx2::fwd(&g, xc, w, b, yc, s) };
                return;
            }
            fwd_chunk::<false>(&g, xc, w, b, yc, s);
        })
    };
    direct::for_chunks(
        be,
        direct::parts(be, p),
        p.n,
        x,
        g.x_image(),
        y,
        g.y_image(),
        run,
    );
}

/// Input gradient (`dx` overwritten). [`supported`] must hold.
pub(crate) fn backward_input(
    be: &CpuBackend,
    p: &Conv2dParams,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) {
    let bk = Back::new(p);
    let g = &bk.g;
    let run = |dyc: &[f32], dxc: &mut [f32]| {
        with_scratch(bk.scratch_len(), |s| {
            #[cfg(target_arch = "x86_64")]
            if avx2_fma() {
                // SAFETY: avx2_fma() checked the CPU features.
                unsafe { avx2::bwd_input(&bk, dyc, w, dxc, s) };
                return;
            }
            bwd_input_chunk::<false>(&bk, dyc, w, dxc, s);
        })
    };
    direct::for_chunks(
        be,
        direct::parts(be, p),
        p.n,
        dy,
        g.y_image(),
        dx,
        g.x_image(),
        run,
    );
}

/// Weight gradient, accumulated: `dw += sum over the batch`, summed in
/// one contiguous part per thread added in part order
/// ([`direct::sum_weight_parts`]). [`supported`] must hold.
pub(crate) fn backward_weight(
    be: &CpuBackend,
    p: &Conv2dParams,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) {
    let g = Poly::new(p);
    let nb = dw_block(&g, p.n.div_ceil(direct::weight_parts(be, p)));
    let gs = g.stacked(nb);
    let scratch = gs.phases_len() + gs.cout * gs.q + dw.len() * V;
    let parallel = direct::weight_parts(be, p) > 1 && p.forward_flops() >= PAR_MIN_FLOPS;
    let (xi, yi) = (g.x_image(), g.y_image());
    direct::sum_weight_parts(be, p, parallel, dw, |first, last, out| {
        let (xs, dys) = (&x[first * xi..last * xi], &dy[first * yi..last * yi]);
        with_scratch(scratch, |s| {
            #[cfg(target_arch = "x86_64")]
            if avx2_fma() {
                // SAFETY: avx2_fma() checked the CPU features.
                unsafe { avx2::bw(&gs, nb, xs, dys, out, s) };
                return;
            }
            bw_chunk::<false>(&gs, nb, xs, dys, out, s);
        });
    });
}
