//! The golden `activation` op: every activation kind PyTorch's golden
//! script writes (its config `kind` and parameters), forward and input
//! gradient.

use cnn_core::backend::{Activation, Backend};
use serde_json::{Map, Value};

use crate::golden::json::{config, number};
use crate::golden::op::{GoldenOp, Inputs, Outputs};
use crate::host::{ctx, down, filled, up, widen};
use crate::reference as r;

/// `activation` of one kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ActivationOp(Activation);

impl GoldenOp for ActivationOp {
    const NAME: &'static str = "activation";

    fn parse(obj: &Map<String, Value>) -> Result<Self, String> {
        let kind = obj
            .get("config")
            .and_then(|c| c.get("kind"))
            .and_then(Value::as_str)
            .ok_or("activation config has no `kind`")?;
        let act = match kind {
            "relu" => {
                config(obj, &["kind"])?;
                Activation::Relu
            }
            "leaky_relu" => {
                let cfg = config(obj, &["kind", "negative_slope"])?;
                Activation::LeakyRelu {
                    negative_slope: number(cfg, "negative_slope", 0.01)? as f32,
                }
            }
            "sigmoid" | "tanh" | "silu" => {
                config(obj, &["kind"])?;
                Activation::from_name(kind).map_err(|e| e.to_string())?
            }
            "gelu" | "gelu_tanh" => {
                let cfg = config(obj, &["kind", "approximate"])?;
                let approximate = cfg.get("approximate").map(|v| v.as_str());
                let want = if kind == "gelu" { "none" } else { "tanh" };
                if !(approximate.is_none() || approximate == Some(Some(want))) {
                    return Err(format!(
                        "{kind} with approximate {approximate:?} (expected {want:?})"
                    ));
                }
                if kind == "gelu" {
                    Activation::Gelu
                } else {
                    Activation::GeluTanh
                }
            }
            "elu" => {
                let cfg = config(obj, &["kind", "alpha"])?;
                Activation::Elu {
                    alpha: number(cfg, "alpha", 1.0)? as f32,
                }
            }
            "softplus" => {
                let cfg = config(obj, &["kind", "beta", "threshold"])?;
                Activation::Softplus {
                    beta: number(cfg, "beta", 1.0)? as f32,
                    threshold: number(cfg, "threshold", 20.0)? as f32,
                }
            }
            other => return Err(format!("unknown activation kind `{other}`")),
        };
        Ok(ActivationOp(act))
    }

    fn inputs(&self) -> &'static [&'static str] {
        &["x", "gy"]
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["y", "gx"]
    }

    fn reference(&self, d: &Inputs) -> Outputs {
        let act = self.0;
        let x = d.get("x");
        let mut out = Outputs::new();
        out.insert("y", r::activation_forward(act, x));
        out.insert("gx", r::activation_backward(act, x, d.get("gy")));
        out
    }

    fn backend<B: Backend>(&self, be: &B, d: &Inputs) -> Result<Outputs, String> {
        let act = self.0;
        let mut out = Outputs::new();
        let x = up(be, d.get("x"))?;
        let gy = up(be, d.get("gy"))?;
        let len = d.get("x").len();
        let mut y = filled(be, len, f32::NAN)?;
        ctx(be.activation_forward(act, &x, &mut y), "activation_forward")?;
        let mut gx = filled(be, len, f32::NAN)?;
        ctx(
            be.activation_backward(act, &x, &y, &gy, &mut gx),
            "activation_backward",
        )?;
        out.insert("y", widen(&down(be, &y)?));
        out.insert("gx", widen(&down(be, &gx)?));
        Ok(out)
    }
}
