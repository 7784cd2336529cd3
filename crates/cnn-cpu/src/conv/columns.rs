//! The im2col matrix of a convolution, generated run by run rather than
//! stored: packed straight into GEMM panels (forward's `col`, and the
//! weight gradient's `col^T`), or written whole where the GEMM path cannot
//! take panels; and `col2im`, its adjoint.
//!
//! For one group `g` and a block of `nb` images, `col` is `(K, L)` with
//! `K = cg kh kw` rows `kk = (c, ki, kj)` and `L = nb P` columns `j = (image,
//! oh, ow)`: element `(kk, j)` is input `x[image, g cg + c, oh sh + ki dh -
//! ph, ow sw + kj dw - pw]`, zero in the padding. Packing it block by block
//! keeps the 2.4 MB matrix of a 64-channel 32x32 image from going through
//! the caches twice (written by im2col, read back by the packing).

use super::{Dims, valid_range};
use crate::gemm::{MatRef, PackB, PanelTranspose};

/// Row `kk` of `col`: which input plane it reads and at which offsets.
#[derive(Clone, Copy)]
struct Tap {
    /// Offset of the input channel's plane within an image.
    chan: usize,
    /// Input row of output row `oh` is `oh sh + off_h`.
    off_h: isize,
    /// Input column of output column `ow` is `ow sw + off_w`.
    off_w: isize,
    /// Output columns `lo..hi` read inside the input row (others are padding).
    lo: usize,
    hi: usize,
}

/// A column `j` of `col` as (image, output row, output column).
#[derive(Clone, Copy, Default)]
struct At {
    img: usize,
    oh: usize,
    ow: usize,
}

/// The im2col matrix of group `g` of a block of whole images.
pub(super) struct Columns<'a> {
    d: &'a Dims,
    /// `nb` images, all channels (`nb * c_in * h * w`).
    x_blk: &'a [f32],
    /// First input channel of the group.
    c0: usize,
    /// Columns: `nb * P`.
    cols: usize,
}

impl<'a> Columns<'a> {
    pub(super) fn new(d: &'a Dims, x_blk: &'a [f32], g: usize) -> Self {
        let nb = x_blk.len() / d.x_image();
        Columns {
            d,
            x_blk,
            c0: g * d.cg,
            cols: nb * d.pos,
        }
    }

    fn tap(&self, kk: usize) -> Tap {
        let p = &self.d.p;
        let (c, k2) = (kk / (p.kh * p.kw), kk % (p.kh * p.kw));
        let (ki, kj) = (k2 / p.kw, k2 % p.kw);
        let off_w = (kj * p.dil_w) as isize - p.pad_w as isize;
        let (lo, hi) = valid_range(off_w, p.stride_w, p.w, p.w_out);
        Tap {
            chan: (self.c0 + c) * self.d.plane,
            off_h: (ki * p.dil_h) as isize - p.pad_h as isize,
            off_w,
            lo,
            hi,
        }
    }

    fn at(&self, j: usize) -> At {
        let q = j % self.d.pos;
        At {
            img: j / self.d.pos,
            oh: q / self.d.p.w_out,
            ow: q % self.d.p.w_out,
        }
    }

    /// `out[i] = col[tap's row][j + i]` for every `i < out.len()`, where `at`
    /// is column `j`: one segment per output row touched.
    #[inline(always)]
    fn run(&self, tap: Tap, mut at: At, out: &mut [f32]) {
        let p = &self.d.p;
        let xi = self.d.x_image();
        let mut o = 0;
        while o < out.len() {
            let seg = (p.w_out - at.ow).min(out.len() - o);
            let dst = &mut out[o..o + seg];
            let ih = (at.oh * p.stride_h) as isize + tap.off_h;
            if ih < 0 || ih >= p.h as isize {
                zero(dst);
            } else {
                let row_at = at.img * xi + tap.chan + ih as usize * p.w;
                let row = &self.x_blk[row_at..][..p.w];
                // Output columns at.ow..at.ow + seg, of which a..b are inside.
                let a = at.ow.max(tap.lo).min(at.ow + seg);
                let b = (at.ow + seg).min(tap.hi).max(a);
                let first = (row_at + at.ow) as isize + tap.off_w;
                if p.stride_w == 1 && first >= 0 && first as usize + seg <= self.x_blk.len() {
                    // The whole segment as one copy through the flat input
                    // (whole vectors, no ragged remainder), then zeros over
                    // the padding lanes, which read a neighbouring row.
                    copy(dst, &self.x_blk[first as usize..][..seg]);
                    zero(&mut dst[..a - at.ow]);
                    zero(&mut dst[b - at.ow..]);
                    o += seg;
                    at = self.next(at, seg);
                    continue;
                }
                zero(&mut dst[..a - at.ow]);
                zero(&mut dst[b - at.ow..]);
                if a < b {
                    let start = (a as isize * p.stride_w as isize + tap.off_w) as usize;
                    let inside = &mut dst[a - at.ow..b - at.ow];
                    if p.stride_w == 1 {
                        copy(inside, &row[start..start + (b - a)]);
                    } else {
                        for (o, v) in inside
                            .iter_mut()
                            .zip(row[start..].iter().step_by(p.stride_w))
                        {
                            *o = *v;
                        }
                    }
                }
            }
            o += seg;
            at = self.next(at, seg);
        }
    }

    /// `at` moved on by `seg` columns, `seg` not past the end of its row.
    #[inline(always)]
    fn next(&self, mut at: At, seg: usize) -> At {
        let p = &self.d.p;
        at.ow += seg;
        if at.ow == p.w_out {
            at.ow = 0;
            at.oh += 1;
            if at.oh == p.h_out {
                at.oh = 0;
                at.img += 1;
            }
        }
        at
    }

    /// `col` written whole: row `kk` at `col[kk * ld..kk * ld + cols]`.
    pub(super) fn write(&self, col: &mut [f32], ld: usize) {
        for kk in 0..self.d.k {
            self.run(
                self.tap(kk),
                At::default(),
                &mut col[kk * ld..][..self.cols],
            );
        }
    }

    /// The transpose of `col` (`(L, K)`), as a GEMM B operand: the weight
    /// gradient's `dy col^T`.
    pub(super) fn transposed(&'a self) -> Transposed<'a> {
        Transposed(self)
    }
}

/// `dst = src` for the short runs of a panel: fixed 16-float moves the
/// compiler keeps inline (a `memcpy` call per run cost more than the copy).
#[inline(always)]
fn copy(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.chunks_exact(16);
    for (d, s) in (&mut d).zip(&mut s) {
        d.copy_from_slice(s);
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// `dst = 0` for a short run (see [`copy`]).
#[inline(always)]
fn zero(dst: &mut [f32]) {
    let mut d = dst.chunks_exact_mut(16);
    for d in &mut d {
        d.copy_from_slice(&[0.0; 16]);
    }
    for d in d.into_remainder() {
        *d = 0.0;
    }
}

/// Most panels one packing call covers: the widest B block over the
/// narrowest panel (4096 columns of 16-lane AVX2 panels).
const MAX_PANELS: usize = 256;

/// `col` as the B operand of `y = w col` (forward).
impl PackB for Columns<'_> {
    #[allow(clippy::too_many_arguments)]
    fn pack(
        &self,
        p0: usize,
        kc: usize,
        j0: usize,
        nc: usize,
        w: usize,
        _transpose: PanelTranspose<'_>,
        dst: &mut [f32],
    ) {
        let panels = nc.div_ceil(w);
        assert!(panels <= MAX_PANELS, "{panels} panels in one block");
        // Where each panel starts, worked out once for all kc rows.
        let mut starts = [At::default(); MAX_PANELS];
        for (q, s) in starts[..panels].iter_mut().enumerate() {
            *s = self.at(j0 + q * w);
        }
        let tail = panels * w - nc;
        let starts = &starts[..panels];
        match w {
            #[cfg(target_arch = "x86_64")]
            32 if crate::cpu_features::avx512f() => {
                // SAFETY: the CPU has AVX-512F (checked just above).
                unsafe { pack_steps_avx512::<32>(self, p0, kc, nc, w, starts, dst) }
            }
            #[cfg(target_arch = "x86_64")]
            16 if crate::cpu_features::avx2_fma() => {
                // SAFETY: the CPU has AVX2 (checked just above).
                unsafe { pack_steps_avx2::<16>(self, p0, kc, nc, w, starts, dst) }
            }
            32 => self.pack_steps::<32>(p0, kc, nc, w, starts, dst),
            16 => self.pack_steps::<16>(p0, kc, nc, w, starts, dst),
            _ => self.pack_steps::<0>(p0, kc, nc, w, starts, dst),
        }
        if tail > 0 {
            for p in 0..kc {
                dst[(panels - 1) * kc * w + p * w + (w - tail)..][..tail].fill(0.0);
            }
        }
    }

    fn materialize<'b>(&self, dst: &'b mut [f32]) -> MatRef<'b> {
        self.write(dst, self.cols);
        MatRef::row_major(dst, self.d.k, self.cols, false)
    }
}

impl Columns<'_> {
    /// Rows `p0..p0 + kc` of the `w`-lane panels that start at `starts`
    /// (`W == w`, or `W == 0` for a width without a fast path).
    ///
    /// A full panel inside one output row, with stride 1, is one `W`-float
    /// copy of the input row shifted by the tap's offset (read through the
    /// flat input where the shift crosses a row end), then zeros for the
    /// lanes in the padding: the common case, kept free of `run`'s
    /// per-segment bookkeeping, which cost more than the copy itself.
    #[inline(always)]
    fn pack_steps<const W: usize>(
        &self,
        p0: usize,
        kc: usize,
        nc: usize,
        w: usize,
        starts: &[At],
        dst: &mut [f32],
    ) {
        let p = &self.d.p;
        let xi = self.d.x_image();
        for step in 0..kc {
            let tap = self.tap(p0 + step);
            for (q, &at) in starts.iter().enumerate() {
                let lanes = w.min(nc - q * w);
                let out = &mut dst[q * kc * w + step * w..][..lanes];
                let ih = (at.oh * p.stride_h) as isize + tap.off_h;
                let fast = W != 0
                    && lanes == W
                    && p.stride_w == 1
                    && at.ow + W <= p.w_out
                    && ih >= 0
                    && ih < p.h as isize;
                if fast {
                    let row = (at.img * xi + tap.chan + ih as usize * p.w) as isize;
                    let first = row + at.ow as isize + tap.off_w;
                    if first >= 0 && first as usize + W <= self.x_blk.len() {
                        let first = first as usize;
                        let out: &mut [f32; W] = out.try_into().expect("W lanes");
                        let src: &[f32; W] = self.x_blk[first..first + W].try_into().expect("W");
                        *out = *src;
                        for v in &mut out[..tap.lo.saturating_sub(at.ow).min(W)] {
                            *v = 0.0;
                        }
                        for v in &mut out[tap.hi.saturating_sub(at.ow).min(W)..] {
                            *v = 0.0;
                        }
                        continue;
                    }
                }
                self.run(tap, at, out);
            }
        }
    }
}

/// [`Columns::pack_steps`] compiled for AVX-512: a panel row is two
/// vector moves instead of eight SSE ones.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_steps_avx512<const W: usize>(
    cols: &Columns<'_>,
    p0: usize,
    kc: usize,
    nc: usize,
    w: usize,
    starts: &[At],
    dst: &mut [f32],
) {
    cols.pack_steps::<W>(p0, kc, nc, w, starts, dst)
}

/// [`Columns::pack_steps`] compiled for AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pack_steps_avx2<const W: usize>(
    cols: &Columns<'_>,
    p0: usize,
    kc: usize,
    nc: usize,
    w: usize,
    starts: &[At],
    dst: &mut [f32],
) {
    cols.pack_steps::<W>(p0, kc, nc, w, starts, dst)
}

/// `col^T` (`(L, K)`) as a GEMM B operand.
pub(super) struct Transposed<'a>(&'a Columns<'a>);

/// Floats of the buffer that holds a panel's runs before the transpose.
const RUNS_FLOATS: usize = 32 * 256;

std::thread_local! {
    /// One runs buffer per thread (static storage: nothing to allocate, and
    /// no 32 KB to zero per packed block).
    static RUNS: std::cell::RefCell<[f32; RUNS_FLOATS]> =
        const { std::cell::RefCell::new([0.0; RUNS_FLOATS]) };
}

impl PackB for Transposed<'_> {
    /// Rows of `col^T` are columns of `col`: each lane `kk` of a panel is a
    /// run of row `kk` of `col`, generated into a small buffer (in steps
    /// that fit it), then transposed into the panel by the kernel.
    #[allow(clippy::too_many_arguments)]
    fn pack(
        &self,
        p0: usize,
        kc: usize,
        j0: usize,
        nc: usize,
        w: usize,
        transpose: PanelTranspose<'_>,
        dst: &mut [f32],
    ) {
        let blk = Block { p0, kc, j0, nc, w };
        RUNS.with_borrow_mut(|buf| {
            #[cfg(target_arch = "x86_64")]
            if crate::cpu_features::avx512f() {
                // SAFETY: the CPU has AVX-512F (checked just above).
                unsafe { pack_transposed_avx512(self, &blk, buf, transpose, dst) };
                return;
            }
            self.pack_runs(&blk, buf, transpose, dst);
        });
    }

    fn materialize<'b>(&self, dst: &'b mut [f32]) -> MatRef<'b> {
        let cols = self.0;
        cols.write(dst, cols.cols);
        MatRef::row_major(dst, cols.cols, cols.d.k, true)
    }
}

/// Rows `p0..p0 + kc`, columns `j0..j0 + nc` of B, in `w`-lane panels.
#[derive(Clone, Copy)]
struct Block {
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    w: usize,
}

impl Transposed<'_> {
    /// The body of [`PackB::pack`], inlined into the per-ISA versions.
    #[inline(always)]
    fn pack_runs(
        &self,
        blk: &Block,
        buf: &mut [f32; RUNS_FLOATS],
        transpose: PanelTranspose<'_>,
        dst: &mut [f32],
    ) {
        let cols = self.0;
        let Block { p0, kc, j0, nc, w } = *blk;
        let chunk = RUNS_FLOATS / w;
        for (q, panel) in dst[..nc.div_ceil(w) * kc * w]
            .chunks_exact_mut(kc * w)
            .enumerate()
        {
            let lanes = w.min(nc - q * w);
            for s0 in (0..kc).step_by(chunk) {
                let steps = chunk.min(kc - s0);
                let start = cols.at(p0 + s0);
                for (l, run) in buf.chunks_exact_mut(steps).take(lanes).enumerate() {
                    cols.run(cols.tap(j0 + q * w + l), start, run);
                }
                let mut runs: [&[f32]; 32] = [&[]; 32];
                for (slot, run) in runs.iter_mut().zip(buf.chunks_exact(steps).take(lanes)) {
                    *slot = run;
                }
                transpose(&runs[..lanes], &mut panel[s0 * w..(s0 + steps) * w]);
            }
        }
    }
}

/// [`Transposed::pack_runs`] compiled for AVX-512 (the run copies as whole
/// vectors).
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_transposed_avx512(
    t: &Transposed<'_>,
    blk: &Block,
    buf: &mut [f32; RUNS_FLOATS],
    transpose: PanelTranspose<'_>,
    dst: &mut [f32],
) {
    t.pack_runs(blk, buf, transpose, dst)
}

/// `dx_g += col2im(col)`, the adjoint of the im2col matrix of one image
/// (row `kk` of `col` at `col[kk * ld..]`).
pub(super) fn col2im(d: &Dims, col: &[f32], ld: usize, dx_g: &mut [f32]) {
    let p = &d.p;
    let (w_out, pos) = (p.w_out, d.pos);
    for c in 0..d.cg {
        let dx_c = &mut dx_g[c * d.plane..(c + 1) * d.plane];
        for ki in 0..p.kh {
            for kj in 0..p.kw {
                let row = (c * p.kh + ki) * p.kw + kj;
                let src_row = &col[row * ld..row * ld + pos];
                let off = (kj * p.dil_w) as isize - p.pad_w as isize;
                let (lo, hi) = valid_range(off, p.stride_w, p.w, w_out);
                if lo >= hi {
                    continue;
                }
                for oh in 0..p.h_out {
                    let ih = (oh * p.stride_h + ki * p.dil_h) as isize - p.pad_h as isize;
                    if ih < 0 || ih >= p.h as isize {
                        continue;
                    }
                    let src = &src_row[oh * w_out + lo..oh * w_out + hi];
                    let dst = &mut dx_c[ih as usize * p.w..(ih as usize + 1) * p.w];
                    let start = (lo as isize * p.stride_w as isize + off) as usize;
                    if p.stride_w == 1 {
                        for (o, v) in dst[start..start + (hi - lo)].iter_mut().zip(src) {
                            *o += *v;
                        }
                    } else {
                        for (o, v) in dst[start..].iter_mut().step_by(p.stride_w).zip(src) {
                            *o += *v;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;
    use crate::gemm::{gemm_rows_par, gemm_rows_par_packed};
    use cnn_core::{Conv2dGeometry, Conv2dParams};

    fn geometries() -> Vec<Conv2dParams> {
        let odd = Conv2dGeometry {
            out_channels: 2,
            kernel: [2, 3],
            stride: [1, 2],
            padding: [1, 0],
            dilation: [2, 1],
            groups: 1,
        };
        [
            // Several images, odd widths, groups.
            (3, 4, 5, 7, Conv2dGeometry::new(4, 3).padding(1).groups(2)),
            // Output rows of 32 (the fast path, panel-aligned) and of 40
            // (fast and general panels mixed).
            (2, 2, 8, 32, Conv2dGeometry::new(2, 3).padding(1)),
            (2, 3, 9, 40, Conv2dGeometry::new(2, 3).padding(1)),
            (2, 1, 4, 36, Conv2dGeometry::new(2, 5).padding(2)),
            (
                2,
                2,
                11,
                10,
                Conv2dGeometry::new(2, 3).stride(2).padding(2).dilation(2),
            ),
            (1, 2, 6, 5, odd),
        ]
        .into_iter()
        .map(|(n, c, h, w, g)| Conv2dParams::new(n, c, h, w, &g).unwrap())
        .collect()
    }

    fn data(len: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 37 % 101) as f32) - 50.0).collect()
    }

    /// Element `(kk, j)` of group `g`'s column matrix, from the definition.
    fn naive(p: &Conv2dParams, x: &[f32], g: usize, kk: usize, j: usize) -> f32 {
        let (cg, pos) = (p.c_in / p.groups, p.h_out * p.w_out);
        let (c, ki, kj) = (kk / (p.kh * p.kw), kk / p.kw % p.kh, kk % p.kw);
        let (img, oh, ow) = (j / pos, j % pos / p.w_out, j % p.w_out);
        let ih = (oh * p.stride_h + ki * p.dil_h) as isize - p.pad_h as isize;
        let iw = (ow * p.stride_w + kj * p.dil_w) as isize - p.pad_w as isize;
        if ih < 0 || iw < 0 || ih >= p.h as isize || iw >= p.w as isize {
            return 0.0;
        }
        x[((img * p.c_in + g * cg + c) * p.h + ih as usize) * p.w + iw as usize]
    }

    #[test]
    fn write_is_the_im2col_matrix() {
        for p in geometries() {
            let d = Dims::new(&p);
            let x = data(p.x_len());
            for g in 0..p.groups {
                let cols = Columns::new(&d, &x, g);
                let ld = cols.cols + 3;
                let mut col = vec![f32::NAN; d.k * ld];
                cols.write(&mut col, ld);
                for kk in 0..d.k {
                    for j in 0..cols.cols {
                        assert_eq!(
                            col[kk * ld + j],
                            naive(&p, &x, g, kk, j),
                            "{p:?} g {g} ({kk}, {j})"
                        );
                    }
                }
            }
        }
    }

    /// Panels of rows `p0..p0 + kc`, columns `j0..j0 + nc` of `b`, by the
    /// layout's definition.
    fn panels(b: MatRef<'_>, p0: usize, kc: usize, j0: usize, nc: usize, w: usize) -> Vec<f32> {
        let mut out = vec![0.0; nc.div_ceil(w) * kc * w];
        for p in 0..kc {
            for j in 0..nc {
                out[j / w * kc * w + p * w + j % w] = b.data[(p0 + p) * b.rs + (j0 + j) * b.cs];
            }
        }
        out
    }

    fn scalar_transpose(w: usize) -> impl Fn(&[&[f32]], &mut [f32]) {
        move |runs, panel| {
            for (p, out) in panel.chunks_exact_mut(w).enumerate() {
                for (l, o) in out.iter_mut().enumerate() {
                    *o = runs.get(l).map_or(0.0, |r| r[p]);
                }
            }
        }
    }

    #[test]
    fn packed_panels_equal_the_written_matrix_packed() {
        for p in geometries() {
            let d = Dims::new(&p);
            let x = data(p.x_len());
            for g in 0..p.groups {
                let cols = Columns::new(&d, &x, g);
                let (k, l) = (d.k, cols.cols);
                let mut col = vec![0.0; k * l];
                cols.write(&mut col, l);
                let b = MatRef::row_major(&col, k, l, false);
                let bt = MatRef::row_major(&col, l, k, true);
                for w in [32, 16, 5] {
                    let transpose = scalar_transpose(w);
                    // Whole, offset and one-column blocks.
                    let blocks = |rows: usize, cols: usize| {
                        [
                            (0, rows, 0, cols),
                            (1, rows - 1, 3.min(cols - 1), cols - 3.min(cols - 1)),
                            (rows - 1, 1, cols - 1, 1),
                        ]
                    };
                    for (p0, kc, j0, nc) in blocks(k, l) {
                        let mut got = vec![f32::NAN; nc.div_ceil(w) * kc * w];
                        cols.pack(p0, kc, j0, nc, w, &transpose, &mut got);
                        assert_eq!(
                            got,
                            panels(b, p0, kc, j0, nc, w),
                            "{p:?} w {w} col ({p0}, {kc}, {j0}, {nc})"
                        );
                    }
                    for (p0, kc, j0, nc) in blocks(l, k) {
                        let mut got = vec![f32::NAN; nc.div_ceil(w) * kc * w];
                        cols.transposed()
                            .pack(p0, kc, j0, nc, w, &transpose, &mut got);
                        assert_eq!(
                            got,
                            panels(bt, p0, kc, j0, nc, w),
                            "{p:?} w {w} col^T ({p0}, {kc}, {j0}, {nc})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn packed_gemm_equals_the_gemm_on_the_written_matrix_bit_for_bit() {
        let be = CpuBackend::with_threads(2).unwrap();
        for p in geometries() {
            let d = Dims::new(&p);
            let x = data(p.x_len());
            let cols = Columns::new(&d, &x, 0);
            let (k, l, m) = (d.k, cols.cols, d.cog);
            let mut col = vec![0.0; k * l];
            cols.write(&mut col, l);
            let a = data(m * k);
            let av = MatRef::row_major(&a, m, k, false);
            for threads in [1, 2] {
                let (mut want, mut got) = (vec![0.0; m * l], vec![f32::NAN; m * l]);
                be.install(|| {
                    let bv = MatRef::row_major(&col, k, l, false);
                    gemm_rows_par(threads, m, k, l, 1.0, av, bv, 0.0, &mut want);
                    gemm_rows_par_packed(threads, m, k, l, 1.0, av, &cols, 0.0, &mut got);
                });
                assert_eq!(got, want, "{p:?} forward, {threads} threads");
                // dw = dy col^T with dy = a's first m x l values.
                let dy = data(m * l);
                let dyv = MatRef::row_major(&dy, m, l, false);
                let (mut want, mut got) = (vec![1.0; m * k], vec![1.0; m * k]);
                be.install(|| {
                    let btv = MatRef::row_major(&col, l, k, true);
                    gemm_rows_par(threads, m, l, k, 1.0, dyv, btv, 1.0, &mut want);
                    gemm_rows_par_packed(
                        threads,
                        m,
                        l,
                        k,
                        1.0,
                        dyv,
                        &cols.transposed(),
                        1.0,
                        &mut got,
                    );
                });
                assert_eq!(got, want, "{p:?} weight gradient, {threads} threads");
            }
        }
    }
}
