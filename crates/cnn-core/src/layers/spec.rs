//! `LayerSpec`: what a layer is, independent of any backend, with its shape
//! inference and parameter count.

use crate::backend::{Activation, Conv2dGeometry, Conv2dParams, Pool2dGeometry, Pool2dParams};
use crate::error::{CnnError, Result};
use crate::shape::Shape;

/// One layer's configuration. Shapes here are per sample (no batch
/// dimension): images `[C, H, W]`, features `[F]`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)
)]
pub enum LayerSpec {
    /// `Conv2d` with optional bias. Weight `[out, in/groups, kh, kw]`.
    Conv2d {
        #[cfg_attr(feature = "serde", serde(flatten))]
        geometry: Conv2dGeometry,
        #[cfg_attr(feature = "serde", serde(default = "yes"))]
        bias: bool,
    },
    /// `Linear`: weight `[out, in]`. `in_features`, when given, is checked
    /// against what reaches the layer at build time.
    Linear {
        #[cfg_attr(feature = "serde", serde(default))]
        in_features: Option<usize>,
        out_features: usize,
        #[cfg_attr(feature = "serde", serde(default = "yes"))]
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

#[cfg(feature = "serde")]
fn yes() -> bool {
    true
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
        match self {
            LayerSpec::Conv2d { geometry, .. } => {
                let (c, h, w) = image(input)?;
                let p = Conv2dParams::new(1, c, h, w, geometry).map_err(|e| e.in_layer(layer))?;
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
                let actual = input.numel();
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
            LayerSpec::Flatten => Ok(Shape::from([input.numel()])),
            LayerSpec::Activation(a) => {
                a.validate()?;
                Ok(input.clone())
            }
        }
    }

    /// Number of trainable parameters for the given per-sample input shape.
    pub fn num_params(&self, input: &Shape) -> usize {
        match self {
            LayerSpec::Conv2d { geometry, bias } => {
                let c_in = input.dim(0).unwrap_or(0);
                let g = geometry.groups.max(1);
                geometry.out_channels * (c_in / g) * geometry.kernel[0] * geometry.kernel[1]
                    + if *bias { geometry.out_channels } else { 0 }
            }
            LayerSpec::Linear {
                out_features, bias, ..
            } => out_features * input.numel() + if *bias { *out_features } else { 0 },
            LayerSpec::BatchNorm2d { .. } => 2 * input.dim(0).unwrap_or(0),
            _ => 0,
        }
    }
}
