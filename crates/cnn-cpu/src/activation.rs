//! Pointwise activations and their derivatives, with PyTorch's formulas
//! (`aten/src/ATen/native/cpu/Activation.cpp` and friends).

use cnn_core::error::check_len;
use cnn_core::{Activation, ActivationOps, Result};

use crate::CpuBackend;
use crate::par::zip_chunks;

const SQRT_2_OVER_PI: f32 = 0.797_884_6; // sqrt(2 / pi)
const GELU_KAPPA: f32 = 0.044_715;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7; // 1 / sqrt(2 pi)

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Exact normal CDF `0.5 (1 + erf(x / sqrt 2))`, computed in f64.
#[inline]
fn normal_cdf(x: f32) -> f64 {
    0.5 * (1.0 + libm::erf(f64::from(x) * std::f64::consts::FRAC_1_SQRT_2))
}

/// `f(x)`.
#[inline(always)]
fn forward_one(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        Activation::LeakyRelu { negative_slope } => {
            if x > 0.0 {
                x
            } else {
                x * negative_slope
            }
        }
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => x.tanh(),
        Activation::Gelu => (f64::from(x) * normal_cdf(x)) as f32,
        Activation::GeluTanh => {
            let inner = SQRT_2_OVER_PI * (x + GELU_KAPPA * x * x * x);
            0.5 * x * (1.0 + inner.tanh())
        }
        Activation::Elu { alpha } => {
            if x > 0.0 {
                x
            } else {
                alpha * x.exp_m1()
            }
        }
        Activation::Silu => x * sigmoid(x),
        Activation::Softplus { beta, threshold } => {
            let bx = x * beta;
            if bx > threshold {
                x
            } else {
                bx.exp().ln_1p() / beta
            }
        }
    }
}

/// `f'(x) * dy`, from x (and y where PyTorch uses the output).
#[inline(always)]
fn backward_one(act: Activation, x: f32, y: f32, dy: f32) -> f32 {
    match act {
        Activation::Relu => {
            if y > 0.0 {
                dy
            } else {
                0.0
            }
        }
        Activation::LeakyRelu { negative_slope } => {
            if x > 0.0 {
                dy
            } else {
                dy * negative_slope
            }
        }
        Activation::Sigmoid => dy * (1.0 - y) * y,
        Activation::Tanh => dy * (1.0 - y * y),
        Activation::Gelu => {
            let xd = f64::from(x);
            let pdf = (-0.5 * xd * xd).exp() * INV_SQRT_2PI;
            (f64::from(dy) * (normal_cdf(x) + xd * pdf)) as f32
        }
        Activation::GeluTanh => {
            let x_sq = x * x;
            let inner = SQRT_2_OVER_PI * (x + GELU_KAPPA * x_sq * x);
            let t = inner.tanh();
            let left = 0.5 * x;
            let right = 1.0 + t;
            let left_derivative = 0.5 * right;
            let right_derivative = (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_KAPPA * x_sq);
            dy * (left_derivative + left * right_derivative)
        }
        Activation::Elu { alpha } => {
            if x > 0.0 {
                dy
            } else {
                dy * alpha * x.exp()
            }
        }
        Activation::Silu => {
            let s = sigmoid(x);
            dy * s * (1.0 + x * (1.0 - s))
        }
        Activation::Softplus { beta, threshold } => {
            let bx = x * beta;
            if bx > threshold {
                dy
            } else {
                let z = bx.exp();
                dy * z / (z + 1.0)
            }
        }
    }
}

/// Monomorphise the hot loop per activation so each compiles to a tight
/// (vectorisable where possible) loop without a per-element match.
macro_rules! dispatch {
    ($act:expr, $f:ident, $($arg:expr),*) => {
        match $act {
            Activation::Relu => $f(Activation::Relu, $($arg),*),
            Activation::Sigmoid => $f(Activation::Sigmoid, $($arg),*),
            Activation::Tanh => $f(Activation::Tanh, $($arg),*),
            Activation::Silu => $f(Activation::Silu, $($arg),*),
            a => $f(a, $($arg),*),
        }
    };
}

#[inline(always)]
fn forward_slice(act: Activation, x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = forward_one(act, x);
    }
}

#[inline(always)]
fn backward_slice(act: Activation, x: &[f32], y: &[f32], dy: &[f32], dx: &mut [f32]) {
    for (((dx, &x), &y), &dy) in dx.iter_mut().zip(x).zip(y).zip(dy) {
        *dx = backward_one(act, x, y, dy);
    }
}

impl ActivationOps for CpuBackend {
    fn activation_forward(&self, act: Activation, x: &Vec<f32>, y: &mut Vec<f32>) -> Result<()> {
        act.validate()?;
        check_len("activation_forward", "y", y.len(), x.len())?;
        zip_chunks(self, x.len(), [y], [x], |_, [y], [x]| {
            dispatch!(act, forward_slice, x, y)
        });
        Ok(())
    }

    fn activation_backward(
        &self,
        act: Activation,
        x: &Vec<f32>,
        y: &Vec<f32>,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
    ) -> Result<()> {
        act.validate()?;
        let len = x.len();
        check_len("activation_backward", "y", y.len(), len)?;
        check_len("activation_backward", "dy", dy.len(), len)?;
        check_len("activation_backward", "dx", dx.len(), len)?;
        zip_chunks(self, len, [dx], [x, y, dy], |_, [dx], [x, y, dy]| {
            dispatch!(act, backward_slice, x, y, dy, dx)
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Activation; 9] = [
        Activation::Relu,
        Activation::LeakyRelu {
            negative_slope: 0.1,
        },
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Elu { alpha: 1.5 },
        Activation::Silu,
        Activation::Softplus {
            beta: 2.0,
            threshold: 5.0,
        },
    ];

    #[test]
    fn known_values() {
        let be = CpuBackend::with_threads(1).unwrap();
        let x = vec![-1.0f32, 0.5, 3.0];
        let run = |act| {
            let mut y = vec![0.0; 3];
            be.activation_forward(act, &x, &mut y).unwrap();
            y
        };
        assert_eq!(run(Activation::Relu), vec![0.0, 0.5, 3.0]);
        // torch.nn.functional.gelu(torch.tensor([-1., .5, 3.], dtype=torch.float64))
        let want = [
            -0.158_655_253_931_457_05,
            0.345_731_246_880_870_4,
            2.995_950_177_947_981,
        ];
        for (a, b) in run(Activation::Gelu).iter().zip(want) {
            assert!((f64::from(*a) - b).abs() < 1e-6, "{a} vs {b}");
        }
        // softplus(beta=2, threshold=5): x=3 gives bx=6 > 5, so linear.
        let sp = run(Activation::Softplus {
            beta: 2.0,
            threshold: 5.0,
        });
        assert_eq!(sp[2], 3.0);
        assert!((f64::from(sp[0]) - (1.0 + (-2.0f64).exp()).ln() / 2.0).abs() < 1e-7);
        let elu = run(Activation::Elu { alpha: 1.5 });
        assert!((f64::from(elu[0]) - 1.5 * ((-1.0f64).exp() - 1.0)).abs() < 1e-6);
    }

    #[test]
    fn derivatives_match_finite_differences() {
        let be = CpuBackend::with_threads(1).unwrap();
        // Avoid kinks (0) and the softplus threshold (2.5 with beta 2).
        let x: Vec<f32> = vec![-2.3, -0.7, -0.2, 0.3, 0.9, 1.7, 2.2];
        for act in ALL {
            let mut y = vec![0.0; x.len()];
            be.activation_forward(act, &x, &mut y).unwrap();
            let dy = vec![1.0; x.len()];
            let mut dx = vec![0.0; x.len()];
            be.activation_backward(act, &x, &y, &dy, &mut dx).unwrap();
            for i in 0..x.len() {
                let h = 1e-3f64;
                let f = |v: f64| -> f64 {
                    let xv = v as f32;
                    f64::from(forward_one(act, xv))
                };
                // Central difference in f64 around x (forward in f32: tolerance 1e-3).
                let fd = (f(f64::from(x[i]) + h) - f(f64::from(x[i]) - h)) / (2.0 * h);
                assert!(
                    (f64::from(dx[i]) - fd).abs() < 2e-3,
                    "{act:?} at {}: {} vs {fd}",
                    x[i],
                    dx[i]
                );
            }
        }
    }

    #[test]
    fn bad_lengths_and_params() {
        let be = CpuBackend::with_threads(1).unwrap();
        let x = vec![0.0; 4];
        assert!(
            be.activation_forward(Activation::Relu, &x, &mut vec![0.0; 3])
                .is_err()
        );
        assert!(
            be.activation_forward(
                Activation::Softplus {
                    beta: 0.0,
                    threshold: 20.0
                },
                &x,
                &mut vec![0.0; 4]
            )
            .is_err()
        );
        assert!(
            be.activation_backward(Activation::Tanh, &x, &x, &vec![0.0; 5], &mut vec![0.0; 4])
                .is_err()
        );
    }

    #[test]
    fn relu_propagates_nan() {
        assert!(forward_one(Activation::Relu, f32::NAN).is_nan());
    }
}
