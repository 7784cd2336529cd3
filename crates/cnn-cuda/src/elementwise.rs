//! Elementwise arithmetic, bias broadcast and f64 reductions.
//!
//! Reductions write one f64 partial sum per block (at most
//! [`REDUCE_BLOCKS`]), which the host downloads and adds in f64.

use cnn_core::error::check_len;
use cnn_core::{BiasParams, CnnError, ElementwiseOps, Result};
use cudarc::driver::{CudaSlice, LaunchConfig};

use crate::CudaBackend;
use crate::kernels::KernelSource;
use crate::launch::{BLOCK, blocks, grid};

/// Most partial sums a reduction downloads.
const REDUCE_BLOCKS: usize = 1024;

#[derive(Clone, Copy)]
enum Reduce {
    Sum = 0,
    SumSquares = 1,
    SumAbs = 2,
    NonFinite = 3,
}

impl CudaBackend {
    fn func_ew(&self, name: &'static str) -> Result<cudarc::driver::CudaFunction> {
        self.function(KernelSource::Elementwise, name)
    }

    fn reduce(&self, x: &CudaSlice<f32>, mode: Reduce) -> Result<f64> {
        let n = x.len();
        if n == 0 {
            return Ok(0.0);
        }
        let nblocks = n.div_ceil(BLOCK as usize).clamp(1, REDUCE_BLOCKS);
        let mut partials = self.scratch::<f64>(nblocks)?;
        let cfg = LaunchConfig {
            grid_dim: (nblocks as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        launch!(
            self,
            self.func_ew("reduce_partials_f32")?,
            cfg,
            [x, &(n as u64), &(mode as i32), &mut partials]
        )?;
        Ok(self.fetch(&partials)?.iter().sum())
    }

    /// `y[o, c, i] += b[c]` (shared with the convolution's bias).
    pub(crate) fn bias_add_unchecked(
        &self,
        p: &BiasParams,
        b: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let n = p.outer * p.channels * p.inner;
        if n == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.func_ew("bias_add_f32")?,
            grid(n),
            [b, y, &(n as u64), &(p.channels as u64), &(p.inner as u64)]
        )
    }

    /// `db[c] += sum of dy[o, c, i]` (shared with the convolution's bias),
    /// in f64, planes summed in image order. Linear layers (`inner == 1`)
    /// take one kernel; convolutions two: a block per (image, channel)
    /// plane, then the planes of each channel in order.
    pub(crate) fn bias_backward_unchecked(
        &self,
        p: &BiasParams,
        dy: &CudaSlice<f32>,
        db: &mut CudaSlice<f32>,
    ) -> Result<()> {
        if p.channels == 0 {
            return Ok(());
        }
        let (outer, channels) = (p.outer as u64, p.channels as u64);
        if p.inner == 1 || p.outer == 0 {
            return launch!(
                self,
                self.func_ew("bias_backward_rows_f32")?,
                grid(p.channels),
                [dy, db, &outer, &channels]
            );
        }
        let planes = p.outer * p.channels;
        let mut plane_sums = self.scratch::<f64>(planes)?;
        launch!(
            self,
            self.func_ew("bias_plane_sums_f32")?,
            blocks(planes),
            [dy, &mut plane_sums, &(planes as u64), &(p.inner as u64)]
        )?;
        launch!(
            self,
            self.func_ew("bias_sum_planes_f32")?,
            grid(p.channels),
            [&plane_sums, db, &outer, &channels]
        )
    }
}

impl ElementwiseOps for CudaBackend {
    fn add(&self, a: &CudaSlice<f32>, b: &CudaSlice<f32>, out: &mut CudaSlice<f32>) -> Result<()> {
        check_len("add", "b", b.len(), a.len())?;
        check_len("add", "out", out.len(), a.len())?;
        let n = a.len();
        if n == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.func_ew("add_f32")?,
            grid(n),
            [a, b, out, &(n as u64)]
        )
    }

    fn axpy(&self, alpha: f32, x: &CudaSlice<f32>, y: &mut CudaSlice<f32>) -> Result<()> {
        check_len("axpy", "y", y.len(), x.len())?;
        let n = x.len();
        if n == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.func_ew("axpy_f32")?,
            grid(n),
            [&alpha, x, y, &(n as u64)]
        )
    }

    fn scale(&self, alpha: f32, x: &mut CudaSlice<f32>) -> Result<()> {
        let n = x.len();
        if n == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.func_ew("scale_f32")?,
            grid(n),
            [&alpha, x, &(n as u64)]
        )
    }

    fn clamp(&self, lo: f32, hi: f32, x: &mut CudaSlice<f32>) -> Result<()> {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(CnnError::value(
                "clamp bounds",
                format!("need lo <= hi, got lo {lo}, hi {hi}"),
            ));
        }
        let n = x.len();
        if n == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.func_ew("clamp_f32")?,
            grid(n),
            [&lo, &hi, x, &(n as u64)]
        )
    }

    fn add_sign(&self, lambda: f32, w: &CudaSlice<f32>, g: &mut CudaSlice<f32>) -> Result<()> {
        check_len("add_sign", "g", g.len(), w.len())?;
        let n = w.len();
        if n == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.func_ew("add_sign_f32")?,
            grid(n),
            [&lambda, w, g, &(n as u64)]
        )
    }

    fn bias_add(&self, p: &BiasParams, b: &CudaSlice<f32>, y: &mut CudaSlice<f32>) -> Result<()> {
        p.check("bias_add", y.len(), b.len())?;
        self.bias_add_unchecked(p, b, y)
    }

    fn bias_backward(
        &self,
        p: &BiasParams,
        dy: &CudaSlice<f32>,
        db: &mut CudaSlice<f32>,
    ) -> Result<()> {
        p.check("bias_backward", dy.len(), db.len())?;
        self.bias_backward_unchecked(p, dy, db)
    }

    fn sum(&self, x: &CudaSlice<f32>) -> Result<f64> {
        self.reduce(x, Reduce::Sum)
    }

    fn sum_squares(&self, x: &CudaSlice<f32>) -> Result<f64> {
        self.reduce(x, Reduce::SumSquares)
    }

    fn sum_abs(&self, x: &CudaSlice<f32>) -> Result<f64> {
        self.reduce(x, Reduce::SumAbs)
    }

    fn count_non_finite(&self, x: &CudaSlice<f32>) -> Result<usize> {
        Ok(self.reduce(x, Reduce::NonFinite)? as usize)
    }
}
