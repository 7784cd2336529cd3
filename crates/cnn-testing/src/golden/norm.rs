//! The golden `batch_norm2d` op: a training forward with its running
//! statistics update, the backward, then an eval forward on the updated
//! running statistics.

use cnn_core::backend::{Backend, BatchNormParams};
use serde_json::{Map, Value};

use crate::golden::json::{config, number, shape};
use crate::golden::op::{GoldenOp, Inputs, Outputs};
use crate::host::{ctx, down, filled, up, widen};
use crate::reference as r;

/// `batch_norm2d`: x (n, c, h, w).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BatchNorm2d(BatchNormParams);

impl GoldenOp for BatchNorm2d {
    const NAME: &'static str = "batch_norm2d";

    fn parse(obj: &Map<String, Value>) -> Result<Self, String> {
        let cfg = config(obj, &["momentum", "eps"])?;
        let [n, c, h, w] = shape(obj, "x_shape", 4)?[..] else {
            unreachable!()
        };
        Ok(BatchNorm2d(BatchNormParams {
            n,
            c,
            hw: h * w,
            eps: number(cfg, "eps", 1e-5)? as f32,
            momentum: number(cfg, "momentum", 0.1)? as f32,
        }))
    }

    fn inputs(&self) -> &'static [&'static str] {
        &[
            "x",
            "gamma",
            "beta",
            "running_mean_in",
            "running_var_in",
            "gy",
        ]
    }

    fn outputs(&self) -> &'static [&'static str] {
        &[
            "y_train",
            "gx",
            "ggamma",
            "gbeta",
            "running_mean_out",
            "running_var_out",
            "y_eval",
        ]
    }

    fn reference(&self, d: &Inputs) -> Outputs {
        let p = &self.0;
        let mut out = Outputs::new();
        let x = d.get("x");
        let (gamma, beta) = (d.get("gamma"), d.get("beta"));
        let t = r::batch_norm2d_forward_train(
            p,
            x,
            gamma,
            beta,
            d.get("running_mean_in"),
            d.get("running_var_in"),
        );
        let g = r::batch_norm2d_backward(p, x, gamma, d.get("gy"));
        // Eval mode reads the running stats as the f32 buffers hold them.
        let (rm, rv) = (r::to_f32(&t.running_mean), r::to_f32(&t.running_var));
        out.insert(
            "y_eval",
            r::batch_norm2d_forward_eval(p, x, gamma, beta, &rm, &rv),
        );
        out.insert("y_train", t.y);
        out.insert("running_mean_out", t.running_mean);
        out.insert("running_var_out", t.running_var);
        out.insert("gx", g.dx);
        out.insert("ggamma", g.dgamma);
        out.insert("gbeta", g.dbeta);
        out
    }

    fn backend<B: Backend>(&self, be: &B, d: &Inputs) -> Result<Outputs, String> {
        let p = &self.0;
        let mut out = Outputs::new();
        let x = up(be, d.get("x"))?;
        let gy = up(be, d.get("gy"))?;
        let len = d.get("x").len();
        let gamma = up(be, d.get("gamma"))?;
        let beta = up(be, d.get("beta"))?;
        let mut running_mean = up(be, d.get("running_mean_in"))?;
        let mut running_var = up(be, d.get("running_var_in"))?;
        let mut y = filled(be, len, f32::NAN)?;
        let mut save_mean = filled(be, p.c, f32::NAN)?;
        let mut save_invstd = filled(be, p.c, f32::NAN)?;
        ctx(
            be.batch_norm2d_forward_train(
                p,
                &x,
                &gamma,
                &beta,
                &mut running_mean,
                &mut running_var,
                &mut y,
                &mut save_mean,
                &mut save_invstd,
            ),
            "batch_norm2d_forward_train",
        )?;
        let mut gx = filled(be, len, f32::NAN)?;
        let mut ggamma = filled(be, p.c, 0.0)?;
        let mut gbeta = filled(be, p.c, 0.0)?;
        ctx(
            be.batch_norm2d_backward(
                p,
                &x,
                &gamma,
                &save_mean,
                &save_invstd,
                &gy,
                &mut gx,
                &mut ggamma,
                &mut gbeta,
            ),
            "batch_norm2d_backward",
        )?;
        let mut y_eval = filled(be, len, f32::NAN)?;
        ctx(
            be.batch_norm2d_forward_eval(
                p,
                &x,
                &gamma,
                &beta,
                &running_mean,
                &running_var,
                &mut y_eval,
            ),
            "batch_norm2d_forward_eval",
        )?;
        out.insert("y_train", widen(&down(be, &y)?));
        out.insert("gx", widen(&down(be, &gx)?));
        out.insert("ggamma", widen(&down(be, &ggamma)?));
        out.insert("gbeta", widen(&down(be, &gbeta)?));
        out.insert("running_mean_out", widen(&down(be, &running_mean)?));
        out.insert("running_var_out", widen(&down(be, &running_var)?));
        out.insert("y_eval", widen(&down(be, &y_eval)?));
        Ok(out)
    }
}
