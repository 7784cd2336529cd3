//! The golden `conv2d` op: forward, input, weight and bias gradients.

use cnn_core::backend::{Backend, Conv2dGeometry, Conv2dParams};
use serde_json::{Map, Value};

use crate::golden::json::{boolean, config, geometry_error, number, pair, shape};
use crate::golden::op::{GoldenOp, Inputs, Outputs};
use crate::host::{ctx, down, filled, up, widen};
use crate::reference as r;

/// `conv2d` with or without a bias.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Conv2d {
    p: Conv2dParams,
    bias: bool,
}

impl GoldenOp for Conv2d {
    const NAME: &'static str = "conv2d";

    fn parse(obj: &Map<String, Value>) -> Result<Self, String> {
        let cfg = config(obj, &["stride", "padding", "dilation", "groups", "bias"])?;
        let [n, c_in, h, w] = shape(obj, "x_shape", 4)?[..] else {
            unreachable!()
        };
        let [c_out, _, kh, kw] = shape(obj, "w_shape", 4)?[..] else {
            unreachable!()
        };
        let geom = Conv2dGeometry {
            out_channels: c_out,
            kernel: [kh, kw],
            stride: pair(cfg, "stride", Some([1, 1]))?,
            padding: pair(cfg, "padding", Some([0, 0]))?,
            dilation: pair(cfg, "dilation", Some([1, 1]))?,
            groups: number(cfg, "groups", 1.0)? as usize,
        };
        let p = Conv2dParams::new(n, c_in, h, w, &geom).map_err(geometry_error)?;
        let y_shape = shape(obj, "y_shape", 4)?;
        if y_shape != [n, c_out, p.h_out, p.w_out] {
            return Err(format!(
                "y_shape {y_shape:?} differs from the computed [{n}, {c_out}, {}, {}]",
                p.h_out, p.w_out
            ));
        }
        let w_shape = shape(obj, "w_shape", 4)?;
        if w_shape[1] != c_in / geom.groups {
            return Err(format!(
                "w_shape {w_shape:?} does not fit {c_in} input channels in {} groups",
                geom.groups
            ));
        }
        Ok(Conv2d {
            p,
            bias: boolean(cfg, "bias", false)?,
        })
    }

    fn inputs(&self) -> &'static [&'static str] {
        if self.bias {
            &["x", "w", "b", "gy"]
        } else {
            &["x", "w", "gy"]
        }
    }

    fn outputs(&self) -> &'static [&'static str] {
        if self.bias {
            &["y", "gx", "gw", "gb"]
        } else {
            &["y", "gx", "gw"]
        }
    }

    fn reference(&self, d: &Inputs) -> Outputs {
        let Conv2d { p, bias } = self;
        let (x, gy) = (d.get("x"), d.get("gy"));
        let mut out = Outputs::new();
        let b = bias.then(|| d.get("b"));
        out.insert("y", r::conv2d_forward(p, x, d.get("w"), b));
        out.insert("gx", r::conv2d_backward_input(p, gy, d.get("w")));
        out.insert("gw", r::conv2d_backward_weight(p, x, gy));
        if *bias {
            out.insert("gb", r::conv2d_backward_bias(p, gy));
        }
        out
    }

    fn backend<B: Backend>(&self, be: &B, d: &Inputs) -> Result<Outputs, String> {
        let Conv2d { p, bias } = self;
        let mut out = Outputs::new();
        let x = up(be, d.get("x"))?;
        let gy = up(be, d.get("gy"))?;
        let w = up(be, d.get("w"))?;
        let b = if *bias {
            Some(up(be, d.get("b"))?)
        } else {
            None
        };
        let mut y = filled(be, p.y_len(), f32::NAN)?;
        ctx(
            be.conv2d_forward(p, &x, &w, b.as_ref(), &mut y),
            "conv2d_forward",
        )?;
        let mut gx = filled(be, p.x_len(), f32::NAN)?;
        ctx(
            be.conv2d_backward_input(p, &gy, &w, &mut gx),
            "conv2d_backward_input",
        )?;
        let mut gw = filled(be, p.w_len(), 0.0)?;
        ctx(
            be.conv2d_backward_weight(p, &x, &gy, &mut gw),
            "conv2d_backward_weight",
        )?;
        out.insert("y", widen(&down(be, &y)?));
        out.insert("gx", widen(&down(be, &gx)?));
        out.insert("gw", widen(&down(be, &gw)?));
        if *bias {
            let mut gb = filled(be, p.c_out, 0.0)?;
            ctx(
                be.conv2d_backward_bias(p, &gy, &mut gb),
                "conv2d_backward_bias",
            )?;
            out.insert("gb", widen(&down(be, &gb)?));
        }
        Ok(out)
    }
}
