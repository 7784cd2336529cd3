//! 2-D convolution (cross-correlation, as PyTorch's `Conv2d`).

use crate::error::{CnnError, Result, check_len};

/// The hyper-parameters of a convolution, independent of the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Conv2dGeometry {
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl Conv2dGeometry {
    /// A `k x k` convolution with stride 1, no padding, no dilation, one group.
    pub fn new(out_channels: usize, kernel: usize) -> Self {
        Conv2dGeometry {
            out_channels,
            kernel: [kernel, kernel],
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
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
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = [d, d];
        self
    }
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

/// Everything a backend needs to run one convolution: batch, input size,
/// geometry and the derived output size. Mirrored field for field by the
/// CUDA kernels.
///
/// x is `(n, c_in, h, w)`, the weight is `(c_out, c_in / groups, kh, kw)`,
/// the bias `(c_out)`, y is `(n, c_out, h_out, w_out)`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dParams {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_h: usize,
    pub pad_w: usize,
    pub dil_h: usize,
    pub dil_w: usize,
    pub groups: usize,
    pub h_out: usize,
    pub w_out: usize,
}

/// Output length of one spatial axis of a convolution or pooling window,
/// or an error when the (dilated) window does not fit the padded input.
pub(crate) fn window_output_len(
    axis: &str,
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    ceil_mode: bool,
) -> Result<usize> {
    if kernel == 0 {
        return Err(CnnError::geometry(format!(
            "kernel {axis} must be at least 1"
        )));
    }
    if stride == 0 {
        return Err(CnnError::geometry(format!(
            "stride {axis} must be at least 1"
        )));
    }
    if dilation == 0 {
        return Err(CnnError::geometry(format!(
            "dilation {axis} must be at least 1"
        )));
    }
    let span = dilation * (kernel - 1) + 1;
    let padded = input + 2 * pad;
    if span > padded {
        return Err(CnnError::geometry(format!(
            "kernel {axis} {kernel} (dilated span {span}) is larger than the padded input {axis} {padded} ({input} + 2 x {pad})"
        )));
    }
    let mut out = (padded - span) / stride + 1;
    if ceil_mode && !(padded - span).is_multiple_of(stride) {
        out += 1;
        // PyTorch: the last window must start inside the input or left padding.
        if (out - 1) * stride >= input + pad {
            out -= 1;
        }
    }
    Ok(out)
}

impl Conv2dParams {
    /// The full parameters for input `(n, c_in, h, w)` under `geom`, or an
    /// error for geometry that cannot be computed.
    pub fn new(n: usize, c_in: usize, h: usize, w: usize, geom: &Conv2dGeometry) -> Result<Self> {
        if geom.groups == 0 {
            return Err(CnnError::geometry("groups must be at least 1"));
        }
        if c_in == 0 || geom.out_channels == 0 {
            return Err(CnnError::geometry("channel counts must be at least 1"));
        }
        if !c_in.is_multiple_of(geom.groups) || !geom.out_channels.is_multiple_of(geom.groups) {
            return Err(CnnError::geometry(format!(
                "groups {} must divide both the input channels {} and the output channels {}",
                geom.groups, c_in, geom.out_channels
            )));
        }
        let h_out = window_output_len(
            "height",
            h,
            geom.kernel[0],
            geom.stride[0],
            geom.padding[0],
            geom.dilation[0],
            false,
        )?;
        let w_out = window_output_len(
            "width",
            w,
            geom.kernel[1],
            geom.stride[1],
            geom.padding[1],
            geom.dilation[1],
            false,
        )?;
        Ok(Conv2dParams {
            n,
            c_in,
            h,
            w,
            c_out: geom.out_channels,
            kh: geom.kernel[0],
            kw: geom.kernel[1],
            stride_h: geom.stride[0],
            stride_w: geom.stride[1],
            pad_h: geom.padding[0],
            pad_w: geom.padding[1],
            dil_h: geom.dilation[0],
            dil_w: geom.dilation[1],
            groups: geom.groups,
            h_out,
            w_out,
        })
    }

    /// Elements of x.
    pub fn x_len(&self) -> usize {
        self.n * self.c_in * self.h * self.w
    }
    /// Elements of the weight.
    pub fn w_len(&self) -> usize {
        self.c_out * (self.c_in / self.groups) * self.kh * self.kw
    }
    /// Elements of y.
    pub fn y_len(&self) -> usize {
        self.n * self.c_out * self.h_out * self.w_out
    }
    /// Multiply-adds of the forward pass times two.
    pub fn forward_flops(&self) -> f64 {
        2.0 * self.y_len() as f64 * ((self.c_in / self.groups) * self.kh * self.kw) as f64
    }

    /// Re-check the derived fields (a hand-built struct may be inconsistent).
    pub fn validate(&self) -> Result<()> {
        let geom = Conv2dGeometry {
            out_channels: self.c_out,
            kernel: [self.kh, self.kw],
            stride: [self.stride_h, self.stride_w],
            padding: [self.pad_h, self.pad_w],
            dilation: [self.dil_h, self.dil_w],
            groups: self.groups,
        };
        let fresh = Conv2dParams::new(self.n, self.c_in, self.h, self.w, &geom)?;
        if fresh != *self {
            return Err(CnnError::geometry(format!(
                "inconsistent conv2d params: output {}x{} given, {}x{} computed",
                self.h_out, self.w_out, fresh.h_out, fresh.w_out
            )));
        }
        Ok(())
    }

    /// Validate params and buffer lengths for `conv2d_forward`.
    pub fn check_forward(&self, x: usize, w: usize, b: Option<usize>, y: usize) -> Result<()> {
        self.validate()?;
        check_len("conv2d_forward", "x", x, self.x_len())?;
        check_len("conv2d_forward", "w", w, self.w_len())?;
        if let Some(b) = b {
            check_len("conv2d_forward", "b", b, self.c_out)?;
        }
        check_len("conv2d_forward", "y", y, self.y_len())
    }

    /// Validate for `conv2d_backward_input`.
    pub fn check_backward_input(&self, dy: usize, w: usize, dx: usize) -> Result<()> {
        self.validate()?;
        check_len("conv2d_backward_input", "dy", dy, self.y_len())?;
        check_len("conv2d_backward_input", "w", w, self.w_len())?;
        check_len("conv2d_backward_input", "dx", dx, self.x_len())
    }

    /// Validate for `conv2d_backward_weight`.
    pub fn check_backward_weight(&self, x: usize, dy: usize, dw: usize) -> Result<()> {
        self.validate()?;
        check_len("conv2d_backward_weight", "x", x, self.x_len())?;
        check_len("conv2d_backward_weight", "dy", dy, self.y_len())?;
        check_len("conv2d_backward_weight", "dw", dw, self.w_len())
    }

    /// Validate for `conv2d_backward_bias`.
    pub fn check_backward_bias(&self, dy: usize, db: usize) -> Result<()> {
        self.validate()?;
        check_len("conv2d_backward_bias", "dy", dy, self.y_len())?;
        check_len("conv2d_backward_bias", "db", db, self.c_out)
    }
}

/// Convolution forward and its three backward ops.
pub trait ConvOps: super::MemoryOps {
    /// `y = conv(x, w) + b`. x is (N, C_in, H, W); w is (C_out, C_in/groups,
    /// kh, kw); b is (C_out); y is (N, C_out, H_out, W_out), overwritten.
    fn conv2d_forward(
        &self,
        p: &Conv2dParams,
        x: &Self::Buffer,
        w: &Self::Buffer,
        b: Option<&Self::Buffer>,
        y: &mut Self::Buffer,
    ) -> Result<()>;

    /// `dx = conv_transpose(dy, w)`: the gradient with respect to the input.
    /// dy is (N, C_out, H_out, W_out); dx is (N, C_in, H, W), overwritten.
    fn conv2d_backward_input(
        &self,
        p: &Conv2dParams,
        dy: &Self::Buffer,
        w: &Self::Buffer,
        dx: &mut Self::Buffer,
    ) -> Result<()>;

    /// `dw += dL/dw`. x is (N, C_in, H, W); dy is (N, C_out, H_out, W_out);
    /// dw is (C_out, C_in/groups, kh, kw), accumulated.
    fn conv2d_backward_weight(
        &self,
        p: &Conv2dParams,
        x: &Self::Buffer,
        dy: &Self::Buffer,
        dw: &mut Self::Buffer,
    ) -> Result<()>;

    /// `db += sum of dy over (N, H_out, W_out)`. db is (C_out), accumulated.
    fn conv2d_backward_bias(
        &self,
        p: &Conv2dParams,
        dy: &Self::Buffer,
        db: &mut Self::Buffer,
    ) -> Result<()>;

    /// [`conv2d_backward_bias`](Self::conv2d_backward_bias) of a batch whose
    /// output gradient is held in contiguous parts: `dy_parts[k]` holds the
    /// images that follow those of the parts before it, and `p.n` counts
    /// the images of all parts. A backend that sums across the parts
    /// exactly as it sums one buffer overrides this (the CPU backend does,
    /// so that a data-parallel step equals an unsplit one bit for bit); the
    /// default adds each part's sum in turn, which agrees to rounding.
    fn conv2d_backward_bias_parts(
        &self,
        p: &Conv2dParams,
        dy_parts: &[&Self::Buffer],
        db: &mut Self::Buffer,
    ) -> Result<()> {
        let image = p.c_out * p.h_out * p.w_out;
        let total: usize = dy_parts.iter().map(|b| self.buffer_len(b)).sum();
        check_len("conv2d_backward_bias_parts", "dy", total, p.y_len())?;
        for part in dy_parts {
            let n = self.buffer_len(part) / image.max(1);
            if n > 0 {
                self.conv2d_backward_bias(&Conv2dParams { n, ..*p }, part, db)?;
            }
        }
        Ok(())
    }
}
