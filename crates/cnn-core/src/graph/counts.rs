//! What a model costs, layer by layer, from its [`GraphSpec`] alone (no
//! backend): parameters, batch-norm running statistics, forward
//! multiply-accumulates and activation sizes, with the totals and the
//! training FLOPs per image. `cnn summary` prints them; anything else that
//! needs a model's size (benchmarks, the memory estimate) can read them.
//!
//! How things are counted (the conventions of PyTorch's tools, so the
//! figures equal theirs):
//! - **parameters** are the trainable tensors of the state_dict (weights,
//!   biases, batch norm's weight and bias), as `sum(p.numel() for p in
//!   model.parameters())` and torchinfo count them. cnn has no frozen
//!   parameters, so every parameter is trainable.
//! - **buffers** are batch norm's `running_mean` and `running_var` (2 per
//!   channel): state, not parameters, so torchinfo leaves them out of its
//!   parameter totals (Keras calls them non-trainable parameters). The
//!   `num_batches_tracked` counter (one int64 per batch norm) is not
//!   counted.
//! - **MACs** are the multiply-accumulates of convolutions and linear
//!   layers, as `torch.utils.flop_counter` counts them (its FLOPs are 2 x
//!   these): bias adds, normalisation, activations, pooling and residual
//!   adds are not counted.
//! - **training FLOPs** per image are `2 x (3 x MACs - I)`: forward, input
//!   gradient and weight gradient each cost the forward's MACs, except
//!   that a layer with no parameter before it (the first layer) needs no
//!   input gradient; `I` is the MACs of those layers.
//!
//! Every count is checked: one that overflows is a
//! [`CnnError::SizeOverflow`], never a wrapped value.

use crate::error::{CnnError, Result};
use crate::layers::LayerSpec;
use crate::shape::Shape;

use super::spec::{GraphSpec, NodeOp};

/// One node's counts, per sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerCount {
    /// The node's name (the state_dict prefix of its parameters).
    pub name: String,
    /// The layer kind (`conv2d`, `relu`, ...), or `add` for a residual add.
    pub kind: &'static str,
    /// Per-sample input shape (the primary input for an add).
    pub input: Shape,
    /// Per-sample output shape.
    pub output: Shape,
    /// Trainable parameters.
    pub params: usize,
    /// Batch norm's running statistics (`running_mean`, `running_var`).
    pub buffers: usize,
    /// Forward multiply-accumulates per sample (convolutions and linear
    /// layers only).
    pub macs: u64,
    /// Whether backward computes this layer's input gradient (false when
    /// no parameter comes before it).
    pub input_grad: bool,
}

impl LayerCount {
    /// Bytes of this layer's f32 output for a batch of `batch` samples, or
    /// `None` when that does not fit in `u64`.
    pub fn activation_bytes(&self, batch: usize) -> Option<u64> {
        f32_bytes(self.output.numel(), batch)
    }
}

/// A whole model's counts, per sample, counted as PyTorch's tools count
/// them: `params` as `model.parameters()` (all trainable); `buffers` are
/// batch norm's running mean and variance (state, not parameters, as in
/// torchinfo; `num_batches_tracked` not counted); `macs` are the
/// multiply-accumulates of convolutions and linear layers only, as
/// `torch.utils.flop_counter` (whose FLOPs are twice these);
/// `training_flops` is forward x 3 less the input gradients of the layers
/// that no parameter precedes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelCounts {
    /// Per-sample input shape.
    pub input: Shape,
    /// One entry per node, in execution order.
    pub layers: Vec<LayerCount>,
    /// Trainable parameters (all of the model's parameters).
    pub params: usize,
    /// Running-statistics elements of batch norms.
    pub buffers: usize,
    /// Forward multiply-accumulates per sample.
    pub macs: u64,
    /// Training FLOPs per sample: `2 x (3 x macs - first layers' input
    /// gradients)`.
    pub training_flops: u64,
    /// Elements of every node's output per sample (the input excluded).
    pub activation_elements: usize,
}

impl ModelCounts {
    /// Forward FLOPs per sample (`2 x macs`), as `torch.utils.flop_counter`
    /// reports them.
    pub fn forward_flops(&self) -> u64 {
        self.macs.saturating_mul(2)
    }

    /// Bytes of f32 outputs of every node for a batch of `batch` samples
    /// (torchinfo's forward pass size; backward needs as much again for the
    /// gradients), or `None` when that does not fit in `u64`.
    pub fn activation_bytes(&self, batch: usize) -> Option<u64> {
        f32_bytes(self.activation_elements, batch)
    }
}

fn f32_bytes(elements: usize, batch: usize) -> Option<u64> {
    (elements as u64)
        .checked_mul(batch as u64)
        .and_then(|n| n.checked_mul(4))
}

impl GraphSpec {
    /// Per-node and total counts (parameters, buffers, MACs, activation
    /// sizes); see [`ModelCounts`] for the conventions.
    pub fn counts(&self) -> Result<ModelCounts> {
        let resolved = self.resolve()?;
        let mut layers: Vec<LayerCount> = Vec::with_capacity(self.nodes.len());
        // Whether some parameter comes before each node's output.
        let mut after_params: Vec<bool> = Vec::with_capacity(self.nodes.len());
        let mut totals = (0usize, 0usize, 0u64, 0usize, 0u64);
        for (i, node) in self.nodes.iter().enumerate() {
            let input_index = resolved.inputs[i];
            let input = input_index.map_or(&self.input, |j| &resolved.shapes[j]);
            let output = &resolved.shapes[i];
            let upstream = |j: Option<usize>| j.is_some_and(|j| after_params[j]);
            let (kind, params, buffers, macs, before) = match &node.op {
                NodeOp::Layer(spec) => {
                    let params = spec.num_params(&node.name, input)?;
                    let buffers = match spec {
                        LayerSpec::BatchNorm2d { .. } => channels(input).checked_mul(2),
                        _ => Some(0),
                    }
                    .ok_or_else(|| {
                        CnnError::overflow(Some(&node.name), "its running statistics")
                    })?;
                    let macs = layer_macs(&node.name, spec, input, output)?;
                    (spec.kind(), params, buffers, macs, upstream(input_index))
                }
                NodeOp::Add { .. } => {
                    let before = upstream(input_index) || upstream(resolved.adds[i].flatten());
                    ("add", 0, 0, 0, before)
                }
            };
            after_params.push(before || params > 0);
            let overflow = |what: &str| {
                CnnError::overflow(None, format!("the model's {what} (up to `{}`)", node.name))
            };
            totals.0 = totals
                .0
                .checked_add(params)
                .ok_or_else(|| overflow("parameter count"))?;
            totals.1 = totals
                .1
                .checked_add(buffers)
                .ok_or_else(|| overflow("buffer count"))?;
            totals.2 = totals
                .2
                .checked_add(macs)
                .ok_or_else(|| overflow("MAC count"))?;
            // `resolve` checked each shape's count; only the sum may overflow.
            totals.3 = totals
                .3
                .checked_add(output.numel())
                .ok_or_else(|| overflow("activation count"))?;
            if !before {
                totals.4 += macs; // at most the MAC total, checked above
            }
            layers.push(LayerCount {
                name: node.name.clone(),
                kind,
                input: input.clone(),
                output: output.clone(),
                params,
                buffers,
                macs,
                input_grad: before,
            });
        }
        let (params, buffers, macs, activation_elements, no_input_grad) = totals;
        let training_flops = macs
            .checked_mul(3)
            .map(|m| m - no_input_grad)
            .and_then(|m| m.checked_mul(2))
            .ok_or_else(|| CnnError::overflow(None, "the model's training FLOPs per sample"))?;
        Ok(ModelCounts {
            input: self.input.clone(),
            layers,
            params,
            buffers,
            macs,
            training_flops,
            activation_elements,
        })
    }
}

/// The channel count of an image shape `[C, H, W]` (0 otherwise).
fn channels(shape: &Shape) -> usize {
    shape.dim(0).unwrap_or(0)
}

/// Forward MACs per sample of one layer: a convolution's output elements
/// times `c_in / groups x kh x kw`, a linear layer's `in x out`; none for
/// the others.
fn layer_macs(name: &str, spec: &LayerSpec, input: &Shape, output: &Shape) -> Result<u64> {
    let factors: Vec<u64> = match spec {
        LayerSpec::Conv2d { geometry: g, .. } => vec![
            output.numel() as u64,
            (channels(input) / g.groups.max(1)) as u64,
            g.kernel[0] as u64,
            g.kernel[1] as u64,
        ],
        LayerSpec::Linear { .. } => vec![input.numel() as u64, output.numel() as u64],
        _ => return Ok(0),
    };
    factors
        .iter()
        .try_fold(1u64, |acc, &f| acc.checked_mul(f))
        .ok_or_else(|| {
            let product: Vec<String> = factors.iter().map(u64::to_string).collect();
            CnnError::overflow(
                Some(name),
                format!("its multiply-accumulates ({})", product.join(" x ")),
            )
        })
}

#[cfg(test)]
mod tests {
    use crate::backend::Conv2dGeometry;
    use crate::graph::GraphBuilder;

    /// A dropout before the first convolution does not give it an input
    /// gradient; a second branch reading the input directly has none
    /// either, and an add joins whether either side had parameters.
    #[test]
    fn input_gradients_start_after_the_first_parameters() {
        let spec = GraphBuilder::new([2, 4, 4])
            .dropout(0.5)
            .conv2d("a", Conv2dGeometry::new(2, 3).padding(1))
            .layer_from(
                "b",
                "input",
                crate::LayerSpec::Conv2d {
                    geometry: Conv2dGeometry::new(2, 1),
                    bias: false,
                },
            )
            .add_nodes("sum", "a", "b")
            .conv2d("c", Conv2dGeometry::new(1, 1))
            .spec()
            .unwrap();
        let counts = spec.counts().unwrap();
        let grads: Vec<bool> = counts.layers.iter().map(|l| l.input_grad).collect();
        assert_eq!(grads, [false, false, false, true, true]);
        // a: 2x4x4 outputs x 2x3x3 = 576; b: 32 x 2 = 64; c: 16 x 2 = 32.
        assert_eq!(counts.macs, 576 + 64 + 32);
        assert_eq!(counts.training_flops, 2 * (3 * 672 - 576 - 64));
        assert_eq!(counts.params, (36 + 2) + 4 + (2 + 1));
        assert_eq!(counts.activation_elements, 32 * 4 + 16);
        assert_eq!(counts.layers[1].activation_bytes(10), Some(32 * 10 * 4));
    }

    /// An overflowing MAC count is an error naming the layer: a
    /// `2^20 x 1` kernel over `2^20` channels (2^40 weights) slid over a
    /// height padded to about 2^31 positions makes 2^71 MACs.
    #[test]
    fn overflowing_macs_are_an_error() {
        let geometry = Conv2dGeometry {
            kernel: [1 << 20, 1],
            padding: [1 << 30, 0],
            ..Conv2dGeometry::new(1, 1)
        };
        let spec = GraphBuilder::new([1 << 20, 1, 1])
            .layer(
                "huge",
                crate::LayerSpec::Conv2d {
                    geometry,
                    bias: false,
                },
            )
            .spec()
            .unwrap();
        let err = spec.counts().unwrap_err();
        assert!(
            matches!(&err, crate::CnnError::SizeOverflow { layer: Some(l), .. } if l == "huge"),
            "{err}"
        );
    }
}
