//! The golden `linear` op, built from GEMM and the bias ops:
//! y = x w^T + b with x (n, inputs), w (outputs, inputs), and its input,
//! weight and bias gradients.

use cnn_core::backend::{Backend, BiasParams, GemmParams};
use serde_json::{Map, Value};

use crate::golden::json::{boolean, config, shape};
use crate::golden::op::{GoldenOp, Inputs, Outputs};
use crate::host::{ctx, down, filled, up, widen};
use crate::reference as r;

/// `linear` with or without a bias.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Linear {
    n: usize,
    inputs: usize,
    outputs: usize,
    bias: bool,
}

/// Linear y = x w^T (+ b): x (n, inputs), w (outputs, inputs), y (n, outputs).
fn linear_y_params(n: usize, inputs: usize, outputs: usize) -> GemmParams {
    GemmParams {
        trans_b: true,
        ..GemmParams::new(n, outputs, inputs)
    }
}
/// gx = gy w: gy (n, outputs), w (outputs, inputs), gx (n, inputs).
fn linear_gx_params(n: usize, inputs: usize, outputs: usize) -> GemmParams {
    GemmParams::new(n, inputs, outputs)
}
/// gw += gy^T x: gy stored (n, outputs), x (n, inputs), gw (outputs, inputs).
fn linear_gw_params(n: usize, inputs: usize, outputs: usize) -> GemmParams {
    GemmParams {
        trans_a: true,
        beta: 1.0,
        ..GemmParams::new(outputs, inputs, n)
    }
}

impl GoldenOp for Linear {
    const NAME: &'static str = "linear";

    fn parse(obj: &Map<String, Value>) -> Result<Self, String> {
        let cfg = config(obj, &["bias"])?;
        let [n, inputs] = shape(obj, "x_shape", 2)?[..] else {
            unreachable!()
        };
        let [outputs, w_in] = shape(obj, "w_shape", 2)?[..] else {
            unreachable!()
        };
        if w_in != inputs {
            return Err(format!(
                "w_shape [{outputs}, {w_in}] does not fit {inputs} input features"
            ));
        }
        Ok(Linear {
            n,
            inputs,
            outputs,
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
        let &Linear {
            n,
            inputs,
            outputs,
            bias,
        } = self;
        let mut out = Outputs::new();
        let (x, gy) = (d.get("x"), d.get("gy"));
        let w = d.get("w");
        let mut y = r::gemm(
            &linear_y_params(n, inputs, outputs),
            x,
            w,
            &vec![0.0; n * outputs],
        );
        if bias {
            let b = d.get("b");
            for (i, v) in y.iter_mut().enumerate() {
                *v += f64::from(b[i % outputs]);
            }
            out.insert(
                "gb",
                r::bias_backward(
                    &BiasParams {
                        outer: n,
                        channels: outputs,
                        inner: 1,
                    },
                    gy,
                ),
            );
        }
        out.insert("y", y);
        out.insert(
            "gx",
            r::gemm(
                &linear_gx_params(n, inputs, outputs),
                gy,
                w,
                &vec![0.0; n * inputs],
            ),
        );
        out.insert(
            "gw",
            r::gemm(
                &linear_gw_params(n, inputs, outputs),
                gy,
                x,
                &vec![0.0; outputs * inputs],
            ),
        );
        out
    }

    fn backend<B: Backend>(&self, be: &B, d: &Inputs) -> Result<Outputs, String> {
        let &Linear {
            n,
            inputs,
            outputs,
            bias,
        } = self;
        let mut out = Outputs::new();
        let x = up(be, d.get("x"))?;
        let gy = up(be, d.get("gy"))?;
        let w = up(be, d.get("w"))?;
        let mut y = filled(be, n * outputs, f32::NAN)?;
        ctx(
            be.gemm(&linear_y_params(n, inputs, outputs), &x, &w, &mut y),
            "gemm (linear forward)",
        )?;
        if bias {
            let b = up(be, d.get("b"))?;
            let bp = BiasParams {
                outer: n,
                channels: outputs,
                inner: 1,
            };
            ctx(be.bias_add(&bp, &b, &mut y), "bias_add")?;
            let mut gb = filled(be, outputs, 0.0)?;
            ctx(be.bias_backward(&bp, &gy, &mut gb), "bias_backward")?;
            out.insert("gb", widen(&down(be, &gb)?));
        }
        let mut gx = filled(be, n * inputs, f32::NAN)?;
        ctx(
            be.gemm(&linear_gx_params(n, inputs, outputs), &gy, &w, &mut gx),
            "gemm (linear dx)",
        )?;
        let mut gw = filled(be, outputs * inputs, 0.0)?;
        ctx(
            be.gemm(&linear_gw_params(n, inputs, outputs), &gy, &x, &mut gw),
            "gemm (linear dw)",
        )?;
        out.insert("y", widen(&down(be, &y)?));
        out.insert("gx", widen(&down(be, &gx)?));
        out.insert("gw", widen(&down(be, &gw)?));
        Ok(out)
    }
}
