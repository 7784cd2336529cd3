//! Batch normalisation and dropout (`norm.cu`).
//!
//! Batch norm: a per-channel reduction kernel (a block per channel, f64
//! sums) writes the statistics and per-channel coefficients, then an
//! elementwise kernel applies them. Dropout regenerates the mask from
//! `(seed, stream, step, index)` with the same Philox4x32-10 as the CPU; the
//! key is derived on the host by `cnn_core::rng::philox_key` itself.

use cnn_core::error::check_len;
use cnn_core::{BatchNormParams, DropoutParams, NormOps, Result};
use cudarc::driver::CudaSlice;

use crate::CudaBackend;
use crate::kernels::KernelSource;
use crate::launch::{blocks, grid};

fn u(v: usize) -> u64 {
    v as u64
}

impl CudaBackend {
    /// `out = input * mask * scale` (x and y of the same length).
    fn dropout(
        &self,
        op: &'static str,
        p: &DropoutParams,
        input: &CudaSlice<f32>,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        p.validate()?;
        check_len(op, "output", out.len(), input.len())?;
        let n = input.len();
        if n == 0 {
            return Ok(());
        }
        let [k0, k1] = p.key();
        launch!(
            self,
            self.function(KernelSource::Norm, "dropout_f32")?,
            grid(n.div_ceil(4)),
            [
                input,
                out,
                &u(n),
                &k0,
                &k1,
                &p.step,
                &p.threshold(),
                &p.scale()
            ]
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn bn_apply(
        &self,
        p: &BatchNormParams,
        x: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
        mean: &CudaSlice<f32>,
        scale: &CudaSlice<f32>,
        shift: &CudaSlice<f32>,
    ) -> Result<()> {
        let total = p.n * p.c * p.hw;
        launch!(
            self,
            self.function(KernelSource::Norm, "bn_apply_f32")?,
            grid(total),
            [x, y, mean, scale, shift, &u(total), &u(p.c), &u(p.hw)]
        )
    }
}

impl NormOps for CudaBackend {
    /// x, y are (N, C, HW); gamma, beta, running stats and saves are (C).
    fn batch_norm2d_forward_train(
        &self,
        p: &BatchNormParams,
        x: &CudaSlice<f32>,
        gamma: &CudaSlice<f32>,
        beta: &CudaSlice<f32>,
        running_mean: &mut CudaSlice<f32>,
        running_var: &mut CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
        save_mean: &mut CudaSlice<f32>,
        save_invstd: &mut CudaSlice<f32>,
    ) -> Result<()> {
        p.check(
            "batch_norm2d_forward_train",
            &[("x", x.len()), ("y", y.len())],
            &[
                ("gamma", gamma.len()),
                ("beta", beta.len()),
                ("running_mean", running_mean.len()),
                ("running_var", running_var.len()),
                ("save_mean", save_mean.len()),
                ("save_invstd", save_invstd.len()),
            ],
        )?;
        let mut scale = self.scratch::<f32>(p.c)?;
        launch!(
            self,
            self.function(KernelSource::Norm, "bn_stats_f32")?,
            blocks(p.c),
            [
                x,
                gamma,
                running_mean,
                running_var,
                &mut *save_mean,
                save_invstd,
                &mut scale,
                &u(p.n),
                &u(p.c),
                &u(p.hw),
                &p.eps,
                &p.momentum
            ]
        )?;
        self.bn_apply(p, x, y, save_mean, &scale, beta)
    }

    /// Eval mode with the running statistics; y is (N, C, HW), overwritten.
    fn batch_norm2d_forward_eval(
        &self,
        p: &BatchNormParams,
        x: &CudaSlice<f32>,
        gamma: &CudaSlice<f32>,
        beta: &CudaSlice<f32>,
        running_mean: &CudaSlice<f32>,
        running_var: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
    ) -> Result<()> {
        p.check(
            "batch_norm2d_forward_eval",
            &[("x", x.len()), ("y", y.len())],
            &[
                ("gamma", gamma.len()),
                ("beta", beta.len()),
                ("running_mean", running_mean.len()),
                ("running_var", running_var.len()),
            ],
        )?;
        let mut scale = self.scratch::<f32>(p.c)?;
        launch!(
            self,
            self.function(KernelSource::Norm, "bn_eval_scale_f32")?,
            grid(p.c),
            [gamma, running_var, &mut scale, &u(p.c), &p.eps]
        )?;
        self.bn_apply(p, x, y, running_mean, &scale, beta)
    }

    /// x, dy, dx are (N, C, HW), dx overwritten; dgamma, dbeta (C) accumulated.
    fn batch_norm2d_backward(
        &self,
        p: &BatchNormParams,
        x: &CudaSlice<f32>,
        gamma: &CudaSlice<f32>,
        save_mean: &CudaSlice<f32>,
        save_invstd: &CudaSlice<f32>,
        dy: &CudaSlice<f32>,
        dx: &mut CudaSlice<f32>,
        dgamma: &mut CudaSlice<f32>,
        dbeta: &mut CudaSlice<f32>,
    ) -> Result<()> {
        p.check(
            "batch_norm2d_backward",
            &[("x", x.len()), ("dy", dy.len()), ("dx", dx.len())],
            &[
                ("gamma", gamma.len()),
                ("save_mean", save_mean.len()),
                ("save_invstd", save_invstd.len()),
                ("dgamma", dgamma.len()),
                ("dbeta", dbeta.len()),
            ],
        )?;
        let mut coef = self.scratch::<f32>(3 * p.c)?;
        launch!(
            self,
            self.function(KernelSource::Norm, "bn_backward_reduce_f32")?,
            blocks(p.c),
            [
                x,
                dy,
                gamma,
                save_mean,
                save_invstd,
                dgamma,
                dbeta,
                &mut coef,
                &u(p.n),
                &u(p.c),
                &u(p.hw)
            ]
        )?;
        let total = p.n * p.c * p.hw;
        launch!(
            self,
            self.function(KernelSource::Norm, "bn_backward_apply_f32")?,
            grid(total),
            [x, dy, dx, save_mean, &coef, &u(total), &u(p.c), &u(p.hw)]
        )
    }

    /// x and y are (n); y = x * mask * scale, overwritten.
    fn dropout_forward(
        &self,
        p: &DropoutParams,
        x: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
    ) -> Result<()> {
        self.dropout("dropout_forward", p, x, y)
    }

    /// dy and dx are (n); dx = dy * mask * scale, overwritten.
    fn dropout_backward(
        &self,
        p: &DropoutParams,
        dy: &CudaSlice<f32>,
        dx: &mut CudaSlice<f32>,
    ) -> Result<()> {
        self.dropout("dropout_backward", p, dy, dx)
    }
}
