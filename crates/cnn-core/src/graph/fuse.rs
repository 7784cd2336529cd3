//! Batch norm fused with the ReLU after it, and with a residual add
//! between them (ResNet's `bn -> relu` and `bn -> add -> relu`), in
//! training forwards: one op
//! ([`crate::NormOps::batch_norm2d_relu_forward_train`]) reads the batch
//! norm's input and the residual and writes only the ReLU's output, where
//! the three ops read and wrote seven tensors' worth of memory. The batch
//! norm's and the add's outputs are never formed: no backward reads them
//! (batch norm's backward reads its input, an add's nothing, ReLU's its
//! own output), so backward runs node by node as before. The ops are the
//! same in the same order, so the bits are too.
//!
//! Where the ReLU's buffer is one the op reads, the group runs unfused
//! (`BnRelu::applies` checks each workspace's buffers). Since ReLUs write
//! over their input's buffer (`in_place_relus`), a training forward's
//! ReLU holds the batch norm's or the add's own buffer, which the op does
//! not read, so every ResNet-20 group fuses in training. Evaluation
//! forwards are not fused (they run the ops apart, the ReLU in place).

use super::{Slots, spec::ResolvedGraph, split_out};
use crate::backend::{Activation, Backend};
use crate::error::{CnnError, Result};
use crate::graph::{GraphSpec, NodeOp};
use crate::layers::{ForwardCtx, Layer, LayerSpec};
use crate::tensor::Tensor;

/// A batch norm whose only reader leads, alone, to a ReLU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct BnRelu {
    /// The ReLU, whose output the fused op writes.
    pub relu: usize,
    /// The residual add between them, if any.
    pub add: Option<usize>,
    /// The add's other operand (`Some(None)`: the graph input).
    pub residual: Option<Option<usize>>,
}

fn is_relu(spec: &GraphSpec, i: usize) -> bool {
    matches!(
        spec.nodes[i].op,
        NodeOp::Layer(LayerSpec::Activation(Activation::Relu))
    )
}

/// Per node: the group a batch norm heads (`None` for every other node):
/// batch norm `k` read only by a ReLU at `k + 1`, or only by an add at
/// `k + 1` that only a ReLU at `k + 2` reads. A ReLU folded into a max
/// pooling stays with the pooling.
pub(super) fn batch_norm_relu_groups(
    spec: &GraphSpec,
    resolved: &ResolvedGraph,
    consumers: &[usize],
    folded: &[bool],
) -> Vec<Option<BnRelu>> {
    let n = spec.nodes.len();
    let relu_reading =
        |r: usize| r < n && is_relu(spec, r) && !folded[r] && resolved.inputs[r] == Some(r - 1);
    (0..n)
        .map(|k| {
            let bn = matches!(
                spec.nodes[k].op,
                NodeOp::Layer(LayerSpec::BatchNorm2d { .. })
            );
            if !bn || consumers[k] != 1 {
                return None;
            }
            if relu_reading(k + 1) {
                return Some(BnRelu {
                    relu: k + 1,
                    add: None,
                    residual: None,
                });
            }
            let a = k + 1;
            let add = a < n && matches!(spec.nodes[a].op, NodeOp::Add { .. });
            if !add || consumers[a] != 1 || !relu_reading(a + 1) {
                return None;
            }
            let (first, other) = (resolved.inputs[a], resolved.adds[a]?);
            let residual = if first == Some(k) {
                other
            } else if other == Some(k) {
                first
            } else {
                return None;
            };
            Some(BnRelu {
                relu: a + 1,
                add: Some(a),
                residual: Some(residual),
            })
        })
        .collect()
}

impl BnRelu {
    /// Whether the group headed by batch norm `k`, reading `x_node`, runs
    /// fused in a workspace with these `slots`: not where its outputs are
    /// kept ([`super::Graph::set_keep_gradients`]: each node's own output
    /// must then be there to see), nor where the ReLU's buffer is the batch
    /// norm's input or the residual (an evaluation's shared buffers; the
    /// op reads them while it writes). No other value can share the ReLU's
    /// buffer while the group runs: in the unfused order the ReLU writes it
    /// after the group's other nodes have read their inputs.
    pub fn applies(&self, k: usize, x_node: Option<usize>, slots: &Slots, keep: &[bool]) -> bool {
        let y = slots.slot[self.relu];
        let kept = keep[k] || self.add.is_some_and(|a| keep[a]);
        let clash = |j: Option<usize>| j.is_some_and(|j| slots.slot[j] == y);
        !kept && !clash(x_node) && !clash(self.residual.flatten())
    }

    /// Run the group: `layer` (the batch norm) on `x_node`'s output (or
    /// the graph `input`) with the residual, into the ReLU's buffer in
    /// `acts`; mark the nodes whose outputs were not formed in `unformed`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward<B: Backend>(
        &self,
        layer: &mut dyn Layer<B>,
        backend: &B,
        ctx: &ForwardCtx,
        x_node: Option<usize>,
        input: &Tensor<B>,
        acts: &mut [Tensor<B>],
        slots: &Slots,
        unformed: &mut [bool],
    ) -> Result<()> {
        let (y, others) = split_out(acts, slots.slot[self.relu]);
        let x = x_node.map_or(input, |j| others.get(slots.slot[j]));
        let residual = match self.residual {
            None => None,
            Some(None) => Some(input),
            Some(Some(j)) => Some(others.get(slots.slot[j])),
        };
        layer.forward_relu(backend, ctx, x, residual, y)?;
        let k = ctx.node;
        for i in k..self.relu {
            *unformed
                .get_mut(i)
                .ok_or_else(|| CnnError::Graph(format!("node {i} is outside the graph")))? = true;
        }
        Ok(())
    }
}
