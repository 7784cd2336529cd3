//! Activation layers: forward `y = f(x)`, backward `dx = f'(x) dy`.

use super::{ForwardCtx, Layer, LayerSpec};
use crate::backend::{Activation, Backend};
use crate::error::Result;
use crate::tensor::Tensor;

pub(crate) struct ActivationLayer {
    name: String,
    spec: LayerSpec,
    act: Activation,
}

impl ActivationLayer {
    pub(crate) fn new(name: &str, spec: &LayerSpec) -> Self {
        let act = match spec {
            LayerSpec::Activation(a) => *a,
            _ => Activation::Relu,
        };
        ActivationLayer {
            name: name.to_string(),
            spec: spec.clone(),
            act,
        }
    }
}

impl<B: Backend> Layer<B> for ActivationLayer {
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
        backend.activation_forward(self.act, x.buffer(), y.buffer_mut())
    }

    fn backward(
        &mut self,
        backend: &B,
        _ctx: &ForwardCtx,
        x: &Tensor<B>,
        y: &Tensor<B>,
        dy: &Tensor<B>,
        dx: Option<&mut Tensor<B>>,
    ) -> Result<()> {
        match dx {
            Some(dx) => backend.activation_backward(
                self.act,
                x.buffer(),
                y.buffer(),
                dy.buffer(),
                dx.buffer_mut(),
            ),
            None => Ok(()),
        }
    }
}
