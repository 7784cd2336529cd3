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

/// The most trainable parameters one layer has (a weight and a bias; a
/// normalisation scale and shift).
pub const MAX_LAYER_PARAMS: usize = 2;

/// A layer's trainable parameters (`&Param` or `&mut Param`) in state_dict
/// order. They are held inline rather than in a `Vec` so that visiting every
/// parameter of a graph, as each training step does, allocates nothing.
#[derive(Debug)]
pub struct LayerParams<P> {
    slots: std::array::IntoIter<Option<P>, MAX_LAYER_PARAMS>,
}

impl<P> LayerParams<P> {
    /// The parameters in `slots`, skipping the `None`s (an absent bias).
    pub fn new(slots: [Option<P>; MAX_LAYER_PARAMS]) -> Self {
        LayerParams {
            slots: slots.into_iter(),
        }
    }

    /// No parameters (activations, pooling, dropout, ...).
    pub fn none() -> Self {
        Self::new(std::array::from_fn(|_| None))
    }
}

impl<P> Iterator for LayerParams<P> {
    type Item = P;

    fn next(&mut self) -> Option<P> {
        self.slots.by_ref().flatten().next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.slots.len()))
    }
}

/// The most parts a data-parallel step cuts a batch into (layers pass the
/// parts' buffers on the stack).
pub const MAX_PARTS: usize = 64;

/// What one part of a data-parallel step kept for a layer: its input and
/// the gradient with respect to its output, for the part's images.
#[derive(Debug)]
pub struct PartIo<'a, B: Backend> {
    pub x: &'a Tensor<B>,
    pub dy: &'a Tensor<B>,
}

// By hand: a derive would ask `B: Copy`.
impl<B: Backend> Clone for PartIo<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Backend> Copy for PartIo<'_, B> {}

/// One layer of a graph. Inputs and outputs carry the batch dimension.
pub trait Layer<B: Backend>: Send + Sync {
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

    /// `y = relu(layer(x) + residual)` (`relu(layer(x))` without
    /// `residual`) as one op, the same bits as the layer, the add and the
    /// ReLU run apart: the graph's fusion of a batch norm with the add and
    /// ReLU after it in training forwards and evaluations (`graph/fuse.rs`). Only batch
    /// norm has it; other layers say so with an error.
    fn forward_relu(
        &mut self,
        backend: &B,
        ctx: &ForwardCtx,
        x: &Tensor<B>,
        residual: Option<&Tensor<B>>,
        y: &mut Tensor<B>,
    ) -> Result<()> {
        let _ = (backend, ctx, x, residual, y);
        Err(crate::CnnError::Graph(format!(
            "layer `{}` has no fused ReLU forward",
            self.name()
        )))
    }

    /// `y = relu(layer(y) + residual)` in an evaluation:
    /// [`Layer::forward_relu`] with x in `y` (the graph's fusion where an
    /// evaluation's layer writes over its input's buffer,
    /// `graph/fuse.rs`). Only batch norm has it, in eval mode; otherwise an
    /// error.
    fn forward_relu_in_place(
        &mut self,
        backend: &B,
        ctx: &ForwardCtx,
        residual: Option<&Tensor<B>>,
        y: &mut Tensor<B>,
    ) -> Result<()> {
        let _ = (backend, ctx, residual, y);
        Err(crate::CnnError::Graph(format!(
            "layer `{}` has no fused in-place ReLU forward",
            self.name()
        )))
    }

    /// The backward of [`Layer::forward_relu`] from `dy`, the gradient of
    /// its output (the ReLU's), with the bits of the ReLU's, the add's and
    /// the layer's backwards run apart: parameter gradients accumulate,
    /// `dx` (when given) is overwritten with the input gradient, and with
    /// `residual` `dy` is overwritten with the residual's gradient (the
    /// graph's fusion of their backwards, `graph/fuse.rs`). Only batch norm
    /// has it; other layers say so with an error.
    #[allow(clippy::too_many_arguments)]
    fn backward_relu(
        &mut self,
        backend: &B,
        ctx: &ForwardCtx,
        x: &Tensor<B>,
        y: &Tensor<B>,
        dy: &mut Tensor<B>,
        residual: bool,
        dx: Option<&mut Tensor<B>>,
    ) -> Result<()> {
        let _ = (backend, ctx, x, y, dy, residual, dx);
        Err(crate::CnnError::Graph(format!(
            "layer `{}` has no fused ReLU backward",
            self.name()
        )))
    }

    /// Given `dy`, accumulate parameter gradients and, when `dx` is given,
    /// overwrite it with the input gradient. Must follow a forward with the
    /// same `x`, `y` and `ctx.mode`: a training forward, or an evaluation
    /// forward whose gradients are wanted (Grad-CAM, saliency maps).
    fn backward(
        &mut self,
        backend: &B,
        ctx: &ForwardCtx,
        x: &Tensor<B>,
        y: &Tensor<B>,
        dy: &Tensor<B>,
        dx: Option<&mut Tensor<B>>,
    ) -> Result<()>;

    /// The backward of one part of a batch in a data-parallel step (see
    /// [`DataParallel`](crate::graph::DataParallel)): the input gradient
    /// and the parameter gradients that [`Layer::part_summed`] marks. The
    /// default is [`Layer::backward`], right for layers whose parameter
    /// gradients are all summed part by part (or that have none).
    fn backward_part(
        &mut self,
        backend: &B,
        ctx: &ForwardCtx,
        x: &Tensor<B>,
        y: &Tensor<B>,
        dy: &Tensor<B>,
        dx: Option<&mut Tensor<B>>,
    ) -> Result<()> {
        self.backward(backend, ctx, x, y, dy, dx)
    }

    /// Per parameter, in [`Layer::params`] order: whether a data-parallel
    /// step computes its gradient in each part and adds the parts' sums in
    /// order. The others come from [`Layer::backward_params_from_parts`].
    fn part_summed(&self) -> [bool; MAX_LAYER_PARAMS] {
        [true; MAX_LAYER_PARAMS]
    }

    /// The parameter gradients that [`Layer::part_summed`] leaves out, from
    /// every part's input and output gradient (in batch order), accumulated
    /// as [`Layer::backward`] accumulates them over the whole batch.
    fn backward_params_from_parts(&mut self, _backend: &B, _parts: &[PartIo<'_, B>]) -> Result<()> {
        Ok(())
    }

    /// Trainable parameters in state_dict order (none for most layers).
    fn params(&self) -> LayerParams<&Param<B>> {
        LayerParams::none()
    }
    /// Trainable parameters, mutably, in state_dict order.
    fn params_mut(&mut self) -> LayerParams<&mut Param<B>> {
        LayerParams::none()
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
