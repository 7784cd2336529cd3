//! Pointwise activations and their derivatives (`activation.cu`).

use cnn_core::error::check_len;
use cnn_core::{Activation, ActivationOps, Result};
use cudarc::driver::CudaSlice;

use crate::CudaBackend;
use crate::kernels::KernelSource;
use crate::launch::grid;

/// The kernel's `(kind, p0, p1)` encoding of an activation.
fn encode(act: Activation) -> (i32, f32, f32) {
    match act {
        Activation::Relu => (0, 0.0, 0.0),
        Activation::LeakyRelu { negative_slope } => (1, negative_slope, 0.0),
        Activation::Sigmoid => (2, 0.0, 0.0),
        Activation::Tanh => (3, 0.0, 0.0),
        Activation::Gelu => (4, 0.0, 0.0),
        Activation::GeluTanh => (5, 0.0, 0.0),
        Activation::Elu { alpha } => (6, alpha, 0.0),
        Activation::Silu => (7, 0.0, 0.0),
        Activation::Softplus { beta, threshold } => (8, beta, threshold),
    }
}

impl ActivationOps for CudaBackend {
    /// x and y are (n); y overwritten.
    fn activation_forward(
        &self,
        act: Activation,
        x: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
    ) -> Result<()> {
        act.validate()?;
        check_len("activation_forward", "y", y.len(), x.len())?;
        let n = x.len();
        if n == 0 {
            return Ok(());
        }
        let (kind, p0, p1) = encode(act);
        launch!(
            self,
            self.function(KernelSource::Activation, "activation_forward_f32")?,
            grid(n),
            [&kind, &p0, &p1, x, y, &(n as u64)]
        )
    }

    /// x, y, dy, dx are (n); dx overwritten.
    fn activation_backward(
        &self,
        act: Activation,
        x: &CudaSlice<f32>,
        y: &CudaSlice<f32>,
        dy: &CudaSlice<f32>,
        dx: &mut CudaSlice<f32>,
    ) -> Result<()> {
        act.validate()?;
        let n = x.len();
        check_len("activation_backward", "y", y.len(), n)?;
        check_len("activation_backward", "dy", dy.len(), n)?;
        check_len("activation_backward", "dx", dx.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let (kind, p0, p1) = encode(act);
        launch!(
            self,
            self.function(KernelSource::Activation, "activation_backward_f32")?,
            grid(n),
            [&kind, &p0, &p1, x, y, dy, dx, &(n as u64)]
        )
    }
}
