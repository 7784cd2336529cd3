//! Reference activations and their derivatives, with PyTorch's formulas
//! (including which side of a kink gets which slope).

use cnn_core::backend::Activation;

use super::Real;

/// The error function in f64, accurate to about 1e-15 absolute.
///
/// Uses the everywhere-convergent series of positive terms
/// `erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1 3 5 ... (2n+1))`
/// (Abramowitz & Stegun 7.1.6), which has no cancellation; beyond
/// |x| = 6, `1 - |erf(x)| < 3e-17` and the result is `+-1`.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x.abs() >= 6.0 {
        return x.signum();
    }
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0f64;
    // Terms grow until n ~ x^2 and then fall geometrically; 200 terms reach 1e-17 for |x| < 6.
    for _ in 0..200 {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
        if term.abs() < 1e-17 * sum.abs() {
            break;
        }
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `sqrt(2 / pi)`, the tanh-GELU's inner scale.
const GELU_TANH_BETA: f64 = 0.797_884_560_802_865_4;
/// The tanh-GELU's cubic coefficient.
const GELU_TANH_KAPPA: f64 = 0.044715;

/// Softplus switches to the identity when `beta * x > threshold`; PyTorch
/// forms `beta * x` in f32, so the reference does too (the product of two
/// f32 is exact in f64, then rounded once).
fn softplus_is_linear(x: f64, beta: f32, threshold: f32) -> bool {
    ((x * f64::from(beta)) as f32) > threshold
}

/// `f(x)` in f64.
pub fn activation_value(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Relu => {
            if x > 0.0 {
                x
            } else {
                0.0
            }
        }
        Activation::LeakyRelu { negative_slope } => {
            if x > 0.0 {
                x
            } else {
                x * f64::from(negative_slope)
            }
        }
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => x.tanh(),
        Activation::Gelu => x * 0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2)),
        Activation::GeluTanh => {
            let inner = GELU_TANH_BETA * (x + GELU_TANH_KAPPA * x * x * x);
            0.5 * x * (1.0 + inner.tanh())
        }
        Activation::Elu { alpha } => {
            if x > 0.0 {
                x
            } else {
                f64::from(alpha) * x.exp_m1()
            }
        }
        Activation::Silu => x * sigmoid(x),
        Activation::Softplus { beta, threshold } => {
            if softplus_is_linear(x, beta, threshold) {
                x
            } else {
                let beta = f64::from(beta);
                (beta * x).exp().ln_1p() / beta
            }
        }
    }
}

/// `f'(x)` in f64, with PyTorch's choice at kinks: ReLU has slope 0 at 0,
/// leaky ReLU `negative_slope` and ELU `alpha` (their `x <= 0` branch).
pub fn activation_derivative(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::LeakyRelu { negative_slope } => {
            if x > 0.0 {
                1.0
            } else {
                f64::from(negative_slope)
            }
        }
        Activation::Sigmoid => {
            let s = sigmoid(x);
            s * (1.0 - s)
        }
        Activation::Tanh => {
            let t = x.tanh();
            1.0 - t * t
        }
        Activation::Gelu => {
            let cdf = 0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2));
            let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            cdf + x * pdf
        }
        Activation::GeluTanh => {
            let inner = GELU_TANH_BETA * (x + GELU_TANH_KAPPA * x * x * x);
            let t = inner.tanh();
            let d_inner = GELU_TANH_BETA * (1.0 + 3.0 * GELU_TANH_KAPPA * x * x);
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * d_inner
        }
        Activation::Elu { alpha } => {
            if x > 0.0 {
                1.0
            } else {
                f64::from(alpha) * x.exp()
            }
        }
        Activation::Silu => {
            let s = sigmoid(x);
            s * (1.0 + x * (1.0 - s))
        }
        Activation::Softplus { beta, threshold } => {
            if softplus_is_linear(x, beta, threshold) {
                1.0
            } else {
                sigmoid(f64::from(beta) * x)
            }
        }
    }
}

/// `y = f(x)` elementwise.
pub fn activation_forward<T: Real>(act: Activation, x: &[T]) -> Vec<f64> {
    x.iter()
        .map(|&v| activation_value(act, v.as_f64()))
        .collect()
}

/// `dx = f'(x) * dy` elementwise.
pub fn activation_backward<T: Real>(act: Activation, x: &[T], dy: &[T]) -> Vec<f64> {
    x.iter()
        .zip(dy)
        .map(|(&v, &g)| activation_derivative(act, v.as_f64()) * g.as_f64())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind, with non-default parameters where it has them.
    pub(crate) const ALL: [Activation; 12] = [
        Activation::Relu,
        Activation::LEAKY_RELU,
        Activation::LeakyRelu {
            negative_slope: -0.3,
        },
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::ELU,
        Activation::Elu { alpha: 0.5 },
        Activation::Silu,
        Activation::SOFTPLUS,
        Activation::Softplus {
            beta: 2.0,
            threshold: 3.0,
        },
    ];

    #[test]
    fn erf_known_values() {
        // Values from the DLMF / mpmath to 16 digits.
        let known = [
            (0.0, 0.0),
            (0.1, 0.112_462_916_018_284_9),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (1.5, 0.966_105_146_475_310_7),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (4.0, 0.999_999_984_582_742_1),
            (5.5, 0.999_999_999_999_992_6),
        ];
        for (x, e) in known {
            assert!(
                (erf(x) - e).abs() < 1e-15,
                "erf({x}) = {} expected {e}",
                erf(x)
            );
            assert!((erf(-x) + e).abs() < 1e-15, "erf(-{x})");
        }
        assert_eq!(erf(7.0), 1.0);
        assert_eq!(erf(-30.0), -1.0);
        assert!(erf(f64::NAN).is_nan());
    }

    #[test]
    fn derivatives_match_central_differences() {
        let h = 1e-6;
        for act in ALL {
            for i in 0..=160 {
                let x = -8.0 + 0.1 * i as f64 + 0.003;
                if let Activation::Softplus { beta, threshold } = act {
                    // Skip the switch to the identity (a jump of exp(-threshold)).
                    if (x * f64::from(beta) - f64::from(threshold)).abs() < 0.01 {
                        continue;
                    }
                }
                let fd = (activation_value(act, x + h) - activation_value(act, x - h)) / (2.0 * h);
                let d = activation_derivative(act, x);
                assert!(
                    (fd - d).abs() < 1e-7,
                    "{act:?} at {x}: derivative {d}, finite difference {fd}"
                );
            }
        }
    }

    #[test]
    fn slices_apply_the_scalar_rules_elementwise() {
        let x = [-1.0, 0.0, 2.0];
        assert_eq!(
            activation_forward(Activation::Relu, &x),
            vec![0.0, 0.0, 2.0]
        );
        assert_eq!(
            activation_backward(Activation::Relu, &x, &[3.0, 4.0, 5.0]),
            vec![0.0, 0.0, 5.0]
        );
        // Leaky slope -0.5 (exact in f32): f(-1) = 0.5, f'(-1) dy = -0.5 * 3.
        let leaky = Activation::LeakyRelu {
            negative_slope: -0.5,
        };
        assert_eq!(activation_forward(leaky, &x), vec![0.5, 0.0, 2.0]);
        assert_eq!(
            activation_backward(leaky, &x, &[3.0, 4.0, 5.0]),
            vec![-1.5, -2.0, 5.0]
        );
    }

    #[test]
    fn pytorch_conventions_at_kinks_and_thresholds() {
        assert_eq!(activation_derivative(Activation::Relu, 0.0), 0.0);
        assert_eq!(
            activation_derivative(Activation::LEAKY_RELU, 0.0),
            f64::from(0.01f32)
        );
        assert_eq!(
            activation_derivative(Activation::Elu { alpha: 0.5 }, 0.0),
            0.5
        );
        assert_eq!(activation_value(Activation::SOFTPLUS, 25.0), 25.0);
        assert_eq!(activation_derivative(Activation::SOFTPLUS, 25.0), 1.0);
        assert!((activation_value(Activation::SOFTPLUS, 0.0) - 2f64.ln()).abs() < 1e-15);
        assert!((activation_value(Activation::Gelu, 1.0) - 0.841_344_746_068_542_9).abs() < 1e-15);
    }
}
