//! The golden pooling ops: `max_pool2d`, `avg_pool2d` and
//! `global_avg_pool2d`, each forward and input gradient.

use cnn_core::backend::{Backend, Pool2dGeometry, Pool2dParams};
use serde_json::{Map, Value};

use crate::golden::json::{boolean, config, geometry_error, pair, shape};
use crate::golden::op::{GoldenOp, Inputs, Outputs};
use crate::host::{ctx, down, filled, up, widen};
use crate::reference as r;

/// The params of a `max_pool2d` or `avg_pool2d` case.
fn pool_params(obj: &Map<String, Value>) -> Result<Pool2dParams, String> {
    let cfg = config(
        obj,
        &[
            "kernel",
            "stride",
            "padding",
            "count_include_pad",
            "ceil_mode",
        ],
    )?;
    let [n, c, h, w] = shape(obj, "x_shape", 4)?[..] else {
        unreachable!()
    };
    let kernel = pair(cfg, "kernel", None)?;
    let geom = Pool2dGeometry {
        kernel,
        stride: pair(cfg, "stride", Some(kernel))?,
        padding: pair(cfg, "padding", Some([0, 0]))?,
        ceil_mode: boolean(cfg, "ceil_mode", false)?,
        count_include_pad: boolean(cfg, "count_include_pad", true)?,
    };
    let p = Pool2dParams::new(n, c, h, w, &geom).map_err(geometry_error)?;
    let y_shape = shape(obj, "y_shape", 4)?;
    if y_shape != [n, c, p.h_out, p.w_out] {
        return Err(format!(
            "y_shape {y_shape:?} differs from the computed [{n}, {c}, {}, {}]",
            p.h_out, p.w_out
        ));
    }
    Ok(p)
}

/// `max_pool2d`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MaxPool2d(Pool2dParams);

impl GoldenOp for MaxPool2d {
    const NAME: &'static str = "max_pool2d";

    fn parse(obj: &Map<String, Value>) -> Result<Self, String> {
        pool_params(obj).map(MaxPool2d)
    }

    fn inputs(&self) -> &'static [&'static str] {
        &["x", "gy"]
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["y", "gx"]
    }

    fn reference(&self, d: &Inputs) -> Outputs {
        let p = &self.0;
        let mut out = Outputs::new();
        let (y, argmax) = r::max_pool2d_forward(p, d.get("x"));
        out.insert("y", widen(&y));
        out.insert("gx", r::max_pool2d_backward(p, d.get("gy"), &argmax));
        out
    }

    fn backend<B: Backend>(&self, be: &B, d: &Inputs) -> Result<Outputs, String> {
        let p = &self.0;
        let mut out = Outputs::new();
        let x = up(be, d.get("x"))?;
        let gy = up(be, d.get("gy"))?;
        let mut y = filled(be, p.y_len(), f32::NAN)?;
        let mut argmax = ctx(be.alloc_indices(p.y_len()), "alloc_indices")?;
        ctx(
            be.max_pool2d_forward(p, &x, &mut y, &mut argmax),
            "max_pool2d_forward",
        )?;
        let mut gx = filled(be, p.x_len(), f32::NAN)?;
        ctx(
            be.max_pool2d_backward(p, &gy, &argmax, &mut gx),
            "max_pool2d_backward",
        )?;
        out.insert("y", widen(&down(be, &y)?));
        out.insert("gx", widen(&down(be, &gx)?));
        Ok(out)
    }
}

/// `avg_pool2d`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AvgPool2d(Pool2dParams);

impl GoldenOp for AvgPool2d {
    const NAME: &'static str = "avg_pool2d";

    fn parse(obj: &Map<String, Value>) -> Result<Self, String> {
        pool_params(obj).map(AvgPool2d)
    }

    fn inputs(&self) -> &'static [&'static str] {
        &["x", "gy"]
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["y", "gx"]
    }

    fn reference(&self, d: &Inputs) -> Outputs {
        let p = &self.0;
        let mut out = Outputs::new();
        out.insert("y", r::avg_pool2d_forward(p, d.get("x")));
        out.insert("gx", r::avg_pool2d_backward(p, d.get("gy")));
        out
    }

    fn backend<B: Backend>(&self, be: &B, d: &Inputs) -> Result<Outputs, String> {
        let p = &self.0;
        let mut out = Outputs::new();
        let x = up(be, d.get("x"))?;
        let gy = up(be, d.get("gy"))?;
        let mut y = filled(be, p.y_len(), f32::NAN)?;
        ctx(be.avg_pool2d_forward(p, &x, &mut y), "avg_pool2d_forward")?;
        let mut gx = filled(be, p.x_len(), f32::NAN)?;
        ctx(
            be.avg_pool2d_backward(p, &gy, &mut gx),
            "avg_pool2d_backward",
        )?;
        out.insert("y", widen(&down(be, &y)?));
        out.insert("gx", widen(&down(be, &gx)?));
        Ok(out)
    }
}

/// `global_avg_pool2d`: x (n, c, hw) to y (n, c).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GlobalAvgPool2d {
    n: usize,
    c: usize,
    hw: usize,
}

impl GoldenOp for GlobalAvgPool2d {
    const NAME: &'static str = "global_avg_pool2d";

    fn parse(obj: &Map<String, Value>) -> Result<Self, String> {
        config(obj, &[])?;
        let [n, c, h, w] = shape(obj, "x_shape", 4)?[..] else {
            unreachable!()
        };
        Ok(GlobalAvgPool2d { n, c, hw: h * w })
    }

    fn inputs(&self) -> &'static [&'static str] {
        &["x", "gy"]
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["y", "gx"]
    }

    fn reference(&self, d: &Inputs) -> Outputs {
        let &GlobalAvgPool2d { n, c, hw } = self;
        let mut out = Outputs::new();
        out.insert("y", r::global_avg_pool_forward(n, c, hw, d.get("x")));
        out.insert("gx", r::global_avg_pool_backward(n, c, hw, d.get("gy")));
        out
    }

    fn backend<B: Backend>(&self, be: &B, d: &Inputs) -> Result<Outputs, String> {
        let &GlobalAvgPool2d { n, c, hw } = self;
        let mut out = Outputs::new();
        let x = up(be, d.get("x"))?;
        let gy = up(be, d.get("gy"))?;
        let mut y = filled(be, n * c, f32::NAN)?;
        ctx(
            be.global_avg_pool_forward(n, c, hw, &x, &mut y),
            "global_avg_pool_forward",
        )?;
        let mut gx = filled(be, n * c * hw, f32::NAN)?;
        ctx(
            be.global_avg_pool_backward(n, c, hw, &gy, &mut gx),
            "global_avg_pool_backward",
        )?;
        out.insert("y", widen(&down(be, &y)?));
        out.insert("gx", widen(&down(be, &gx)?));
        Ok(out)
    }
}
