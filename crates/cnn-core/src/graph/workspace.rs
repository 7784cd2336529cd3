//! A graph's workspaces: the buffers of one batch size (the input, the
//! nodes' outputs and output gradients, scratch), made once and reused so
//! that a steady-state step allocates nothing. A batch smaller than a kept
//! workspace's runs in that workspace, every buffer shortened in the
//! memory it already holds (on backends that can:
//! [`MemoryOps::resize_within`](crate::backend::MemoryOps::resize_within)),
//! so that an epoch's last partial batch, training or evaluation, needs no
//! workspace of its own: one evaluation workspace per run instead of one
//! for the full and one for the last batch of each split (issue #20).

use crate::backend::Backend;
use crate::error::{CnnError, Result};
use crate::per_size::PerSize;
use crate::shape::Shape;
use crate::tensor::Tensor;

use super::slots::Slots;

/// Buffers for one batch size.
pub(super) struct Workspace<B: Backend> {
    /// The batch size the buffers hold now.
    pub batch: usize,
    /// The batch size they were made for (the most they can hold).
    pub capacity: usize,
    pub input: Tensor<B>,
    /// Where each node's output lives in `acts`: one buffer per node for a
    /// training forward, shared buffers for an evaluation forward.
    pub slots: Slots,
    /// The buffers nodes write their outputs to (see `slots`).
    pub acts: Vec<Tensor<B>>,
    /// Where each node's output gradient lives in `grads` (training only):
    /// shared buffers, but one of its own for a node whose gradient is kept.
    pub grad_slots: Slots,
    /// The buffers that hold the gradients of the loss with respect to the
    /// nodes' outputs (see `grad_slots`).
    pub grads: Vec<Tensor<B>>,
    /// For a node read by several consumers, the index in `scratch` of the
    /// buffer where a second gradient lands before it is added to its own.
    pub scratch_of: Vec<Option<usize>>,
    /// Those buffers, one per shape (each is used within one node's
    /// backward only).
    pub scratch: Vec<Tensor<B>>,
    /// The gradient with respect to the graph input, made by the first
    /// backward that asks for it (`Graph::backward_to_input`).
    pub input_grad: Option<Tensor<B>>,
    /// For a max pooling with a folded ReLU before it: the pooled values
    /// before the ReLU (forward), then their gradient (backward).
    pub pooled: Vec<Option<Tensor<B>>>,
}

/// What a workspace is made from: the graph's per-sample shapes and
/// which buffers its nodes' outputs and gradients take.
pub(super) struct Layout<'a> {
    /// Per-sample input shape.
    pub input: &'a Shape,
    /// Per-sample output shape of every node.
    pub shapes: &'a [Shape],
    /// How many nodes read each node's output.
    pub consumers: &'a [usize],
    /// Per node: a ReLU folded into the max pooling after it.
    pub folded: &'a [bool],
    /// Where the outputs live.
    pub slots: Slots,
    /// Where the output gradients live (`None`: an evaluation workspace,
    /// no gradients).
    pub grad_slots: Option<Slots>,
}

impl<B: Backend> Workspace<B> {
    /// Buffers of `batch` samples for `layout`.
    pub fn new(backend: &B, batch: usize, layout: Layout<'_>) -> Result<Self> {
        let zeros = |s: &Shape| Tensor::zeros(backend, s.with_batch(batch));
        let acts = layout
            .slots
            .shapes
            .iter()
            .map(zeros)
            .collect::<Result<Vec<_>>>()?;
        let (grad_slots, grads, scratch_of, scratch) = match layout.grad_slots {
            Some(grad_slots) => {
                let grads = grad_slots.shapes.iter().map(zeros).collect::<Result<_>>()?;
                let mut scratch_shapes: Vec<&Shape> = Vec::new();
                let scratch_of = layout
                    .shapes
                    .iter()
                    .zip(layout.consumers)
                    .map(|(s, &c)| {
                        (c > 1).then(|| match scratch_shapes.iter().position(|t| *t == s) {
                            Some(k) => k,
                            None => {
                                scratch_shapes.push(s);
                                scratch_shapes.len() - 1
                            }
                        })
                    })
                    .collect();
                let scratch = scratch_shapes
                    .into_iter()
                    .map(zeros)
                    .collect::<Result<_>>()?;
                (grad_slots, grads, scratch_of, scratch)
            }
            None => (Slots::none(), Vec::new(), Vec::new(), Vec::new()),
        };
        // Pooled values before a folded ReLU: training only (backward
        // reuses them as scratch); an evaluation pools in place.
        let (folded, train) = (layout.folded, !grads.is_empty());
        let pooled = (0..layout.shapes.len())
            .map(|i| {
                if train && i > 0 && folded[i - 1] {
                    zeros(&layout.shapes[i]).map(Some)
                } else {
                    Ok(None)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Workspace {
            batch,
            capacity: batch,
            input: zeros(layout.input)?,
            slots: layout.slots,
            acts,
            grad_slots,
            grads,
            scratch_of,
            scratch,
            input_grad: None,
            pooled,
        })
    }

    /// Node `i`'s output gradient, where its buffer still holds it.
    pub fn grad(&self, i: usize) -> Option<&Tensor<B>> {
        if !*self.grad_slots.holds.get(i)? {
            return None;
        }
        self.grads.get(self.grad_slots.slot[i])
    }

    /// Give every buffer `n` samples (at most `capacity`) in the memory it
    /// holds. False, with nothing changed, where the backend cannot
    /// resize its buffers. Every buffer is written before it is read in a
    /// forward or backward, so what a shortened buffer keeps does not
    /// matter. Allocates nothing.
    fn resize(&mut self, backend: &B, n: usize) -> Result<bool> {
        if n > self.capacity {
            return Ok(false);
        }
        // The input first: a backend that cannot resize says so here,
        // before anything changed.
        if !self.input.resize_batch(backend, n) {
            return Ok(false);
        }
        let rest = self
            .acts
            .iter_mut()
            .chain(&mut self.grads)
            .chain(&mut self.scratch)
            .chain(&mut self.input_grad)
            .chain(self.pooled.iter_mut().flatten());
        for t in rest {
            if !t.resize_batch(backend, n) {
                return Err(CnnError::Graph(format!(
                    "the backend resized the input buffer to {n} samples but not a node's"
                )));
            }
        }
        self.batch = n;
        Ok(true)
    }
}

/// The position in `store` of the workspace for `batch`: one that holds
/// that many samples now; else the smallest made for more, its buffers
/// shortened (where the backend can); else a new one from `make` (keyed
/// by its capacity, which is its batch). The workspace becomes the most
/// recently used. Allocates nothing unless `make` runs.
pub(super) fn index_for<B: Backend, const N: usize>(
    store: &mut PerSize<Workspace<B>, N>,
    backend: &B,
    batch: usize,
    make: impl FnOnce() -> Result<Workspace<B>>,
) -> Result<usize> {
    if let Some(i) = store.position(|_, ws| ws.batch == batch) {
        return Ok(store.touch(i));
    }
    let best = store
        .entries()
        .enumerate()
        .filter(|(_, (_, ws))| ws.capacity >= batch)
        .min_by_key(|(_, (_, ws))| ws.capacity)
        .map(|(i, _)| i);
    if let Some(i) = best
        && store[i].resize(backend, batch)?
    {
        return Ok(store.touch(i));
    }
    store.use_or_insert(batch, make)
}

/// The workspace in `store` that holds `batch` samples now, if any.
pub(super) fn at_batch<B: Backend, const N: usize>(
    store: &PerSize<Workspace<B>, N>,
    batch: usize,
) -> Option<&Workspace<B>> {
    store
        .entries()
        .map(|(_, ws)| ws)
        .find(|ws| ws.batch == batch)
}
