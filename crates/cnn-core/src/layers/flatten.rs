//! Flatten: `[N, C, H, W] -> [N, C*H*W]`, a copy in both directions.

use super::{ForwardCtx, Layer, LayerSpec};
use crate::backend::Backend;
use crate::error::Result;
use crate::tensor::Tensor;

pub(crate) struct Flatten {
    name: String,
    spec: LayerSpec,
}

impl Flatten {
    pub(crate) fn new(name: &str, spec: &LayerSpec) -> Self {
        Flatten {
            name: name.to_string(),
            spec: spec.clone(),
        }
    }
}

impl<B: Backend> Layer<B> for Flatten {
    fn name(&self) -> &str {
        &self.name
    }
    fn spec(&self) -> &LayerSpec {
        &self.spec
    }

    fn forward(
        &mut self,
        backend: &B,
        _ctx: &ForwardCtx,
        x: &Tensor<B>,
        y: &mut Tensor<B>,
    ) -> Result<()> {
        backend.copy(x.buffer(), y.buffer_mut())
    }

    fn backward(
        &mut self,
        backend: &B,
        _ctx: &ForwardCtx,
        _x: &Tensor<B>,
        _y: &Tensor<B>,
        dy: &Tensor<B>,
        dx: Option<&mut Tensor<B>>,
    ) -> Result<()> {
        match dx {
            Some(dx) => backend.copy(dy.buffer(), dx.buffer_mut()),
            None => Ok(()),
        }
    }
}
