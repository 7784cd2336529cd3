//! Naive reference kernels: the oracle every backend is tested against.
//!
//! One file per op family, mirroring [`cnn_core::backend`]. Every kernel is a
//! plain loop over the definition, reads host slices and the same
//! params structs as the backend op, accumulates in f64 and returns f64
//! (or exact values and u32 indices where the op only selects values). Nothing here is
//! tuned for speed; it is meant to be checked by eye.
//!
//! The kernels a model's forward and backward are made of (convolution,
//! GEMM, bias, pooling, activations, batch norm, dropout, the losses and the
//! residual add) are generic over the element type they read, [`Real`]:
//! `f32` for the backend checks, `f64` for the f64 gradient checks
//! ([`crate::gradcheck64`]), which chain kernels without rounding between
//! them. Both run exactly the same loops.
//!
//! Conventions match the backend ops: kernels that produce a parameter
//! gradient return that gradient alone (a backend *adds* it to its buffer),
//! and optimizer kernels return the updated weights and state.

mod activation;
mod conv;
mod elementwise;
mod gemm;
mod loss;
mod memory;
mod norm;
mod optim;
mod pool;

pub use activation::{
    activation_backward, activation_derivative, activation_forward, activation_value, erf,
};
pub use conv::{
    conv2d_backward_bias, conv2d_backward_input, conv2d_backward_weight, conv2d_forward,
};
pub use elementwise::{
    add, add_sign, axpy, bias_add, bias_backward, clamp, count_non_finite, scale, sum, sum_abs,
    sum_squares,
};
pub use gemm::gemm;
pub use loss::{argmax_rows, mse_loss, softmax_cross_entropy, softmax_cross_entropy_mixed};
pub use memory::fill;
pub use norm::{
    BatchNormGrads, BatchNormTrain, batch_norm2d_backward, batch_norm2d_forward_eval,
    batch_norm2d_forward_train, dropout_backward, dropout_forward, dropout_mask,
};
pub use optim::{
    OptimOut, adadelta_update, adagrad_update, adam_update, adamax_update, asgd_update,
    lion_update, nadam_update, radam_update, rmsprop_update, rprop_update, sgd_update,
};
pub use pool::{
    avg_pool_divisor, avg_pool2d_backward, avg_pool2d_forward, global_avg_pool_backward,
    global_avg_pool_forward, max_pool2d_backward, max_pool2d_forward,
};

/// An element type the reference kernels read: `f32` (what the backends
/// hold) or `f64`. Widening either to f64 is exact, so a kernel computes the
/// same f64 result from an f32 slice as from its widened copy.
pub trait Real: Copy + PartialOrd + Into<f64> + 'static {
    /// The value as f64 (exact).
    fn as_f64(self) -> f64 {
        self.into()
    }
}

impl Real for f32 {}
impl Real for f64 {}

/// Widen a host slice to f64.
pub fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(v)).collect()
}

/// Round f64 values to f32 (for feeding a reference result back into an op).
pub fn to_f32(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_is_exact_and_narrowing_rounds_to_nearest() {
        // 0.1f32 is 13421773 * 2^-27 exactly.
        assert_eq!(
            to_f64(&[0.1, -2.0]),
            vec![13_421_773.0 / 134_217_728.0, -2.0]
        );
        // 1 + 2^-30 is below half an f32 ulp of 1 (2^-24); 1 + 3 * 2^-24 rounds to even, up.
        let third_ulp = 1.0 + 2f64.powi(-30);
        let tie = 1.0 + 3.0 * 2f64.powi(-24);
        assert_eq!(
            to_f32(&[third_ulp, tie]),
            vec![1.0, 1.0 + 4.0 * 2f32.powi(-24)]
        );
    }
}
