//! 2-D convolution: im2col (`conv.cu`) + cuBLAS GEMMs (`gemm.rs`).
//!
//! Per group `g` (`cig = c_in / groups` input and `cog = c_out / groups`
//! output channels, `K = cig kh kw`, `L = h_out w_out`), for each image:
//! - forward: `y_g (cog, L) = w_g (cog, K) col_g (K, L)`, one strided
//!   batched GEMM over the images of a chunk (the weight has stride 0);
//! - backward input: `col_g (K, L) = w_g^T dy_g (cog, L)`, batched the
//!   same way, then col2im gathers `col` into `dx`;
//! - backward weight: `dw_g (cog, K) += sum_i dy_g,i col_g,i^T`: one
//!   strided batched GEMM writes each image's product into a workspace,
//!   then `sum_images_into_f32` adds them to `dw` in image order (two
//!   launches per chunk and group instead of one GEMM per image).
//!
//! Images are processed in chunks whose `col` fits [`WORKSPACE_FLOATS`].
//! A 1x1 convolution with stride 1 and no padding needs no im2col: `x` is
//! its own `col` (and `dx` its own col2im).

use cnn_core::{BiasParams, Conv2dParams, ConvOps, Result};
use cudarc::driver::CudaSlice;

use crate::gemm::RowMajorGemm;
use crate::kernels::KernelSource;
use crate::launch::grid;
use crate::{CudaBackend, driver_err};

/// Floats of each workspace per call (256 MiB): the im2col columns, and
/// the weight gradient's per-image parts; at least one image.
const WORKSPACE_FLOATS: usize = 64 << 20;

/// Sizes derived from the params.
#[derive(Debug, Clone, Copy)]
struct Dims {
    cig: usize,
    cog: usize,
    /// `cig kh kw`: the rows of one group's col.
    kg: usize,
    /// `c_in kh kw`: the rows of one image's col.
    ck: usize,
    /// `h_out w_out`
    l: usize,
    x_img: usize,
    /// Whether x is its own col (1x1, stride 1, no padding).
    direct: bool,
    /// Images per chunk.
    chunk: usize,
}

impl Dims {
    fn new(p: &Conv2dParams) -> Self {
        let cig = p.c_in / p.groups;
        let kg = cig * p.kh * p.kw;
        let ck = p.c_in * p.kh * p.kw;
        let l = p.h_out * p.w_out;
        let direct = p.kh == 1
            && p.kw == 1
            && p.stride_h == 1
            && p.stride_w == 1
            && p.pad_h == 0
            && p.pad_w == 0;
        Dims {
            cig,
            cog: p.c_out / p.groups,
            kg,
            ck,
            l,
            x_img: p.c_in * p.h * p.w,
            direct,
            // Per image: `ck l` floats of col, and `cog kg` of the weight
            // gradient's per-image parts (more than col for deep layers on
            // small maps, e.g. 512 channels at 7x7).
            chunk: (WORKSPACE_FLOATS / (ck * l).max(p.c_out / p.groups * kg).max(1))
                .clamp(1, p.n.max(1)),
        }
    }

    /// `(first image, images)` of each chunk.
    fn chunks(&self, n: usize) -> impl Iterator<Item = (usize, usize)> {
        let chunk = self.chunk;
        (0..n).step_by(chunk).map(move |n0| (n0, chunk.min(n - n0)))
    }
}

/// The im2col and col2im kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColKernel {
    Im2col,
    Col2im,
}

impl CudaBackend {
    /// `kernel` over `nb` images: im2col reads `src` = x and writes `dst` =
    /// col; col2im reads col and overwrites `dst` = dx. One thread per
    /// (image, channel, output position) for im2col, per input element for
    /// col2im; the 32-bit-index variant when every index fits in 31 bits.
    fn col_kernel(
        &self,
        kernel: ColKernel,
        p: &Conv2dParams,
        nb: usize,
        src: &cudarc::driver::CudaView<'_, f32>,
        dst: &mut cudarc::driver::CudaViewMut<'_, f32>,
    ) -> Result<()> {
        let l = p.h_out * p.w_out;
        let col_len = nb * p.c_in * p.kh * p.kw * l;
        let x_len = nb * p.c_in * p.h * p.w;
        let (name32, name64, threads) = match kernel {
            ColKernel::Im2col => ("im2col_f32_u32", "im2col_f32", nb * p.c_in * l),
            ColKernel::Col2im => ("col2im_f32_u32", "col2im_f32", x_len),
        };
        if threads == 0 {
            return Ok(());
        }
        let dims = [
            nb, p.c_in, p.h, p.w, p.kh, p.kw, p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dil_h,
            p.dil_w, p.h_out, p.w_out,
        ];
        // Every offset and loop bound stays below 2^31 (the grid-stride step
        // is at most 2^21 on top), and so does every padded coordinate.
        let small = |v: usize| v < (1 << 31);
        let wide = self
            .inner
            .wide_indices
            .load(std::sync::atomic::Ordering::Relaxed);
        let fits32 = !wide
            && small(col_len)
            && small(x_len)
            && small((p.h + p.pad_h) * (p.w + p.pad_w))
            && dims.iter().all(|&d| small(d));
        let func = self.function(KernelSource::Conv, if fits32 { name32 } else { name64 })?;
        let mut builder = self.stream().launch_builder(&func);
        use cudarc::driver::PushKernelArg as _;
        builder.arg(src);
        builder.arg(dst);
        let d32 = dims.map(|d| d as u32);
        let d64 = dims.map(|d| d as u64);
        if fits32 {
            for d in &d32 {
                builder.arg(d);
            }
        } else {
            for d in &d64 {
                builder.arg(d);
            }
        }
        // SAFETY: the callers pass views of exactly `col_len` and `x_len`
        // floats, and the arguments match the kernel's signature.
        unsafe { builder.launch(grid(threads)) }
            .map(|_| ())
            .map_err(driver_err)
    }

    /// `len` floats for the per-image weight gradients (uninitialised: the
    /// GEMM writes them with beta 0 before the sum reads them).
    fn part_workspace(&self, len: usize) -> Result<CudaSlice<f32>> {
        // SAFETY: the batched GEMM (beta 0) writes every element the sum reads.
        unsafe { self.stream().alloc::<f32>(len.max(1)) }.map_err(driver_err)
    }

    /// `(nb, ck, L)` floats of scratch for a chunk's col (uninitialised:
    /// every element read is written first).
    fn col_workspace(&self, d: &Dims) -> Result<CudaSlice<f32>> {
        // SAFETY: im2col writes, or the GEMMs write with beta 0, every
        // element before anything reads it.
        unsafe { self.stream().alloc::<f32>(d.chunk * d.ck * d.l) }.map_err(driver_err)
    }
}

impl ConvOps for CudaBackend {
    /// x is (N, C_in, H, W); w is (C_out, C_in/groups, kh, kw); b is
    /// (C_out); y is (N, C_out, H_out, W_out), overwritten.
    fn conv2d_forward(
        &self,
        p: &Conv2dParams,
        x: &CudaSlice<f32>,
        w: &CudaSlice<f32>,
        b: Option<&CudaSlice<f32>>,
        y: &mut CudaSlice<f32>,
    ) -> Result<()> {
        p.check_forward(x.len(), w.len(), b.map(|b| b.len()), y.len())?;
        if p.n == 0 {
            return Ok(());
        }
        let d = Dims::new(p);
        let mut ws = if d.direct {
            None
        } else {
            Some(self.col_workspace(&d)?)
        };
        for (n0, nb) in d.chunks(p.n) {
            let xs = x.slice(n0 * d.x_img..(n0 + nb) * d.x_img);
            let col = match ws.as_mut() {
                None => xs,
                Some(ws) => {
                    let total = nb * d.ck * d.l;
                    self.col_kernel(ColKernel::Im2col, p, nb, &xs, &mut ws.slice_mut(..total))?;
                    ws.slice(..total)
                }
            };
            for g in 0..p.groups {
                let gemm = RowMajorGemm {
                    m: d.cog,
                    n: d.l,
                    k: d.kg,
                    trans_a: false,
                    trans_b: false,
                    alpha: 1.0,
                    beta: 0.0,
                    batch: nb,
                    stride_a: 0,
                    stride_b: d.ck * d.l,
                    stride_c: p.c_out * d.l,
                };
                let wg = w.slice(g * d.cog * d.kg..);
                let colg = col.slice(g * d.kg * d.l..);
                let mut yg = y.slice_mut((n0 * p.c_out + g * d.cog) * d.l..);
                self.row_major_gemm(&gemm, &wg, &colg, &mut yg)?;
            }
        }
        if let Some(b) = b {
            let bp = BiasParams {
                outer: p.n,
                channels: p.c_out,
                inner: d.l,
            };
            self.bias_add_unchecked(&bp, b, y)?;
        }
        Ok(())
    }

    /// dy is (N, C_out, H_out, W_out); w is (C_out, C_in/groups, kh, kw);
    /// dx is (N, C_in, H, W), overwritten.
    fn conv2d_backward_input(
        &self,
        p: &Conv2dParams,
        dy: &CudaSlice<f32>,
        w: &CudaSlice<f32>,
        dx: &mut CudaSlice<f32>,
    ) -> Result<()> {
        p.check_backward_input(dy.len(), w.len(), dx.len())?;
        if p.n == 0 {
            return Ok(());
        }
        let d = Dims::new(p);
        let mut ws = if d.direct {
            None
        } else {
            Some(self.col_workspace(&d)?)
        };
        for (n0, nb) in d.chunks(p.n) {
            let gemm = RowMajorGemm {
                m: d.kg,
                n: d.l,
                k: d.cog,
                trans_a: true,
                trans_b: false,
                alpha: 1.0,
                beta: 0.0,
                batch: nb,
                stride_a: 0,
                stride_b: p.c_out * d.l,
                stride_c: d.ck * d.l,
            };
            for g in 0..p.groups {
                let wg = w.slice(g * d.cog * d.kg..);
                let dyg = dy.slice((n0 * p.c_out + g * d.cog) * d.l..);
                match ws.as_mut() {
                    // x is its own col: the GEMM writes dx directly (kg = cig, L = h w).
                    None => {
                        let mut dxg = dx.slice_mut((n0 * p.c_in + g * d.cig) * d.l..);
                        self.row_major_gemm(&gemm, &wg, &dyg, &mut dxg)?;
                    }
                    Some(ws) => {
                        let mut colg = ws.slice_mut(g * d.kg * d.l..);
                        self.row_major_gemm(&gemm, &wg, &dyg, &mut colg)?;
                    }
                }
            }
            if let Some(ws) = ws.as_ref() {
                let col = ws.slice(..nb * d.ck * d.l);
                let mut dxs = dx.slice_mut(n0 * d.x_img..(n0 + nb) * d.x_img);
                self.col_kernel(ColKernel::Col2im, p, nb, &col, &mut dxs)?;
            }
        }
        Ok(())
    }

    /// x is (N, C_in, H, W); dy is (N, C_out, H_out, W_out); dw is
    /// (C_out, C_in/groups, kh, kw), accumulated.
    fn conv2d_backward_weight(
        &self,
        p: &Conv2dParams,
        x: &CudaSlice<f32>,
        dy: &CudaSlice<f32>,
        dw: &mut CudaSlice<f32>,
    ) -> Result<()> {
        p.check_backward_weight(x.len(), dy.len(), dw.len())?;
        if p.n == 0 {
            return Ok(());
        }
        let d = Dims::new(p);
        let mut ws = if d.direct {
            None
        } else {
            Some(self.col_workspace(&d)?)
        };
        // Per chunk and group: one strided batched GEMM writes each image's
        // gradient dy_i col_i^T into `part`, then one kernel adds them into
        // dw in image order.
        let wg_len = d.cog * d.kg;
        let mut part = self.part_workspace(d.chunk.min(p.n) * wg_len)?;
        for (n0, nb) in d.chunks(p.n) {
            let xs = x.slice(n0 * d.x_img..(n0 + nb) * d.x_img);
            let col = match ws.as_mut() {
                None => xs,
                Some(ws) => {
                    let total = nb * d.ck * d.l;
                    self.col_kernel(ColKernel::Im2col, p, nb, &xs, &mut ws.slice_mut(..total))?;
                    ws.slice(..total)
                }
            };
            let gemm = RowMajorGemm {
                m: d.cog,
                n: d.kg,
                k: d.l,
                trans_a: false,
                trans_b: true,
                alpha: 1.0,
                beta: 0.0,
                batch: nb,
                stride_a: p.c_out * d.l,
                stride_b: d.ck * d.l,
                stride_c: wg_len,
            };
            for g in 0..p.groups {
                let dyg = dy.slice((n0 * p.c_out + g * d.cog) * d.l..);
                let colg = col.slice(g * d.kg * d.l..);
                self.row_major_gemm(&gemm, &dyg, &colg, &mut part)?;
                let mut dwg = dw.slice_mut(g * wg_len..(g + 1) * wg_len);
                launch!(
                    self,
                    self.function(KernelSource::Conv, "sum_images_into_f32")?,
                    grid(wg_len),
                    [&part, &mut dwg, &(nb as u64), &(wg_len as u64)]
                )?;
            }
        }
        Ok(())
    }

    /// dy is (N, C_out, H_out, W_out); db is (C_out), accumulated.
    fn conv2d_backward_bias(
        &self,
        p: &Conv2dParams,
        dy: &CudaSlice<f32>,
        db: &mut CudaSlice<f32>,
    ) -> Result<()> {
        p.check_backward_bias(dy.len(), db.len())?;
        let bp = BiasParams {
            outer: p.n,
            channels: p.c_out,
            inner: p.h_out * p.w_out,
        };
        self.bias_backward_unchecked(&bp, dy, db)
    }
}
