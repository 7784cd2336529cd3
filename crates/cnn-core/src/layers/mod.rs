//! Layers: each one's forward and backward side by side, over any backend.
//!
//! A layer is configured by a [`LayerSpec`] (backend-free, with shape
//! inference) and instantiated as a [`Layer`] trait object holding its
//! parameters and whatever it caches between forward and backward.

mod activation;
mod batch_norm;
mod conv2d;
mod dropout;
mod flatten;
mod linear;
mod pool;
mod spec;

pub use spec::LayerSpec;

use crate::backend::Backend;
use crate::error::Result;
use crate::param::Param;
use crate::rng::CounterRng;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Training or evaluation behaviour (dropout, batch-norm statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// What a forward pass knows beyond its input.
#[derive(Debug, Clone, Copy)]
pub struct ForwardCtx {
    pub mode: Mode,
    /// The graph seed (dropout masks are keyed by it).
    pub seed: u64,
    /// The training step (dropout draws a fresh mask each step).
    pub step: u64,
    /// The node's index in its graph (distinguishes dropout streams).
    pub node: usize,
}

/// A named non-trainable tensor saved in the state_dict (batch-norm
/// running statistics).
#[derive(Debug)]
pub struct StateBuffer<B: Backend> {
    /// Full state_dict name, e.g. `bn1.running_mean`.
    pub name: String,
    pub value: Tensor<B>,
}

/// One layer of a graph. Inputs and outputs carry the batch dimension.
pub trait Layer<B: Backend>: Send {
    /// The node name (state_dict prefix).
    fn name(&self) -> &str;
    /// The spec it was built from.
    fn spec(&self) -> &LayerSpec;

    /// `y = layer(x)`; y has the batch-shaped output shape and is overwritten.
    /// In training mode the layer caches what its backward needs.
    fn forward(
        &mut self,
        backend: &B,
        ctx: &ForwardCtx,
        x: &Tensor<B>,
        y: &mut Tensor<B>,
    ) -> Result<()>;

    /// Given `dy`, accumulate parameter gradients and, when `dx` is given,
    /// overwrite it with the input gradient. Must follow a training-mode
    /// forward with the same `x` and `y`.
    fn backward(
        &mut self,
        backend: &B,
        ctx: &ForwardCtx,
        x: &Tensor<B>,
        y: &Tensor<B>,
        dy: &Tensor<B>,
        dx: Option<&mut Tensor<B>>,
    ) -> Result<()>;

    /// Trainable parameters (empty for most layers).
    fn params(&self) -> Vec<&Param<B>> {
        Vec::new()
    }
    fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        Vec::new()
    }
    /// Non-trainable state (running statistics).
    fn buffers(&self) -> Vec<&StateBuffer<B>> {
        Vec::new()
    }
    fn buffers_mut(&mut self) -> Vec<&mut StateBuffer<B>> {
        Vec::new()
    }
    /// Integer counters in the state_dict (`num_batches_tracked`).
    fn counters(&self) -> Vec<(String, i64)> {
        Vec::new()
    }
    fn set_counter(&mut self, _name: &str, _value: i64) -> bool {
        false
    }
}

/// Instantiate the layer described by `spec` with per-sample input shape
/// `input`. `rng` draws the initial parameter values (PyTorch's defaults).
pub fn build_layer<B: Backend>(
    backend: &B,
    name: &str,
    spec: &LayerSpec,
    input: &Shape,
    rng: &mut dyn FnMut(usize) -> CounterRng,
) -> Result<Box<dyn Layer<B>>> {
    let output = spec.output_shape(name, input)?;
    Ok(match spec {
        LayerSpec::Conv2d { .. } => Box::new(conv2d::Conv2d::new(
            backend, name, spec, input, &output, rng,
        )?),
        LayerSpec::Linear { .. } => Box::new(linear::Linear::new(backend, name, spec, input, rng)?),
        LayerSpec::MaxPool2d(_) | LayerSpec::AvgPool2d(_) | LayerSpec::GlobalAvgPool => {
            Box::new(pool::Pool::new(backend, name, spec, input)?)
        }
        LayerSpec::BatchNorm2d { .. } => {
            Box::new(batch_norm::BatchNorm2d::new(backend, name, spec, input)?)
        }
        LayerSpec::Dropout { .. } => Box::new(dropout::Dropout::new(name, spec)),
        LayerSpec::Flatten => Box::new(flatten::Flatten::new(name, spec)),
        LayerSpec::Activation(_) => Box::new(activation::ActivationLayer::new(name, spec)),
    })
}

/// Split a batch-shaped image tensor shape into (n, c, h, w).
pub(crate) fn nchw(shape: &Shape) -> Result<(usize, usize, usize, usize)> {
    match *shape.dims() {
        [n, c, h, w] => Ok((n, c, h, w)),
        _ => Err(crate::CnnError::geometry(format!(
            "expected an (N, C, H, W) tensor, got {shape}"
        ))),
    }
}

#[cfg(test)]
mod tests;
