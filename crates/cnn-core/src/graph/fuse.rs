//! Batch norm fused with the ReLU after it, and with a residual add
//! between them (ResNet's `bn -> relu` and `bn -> add -> relu`), in
//! training forwards and in evaluations: one op
//! ([`crate::NormOps::batch_norm2d_relu_forward_train`], or
//! [`crate::NormOps::batch_norm2d_relu_forward_eval`] with the running
//! statistics) reads the batch
//! norm's input and the residual and writes only the ReLU's output, where
//! the three ops read and wrote seven tensors' worth of memory. The batch
//! norm's and the add's outputs are never formed: no backward reads them
//! (batch norm's backward reads its input, an add's nothing, ReLU's its
//! own output). The ops are the same in the same order, so the bits are
//! too.
//!
//! Backward fuses the same groups where their forward ran fused
//! ([`BnRelu::backward`], [`crate::NormOps::batch_norm2d_relu_backward`]):
//! at the ReLU, one op masks the ReLU's gradient while batch norm's
//! backward reads it and leaves the masked gradient (the add's, which is
//! the residual's) in the buffer it read; that buffer is then swapped into
//! the residual's gradient slot instead of two copies, or added to it when
//! the residual already has a gradient. The ReLU's and the add's gradients
//! are never formed on their own. The bits are the unfused backward's.
//!
//! Where the ReLU's buffer is the residual's, the group runs unfused
//! (`BnRelu::fusion` checks each workspace's buffers). Since ReLUs write
//! over their input's buffer (`in_place_relus`), a training forward's
//! ReLU holds the batch norm's or the add's own buffer, which the op does
//! not read, so every ResNet-20 group fuses in training. In an evaluation
//! the buffers are shared more tightly: batch norm, the add and the ReLU
//! all write over the convolution's output, the batch norm's input. There
//! the op runs in place
//! ([`crate::NormOps::batch_norm2d_relu_forward_eval_in_place`]: x is
//! read from the buffer it writes), so every ResNet-20 group fuses in
//! evaluations too. An eval-mode forward kept for a backward (Grad-CAM's)
//! runs the ops apart: the fused backward is training's, and it reads x.

use super::{Slots, Workspace, spec::ResolvedGraph, split_out};
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

/// How a group runs fused ([`BnRelu::fusion`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Fusion {
    /// The op reads x and the residual and writes the ReLU's buffer.
    Apart,
    /// The ReLU's buffer is the batch norm's input's (an evaluation's
    /// batch norm writing over its input): the op runs in place.
    InputInPlace,
}

impl BnRelu {
    /// Whether and how the group headed by batch norm `k`, reading
    /// `x_node`, runs fused in a workspace with these `slots`: not where
    /// its outputs are kept ([`super::Graph::set_keep_gradients`]: each
    /// node's own output must then be there to see), nor where the ReLU's
    /// buffer is the residual's (an evaluation's shared buffers; the op
    /// reads it while it writes). Where it is the batch norm's input's,
    /// the op runs in place, in evaluations only (`in_place_ok`: no
    /// backward follows, and training's fused backward reads x). No other value
    /// can share the ReLU's buffer while the group runs: in the unfused
    /// order the ReLU writes it after the group's other nodes have read
    /// their inputs.
    pub fn fusion(
        &self,
        k: usize,
        x_node: Option<usize>,
        slots: &Slots,
        keep: &[bool],
        in_place_ok: bool,
    ) -> Option<Fusion> {
        let y = slots.slot[self.relu];
        let kept = keep[k] || self.add.is_some_and(|a| keep[a]);
        let clash = |j: Option<usize>| j.is_some_and(|j| slots.slot[j] == y);
        if kept || clash(self.residual.flatten()) {
            None
        } else if !clash(x_node) {
            Some(Fusion::Apart)
        } else {
            in_place_ok.then_some(Fusion::InputInPlace)
        }
    }

    /// Run the group as `how` says: `layer` (the batch norm) on `x_node`'s
    /// output (or the graph `input`) with the residual, into the ReLU's
    /// buffer in `acts`; mark the nodes whose outputs were not formed in
    /// `unformed`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward<B: Backend>(
        &self,
        how: Fusion,
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
        let residual = match self.residual {
            None => None,
            Some(None) => Some(input),
            Some(Some(j)) => Some(others.get(slots.slot[j])),
        };
        if how == Fusion::InputInPlace {
            // y is x's buffer and holds it.
            layer.forward_relu_in_place(backend, ctx, residual, y)?;
        } else {
            let x = x_node.map_or(input, |j| others.get(slots.slot[j]));
            layer.forward_relu(backend, ctx, x, residual, y)?;
        }
        let k = ctx.node;
        for i in k..self.relu {
            *unformed
                .get_mut(i)
                .ok_or_else(|| CnnError::Graph(format!("node {i} is outside the graph")))? = true;
        }
        Ok(())
    }
}

impl<B: Backend> super::Graph<B> {
    /// How many batch norm + (add +) ReLU groups the last backward ran as
    /// one op (see [`super::Graph::set_batch_norm_fusion`]).
    pub fn fused_backward_groups(&self) -> usize {
        self.fused_backward
    }
}

/// The group whose ReLU is node `i`, and the batch norm `k` heading it.
pub(super) fn ending_at(groups: &[Option<BnRelu>], i: usize) -> Option<(usize, BnRelu)> {
    (1..=2)
        .filter_map(|d| i.checked_sub(d))
        .find_map(|k| groups[k].filter(|g| g.relu == i).map(|g| (k, g)))
}

/// Buffers `a` and `b` (distinct) of `buffers`, both mutably.
fn two_mut<T>(buffers: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    if a < b {
        let (lo, hi) = buffers.split_at_mut(b);
        (&mut lo[a], &mut hi[0])
    } else {
        let (lo, hi) = buffers.split_at_mut(a);
        (&mut hi[0], &mut lo[b])
    }
}

impl BnRelu {
    /// Run the group's backward as one op, at its ReLU, after a forward
    /// that ran it fused: `layer` (the batch norm, node `ctx.node`) reading `x_node`'s
    /// output and the ReLU's output and gradient in workspace `ws`; marks
    /// the gradients it wrote in `ready`. Returns false, having done
    /// nothing, where the group's buffers do not allow it (the caller then
    /// runs the nodes one by one): the ReLU's gradient is kept (`keep`,
    /// see [`super::Graph::set_keep_gradients`]), the batch norm reads the graph input or
    /// the residual, the residual is the graph input, its input already
    /// has a gradient, or the residual's gradient buffer is the one the
    /// input gradient takes.
    ///
    /// Node by node, the ReLU's backward writes its gradient into a buffer
    /// free at the ReLU, the add writes the residual's gradient into one
    /// free once the ReLU's backward has run, and batch norm's backward
    /// writes its input gradient into one free once the add's has; at the
    /// ReLU those buffers hold no live value either, other than the ReLU's
    /// own gradient, which this op reads and then no longer needs.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<B: Backend>(
        &self,
        layer: &mut dyn Layer<B>,
        backend: &B,
        ctx: &ForwardCtx,
        x_node: Option<usize>,
        ws: &mut Workspace<B>,
        ready: &mut [bool],
        keep: &[bool],
    ) -> Result<bool> {
        // A kept ReLU gradient must stay in its buffer (the op overwrites
        // or moves it).
        let Some(xn) = x_node.filter(|&j| !ready[j] && !keep[self.relu]) else {
            return Ok(false);
        };
        let residual = match self.residual {
            None => None,
            Some(Some(j)) if j != xn => Some(j),
            Some(_) => return Ok(false),
        };
        let gs = &ws.grad_slots.slot;
        let (dy_slot, dx_slot) = (gs[self.relu], gs[xn]);
        // Where the ReLU's gradient is read and the masked one is left (the
        // ReLU's buffer swapped there, so no copy): the residual's own
        // buffer when it has no gradient yet; else the ReLU's, unless the
        // input gradient takes that, then the one the ReLU's backward
        // would write (the add's or the batch norm's gradient).
        let added_to = residual.filter(|&j| ready[j]).map(|j| gs[j]);
        let first = residual.filter(|&j| !ready[j]).map(|j| gs[j]);
        let own = gs[self.add.unwrap_or(ctx.node)];
        let Some(dz_slot) = [first, Some(dy_slot), Some(own)]
            .into_iter()
            .flatten()
            .find(|&s| s != dx_slot && Some(s) != added_to)
        else {
            return Ok(false);
        };
        if first.is_some_and(|f| f != dz_slot) || added_to == Some(dx_slot) {
            return Ok(false);
        }
        ws.grads.swap(dy_slot, dz_slot);
        let x = &ws.acts[ws.slots.slot[xn]];
        let y = &ws.acts[ws.slots.slot[self.relu]];
        let (dz, dx) = two_mut(&mut ws.grads, dz_slot, dx_slot);
        layer.backward_relu(backend, ctx, x, y, dz, residual.is_some(), Some(dx))?;
        if let Some(g) = added_to {
            let (dz, g) = two_mut(&mut ws.grads, dz_slot, g);
            backend.axpy(1.0, dz.buffer(), g.buffer_mut())?;
        }
        ready[xn] = true;
        if let Some(j) = residual {
            ready[j] = true;
        }
        Ok(true)
    }
}
