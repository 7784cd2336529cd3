//! Batch normalisation and dropout.

use crate::error::{CnnError, Result, check_len};
use crate::rng::{philox_key, random_bits};

/// Batch norm over x `(n, c, hw)`: statistics per channel over `n * hw`
/// values. `momentum` weights the new statistic in the running averages
/// (PyTorch's convention: `running = (1 - momentum) running + momentum new`),
/// and the running variance is updated with the unbiased variance.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormParams {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
    pub eps: f32,
    pub momentum: f32,
}

impl BatchNormParams {
    /// Validate the params and the lengths of x/y-sized and per-channel buffers.
    pub fn check(
        &self,
        op: &'static str,
        xy: &[(&'static str, usize)],
        per_channel: &[(&'static str, usize)],
    ) -> Result<()> {
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(CnnError::value("eps", "must be positive"));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(CnnError::value("momentum", "must be in [0, 1]"));
        }
        if self.n * self.hw == 0 || self.c == 0 {
            return Err(CnnError::geometry(
                "batch norm needs at least one value per channel",
            ));
        }
        for &(name, len) in xy {
            check_len(op, name, len, self.n * self.c * self.hw)?;
        }
        for &(name, len) in per_channel {
            check_len(op, name, len, self.c)?;
        }
        Ok(())
    }
}

/// One dropout draw. Element `i` of the tensor is kept when
/// `random_bits(philox_key(seed, stream), step, i) >> 8 >= threshold`,
/// where `threshold = ceil(prob * 2^24)`; kept elements are scaled by
/// `1 / (1 - prob)`. Every backend computes the same mask from these
/// numbers alone.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutParams {
    /// Probability of zeroing an element, in `[0, 1)`.
    pub prob: f32,
    /// The graph seed.
    pub seed: u64,
    /// Distinguishes dropout layers within one graph (the layer's index).
    pub stream: u64,
    /// The training step (so each step draws a fresh mask).
    pub step: u64,
}

impl DropoutParams {
    /// Validate the probability.
    pub fn validate(&self) -> Result<()> {
        if !(self.prob.is_finite() && (0.0..1.0).contains(&self.prob)) {
            return Err(CnnError::value(
                "dropout probability",
                format!("{} is outside [0, 1)", self.prob),
            ));
        }
        Ok(())
    }

    /// The 24-bit threshold below which an element is dropped.
    pub fn threshold(&self) -> u32 {
        (f64::from(self.prob) * 16_777_216.0).ceil() as u32
    }

    /// The scale applied to kept elements.
    pub fn scale(&self) -> f32 {
        1.0 / (1.0 - self.prob)
    }

    /// The Philox key of this draw.
    pub fn key(&self) -> [u32; 2] {
        philox_key(self.seed, self.stream)
    }

    /// Whether element `index` is kept (the reference definition).
    pub fn keep(&self, index: u64) -> bool {
        (random_bits(self.key(), self.step, index) >> 8) >= self.threshold()
    }
}

/// Batch norm and dropout.
pub trait NormOps: super::MemoryOps + super::ElementwiseOps + super::ActivationOps {
    /// Training-mode batch norm: normalise with the batch statistics,
    /// update `running_mean`/`running_var` in place, and save the batch mean
    /// and `1/sqrt(var + eps)` (biased variance) for the backward pass.
    /// x, y are (N, C, HW); gamma, beta, running stats, saves are (C).
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_forward_train(
        &self,
        p: &BatchNormParams,
        x: &Self::Buffer,
        gamma: &Self::Buffer,
        beta: &Self::Buffer,
        running_mean: &mut Self::Buffer,
        running_var: &mut Self::Buffer,
        y: &mut Self::Buffer,
        save_mean: &mut Self::Buffer,
        save_invstd: &mut Self::Buffer,
    ) -> Result<()>;

    /// Eval-mode batch norm with the running statistics.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_forward_eval(
        &self,
        p: &BatchNormParams,
        x: &Self::Buffer,
        gamma: &Self::Buffer,
        beta: &Self::Buffer,
        running_mean: &Self::Buffer,
        running_var: &Self::Buffer,
        y: &mut Self::Buffer,
    ) -> Result<()>;

    /// Backward of training-mode batch norm: dx overwritten; dgamma and
    /// dbeta accumulated.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_backward(
        &self,
        p: &BatchNormParams,
        x: &Self::Buffer,
        gamma: &Self::Buffer,
        save_mean: &Self::Buffer,
        save_invstd: &Self::Buffer,
        dy: &Self::Buffer,
        dx: &mut Self::Buffer,
        dgamma: &mut Self::Buffer,
        dbeta: &mut Self::Buffer,
    ) -> Result<()>;

    /// Training-mode batch norm followed by an optional residual add and
    /// a ReLU, as one op: `y = relu(bn(x) + residual)` (`relu(bn(x))`
    /// without `residual`), with the statistics, running averages and
    /// saves of [`NormOps::batch_norm2d_forward_train`]. The result has
    /// the bits of the three ops run one after the other (batch norm into
    /// a buffer, `add(bn, residual)`, ReLU as
    /// [`crate::ActivationOps::activation_forward`] computes it: `x < 0 ?
    /// 0 : x`, NaN and -0 pass). The default runs batch norm into `y`, adds
    /// the residual with `axpy(1, ..)` and clamps at zero in place (the
    /// same bits, three passes); a backend may fuse them into one pass
    /// over memory. residual and y are (N, C, HW), like x.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_relu_forward_train(
        &self,
        p: &BatchNormParams,
        x: &Self::Buffer,
        residual: Option<&Self::Buffer>,
        gamma: &Self::Buffer,
        beta: &Self::Buffer,
        running_mean: &mut Self::Buffer,
        running_var: &mut Self::Buffer,
        y: &mut Self::Buffer,
        save_mean: &mut Self::Buffer,
        save_invstd: &mut Self::Buffer,
    ) -> Result<()> {
        self.batch_norm2d_forward_train(
            p,
            x,
            gamma,
            beta,
            running_mean,
            running_var,
            y,
            save_mean,
            save_invstd,
        )?;
        add_relu_in_place(self, residual, y)
    }

    /// Eval-mode batch norm followed by an optional residual add and a
    /// ReLU, as one op: `y = relu(bn(x) + residual)` with the running
    /// statistics of [`NormOps::batch_norm2d_forward_eval`], with the bits
    /// of the three ops run one after the other (as
    /// [`NormOps::batch_norm2d_relu_forward_train`] has them). The default
    /// runs them apart into `y` (three passes); a backend may fuse them
    /// into one pass over memory. residual and y are (N, C, HW), like x.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_relu_forward_eval(
        &self,
        p: &BatchNormParams,
        x: &Self::Buffer,
        residual: Option<&Self::Buffer>,
        gamma: &Self::Buffer,
        beta: &Self::Buffer,
        running_mean: &Self::Buffer,
        running_var: &Self::Buffer,
        y: &mut Self::Buffer,
    ) -> Result<()> {
        self.batch_norm2d_forward_eval(p, x, gamma, beta, running_mean, running_var, y)?;
        add_relu_in_place(self, residual, y)
    }

    /// [`NormOps::batch_norm2d_relu_forward_eval`] with x in `y`: `y =
    /// relu(bn(y) + residual)`, for an evaluation whose batch norm writes
    /// over its input's buffer. The bits are the same. The default runs the
    /// ops apart as the unfused graph does (batch norm into a buffer it
    /// allocates, the add or a ReLU from there back into `y`, then the
    /// ReLU in place: no more passes than unfused); a backend may do it in
    /// one pass without the buffer.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_relu_forward_eval_in_place(
        &self,
        p: &BatchNormParams,
        residual: Option<&Self::Buffer>,
        gamma: &Self::Buffer,
        beta: &Self::Buffer,
        running_mean: &Self::Buffer,
        running_var: &Self::Buffer,
        y: &mut Self::Buffer,
    ) -> Result<()> {
        let mut bn = self.alloc_zeros(p.n * p.c * p.hw)?;
        self.batch_norm2d_forward_eval(p, y, gamma, beta, running_mean, running_var, &mut bn)?;
        match residual {
            Some(r) => {
                self.add(&bn, r, y)?;
                self.relu_in_place(y)
            }
            None => self.activation_forward(super::Activation::Relu, &bn, y),
        }
    }

    /// The backward of [`NormOps::batch_norm2d_relu_forward_train`] as one
    /// op, from `dy`, the gradient of its output `y` (the ReLU's): ReLU's
    /// backward `dz = y > 0 ? dy : 0` (as
    /// [`crate::ActivationOps::activation_backward`] computes it), then
    /// [`NormOps::batch_norm2d_backward`] of `dz` (dx overwritten, dgamma
    /// and dbeta accumulated), with the bits of those ops run apart. With
    /// `residual` (the forward had one) `dy` is overwritten with `dz`, the
    /// residual's gradient (an add hands its gradient to both operands);
    /// without, dy's contents afterwards are unspecified. The default runs
    /// the ops apart: ReLU's backward into dx, copied to dy, batch norm's
    /// backward of it into dx; a backend may fuse them into two passes over
    /// memory. x, y, dy and dx are (N, C, HW).
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_relu_backward(
        &self,
        p: &BatchNormParams,
        x: &Self::Buffer,
        y: &Self::Buffer,
        gamma: &Self::Buffer,
        save_mean: &Self::Buffer,
        save_invstd: &Self::Buffer,
        dy: &mut Self::Buffer,
        residual: bool,
        dx: &mut Self::Buffer,
        dgamma: &mut Self::Buffer,
        dbeta: &mut Self::Buffer,
    ) -> Result<()> {
        let _ = residual;
        self.activation_backward(super::Activation::Relu, y, y, dy, dx)?;
        self.copy(dx, dy)?;
        self.batch_norm2d_backward(p, x, gamma, save_mean, save_invstd, dy, dx, dgamma, dbeta)
    }

    /// `y = x * mask * scale` with the mask of [`DropoutParams::keep`].
    fn dropout_forward(
        &self,
        p: &DropoutParams,
        x: &Self::Buffer,
        y: &mut Self::Buffer,
    ) -> Result<()>;

    /// `dx = dy * mask * scale`, regenerating the same mask (nothing is stored).
    fn dropout_backward(
        &self,
        p: &DropoutParams,
        dy: &Self::Buffer,
        dx: &mut Self::Buffer,
    ) -> Result<()>;
}

/// `y = relu(y + residual)` in place from the elementwise ops: `axpy(1,
/// r, y)` adds exactly `y + r` (`1 * r` is exact, so a fused multiply-add
/// rounds the same), then the in-place ReLU.
fn add_relu_in_place<B: NormOps + ?Sized>(
    backend: &B,
    residual: Option<&B::Buffer>,
    y: &mut B::Buffer,
) -> Result<()> {
    if let Some(r) = residual {
        backend.axpy(1.0, r, y)?;
    }
    backend.relu_in_place(y)
}
