//! Max, average and global-average pooling.

use super::conv::window_output_len;
use crate::error::{CnnError, Result, check_len};

/// Pooling hyper-parameters, independent of the input size (PyTorch's
/// `MaxPool2d`/`AvgPool2d` arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Pool2dGeometry {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub ceil_mode: bool,
    /// Average pooling only: whether padded zeros count in the divisor.
    pub count_include_pad: bool,
}

impl Pool2dGeometry {
    /// A `k x k` window with stride `k` (PyTorch's default stride), no padding.
    pub fn new(kernel: usize) -> Self {
        Pool2dGeometry {
            kernel: [kernel, kernel],
            stride: [kernel, kernel],
            padding: [0, 0],
            ceil_mode: false,
            count_include_pad: true,
        }
    }
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = [s, s];
        self
    }
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = [p, p];
        self
    }
    pub fn ceil_mode(mut self, on: bool) -> Self {
        self.ceil_mode = on;
        self
    }
    pub fn count_include_pad(mut self, on: bool) -> Self {
        self.count_include_pad = on;
        self
    }
}

/// One pooling op over x `(n, c, h, w)` giving y `(n, c, h_out, w_out)`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2dParams {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_h: usize,
    pub pad_w: usize,
    pub ceil_mode: bool,
    pub count_include_pad: bool,
    pub h_out: usize,
    pub w_out: usize,
}

impl Pool2dParams {
    /// Full parameters, or an error for geometry PyTorch would reject
    /// (zero kernel or stride, padding over half the kernel, window larger
    /// than the padded input).
    pub fn new(n: usize, c: usize, h: usize, w: usize, geom: &Pool2dGeometry) -> Result<Self> {
        for axis in 0..2 {
            if geom.padding[axis] * 2 > geom.kernel[axis] {
                return Err(CnnError::geometry(format!(
                    "pool padding {} must be at most half the kernel {}",
                    geom.padding[axis], geom.kernel[axis]
                )));
            }
        }
        if c == 0 {
            return Err(CnnError::geometry("channel count must be at least 1"));
        }
        let h_out = window_output_len(
            "height",
            h,
            geom.kernel[0],
            geom.stride[0],
            geom.padding[0],
            1,
            geom.ceil_mode,
        )?;
        let w_out = window_output_len(
            "width",
            w,
            geom.kernel[1],
            geom.stride[1],
            geom.padding[1],
            1,
            geom.ceil_mode,
        )?;
        Ok(Pool2dParams {
            n,
            c,
            h,
            w,
            kh: geom.kernel[0],
            kw: geom.kernel[1],
            stride_h: geom.stride[0],
            stride_w: geom.stride[1],
            pad_h: geom.padding[0],
            pad_w: geom.padding[1],
            ceil_mode: geom.ceil_mode,
            count_include_pad: geom.count_include_pad,
            h_out,
            w_out,
        })
    }

    pub fn x_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
    pub fn y_len(&self) -> usize {
        self.n * self.c * self.h_out * self.w_out
    }

    /// Re-check the derived fields of a hand-built struct.
    pub fn validate(&self) -> Result<()> {
        let geom = Pool2dGeometry {
            kernel: [self.kh, self.kw],
            stride: [self.stride_h, self.stride_w],
            padding: [self.pad_h, self.pad_w],
            ceil_mode: self.ceil_mode,
            count_include_pad: self.count_include_pad,
        };
        if Pool2dParams::new(self.n, self.c, self.h, self.w, &geom)? != *self {
            return Err(CnnError::geometry("inconsistent pool2d params"));
        }
        Ok(())
    }

    /// Validate params and the lengths of x and y (and argmax when given).
    pub fn check(&self, op: &'static str, x: usize, y: usize, argmax: Option<usize>) -> Result<()> {
        self.validate()?;
        check_len(op, "x", x, self.x_len())?;
        check_len(op, "y", y, self.y_len())?;
        if let Some(a) = argmax {
            check_len(op, "argmax", a, self.y_len())?;
        }
        Ok(())
    }
}

/// Pooling forward and backward.
pub trait PoolOps: super::MemoryOps {
    /// Max pooling. y is (N, C, H_out, W_out); `argmax` receives, for every
    /// output element, the flat index `h * W + w` of the chosen input element
    /// within its (n, c) plane (the first maximum in row-major window order;
    /// NaN wins, as in PyTorch).
    fn max_pool2d_forward(
        &self,
        p: &Pool2dParams,
        x: &Self::Buffer,
        y: &mut Self::Buffer,
        argmax: &mut Self::IndexBuffer,
    ) -> Result<()>;

    /// `dx` (overwritten) receives each `dy` at its argmax position (summed
    /// where windows overlap, from +0 in row-major output order, so every
    /// backend gives the same bits). `argmax` is what
    /// [`max_pool2d_forward`](Self::max_pool2d_forward) wrote for the same
    /// geometry; an index outside the plane is an error.
    fn max_pool2d_backward(
        &self,
        p: &Pool2dParams,
        dy: &Self::Buffer,
        argmax: &Self::IndexBuffer,
        dx: &mut Self::Buffer,
    ) -> Result<()>;

    /// Average pooling; the divisor follows `count_include_pad` and never
    /// counts the part of a ceil-mode window beyond the padded input.
    fn avg_pool2d_forward(
        &self,
        p: &Pool2dParams,
        x: &Self::Buffer,
        y: &mut Self::Buffer,
    ) -> Result<()>;

    /// `dx` (overwritten) = each `dy` spread over its window / divisor.
    fn avg_pool2d_backward(
        &self,
        p: &Pool2dParams,
        dy: &Self::Buffer,
        dx: &mut Self::Buffer,
    ) -> Result<()>;

    /// Mean over each (n, c) plane: x is (N, C, HW), y is (N, C).
    fn global_avg_pool_forward(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        x: &Self::Buffer,
        y: &mut Self::Buffer,
    ) -> Result<()>;

    /// `dx` (overwritten, (N, C, HW)) = dy / HW broadcast over each plane.
    fn global_avg_pool_backward(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        dy: &Self::Buffer,
        dx: &mut Self::Buffer,
    ) -> Result<()>;
}
