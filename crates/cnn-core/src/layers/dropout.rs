//! Dropout: masks from the counter-based RNG keyed by (seed, node, step,
//! element), regenerated in backward instead of stored; the identity in
//! evaluation, forward and backward.

use super::{ForwardCtx, Layer, LayerSpec, Mode};
use crate::backend::{Backend, DropoutParams};
use crate::error::Result;
use crate::tensor::Tensor;

/// Offset that keeps dropout streams apart from initialisation streams.
const DROPOUT_STREAM_BASE: u64 = 1 << 40;

pub(crate) struct Dropout {
    name: String,
    spec: LayerSpec,
    p: f32,
}

impl Dropout {
    pub(crate) fn new(name: &str, spec: &LayerSpec) -> Self {
        let p = match spec {
            LayerSpec::Dropout { p } => *p,
            _ => 0.0,
        };
        Dropout {
            name: name.to_string(),
            spec: spec.clone(),
            p,
        }
    }

    fn params(&self, ctx: &ForwardCtx) -> DropoutParams {
        DropoutParams {
            prob: self.p,
            seed: ctx.seed,
            stream: DROPOUT_STREAM_BASE + ctx.node as u64,
            step: ctx.step,
        }
    }
}

impl<B: Backend> Layer<B> for Dropout {
    fn name(&self) -> &str {
        &self.name
    }
    fn spec(&self) -> &LayerSpec {
        &self.spec
    }

    fn forward(
        &mut self,
        backend: &B,
        ctx: &ForwardCtx,
        x: &Tensor<B>,
        y: &mut Tensor<B>,
    ) -> Result<()> {
        if ctx.mode == Mode::Eval || self.p == 0.0 {
            return backend.copy(x.buffer(), y.buffer_mut());
        }
        backend.dropout_forward(&self.params(ctx), x.buffer(), y.buffer_mut())
    }

    fn backward(
        &mut self,
        backend: &B,
        ctx: &ForwardCtx,
        _x: &Tensor<B>,
        _y: &Tensor<B>,
        dy: &Tensor<B>,
        dx: Option<&mut Tensor<B>>,
    ) -> Result<()> {
        let Some(dx) = dx else { return Ok(()) };
        if ctx.mode == Mode::Eval || self.p == 0.0 {
            return backend.copy(dy.buffer(), dx.buffer_mut());
        }
        backend.dropout_backward(&self.params(ctx), dy.buffer(), dx.buffer_mut())
    }
}
