//! `LayerSpec`: what a layer is, independent of any backend, with its shape
//! inference and parameter count (every size checked: an overflow is a
//! [`CnnError::SizeOverflow`], never a wrapped value), and its strict
//! deserialization (every layer kind rejects keys it does not take).

use crate::backend::{Activation, Conv2dGeometry, Conv2dParams, Pool2dGeometry, Pool2dParams};
use crate::error::{CnnError, Result};
use crate::shape::Shape;

/// One layer's configuration. Shapes here are per sample (no batch
/// dimension): images `[C, H, W]`, features `[F]`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "snake_case"))]
pub enum LayerSpec {
    /// `Conv2d` with optional bias. Weight `[out, in/groups, kh, kw]`.
    Conv2d {
        #[cfg_attr(feature = "serde", serde(flatten))]
        geometry: Conv2dGeometry,
        bias: bool,
    },
    /// `Linear`: weight `[out, in]`. `in_features`, when given, is checked
    /// against what reaches the layer at build time.
    Linear {
        in_features: Option<usize>,
        out_features: usize,
        bias: bool,
    },
    MaxPool2d(Pool2dGeometry),
    AvgPool2d(Pool2dGeometry),
    /// Mean over each channel plane: `[C, H, W] -> [C]` (PyTorch's
    /// `AdaptiveAvgPool2d(1)` followed by a flatten).
    GlobalAvgPool,
    /// `BatchNorm2d` (PyTorch defaults: eps 1e-5, momentum 0.1).
    BatchNorm2d {
        eps: f32,
        momentum: f32,
    },
    /// Inverted dropout with probability `p` in `[0, 1)`.
    Dropout {
        p: f32,
    },
    /// `[C, H, W] -> [C * H * W]`.
    Flatten,
    Activation(Activation),
}

impl LayerSpec {
    /// PyTorch's default `BatchNorm2d`.
    pub fn batch_norm2d() -> Self {
        LayerSpec::BatchNorm2d {
            eps: 1e-5,
            momentum: 0.1,
        }
    }

    /// A short lowercase kind name (`conv2d`, `linear`, `relu`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::Linear { .. } => "linear",
            LayerSpec::MaxPool2d(_) => "max_pool2d",
            LayerSpec::AvgPool2d(_) => "avg_pool2d",
            LayerSpec::GlobalAvgPool => "global_avg_pool",
            LayerSpec::BatchNorm2d { .. } => "batch_norm2d",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Activation(a) => a.name(),
        }
    }

    /// The per-sample output shape for a per-sample input shape, or an
    /// error naming `layer` and what does not fit.
    pub fn output_shape(&self, layer: &str, input: &Shape) -> Result<Shape> {
        let image = |input: &Shape| -> Result<(usize, usize, usize)> {
            match *input.dims() {
                [c, h, w] => Ok((c, h, w)),
                _ => Err(CnnError::InvalidGeometry {
                    layer: Some(layer.to_string()),
                    message: format!("expected an image shape [C, H, W], got {input}"),
                }),
            }
        };
        let numel = |shape: &Shape| {
            shape.checked_numel().ok_or_else(|| {
                CnnError::overflow(
                    Some(layer),
                    format!("the element count of its input shape {shape}"),
                )
            })
        };
        match self {
            LayerSpec::Conv2d { geometry: g, .. } => {
                let (c, h, w) = image(input)?;
                for (axis, len, i) in [("height", h, 0), ("width", w, 1)] {
                    check_window(layer, axis, len, g.kernel[i], g.padding[i], g.dilation[i])?;
                }
                let p = Conv2dParams::new(1, c, h, w, g).map_err(|e| e.in_layer(layer))?;
                Ok(Shape::from([p.c_out, p.h_out, p.w_out]))
            }
            LayerSpec::Linear {
                in_features,
                out_features,
                ..
            } => {
                if input.rank() != 1 {
                    return Err(CnnError::InvalidGeometry {
                        layer: Some(layer.to_string()),
                        message: format!(
                            "a linear layer needs a flat input of features, got shape {input}; insert a flatten layer before it"
                        ),
                    });
                }
                let actual = numel(input)?;
                if let Some(expected) = in_features
                    && *expected != actual
                {
                    return Err(CnnError::FeatureMismatch {
                        layer: layer.to_string(),
                        expected: *expected,
                        actual,
                        input_shape: input.clone(),
                    });
                }
                if *out_features == 0 {
                    return Err(CnnError::InvalidGeometry {
                        layer: Some(layer.to_string()),
                        message: "out_features must be at least 1".into(),
                    });
                }
                Ok(Shape::from([*out_features]))
            }
            LayerSpec::MaxPool2d(g) | LayerSpec::AvgPool2d(g) => {
                let (c, h, w) = image(input)?;
                for (axis, len, i) in [("height", h, 0), ("width", w, 1)] {
                    check_window(layer, axis, len, g.kernel[i], g.padding[i], 1)?;
                    // Ceil mode steps one stride past the padded input.
                    if g.ceil_mode && (len + 2 * g.padding[i]).checked_add(g.stride[i]).is_none() {
                        return Err(CnnError::overflow(
                            Some(layer),
                            format!(
                                "the padded input {axis} ({len} + 2 x {}) plus the stride {}",
                                g.padding[i], g.stride[i]
                            ),
                        ));
                    }
                }
                let p = Pool2dParams::new(1, c, h, w, g).map_err(|e| e.in_layer(layer))?;
                Ok(Shape::from([c, p.h_out, p.w_out]))
            }
            LayerSpec::GlobalAvgPool => {
                let (c, _, _) = image(input)?;
                Ok(Shape::from([c]))
            }
            LayerSpec::BatchNorm2d { eps, momentum } => {
                image(input)?;
                if !(eps.is_finite() && *eps > 0.0) {
                    return Err(CnnError::value(
                        format!("{layer}.eps"),
                        format!("{eps} must be positive"),
                    ));
                }
                if !(0.0..=1.0).contains(momentum) {
                    return Err(CnnError::value(
                        format!("{layer}.momentum"),
                        format!("{momentum} is outside [0, 1]"),
                    ));
                }
                Ok(input.clone())
            }
            LayerSpec::Dropout { p } => {
                if !(p.is_finite() && (0.0..1.0).contains(p)) {
                    return Err(CnnError::value(
                        format!("{layer}.p"),
                        format!("dropout probability {p} is outside [0, 1)"),
                    ));
                }
                Ok(input.clone())
            }
            LayerSpec::Flatten => Ok(Shape::from([numel(input)?])),
            LayerSpec::Activation(a) => {
                a.validate()?;
                Ok(input.clone())
            }
        }
    }

    /// Number of trainable parameters for the given per-sample input shape,
    /// or a [`CnnError::SizeOverflow`] naming `layer` when it does not fit
    /// in `usize`.
    pub fn num_params(&self, layer: &str, input: &Shape) -> Result<usize> {
        let (factors, biases) = match self {
            LayerSpec::Conv2d { geometry: g, bias } => {
                let c_in = input.dim(0).unwrap_or(0) / g.groups.max(1);
                (
                    vec![g.out_channels, c_in, g.kernel[0], g.kernel[1]],
                    if *bias { g.out_channels } else { 0 },
                )
            }
            LayerSpec::Linear {
                out_features, bias, ..
            } => {
                let features = input.checked_numel().ok_or_else(|| {
                    CnnError::overflow(
                        Some(layer),
                        format!("the element count of its input shape {input}"),
                    )
                })?;
                (
                    vec![*out_features, features],
                    if *bias { *out_features } else { 0 },
                )
            }
            LayerSpec::BatchNorm2d { .. } => (vec![2, input.dim(0).unwrap_or(0)], 0),
            _ => return Ok(0),
        };
        factors
            .iter()
            .try_fold(1usize, |acc, &f| acc.checked_mul(f))
            .and_then(|w| w.checked_add(biases))
            .ok_or_else(|| {
                let mut count = factors
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(" x ");
                if biases > 0 {
                    count += &format!(" + {biases}");
                }
                CnnError::overflow(Some(layer), format!("its parameter count ({count})"))
            })
    }
}

/// Check that a window's dilated span and the padded input length along
/// `axis` fit in `usize` (the shape arithmetic after this cannot overflow).
fn check_window(
    layer: &str,
    axis: &str,
    input: usize,
    kernel: usize,
    padding: usize,
    dilation: usize,
) -> Result<()> {
    if kernel
        .saturating_sub(1)
        .checked_mul(dilation)
        .and_then(|s| s.checked_add(1))
        .is_none()
    {
        return Err(CnnError::overflow(
            Some(layer),
            format!("the dilated kernel {axis} (dilation {dilation} x (kernel {kernel} - 1) + 1)"),
        ));
    }
    if padding
        .checked_mul(2)
        .and_then(|p| p.checked_add(input))
        .is_none()
    {
        return Err(CnnError::overflow(
            Some(layer),
            format!("the padded input {axis} ({input} + 2 x {padding})"),
        ));
    }
    Ok(())
}

/// `LayerSpec`'s deserialization, through mirrors of it and of
/// [`Activation`] in which every layer kind — parameterless ones and
/// activations included — rejects a key it does not take, naming it. (The
/// derive would let the unit variants of an internally tagged enum, and
/// the structs inside newtype variants, ignore unknown keys.)
#[cfg(feature = "serde")]
mod strict {
    use super::LayerSpec;
    use crate::backend::{Activation, Conv2dGeometry, Pool2dGeometry};

    fn yes() -> bool {
        true
    }

    #[derive(serde::Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
    pub(super) enum Layer {
        Conv2d {
            out_channels: usize,
            kernel: [usize; 2],
            stride: [usize; 2],
            padding: [usize; 2],
            dilation: [usize; 2],
            groups: usize,
            #[serde(default = "yes")]
            bias: bool,
        },
        Linear {
            #[serde(default)]
            in_features: Option<usize>,
            out_features: usize,
            #[serde(default = "yes")]
            bias: bool,
        },
        MaxPool2d(Pool),
        AvgPool2d(Pool),
        GlobalAvgPool {},
        BatchNorm2d {
            eps: f32,
            momentum: f32,
        },
        Dropout {
            p: f32,
        },
        Flatten {},
        Activation(Act),
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Pool {
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        ceil_mode: bool,
        count_include_pad: bool,
    }

    #[derive(serde::Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
    pub(super) enum Act {
        Relu {},
        LeakyRelu { negative_slope: f32 },
        Sigmoid {},
        Tanh {},
        Gelu {},
        GeluTanh {},
        Elu { alpha: f32 },
        Silu {},
        Softplus { beta: f32, threshold: f32 },
    }

    impl From<Pool> for Pool2dGeometry {
        fn from(p: Pool) -> Self {
            Pool2dGeometry {
                kernel: p.kernel,
                stride: p.stride,
                padding: p.padding,
                ceil_mode: p.ceil_mode,
                count_include_pad: p.count_include_pad,
            }
        }
    }

    impl From<Act> for Activation {
        fn from(a: Act) -> Self {
            match a {
                Act::Relu {} => Activation::Relu,
                Act::LeakyRelu { negative_slope } => Activation::LeakyRelu { negative_slope },
                Act::Sigmoid {} => Activation::Sigmoid,
                Act::Tanh {} => Activation::Tanh,
                Act::Gelu {} => Activation::Gelu,
                Act::GeluTanh {} => Activation::GeluTanh,
                Act::Elu { alpha } => Activation::Elu { alpha },
                Act::Silu {} => Activation::Silu,
                Act::Softplus { beta, threshold } => Activation::Softplus { beta, threshold },
            }
        }
    }

    impl From<Layer> for LayerSpec {
        fn from(layer: Layer) -> Self {
            match layer {
                Layer::Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    dilation,
                    groups,
                    bias,
                } => LayerSpec::Conv2d {
                    geometry: Conv2dGeometry {
                        out_channels,
                        kernel,
                        stride,
                        padding,
                        dilation,
                        groups,
                    },
                    bias,
                },
                Layer::Linear {
                    in_features,
                    out_features,
                    bias,
                } => LayerSpec::Linear {
                    in_features,
                    out_features,
                    bias,
                },
                Layer::MaxPool2d(p) => LayerSpec::MaxPool2d(p.into()),
                Layer::AvgPool2d(p) => LayerSpec::AvgPool2d(p.into()),
                Layer::GlobalAvgPool {} => LayerSpec::GlobalAvgPool,
                Layer::BatchNorm2d { eps, momentum } => LayerSpec::BatchNorm2d { eps, momentum },
                Layer::Dropout { p } => LayerSpec::Dropout { p },
                Layer::Flatten {} => LayerSpec::Flatten,
                Layer::Activation(a) => LayerSpec::Activation(a.into()),
            }
        }
    }

    impl<'de> serde::Deserialize<'de> for LayerSpec {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Layer::deserialize(d).map(Into::into)
        }
    }

    /// Every activation has its mirror: this match stops compiling when
    /// one is added to [`Activation`] and not to [`Act`].
    #[cfg(test)]
    #[test]
    fn every_activation_is_mirrored() {
        for a in [
            Activation::Relu,
            Activation::LEAKY_RELU,
            Activation::SOFTPLUS,
        ] {
            let _: Act = match a {
                Activation::Relu => Act::Relu {},
                Activation::LeakyRelu { negative_slope } => Act::LeakyRelu { negative_slope },
                Activation::Sigmoid => Act::Sigmoid {},
                Activation::Tanh => Act::Tanh {},
                Activation::Gelu => Act::Gelu {},
                Activation::GeluTanh => Act::GeluTanh {},
                Activation::Elu { alpha } => Act::Elu { alpha },
                Activation::Silu => Act::Silu {},
                Activation::Softplus { beta, threshold } => Act::Softplus { beta, threshold },
            };
        }
    }
}
