//! 2-D convolution as im2col + GEMM, parallel over the batch.
//!
//! Small stride-1 layers (LeNet-5's) take the direct kernels of
//! [`direct`] instead ([`direct::use_direct`] decides per shape), and
//! stride-1 3x3 layers may take Winograd's F(4x4,3x3) of [`winograd`]
//! ([`choose`] decides; `CNN_CPU_CONV=direct|gemm|winograd|winograd2x2|nowinograd`
//! or [`CpuBackend::with_conv_algorithm`] forces one where it applies), and
//! stride-2 layers may take the polyphase kernels of [`stride2`].
//!
//! Per block of `nb` images and per group (`cg = c_in / groups` input
//! channels, `cog = c_out / groups` output channels, `K = cg kh kw`,
//! `P = h_out w_out`, `L = nb P` columns):
//! - forward: `y_g (cog, L) = w_g (cog, K) col`, scattered back to NCHW,
//!   where `col (K, L)` is the im2col matrix of every image side by side;
//! - backward input, stride 1: the forward of the transposed convolution
//!   (`dy` as input, each kernel rotated by 180 degrees, padding
//!   `dil * (k - 1) - pad`); other strides: `dcol (K, L) = w_g^T dy_g`,
//!   then `dx_g = col2im(dcol)`;
//! - backward weight: `dw_g (cog, K) += dy_g (cog, L) col^T`.
//!
//! `col` is never stored: the GEMM packs it block by block straight from
//! the input ([`columns`]), which saves writing the matrix (2.4 MB for a
//! 64-channel 32x32 image) and reading it back.
//!
//! Small feature maps are blocked several images per GEMM (about
//! [`TARGET_COLS`] columns) so that tiny layers (LeNet's 10x10 maps) still
//! give the GEMM enough work; large maps use one image per GEMM and write y
//! in place. A 1x1 stride-1 unpadded convolution on one image skips im2col
//! (`col` is `x_g` itself). Blocks are spread over the backend's threads,
//! each with its own workspace (a scratch buffer from a shared pool, reused
//! across calls); with a batch smaller than the thread count the GEMMs are split by
//! rows instead. Weight gradients are summed per thread into private
//! partials, then added.

use cnn_core::{CnnError, Conv2dParams, ConvOps, Result};
use rayon::prelude::*;

mod choice;
mod columns;
mod direct;
mod stride2;
mod winograd;

pub use choice::ConvAlgorithm;
use choice::{Op, Path, choose};
use columns::{Columns, col2im};

use crate::CpuBackend;
use crate::gemm::{MatRef, gemm_rows_par, gemm_rows_par_packed};
use crate::par::{PAR_MIN_ELEMS, sum_f64, with_scratch};

/// Below this many forward FLOPs a convolution runs on the calling thread.
const PAR_MIN_FLOPS: f64 = 4.0e5;

/// Columns a blocked GEMM aims for (images per block = TARGET_COLS / P).
const TARGET_COLS: usize = 1024;

/// Derived sizes of one convolution.
#[derive(Clone, Copy)]
struct Dims {
    p: Conv2dParams,
    /// Input channels per group.
    cg: usize,
    /// Output channels per group.
    cog: usize,
    /// Rows of the column matrix: `cg * kh * kw`.
    k: usize,
    /// Output positions per image: `h_out * w_out`.
    pos: usize,
    /// Input plane `h * w`.
    plane: usize,
    /// Whether im2col is the identity (1x1, stride 1, no padding).
    pointwise: bool,
}

impl Dims {
    fn new(p: &Conv2dParams) -> Self {
        let cg = p.c_in / p.groups;
        Dims {
            p: *p,
            cg,
            cog: p.c_out / p.groups,
            k: cg * p.kh * p.kw,
            pos: p.h_out * p.w_out,
            plane: p.h * p.w,
            pointwise: p.kh == 1
                && p.kw == 1
                && p.stride_h == 1
                && p.stride_w == 1
                && p.pad_h == 0
                && p.pad_w == 0,
        }
    }
    fn x_image(&self) -> usize {
        self.p.c_in * self.plane
    }
    fn y_image(&self) -> usize {
        self.p.c_out * self.pos
    }
    /// Whether a block of `nb` images uses `x_g` / `dx_g` directly as its column matrix.
    fn direct(&self, nb: usize) -> bool {
        self.pointwise && nb == 1
    }
    /// The `(cog, L)` staging matrix for y or dy of a block of `nb > 1`
    /// images (none for one image, whose rows are contiguous).
    fn stage_len(&self, nb: usize) -> usize {
        if nb > 1 { self.cog * nb * self.pos } else { 0 }
    }
    /// The column matrix `dcol` of the `col2im` backward-input path.
    fn col_len(&self, nb: usize) -> usize {
        if self.direct(nb) {
            0
        } else {
            self.k * nb * self.pos
        }
    }
    fn parallel(&self, be: &CpuBackend) -> bool {
        be.threads > 1 && self.p.forward_flops() >= PAR_MIN_FLOPS
    }
    /// Images per GEMM block, leaving at least two blocks per thread.
    fn block(&self, threads: usize) -> usize {
        let n = self.p.n.max(1);
        let mut nb = TARGET_COLS.div_ceil(self.pos.max(1)).clamp(1, n);
        if threads > 1 {
            nb = nb.min(n.div_ceil(2 * threads)).max(1);
        }
        nb
    }
}

/// Range of output columns `ow` whose input column `ow * s + off` lies in
/// `[0, len)`, clipped to `[0, out)`.
#[inline]
fn valid_range(off: isize, s: usize, len: usize, out: usize) -> (usize, usize) {
    let s = s as isize;
    let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s };
    let hi = if (len as isize) > off {
        ((len as isize - off) + s - 1) / s
    } else {
        0
    };
    let hi = (hi as usize).min(out);
    let lo = (lo as usize).min(hi);
    (lo, hi)
}

/// Copy group `g` of every image of `t_blk` (`nb` images of `(c_out, P)`)
/// into `stage (cog, nb P)`.
fn gather(d: &Dims, g: usize, t_blk: &[f32], stage: &mut [f32]) {
    let (pos, yi) = (d.pos, d.y_image());
    let ld = t_blk.len() / yi * pos;
    for (j, img) in t_blk.chunks_exact(yi).enumerate() {
        for co in 0..d.cog {
            let src = &img[(g * d.cog + co) * pos..][..pos];
            stage[co * ld + j * pos..][..pos].copy_from_slice(src);
        }
    }
}

/// Forward of a block: `y_blk (nb, c_out, P)` from `x_blk (nb, c_in, h, w)`.
/// `rows_threads > 1` splits each GEMM by rows (batch smaller than the pool).
#[allow(clippy::too_many_arguments)]
fn forward_block(
    d: &Dims,
    x_blk: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y_blk: &mut [f32],
    stage: &mut [f32],
    rows_threads: usize,
) {
    let (cg, cog, k, pos) = (d.cg, d.cog, d.k, d.pos);
    let yi = d.y_image();
    let nb = y_blk.len() / yi;
    let ld = nb * pos;
    for g in 0..d.p.groups {
        let a = MatRef::row_major(&w[g * cog * k..(g + 1) * cog * k], cog, k, false);
        let out = if nb == 1 {
            &mut y_blk[g * cog * pos..(g + 1) * cog * pos]
        } else {
            &mut stage[..cog * ld]
        };
        if d.direct(nb) {
            let xm = &x_blk[g * cg * d.plane..(g + 1) * cg * d.plane];
            gemm_rows_par(
                rows_threads,
                cog,
                k,
                ld,
                1.0,
                a,
                MatRef::row_major(xm, k, ld, false),
                0.0,
                out,
            );
        } else {
            let cols = Columns::new(d, x_blk, g);
            gemm_rows_par_packed(rows_threads, cog, k, ld, 1.0, a, &cols, 0.0, out);
        }
        if nb > 1 {
            for (j, y_n) in y_blk.chunks_exact_mut(yi).enumerate() {
                for co in 0..cog {
                    y_n[(g * cog + co) * pos..][..pos]
                        .copy_from_slice(&stage[co * ld + j * pos..][..pos]);
                }
            }
        }
    }
    if let Some(b) = b {
        for y_n in y_blk.chunks_exact_mut(yi) {
            for (y_c, &bv) in y_n.chunks_exact_mut(pos).zip(b) {
                for v in y_c {
                    *v += bv;
                }
            }
        }
    }
}

/// Backward-input of a block through `col2im`: `dx_blk (nb, c_in, h, w)`
/// from `dy_blk (nb, c_out, P)`. For the strided convolutions that
/// [`Transposed`] cannot take.
fn backward_input_block(
    d: &Dims,
    dy_blk: &[f32],
    w: &[f32],
    dx_blk: &mut [f32],
    scratch: &mut [f32],
    rows_threads: usize,
) {
    let (cg, cog, k, pos) = (d.cg, d.cog, d.k, d.pos);
    let (xi, yi) = (d.x_image(), d.y_image());
    let nb = dy_blk.len() / yi;
    let ld = nb * pos;
    let (dcol, stage) = scratch.split_at_mut(d.col_len(nb));
    if !d.direct(nb) {
        dx_blk.fill(0.0);
    }
    for g in 0..d.p.groups {
        let w_g = &w[g * cog * k..(g + 1) * cog * k];
        let dym: &[f32] = if nb == 1 {
            &dy_blk[g * cog * pos..(g + 1) * cog * pos]
        } else {
            gather(d, g, dy_blk, stage);
            stage
        };
        // w_g^T: (K, cog), stored (cog, K).
        let a = MatRef::row_major(w_g, k, cog, true);
        let bm = MatRef::row_major(dym, cog, ld, false);
        if d.direct(nb) {
            let dx_g = &mut dx_blk[g * cg * d.plane..(g + 1) * cg * d.plane];
            gemm_rows_par(rows_threads, k, cog, ld, 1.0, a, bm, 0.0, dx_g);
        } else {
            gemm_rows_par(rows_threads, k, cog, ld, 1.0, a, bm, 0.0, dcol);
            for (j, dx_n) in dx_blk.chunks_exact_mut(xi).enumerate() {
                col2im(
                    d,
                    &dcol[j * pos..],
                    ld,
                    &mut dx_n[g * cg * d.plane..(g + 1) * cg * d.plane],
                );
            }
        }
    }
}

/// `dw (c_out, K) = beta dw + sum over the block of dy_g col^T`.
#[allow(clippy::too_many_arguments)]
fn backward_weight_block(
    d: &Dims,
    x_blk: &[f32],
    dy_blk: &[f32],
    dw: &mut [f32],
    beta: f32,
    stage: &mut [f32],
    rows_threads: usize,
) {
    let (cg, cog, k, pos) = (d.cg, d.cog, d.k, d.pos);
    let nb = dy_blk.len() / d.y_image();
    let ld = nb * pos;
    for g in 0..d.p.groups {
        let dw_g = &mut dw[g * cog * k..(g + 1) * cog * k];
        let dym: &[f32] = if nb == 1 {
            &dy_blk[g * cog * pos..(g + 1) * cog * pos]
        } else {
            gather(d, g, dy_blk, stage);
            &stage[..cog * ld]
        };
        let a = MatRef::row_major(dym, cog, ld, false);
        if d.direct(nb) {
            let xm = &x_blk[g * cg * d.plane..(g + 1) * cg * d.plane];
            // col^T: (L, K), stored (K, L).
            let bm = MatRef::row_major(xm, ld, k, true);
            gemm_rows_par(rows_threads, cog, ld, k, 1.0, a, bm, beta, dw_g);
        } else {
            let cols = Columns::new(d, x_blk, g);
            gemm_rows_par_packed(
                rows_threads,
                cog,
                ld,
                k,
                1.0,
                a,
                &cols.transposed(),
                beta,
                dw_g,
            );
        }
    }
}

/// Run `block(out_blk, in_blk, scratch, rows_threads)` over the batch in
/// blocks of whole images (`out_image` and `in_image` floats each): in
/// parallel over the blocks when the layer is large enough and the batch
/// covers the pool, otherwise one block after another with each GEMM split
/// by rows over the pool (or on this thread). Each block gets a scratch
/// buffer of `scratch_len(images)` floats.
#[allow(clippy::too_many_arguments)]
fn for_each_block(
    be: &CpuBackend,
    d: &Dims,
    out: &mut [f32],
    out_image: usize,
    inp: &[f32],
    in_image: usize,
    scratch_len: impl Fn(usize) -> usize + Sync,
    block: impl Fn(&mut [f32], &[f32], &mut [f32], usize) + Sync,
) {
    if d.parallel(be) && d.p.n >= be.threads {
        let nb = d.block(be.threads);
        be.install(|| {
            out.par_chunks_mut(nb * out_image)
                .zip(inp.par_chunks(nb * in_image))
                .for_each(|(out_blk, in_blk)| {
                    let len = scratch_len(out_blk.len() / out_image);
                    with_scratch(len, |s| block(out_blk, in_blk, s, 1));
                });
        });
    } else {
        let threads = if d.parallel(be) { be.threads } else { 1 };
        let nb = d.block(threads);
        let mut run = || {
            with_scratch(scratch_len(nb), |s| {
                for (out_blk, in_blk) in out
                    .chunks_mut(nb * out_image)
                    .zip(inp.chunks(nb * in_image))
                {
                    block(out_blk, in_blk, s, threads);
                }
            });
        };
        if threads > 1 { be.install(run) } else { run() }
    }
}

/// The im2col + GEMM forward (any geometry).
fn forward_gemm(
    be: &CpuBackend,
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    let d = Dims::new(p);
    let (xi, yi) = (d.x_image(), d.y_image());
    for_each_block(
        be,
        &d,
        y,
        yi,
        x,
        xi,
        |nb| d.stage_len(nb),
        |y_blk, x_blk, s, rows| forward_block(&d, x_blk, w, b, y_blk, s, rows),
    );
}

/// The convolution whose forward is `p`'s input gradient, when there is
/// one: with stride 1, `dx = correlate(dy, w flipped and transposed)` with
/// padding `dil (k - 1) - pad` (which must not be negative), so the
/// backward input runs as a forward, packing `dy`'s columns straight into
/// the GEMM's panels instead of writing `dcol` and scattering it back
/// (`col2im`).
fn transposed_params(p: &Conv2dParams) -> Option<Conv2dParams> {
    let span_h = p.dil_h * (p.kh - 1);
    let span_w = p.dil_w * (p.kw - 1);
    if p.stride_h != 1 || p.stride_w != 1 || p.pad_h > span_h || p.pad_w > span_w {
        return None;
    }
    Some(Conv2dParams {
        c_in: p.c_out,
        h: p.h_out,
        w: p.w_out,
        c_out: p.c_in,
        pad_h: span_h - p.pad_h,
        pad_w: span_w - p.pad_w,
        h_out: p.h,
        w_out: p.w,
        ..*p
    })
}

/// `w (c_out, cg, kh, kw)` as the weight of [`transposed_params`]:
/// `(c_in, cog, kh, kw)` with each kernel rotated by 180 degrees, group by
/// group.
fn transpose_weight(p: &Conv2dParams, w: &[f32], wt: &mut [f32]) {
    let (cg, cog) = (p.c_in / p.groups, p.c_out / p.groups);
    let taps = p.kh * p.kw;
    for g in 0..p.groups {
        for c in 0..cg {
            for co in 0..cog {
                let src = &w[((g * cog + co) * cg + c) * taps..][..taps];
                let dst = &mut wt[((g * cg + c) * cog + co) * taps..][..taps];
                for (o, v) in dst.iter_mut().zip(src.iter().rev()) {
                    *o = *v;
                }
            }
        }
    }
}

/// Transposed weights for the backward input (reused, only grows).
static TRANSPOSED_WEIGHTS: crate::par::BufPool = crate::par::BufPool::new();

impl ConvOps for CpuBackend {
    fn conv2d_forward(
        &self,
        p: &Conv2dParams,
        x: &Vec<f32>,
        w: &Vec<f32>,
        b: Option<&Vec<f32>>,
        y: &mut Vec<f32>,
    ) -> Result<()> {
        p.check_forward(x.len(), w.len(), b.map(|b| b.len()), y.len())?;
        let b = b.map(|b| b.as_slice());
        if y.is_empty() {
            return Ok(());
        }
        match choose(self, p, Op::Forward) {
            Path::Direct => direct::forward(self, p, x, w, b, y),
            Path::Stride2 => stride2::forward(self, p, x, w, b, y),
            Path::Gemm => forward_gemm(self, p, x, w, b, y),
            Path::Winograd(v) => winograd::forward(self, v, p, x, w, b, y),
        }
        Ok(())
    }

    fn conv2d_backward_input(
        &self,
        p: &Conv2dParams,
        dy: &Vec<f32>,
        w: &Vec<f32>,
        dx: &mut Vec<f32>,
    ) -> Result<()> {
        p.check_backward_input(dy.len(), w.len(), dx.len())?;
        let d = Dims::new(p);
        if dx.is_empty() {
            return Ok(());
        }
        let path = choose(self, p, Op::BackwardInput);
        if path == Path::Direct {
            direct::backward_input(self, p, dy, w, dx);
            return Ok(());
        }
        if path == Path::Stride2 {
            stride2::backward_input(self, p, dy, w, dx);
            return Ok(());
        }
        if let Some(t) = transposed_params(p).filter(|_| !d.pointwise) {
            let mut wt = TRANSPOSED_WEIGHTS.take(w.len());
            transpose_weight(p, w, &mut wt[..w.len()]);
            match path {
                // Eligible layers' transposes are eligible (padding 2 - pad).
                Path::Winograd(v) => winograd::forward(self, v, &t, dy, &wt[..w.len()], None, dx),
                _ => forward_gemm(self, &t, dy, &wt[..w.len()], None, dx),
            }
            TRANSPOSED_WEIGHTS.give(wt);
            return Ok(());
        }
        let (xi, yi) = (d.x_image(), d.y_image());
        let scratch_len = |nb: usize| d.col_len(nb) + d.stage_len(nb);
        for_each_block(
            self,
            &d,
            dx,
            xi,
            dy,
            yi,
            scratch_len,
            |dx_blk, dy_blk, s, rows| backward_input_block(&d, dy_blk, w, dx_blk, s, rows),
        );
        Ok(())
    }

    fn conv2d_backward_weight(
        &self,
        p: &Conv2dParams,
        x: &Vec<f32>,
        dy: &Vec<f32>,
        dw: &mut Vec<f32>,
    ) -> Result<()> {
        p.check_backward_weight(x.len(), dy.len(), dw.len())?;
        let d = Dims::new(p);
        if p.n == 0 || dw.is_empty() {
            return Ok(());
        }
        if choice::weight_by_cout_lanes(self, p) {
            direct::cout_lanes::backward_weight(self, p, x, dy, dw);
            return Ok(());
        }
        match choose(self, p, Op::BackwardWeight) {
            Path::Direct => {
                direct::backward_weight(self, p, x, dy, dw);
                return Ok(());
            }
            Path::Winograd(v) => {
                winograd::backward_weight(self, v, p, x, dy, dw);
                return Ok(());
            }
            Path::Stride2 => {
                stride2::backward_weight(self, p, x, dy, dw);
                return Ok(());
            }
            Path::Gemm => {}
        }
        let (xi, yi) = (d.x_image(), d.y_image());
        if self.threads > 1 && p.n > 1 {
            // Summed per contiguous part of the batch, like the direct
            // kernels (see `sum_weight_parts`).
            let per = p.n.div_ceil(direct::weight_parts(self, p));
            let nb = TARGET_COLS.div_ceil(d.pos.max(1)).clamp(1, per);
            direct::sum_weight_parts(self, p, d.parallel(self), dw, |first, last, out| {
                let xs = &x[first * xi..last * xi];
                let dys = &dy[first * yi..last * yi];
                with_scratch(d.stage_len(nb), |s| {
                    for (i, (x_blk, dy_blk)) in
                        xs.chunks(nb * xi).zip(dys.chunks(nb * yi)).enumerate()
                    {
                        let beta = if i == 0 { 0.0 } else { 1.0 };
                        backward_weight_block(&d, x_blk, dy_blk, out, beta, s, 1);
                    }
                });
            });
        } else {
            let threads = if d.parallel(self) { self.threads } else { 1 };
            let nb = d.block(threads);
            let mut run = || {
                with_scratch(d.stage_len(nb), |s| {
                    for (x_blk, dy_blk) in x.chunks(nb * xi).zip(dy.chunks(nb * yi)) {
                        backward_weight_block(&d, x_blk, dy_blk, dw, 1.0, s, threads);
                    }
                });
            };
            if threads > 1 {
                self.install(run)
            } else {
                run()
            }
        }
        Ok(())
    }

    fn conv2d_backward_bias(
        &self,
        p: &Conv2dParams,
        dy: &Vec<f32>,
        db: &mut Vec<f32>,
    ) -> Result<()> {
        p.check_backward_bias(dy.len(), db.len())?;
        bias_grad(self, p, &[dy.as_slice()], db);
        Ok(())
    }

    /// Sums across the parts exactly as across one buffer (the same f64
    /// accumulation over the images in batch order), so a data-parallel
    /// step's bias gradient equals the unsplit one.
    fn conv2d_backward_bias_parts(
        &self,
        p: &Conv2dParams,
        dy_parts: &[&Vec<f32>],
        db: &mut Vec<f32>,
    ) -> Result<()> {
        let total: usize = dy_parts.iter().map(|b| b.len()).sum();
        p.check_backward_bias(total, db.len())?;
        let image = p.c_out * p.h_out * p.w_out;
        if dy_parts.iter().any(|b| b.len() % image.max(1) != 0) {
            return Err(CnnError::geometry(
                "conv2d_backward_bias_parts: a part does not hold whole images",
            ));
        }
        // The parts' slices on the stack (at most MAX_PARTS of them).
        let mut slices = [&[][..]; cnn_core::layers::MAX_PARTS];
        if dy_parts.len() > slices.len() {
            return Err(CnnError::geometry(format!(
                "conv2d_backward_bias_parts: {} parts, at most {}",
                dy_parts.len(),
                slices.len()
            )));
        }
        for (slot, part) in slices.iter_mut().zip(dy_parts) {
            *slot = part.as_slice();
        }
        bias_grad(self, p, &slices[..dy_parts.len()], db);
        Ok(())
    }
}

/// `db += sum of dy over (N, H_out, W_out)` with `dy` given as contiguous
/// parts of the batch (whole images each): per channel, an f64 sum over
/// the images in batch order, rounded once.
fn bias_grad(be: &CpuBackend, p: &Conv2dParams, dy_parts: &[&[f32]], db: &mut [f32]) {
    let pos = p.h_out * p.w_out;
    let c = p.c_out;
    let channel_sum = |co: usize| -> f64 {
        let mut s = 0.0f64;
        for dy in dy_parts {
            for image in dy.chunks_exact(c * pos) {
                s += sum_f64(&image[co * pos..(co + 1) * pos]);
            }
        }
        s
    };
    let add = |(co, d): (usize, &mut f32)| *d = (f64::from(*d) + channel_sum(co)) as f32;
    if be.threads > 1 && p.y_len() >= PAR_MIN_ELEMS {
        be.install(|| db.par_iter_mut().enumerate().for_each(add));
    } else {
        db.iter_mut().enumerate().for_each(add);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnn_core::Conv2dGeometry;

    /// Plain nested-loop convolution in f64: the oracle.
    fn conv_naive(p: &Conv2dParams, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f64> {
        let (cg, cog) = (p.c_in / p.groups, p.c_out / p.groups);
        let mut y = vec![0.0f64; p.y_len()];
        for n in 0..p.n {
            for co in 0..p.c_out {
                let g = co / cog;
                for oh in 0..p.h_out {
                    for ow in 0..p.w_out {
                        let mut s = b.map_or(0.0, |b| f64::from(b[co]));
                        for ci in 0..cg {
                            for ki in 0..p.kh {
                                for kj in 0..p.kw {
                                    let ih = (oh * p.stride_h + ki * p.dil_h) as isize
                                        - p.pad_h as isize;
                                    let iw = (ow * p.stride_w + kj * p.dil_w) as isize
                                        - p.pad_w as isize;
                                    if ih < 0 || iw < 0 || ih >= p.h as isize || iw >= p.w as isize
                                    {
                                        continue;
                                    }
                                    let xv = x[((n * p.c_in + g * cg + ci) * p.h + ih as usize)
                                        * p.w
                                        + iw as usize];
                                    let wv = w[((co * cg + ci) * p.kh + ki) * p.kw + kj];
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

    fn data(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104_729) % 1013) as f32 / 506.5) - 1.0)
            .collect()
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum()
    }

    fn assert_close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= 1e-4 + 1e-4 * w.abs(),
                "element {i}: {g} vs {w}"
            );
        }
    }

    #[test]
    fn tiny_hand_example() {
        let be = CpuBackend::with_threads(1).unwrap();
        // x 1x1x3x3 = 1..9, w 1x1x2x2 = [1, 0, 0, -1], bias 0.5: y = x[i,j] - x[i+1,j+1] + 0.5.
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let p = Conv2dParams::new(1, 1, 3, 3, &Conv2dGeometry::new(1, 2)).unwrap();
        let mut y = vec![0.0; 4];
        be.conv2d_forward(&p, &x, &vec![1.0, 0.0, 0.0, -1.0], Some(&vec![0.5]), &mut y)
            .unwrap();
        assert_eq!(y, vec![-3.5, -3.5, -3.5, -3.5]);
    }

    fn cases() -> Vec<(usize, usize, usize, usize, Conv2dGeometry)> {
        vec![
            // n, c_in, h, w, geometry
            (
                2,
                4,
                9,
                8,
                Conv2dGeometry::new(6, 3)
                    .stride(2)
                    .padding(2)
                    .dilation(2)
                    .groups(2),
            ),
            (3, 3, 7, 7, Conv2dGeometry::new(5, 3).padding(1)),
            (2, 4, 5, 6, Conv2dGeometry::new(8, 1)),
            (
                1,
                2,
                6,
                5,
                Conv2dGeometry {
                    out_channels: 4,
                    kernel: [2, 3],
                    stride: [1, 2],
                    padding: [1, 0],
                    dilation: [2, 1],
                    groups: 1,
                },
            ),
            // Large enough to take the parallel paths (batch split and row split).
            (4, 8, 20, 20, Conv2dGeometry::new(16, 3).padding(1)),
            (
                1,
                16,
                20,
                20,
                Conv2dGeometry::new(32, 3).padding(1).groups(2),
            ),
            (1, 32, 16, 16, Conv2dGeometry::new(32, 1)),
            // Small maps, several images per GEMM block, parallel over blocks.
            (16, 6, 14, 14, Conv2dGeometry::new(16, 5)),
            (9, 8, 6, 6, Conv2dGeometry::new(8, 1).groups(2)),
            // Input gradients as a transposed forward: with dilation, with
            // an asymmetric kernel and padding, and with more taps than the
            // direct kernels take (the panels' fast path: rows of 32).
            (2, 3, 7, 9, Conv2dGeometry::new(4, 3).padding(2).dilation(2)),
            (
                1,
                4,
                6,
                6,
                Conv2dGeometry {
                    out_channels: 4,
                    kernel: [3, 2],
                    stride: [1, 1],
                    padding: [2, 0],
                    dilation: [1, 1],
                    groups: 2,
                },
            ),
            (2, 72, 4, 32, Conv2dGeometry::new(8, 3).padding(1)),
            // Padding wider than the kernel's reach: the col2im path.
            (2, 3, 5, 6, Conv2dGeometry::new(4, 1).padding(1)),
        ]
    }

    /// `dx` from the definition, in f64: each `dy` element spreads over the
    /// inputs its window read.
    fn backward_input_naive(p: &Conv2dParams, dy: &[f32], w: &[f32]) -> Vec<f64> {
        let (cg, cog) = (p.c_in / p.groups, p.c_out / p.groups);
        let mut dx = vec![0.0f64; p.x_len()];
        for n in 0..p.n {
            for co in 0..p.c_out {
                let g = co / cog;
                for oh in 0..p.h_out {
                    for ow in 0..p.w_out {
                        let dyv = f64::from(dy[((n * p.c_out + co) * p.h_out + oh) * p.w_out + ow]);
                        for ci in 0..cg {
                            for ki in 0..p.kh {
                                for kj in 0..p.kw {
                                    let ih = (oh * p.stride_h + ki * p.dil_h) as isize
                                        - p.pad_h as isize;
                                    let iw = (ow * p.stride_w + kj * p.dil_w) as isize
                                        - p.pad_w as isize;
                                    if ih < 0 || iw < 0 || ih >= p.h as isize || iw >= p.w as isize
                                    {
                                        continue;
                                    }
                                    let wv = w[((co * cg + ci) * p.kh + ki) * p.kw + kj];
                                    dx[((n * p.c_in + g * cg + ci) * p.h + ih as usize) * p.w
                                        + iw as usize] += dyv * f64::from(wv);
                                }
                            }
                        }
                    }
                }
            }
        }
        dx
    }

    #[test]
    fn backward_input_matches_naive_per_element() {
        for threads in [1, 2] {
            let be = CpuBackend::with_threads(threads).unwrap();
            for (n, c, h, w, g) in cases() {
                let p = Conv2dParams::new(n, c, h, w, &g).unwrap();
                let wt = data(p.w_len(), 10);
                let dy = data(p.y_len(), 11);
                let mut dx = vec![f32::NAN; p.x_len()];
                be.conv2d_backward_input(&p, &dy, &wt, &mut dx).unwrap();
                assert_close(&dx, &backward_input_naive(&p, &dy, &wt));
            }
        }
    }

    #[test]
    fn forward_matches_naive() {
        for threads in [1, 2] {
            let be = CpuBackend::with_threads(threads).unwrap();
            for (n, c, h, w, g) in cases() {
                let p = Conv2dParams::new(n, c, h, w, &g).unwrap();
                let x = data(p.x_len(), 1);
                let wt = data(p.w_len(), 2);
                let b = data(p.c_out, 3);
                let mut y = vec![f32::NAN; p.y_len()];
                be.conv2d_forward(&p, &x, &wt, Some(&b), &mut y).unwrap();
                assert_close(&y, &conv_naive(&p, &x, &wt, Some(&b)));
                be.conv2d_forward(&p, &x, &wt, None, &mut y).unwrap();
                assert_close(&y, &conv_naive(&p, &x, &wt, None));
            }
        }
    }

    #[test]
    fn backward_adjoint_identities() {
        for threads in [1, 2] {
            let be = CpuBackend::with_threads(threads).unwrap();
            for (n, c, h, w, g) in cases() {
                let p = Conv2dParams::new(n, c, h, w, &g).unwrap();
                let x = data(p.x_len(), 4);
                let wt = data(p.w_len(), 5);
                let dy = data(p.y_len(), 6);
                let mut y = vec![0.0; p.y_len()];
                be.conv2d_forward(&p, &x, &wt, None, &mut y).unwrap();
                // <conv(x, w), dy> == <x, dx> with dx = backward_input(dy, w).
                let mut dx = vec![f32::NAN; p.x_len()];
                be.conv2d_backward_input(&p, &dy, &wt, &mut dx).unwrap();
                let (lhs, rhs) = (dot(&y, &dy), dot(&x, &dx));
                assert!(
                    (lhs - rhs).abs() <= 1e-3 * (1.0 + lhs.abs()),
                    "input adjoint {lhs} vs {rhs} ({g:?})"
                );
                // <conv(x, w), dy> == <w, dw>, and dw accumulates onto its old value.
                let dw0 = data(p.w_len(), 7);
                let mut dw = dw0.clone();
                be.conv2d_backward_weight(&p, &x, &dy, &mut dw).unwrap();
                let delta: Vec<f32> = dw.iter().zip(&dw0).map(|(a, b)| a - b).collect();
                let rhs = dot(&wt, &delta);
                assert!(
                    (lhs - rhs).abs() <= 1e-3 * (1.0 + lhs.abs()),
                    "weight adjoint {lhs} vs {rhs} ({g:?})"
                );
                // db += sum of dy per channel.
                let mut db = vec![1.0; p.c_out];
                be.conv2d_backward_bias(&p, &dy, &mut db).unwrap();
                let pos = p.h_out * p.w_out;
                for co in 0..p.c_out {
                    let s: f64 = (0..p.n)
                        .map(|i| {
                            dy[(i * p.c_out + co) * pos..][..pos]
                                .iter()
                                .map(|&v| f64::from(v))
                                .sum::<f64>()
                        })
                        .sum();
                    assert!((f64::from(db[co]) - 1.0 - s).abs() < 1e-4 * (1.0 + s.abs()));
                }
            }
        }
    }

    #[test]
    fn backward_weight_matches_naive_per_element() {
        // dw[co, ci, ki, kj] = sum dy[n, co, oh, ow] x[n, g cg + ci, ih, iw]: check one geometry exhaustively.
        let be = CpuBackend::with_threads(2).unwrap();
        let g = Conv2dGeometry::new(4, 3)
            .stride(2)
            .padding(1)
            .dilation(2)
            .groups(2);
        let p = Conv2dParams::new(3, 4, 8, 7, &g).unwrap();
        let x = data(p.x_len(), 8);
        let dy = data(p.y_len(), 9);
        let mut dw = vec![0.0; p.w_len()];
        be.conv2d_backward_weight(&p, &x, &dy, &mut dw).unwrap();
        // Each dw element is the derivative of <conv(x, w), dy> in that weight: probe with unit weights.
        let mut want = vec![0.0f64; p.w_len()];
        for (i, wv) in want.iter_mut().enumerate() {
            let mut e = vec![0.0f32; p.w_len()];
            e[i] = 1.0;
            let y = conv_naive(&p, &x, &e, None);
            *wv = y.iter().zip(&dy).map(|(a, &b)| a * f64::from(b)).sum();
        }
        assert_close(&dw, &want);
    }

    #[test]
    fn bad_lengths_and_geometry_are_errors() {
        let be = CpuBackend::with_threads(1).unwrap();
        let p = Conv2dParams::new(2, 3, 5, 5, &Conv2dGeometry::new(4, 3)).unwrap();
        let (x, w, y) = (
            vec![0.0; p.x_len()],
            vec![0.0; p.w_len()],
            vec![0.0; p.y_len()],
        );
        assert!(
            be.conv2d_forward(&p, &vec![0.0; 3], &w, None, &mut y.clone())
                .is_err()
        );
        assert!(
            be.conv2d_forward(&p, &x, &w, Some(&vec![0.0; 3]), &mut y.clone())
                .is_err()
        );
        assert!(
            be.conv2d_backward_input(&p, &y, &w, &mut vec![0.0; 1])
                .is_err()
        );
        assert!(
            be.conv2d_backward_weight(&p, &x, &y, &mut vec![0.0; 1])
                .is_err()
        );
        assert!(be.conv2d_backward_bias(&p, &y, &mut vec![0.0; 5]).is_err());
        let bad = Conv2dParams { h_out: 7, ..p };
        assert!(
            be.conv2d_forward(&bad, &x, &w, None, &mut vec![0.0; bad.y_len()])
                .is_err()
        );
    }
}
