//! The golden losses: `softmax_cross_entropy` (with label smoothing) and
//! `mse_loss`, each the mean loss and its input gradient.

use cnn_core::backend::{Backend, CrossEntropyParams};
use serde_json::{Map, Value};

use crate::golden::json::{config, mean_reduction, number, shape};
use crate::golden::op::{GoldenOp, Inputs, Outputs};
use crate::host::{ctx, down, filled, up, up_indices, widen};
use crate::reference as r;

/// `softmax_cross_entropy`: logits x (n, classes) and class `targets`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SoftmaxCrossEntropy(CrossEntropyParams);

impl GoldenOp for SoftmaxCrossEntropy {
    const NAME: &'static str = "softmax_cross_entropy";

    fn parse(obj: &Map<String, Value>) -> Result<Self, String> {
        let cfg = config(obj, &["label_smoothing", "reduction"])?;
        mean_reduction(cfg)?;
        let [n, classes] = shape(obj, "x_shape", 2)?[..] else {
            unreachable!()
        };
        let label_smoothing = number(cfg, "label_smoothing", 0.0)? as f32;
        Ok(SoftmaxCrossEntropy(CrossEntropyParams {
            n,
            classes,
            label_smoothing,
        }))
    }

    fn inputs(&self) -> &'static [&'static str] {
        &["x", "targets"]
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["loss", "gx"]
    }

    fn reference(&self, d: &Inputs) -> Outputs {
        let mut out = Outputs::new();
        let (loss, gx) = r::softmax_cross_entropy(&self.0, d.get("x"), &d.targets);
        out.insert("loss", vec![loss]);
        out.insert("gx", gx);
        out
    }

    fn backend<B: Backend>(&self, be: &B, d: &Inputs) -> Result<Outputs, String> {
        let p = &self.0;
        let mut out = Outputs::new();
        let x = up(be, d.get("x"))?;
        let targets = up_indices(be, &d.targets)?;
        let mut gx = filled(be, p.n * p.classes, f32::NAN)?;
        let loss = ctx(
            be.softmax_cross_entropy(p, &x, &targets, &mut gx),
            "softmax_cross_entropy",
        )?;
        out.insert("loss", vec![f64::from(loss)]);
        out.insert("gx", widen(&down(be, &gx)?));
        Ok(out)
    }
}

/// `mse_loss`: `mean((x - target)^2)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MseLoss;

impl GoldenOp for MseLoss {
    const NAME: &'static str = "mse_loss";

    fn parse(obj: &Map<String, Value>) -> Result<Self, String> {
        let cfg = config(obj, &["reduction"])?;
        mean_reduction(cfg)?;
        Ok(MseLoss)
    }

    fn inputs(&self) -> &'static [&'static str] {
        &["x", "target"]
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["loss", "gx"]
    }

    fn reference(&self, d: &Inputs) -> Outputs {
        let mut out = Outputs::new();
        let (loss, gx) = r::mse_loss(d.get("x"), d.get("target"));
        out.insert("loss", vec![loss]);
        out.insert("gx", gx);
        out
    }

    fn backend<B: Backend>(&self, be: &B, d: &Inputs) -> Result<Outputs, String> {
        let mut out = Outputs::new();
        let x = up(be, d.get("x"))?;
        let target = up(be, d.get("target"))?;
        let mut gx = filled(be, d.get("x").len(), f32::NAN)?;
        let loss = ctx(be.mse_loss(&x, &target, &mut gx), "mse_loss")?;
        out.insert("loss", vec![f64::from(loss)]);
        out.insert("gx", widen(&down(be, &gx)?));
        Ok(out)
    }
}
