//! Pointwise activation functions.

use crate::error::{CnnError, Result};

/// An activation function and its parameters (PyTorch's definitions).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "snake_case"))]
pub enum Activation {
    /// `max(x, 0)`
    Relu,
    /// `x` for `x >= 0`, `negative_slope * x` otherwise.
    LeakyRelu { negative_slope: f32 },
    /// `1 / (1 + exp(-x))`
    Sigmoid,
    /// `tanh(x)`
    Tanh,
    /// `x * Phi(x)` with the exact normal CDF (`approximate='none'`).
    Gelu,
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` (`approximate='tanh'`).
    GeluTanh,
    /// `x` for `x > 0`, `alpha (exp(x) - 1)` otherwise.
    Elu { alpha: f32 },
    /// `x * sigmoid(x)`
    Silu,
    /// `log(1 + exp(beta x)) / beta`, linear above `threshold` (PyTorch:
    /// beta 1, threshold 20).
    Softplus { beta: f32, threshold: f32 },
}

impl Activation {
    /// PyTorch's default leaky ReLU (slope 0.01).
    pub const LEAKY_RELU: Activation = Activation::LeakyRelu {
        negative_slope: 0.01,
    };
    /// PyTorch's default ELU (alpha 1).
    pub const ELU: Activation = Activation::Elu { alpha: 1.0 };
    /// PyTorch's default softplus (beta 1, threshold 20).
    pub const SOFTPLUS: Activation = Activation::Softplus {
        beta: 1.0,
        threshold: 20.0,
    };

    /// The activation for a name as the CLI and model specs spell it
    /// (`relu`, `leaky_relu`, `sigmoid`, `tanh`, `gelu`, `gelu_tanh`, `elu`,
    /// `silu`, `softplus`), with PyTorch's default parameters.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "relu" => Activation::Relu,
            "leaky_relu" | "leakyrelu" => Activation::LEAKY_RELU,
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "gelu" => Activation::Gelu,
            "gelu_tanh" => Activation::GeluTanh,
            "elu" => Activation::ELU,
            "silu" | "swish" => Activation::Silu,
            "softplus" => Activation::SOFTPLUS,
            other => {
                return Err(CnnError::value(
                    "activation",
                    format!(
                        "unknown activation `{other}` (expected relu, leaky_relu, sigmoid, tanh, gelu, gelu_tanh, elu, silu or softplus)"
                    ),
                ));
            }
        })
    }

    /// The name [`Activation::from_name`] accepts.
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::Elu { .. } => "elu",
            Activation::Silu => "silu",
            Activation::Softplus { .. } => "softplus",
        }
    }

    /// Reject parameters outside the function's domain.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Activation::LeakyRelu { negative_slope } if !negative_slope.is_finite() => {
                Err(CnnError::value("negative_slope", "must be finite"))
            }
            Activation::Elu { alpha } if !alpha.is_finite() => {
                Err(CnnError::value("alpha", "must be finite"))
            }
            Activation::Softplus { beta, threshold }
                if !(beta.is_finite() && beta > 0.0 && threshold.is_finite()) =>
            {
                Err(CnnError::value(
                    "softplus beta/threshold",
                    "beta must be positive and both finite",
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Activation forward and backward.
pub trait ActivationOps: super::MemoryOps {
    /// `y = f(x)` elementwise; x and y have the same length; y overwritten.
    fn activation_forward(
        &self,
        act: Activation,
        x: &Self::Buffer,
        y: &mut Self::Buffer,
    ) -> Result<()>;

    /// `dx = f'(x) * dy` elementwise; `y` is the forward output (backends may
    /// use either x or y); dx overwritten.
    fn activation_backward(
        &self,
        act: Activation,
        x: &Self::Buffer,
        y: &Self::Buffer,
        dy: &Self::Buffer,
        dx: &mut Self::Buffer,
    ) -> Result<()>;
}
