//! Max, average and global-average pooling (`pool.cu`): one thread per
//! output element (forward) or input element (the backward passes, gathers:
//! max pooling's adds overlapping windows in cnn-cpu's order, so it gives
//! the CPU's bits, with no atomics).

use cnn_core::error::check_len;
use cnn_core::{CnnError, Pool2dParams, PoolOps, Result};
use cudarc::driver::CudaSlice;

use crate::kernels::KernelSource;
use crate::launch::{blocks, grid};
use crate::{CudaBackend, driver_err};

fn u(v: usize) -> u64 {
    v as u64
}

fn check_global(op: &'static str, hw: usize) -> Result<()> {
    if hw == 0 {
        return Err(CnnError::geometry(format!(
            "global average pooling needs a non-empty plane ({op})"
        )));
    }
    Ok(())
}

impl PoolOps for CudaBackend {
    /// x is (N, C, H, W); y and argmax are (N, C, H_out, W_out).
    fn max_pool2d_forward(
        &self,
        p: &Pool2dParams,
        x: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
        argmax: &mut CudaSlice<u32>,
    ) -> Result<()> {
        p.check("max_pool2d_forward", x.len(), y.len(), Some(argmax.len()))?;
        let total = p.y_len();
        if total == 0 || p.h * p.w == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.function(KernelSource::Pool, "max_pool_forward_f32")?,
            grid(total),
            [
                x,
                y,
                argmax,
                &u(p.n * p.c),
                &u(p.h),
                &u(p.w),
                &u(p.kh),
                &u(p.kw),
                &u(p.stride_h),
                &u(p.stride_w),
                &u(p.pad_h),
                &u(p.pad_w),
                &u(p.h_out),
                &u(p.w_out)
            ]
        )
    }

    /// dy and argmax are (N, C, H_out, W_out); dx is (N, C, H, W), overwritten.
    fn max_pool2d_backward(
        &self,
        p: &Pool2dParams,
        dy: &CudaSlice<f32>,
        argmax: &CudaSlice<u32>,
        dx: &mut CudaSlice<f32>,
    ) -> Result<()> {
        p.check(
            "max_pool2d_backward",
            dx.len(),
            dy.len(),
            Some(argmax.len()),
        )?;
        if dx.is_empty() {
            return Ok(());
        }
        if p.y_len() == 0 {
            self.stream().memset_zeros(dx).map_err(driver_err)?;
            return Ok(());
        }
        let mut bad = self.scratch::<u32>(1)?;
        launch!(
            self,
            self.function(KernelSource::Pool, "max_pool_backward_f32")?,
            grid(p.x_len().max(p.y_len())),
            [
                dy,
                argmax,
                dx,
                &u(p.n * p.c),
                &u(p.h),
                &u(p.w),
                &u(p.kh),
                &u(p.kw),
                &u(p.stride_h),
                &u(p.stride_w),
                &u(p.pad_h),
                &u(p.pad_w),
                &u(p.h_out),
                &u(p.w_out),
                &mut bad
            ]
        )?;
        if self.fetch(&bad)?[0] != 0 {
            return Err(CnnError::value(
                "max_pool2d_backward argmax",
                format!("an index is outside the {}x{} input plane", p.h, p.w),
            ));
        }
        Ok(())
    }

    /// x is (N, C, H, W); y is (N, C, H_out, W_out), overwritten.
    fn avg_pool2d_forward(
        &self,
        p: &Pool2dParams,
        x: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
    ) -> Result<()> {
        p.check("avg_pool2d_forward", x.len(), y.len(), None)?;
        let total = p.y_len();
        if total == 0 || p.h * p.w == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.function(KernelSource::Pool, "avg_pool_forward_f32")?,
            grid(total),
            [
                x,
                y,
                &u(p.n * p.c),
                &u(p.h),
                &u(p.w),
                &u(p.kh),
                &u(p.kw),
                &u(p.stride_h),
                &u(p.stride_w),
                &u(p.pad_h),
                &u(p.pad_w),
                &u(p.h_out),
                &u(p.w_out),
                &i32::from(p.count_include_pad)
            ]
        )
    }

    /// dy is (N, C, H_out, W_out); dx is (N, C, H, W), overwritten.
    fn avg_pool2d_backward(
        &self,
        p: &Pool2dParams,
        dy: &CudaSlice<f32>,
        dx: &mut CudaSlice<f32>,
    ) -> Result<()> {
        p.check("avg_pool2d_backward", dx.len(), dy.len(), None)?;
        let total = p.x_len();
        if total == 0 {
            return Ok(());
        }
        if p.y_len() == 0 {
            return cnn_core::MemoryOps::fill(self, dx, 0.0);
        }
        launch!(
            self,
            self.function(KernelSource::Pool, "avg_pool_backward_f32")?,
            grid(total),
            [
                dy,
                dx,
                &u(p.n * p.c),
                &u(p.h),
                &u(p.w),
                &u(p.kh),
                &u(p.kw),
                &u(p.stride_h),
                &u(p.stride_w),
                &u(p.pad_h),
                &u(p.pad_w),
                &u(p.h_out),
                &u(p.w_out),
                &i32::from(p.count_include_pad)
            ]
        )
    }

    /// x is (N, C, HW); y is (N, C), overwritten.
    fn global_avg_pool_forward(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        x: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
    ) -> Result<()> {
        check_global("global_avg_pool_forward", hw)?;
        check_len("global_avg_pool_forward", "x", x.len(), n * c * hw)?;
        check_len("global_avg_pool_forward", "y", y.len(), n * c)?;
        if n * c == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.function(KernelSource::Pool, "global_avg_pool_forward_f32")?,
            blocks(n * c),
            [x, y, &u(n * c), &u(hw)]
        )
    }

    /// dy is (N, C); dx is (N, C, HW), overwritten.
    fn global_avg_pool_backward(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        dy: &CudaSlice<f32>,
        dx: &mut CudaSlice<f32>,
    ) -> Result<()> {
        check_global("global_avg_pool_backward", hw)?;
        check_len("global_avg_pool_backward", "dy", dy.len(), n * c)?;
        check_len("global_avg_pool_backward", "dx", dx.len(), n * c * hw)?;
        if n * c == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.function(KernelSource::Pool, "global_avg_pool_backward_f32")?,
            grid(n * c * hw),
            [dy, dx, &u(n * c), &u(hw)]
        )
    }
}
