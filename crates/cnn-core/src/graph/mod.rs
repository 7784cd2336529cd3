//! The layer graph: nodes in execution order, forward in train or eval
//! mode, backward from the loss gradient, parameters and the state_dict.
//!
//! Backward is explicit and layer-wise (no autodiff tape): each layer caches
//! what it needs during a training forward. Activations and their gradients
//! live in a workspace allocated once per batch size and reused, so a
//! steady-state training step allocates nothing. Gradient buffers are
//! shared between nodes whose gradients are never live at once
//! (`slots.rs`), unless [`Graph::set_keep_gradients`] asks for every one.

mod counts;
mod data_parallel;
mod fuse;
mod slots;
mod spec;
mod state;
mod workspace;

pub use counts::{LayerCount, ModelCounts};
pub use data_parallel::{DataParallel, samples_independent};
pub use spec::{GraphBuilder, GraphSpec, INPUT, NodeOp, NodeSpec, ResolvedGraph};
pub use state::{ArrayData, NamedArray, StateKind};

use crate::backend::{Activation, Backend};
use crate::error::{CnnError, Result};
use crate::layers::{ForwardCtx, Layer, LayerParams, LayerSpec, Mode, build_layer};
use crate::param::Param;
use crate::per_size::PerSize;
use crate::rng::CounterRng;
use crate::shape::Shape;
use crate::tensor::Tensor;
use slots::Slots;
use workspace::{Layout, Workspace};

/// How many workspaces each mode keeps, for the batch sizes a run
/// alternates between (a last partial batch runs in the full batch's
/// workspace where the backend can shorten buffers, see `workspace.rs`;
/// elsewhere it keeps one of its own). Training and evaluation keep theirs
/// apart, so a run that alternates between them never evicts and
/// reallocates a workspace each epoch (which grew a ResNet-20 run's memory
/// by 0.6 GB an epoch: glibc keeps freed blocks of that size in its
/// arenas).
const MAX_WORKSPACES: usize = 3;

enum Node<B: Backend> {
    Layer(Box<dyn Layer<B>>),
    Add,
}

impl<B: Backend> Node<B> {
    /// The node's trainable parameters (an `Add` has none).
    fn params(&self) -> LayerParams<&Param<B>> {
        match self {
            Node::Layer(layer) => layer.params(),
            Node::Add => LayerParams::none(),
        }
    }

    /// The node's trainable parameters, mutably.
    fn params_mut(&mut self) -> LayerParams<&mut Param<B>> {
        match self {
            Node::Layer(layer) => layer.params_mut(),
            Node::Add => LayerParams::none(),
        }
    }
}

/// A built model on backend `B`.
pub struct Graph<B: Backend> {
    backend: B,
    spec: GraphSpec,
    resolved: ResolvedGraph,
    nodes: Vec<Node<B>>,
    consumers: Vec<usize>,
    seed: u64,
    step: u64,
    /// Workspaces of training forwards: activations and their gradients.
    workspaces: PerSize<Workspace<B>, MAX_WORKSPACES>,
    /// Workspaces of evaluation forwards: activations only (no backward
    /// follows an evaluation forward).
    eval_workspaces: PerSize<Workspace<B>, MAX_WORKSPACES>,
    /// Batch size and layer mode of the last forward (backward needs a
    /// training forward or [`Graph::forward_host_for_gradients`]).
    last_forward: Option<(usize, Mode)>,
    /// Whether the last forward wrote a training workspace (one buffer per
    /// node, and gradients): every training forward, and an evaluation
    /// forward for gradients.
    last_kept: bool,
    /// Per node, during backward: whether its output gradient holds a value
    /// yet. Kept here, one flag per node, so that backward allocates nothing.
    ready: Vec<bool>,
    /// Per node: a ReLU whose only consumer is the max pooling right after
    /// it, folded into that pooling (see [`fold_relu_into_pool`]).
    folded: Vec<bool>,
    /// Per node: whether its output gradient keeps a buffer of its own, so
    /// that [`Graph::node_grad`] sees it after backward (all of them with
    /// [`Graph::set_keep_gradients`]; a data-parallel replica's layers
    /// whose parameter gradients are put together from the parts).
    keep_grads: Vec<bool>,
    /// Per node: an output that no backward reads (see
    /// [`backward_free_outputs`]); a training forward shares its buffer,
    /// unless [`Graph::set_keep_gradients`] keeps every output too.
    backward_free: Vec<bool>,
    /// Per node: the batch norm + (add +) ReLU group it heads, run as one
    /// op where [`Graph::set_batch_norm_fusion`] allows (`fuse.rs`).
    fused: Vec<Option<fuse::BnRelu>>,
    /// Whether those groups run fused (on by default).
    fusion: bool,
    /// Per node: whether the last forward left its output unformed (inside
    /// a fused group).
    unformed: Vec<bool>,
    /// How many of those groups the last backward ran as one op.
    fused_backward: usize,
    /// Per node: a ReLU that writes its output over its input's buffer
    /// (see [`in_place_relus`]).
    in_place: Vec<bool>,
}

/// The buffers of a workspace other than the one being written.
struct Others<'a, T> {
    before: &'a [T],
    after: &'a [T],
    out: usize,
}

impl<'a, T> Others<'a, T> {
    /// Buffer `i` (never the one being written: a node does not read its
    /// own buffer, by construction of the slots).
    fn get(&self, i: usize) -> &'a T {
        if i < self.out {
            &self.before[i]
        } else {
            &self.after[i - self.out - 1]
        }
    }
}

/// Buffer `out` mutably, and read access to the others.
fn split_out<T>(buffers: &mut [T], out: usize) -> (&mut T, Others<'_, T>) {
    let (before, rest) = buffers.split_at_mut(out);
    let (y, after) = rest.split_first_mut().expect("the slot exists");
    (y, Others { before, after, out })
}

/// The node whose output node `i` reads (`None`: the graph input): a max
/// pooling with a folded ReLU before it reads the ReLU's input.
fn effective_input(folded: &[bool], resolved: &ResolvedGraph, i: usize) -> Option<usize> {
    if i > 0 && folded[i - 1] {
        resolved.inputs[i - 1]
    } else {
        resolved.inputs[i]
    }
}

/// Which nodes' outputs no backward reads, so that a training forward may
/// reuse their buffers once their last reader has run: a batch norm (its
/// backward reads its input) or a residual add (it reads nothing), read
/// only by ReLUs (whose backward reads their output: `y > 0` where `x >
/// 0`, on every backend) and adds; never the graph's output. In ResNet-20
/// that is three of a basic block's seven nodes.
fn backward_free_outputs(spec: &GraphSpec, reads: &[Vec<usize>], folded: &[bool]) -> Vec<bool> {
    let nodes = &spec.nodes;
    let reads_only_output = |i: usize| {
        !folded[i]
            && matches!(
                nodes[i].op,
                NodeOp::Add { .. } | NodeOp::Layer(LayerSpec::Activation(Activation::Relu))
            )
    };
    (0..nodes.len())
        .map(|k| {
            let own = matches!(
                nodes[k].op,
                NodeOp::Add { .. } | NodeOp::Layer(LayerSpec::BatchNorm2d { .. })
            );
            let mut readers = (0..nodes.len()).filter(|&i| !folded[i] && reads[i].contains(&k));
            own && k + 1 != nodes.len() && readers.all(reads_only_output)
        })
        .collect()
}

/// Which nodes are a ReLU that may write its output over its input's
/// buffer, as PyTorch's `ReLU(inplace=True)`: the input is a convolution's,
/// a linear layer's, a batch norm's or a residual add's (whose backwards
/// never read their own output), read by nothing else. The ReLU's backward
/// reads its output, which is then in that buffer. In VGG that saves a
/// buffer of each block's first convolution (VGG keeps one per node in
/// training: no batch norm or add to share).
fn in_place_relus(
    spec: &GraphSpec,
    resolved: &ResolvedGraph,
    consumers: &[usize],
    folded: &[bool],
) -> Vec<bool> {
    let nodes = &spec.nodes;
    (0..nodes.len())
        .map(|i| {
            let relu = matches!(
                nodes[i].op,
                NodeOp::Layer(LayerSpec::Activation(Activation::Relu))
            );
            let over = resolved.inputs[i].is_some_and(|j| {
                consumers[j] == 1
                    && !folded[j]
                    && matches!(
                        nodes[j].op,
                        NodeOp::Add { .. }
                            | NodeOp::Layer(
                                LayerSpec::Conv2d { .. }
                                    | LayerSpec::Linear { .. }
                                    | LayerSpec::BatchNorm2d { .. }
                            )
                    )
            });
            relu && !folded[i] && over
        })
        .collect()
}

/// [`backward_free_outputs`], and the outputs an in-place ReLU writes
/// over (no backward reads them either).
fn shareable_outputs(
    spec: &GraphSpec,
    resolved: &ResolvedGraph,
    folded: &[bool],
    in_place: &[bool],
) -> Vec<bool> {
    let mut free = backward_free_outputs(spec, &node_reads(resolved, folded), folded);
    for (i, _) in in_place.iter().enumerate().filter(|(_, on)| **on) {
        if let Some(j) = resolved.inputs[i] {
            free[j] = true;
        }
    }
    free
}

/// The nodes whose outputs each node reads (a max pooling with a folded
/// ReLU before it reads the ReLU's input; an add reads both operands).
fn node_reads(resolved: &ResolvedGraph, folded: &[bool]) -> Vec<Vec<usize>> {
    (0..resolved.shapes.len())
        .map(|i| {
            let add = match resolved.adds[i] {
                Some(Some(j)) => Some(j),
                _ => None,
            };
            effective_input(folded, resolved, i)
                .into_iter()
                .chain(add)
                .collect()
        })
        .collect()
}

/// Which nodes are a ReLU read only by the max pooling that follows it.
/// Such a pair runs as max pooling, then ReLU on the (four times smaller)
/// pooled tensor: ReLU is non-decreasing, so `relu(max(window)) =
/// max(relu(window))`, and its gradient is zero wherever the two pick
/// different elements (all of them <= 0). Only the sign of a zero may differ
/// (-0 in, -0 out instead of +0). This saves a pass over the largest
/// activation forward and two backward.
fn fold_relu_into_pool(
    spec: &GraphSpec,
    resolved: &ResolvedGraph,
    consumers: &[usize],
) -> Vec<bool> {
    let nodes = &spec.nodes;
    (0..nodes.len())
        .map(|i| {
            let relu = matches!(
                nodes[i].op,
                NodeOp::Layer(LayerSpec::Activation(Activation::Relu))
            );
            let pool_next = nodes
                .get(i + 1)
                .is_some_and(|n| matches!(n.op, NodeOp::Layer(LayerSpec::MaxPool2d(_))))
                && resolved.inputs.get(i + 1) == Some(&Some(i));
            relu && pool_next && consumers[i] == 1
        })
        .collect()
}

impl<B: Backend> std::fmt::Debug for Graph<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("input", &self.spec.input)
            .field("nodes", &self.spec.nodes.len())
            .field("seed", &self.seed)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Graph<B> {
    /// Instantiate `spec` on `backend`, initialising parameters from `seed`
    /// (PyTorch's default schemes; see [`crate::init`]).
    pub fn new(backend: &B, spec: GraphSpec, seed: u64) -> Result<Self> {
        let resolved = spec.resolve()?;
        let mut nodes = Vec::with_capacity(spec.nodes.len());
        let mut consumers = vec![0usize; spec.nodes.len()];
        for (i, node) in spec.nodes.iter().enumerate() {
            if let Some(j) = resolved.inputs[i] {
                consumers[j] += 1;
            }
            if let Some(Some(j)) = resolved.adds[i] {
                consumers[j] += 1;
            }
            let in_shape = resolved.inputs[i].map_or(&spec.input, |j| &resolved.shapes[j]);
            nodes.push(match &node.op {
                NodeOp::Layer(layer) => {
                    let mut rng = |k: usize| CounterRng::new(seed, (i as u64) << 8 | k as u64);
                    Node::Layer(build_layer(backend, &node.name, layer, in_shape, &mut rng)?)
                }
                NodeOp::Add { .. } => Node::Add,
            });
        }
        let folded = fold_relu_into_pool(&spec, &resolved, &consumers);
        let in_place = in_place_relus(&spec, &resolved, &consumers, &folded);
        let backward_free = shareable_outputs(&spec, &resolved, &folded, &in_place);
        let fused = fuse::batch_norm_relu_groups(&spec, &resolved, &consumers, &folded);
        Ok(Graph {
            fused,
            fusion: true,
            unformed: vec![false; nodes.len()],
            fused_backward: 0,
            backend: backend.clone(),
            spec,
            resolved,
            folded,
            ready: vec![false; nodes.len()],
            keep_grads: vec![false; nodes.len()],
            backward_free,
            in_place,
            nodes,
            consumers,
            seed,
            step: 0,
            workspaces: PerSize::new(),
            eval_workspaces: PerSize::new(),
            last_forward: None,
            last_kept: false,
        })
    }

    /// The backend the graph runs on.
    pub fn backend(&self) -> &B {
        &self.backend
    }
    /// The spec it was built from.
    pub fn spec(&self) -> &GraphSpec {
        &self.spec
    }
    /// Per-sample input shape.
    pub fn input_shape(&self) -> &Shape {
        &self.spec.input
    }
    /// Per-sample output shape.
    pub fn output_shape(&self) -> &Shape {
        self.resolved
            .shapes
            .last()
            .expect("a resolved graph has at least one node")
    }
    /// Per-sample output shape of every node.
    pub fn node_shapes(&self) -> &[Shape] {
        &self.resolved.shapes
    }
    /// The seed parameters and dropout masks derive from.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Training forwards so far (keys the dropout masks).
    pub fn step(&self) -> u64 {
        self.step
    }
    /// Set the step counter (for resuming a run).
    pub fn set_step(&mut self, step: u64) {
        self.step = step;
    }

    /// The position of the workspace for `batch` in `mode`'s store (see
    /// [`workspace::index_for`]), made on first use.
    fn workspace_index(&mut self, batch: usize, mode: Mode) -> Result<usize> {
        let (b, shapes) = (&self.backend, &self.resolved.shapes);
        let (consumers, folded, input) = (&self.consumers, &self.folded, &self.spec.input);
        let (keep_grads, backward_free) = (&self.keep_grads, &self.backward_free);
        let in_place = &self.in_place;
        let store = match mode {
            Mode::Train => &mut self.workspaces,
            Mode::Eval => &mut self.eval_workspaces,
        };
        let resolved = &self.resolved;
        workspace::index_for(store, b, batch, || {
            let reads = node_reads(resolved, folded);
            let n = shapes.len();
            // Training keeps every output backward reads (all of them when
            // every gradient is kept); evaluation only the graph's.
            let keep_all = keep_grads.iter().all(|&k| k);
            let keep: Vec<bool> = match mode {
                Mode::Train => (0..n).map(|i| !backward_free[i] || keep_all).collect(),
                Mode::Eval => (0..n).map(|i| i + 1 == n).collect(),
            };
            let layout = Layout {
                input,
                shapes,
                consumers,
                folded,
                slots: Slots::shared(shapes, &reads, folded, &keep, in_place),
                grad_slots: (mode == Mode::Train)
                    .then(|| Slots::backward(shapes, &reads, folded, keep_grads)),
            };
            Workspace::new(b, batch, layout)
        })
    }

    fn check_batch_shape(&self, shape: &Shape) -> Result<usize> {
        let n = shape.dim(0).unwrap_or(0);
        // Compare dimension slices: `Shape::without_batch` would allocate.
        let same_sample_shape = shape.dims().get(1..) == Some(self.spec.input.dims());
        if n == 0 || !same_sample_shape {
            return Err(CnnError::ShapeMismatch {
                layer: INPUT.to_string(),
                expected: self.spec.input.with_batch(n.max(1)),
                actual: shape.clone(),
            });
        }
        Ok(n)
    }

    /// Run the graph on `x` (`[N, ...input shape]`) and return the output
    /// (`[N, ...output shape]`). A training forward advances the step and
    /// caches what [`Graph::backward`] needs.
    pub fn forward(&mut self, x: &Tensor<B>, mode: Mode) -> Result<&Tensor<B>> {
        let n = self.check_batch_shape(x.shape())?;
        let w = self.workspace_index(n, mode)?;
        let ws = match mode {
            Mode::Train => &mut self.workspaces[w],
            Mode::Eval => &mut self.eval_workspaces[w],
        };
        self.backend.copy(x.buffer(), ws.input.buffer_mut())?;
        self.run_forward(w, mode, mode)
    }

    /// Like [`Graph::forward`], uploading host data (`n` samples, row-major)
    /// straight into the graph's input buffer.
    pub fn forward_host(&mut self, x: &[f32], n: usize, mode: Mode) -> Result<&Tensor<B>> {
        // Count the values without building the batch `Shape` (an allocation
        // per step).
        if n == 0 || self.spec.input.numel().checked_mul(n) != Some(x.len()) {
            return Err(CnnError::value(
                "input batch",
                format!(
                    "{} values given for {n} samples of shape {}",
                    x.len(),
                    self.spec.input
                ),
            ));
        }
        let w = self.workspace_index(n, mode)?;
        let ws = match mode {
            Mode::Train => &mut self.workspaces[w],
            Mode::Eval => &mut self.eval_workspaces[w],
        };
        self.backend.upload_into(x, ws.input.buffer_mut())?;
        self.run_forward(w, mode, mode)
    }

    /// An evaluation-mode forward (batch norm with its running statistics,
    /// no dropout; the step does not advance) that keeps every node's
    /// output, so that [`Graph::backward`] or [`Graph::backward_to_input`]
    /// can follow it: the gradients of an evaluation, as PyTorch gives them
    /// after `model.eval()` (for Grad-CAM and saliency maps). It writes a
    /// training workspace: run it between training steps only when their
    /// workspace may be reallocated.
    pub fn forward_host_for_gradients(&mut self, x: &[f32], n: usize) -> Result<&Tensor<B>> {
        if n == 0 || self.spec.input.numel().checked_mul(n) != Some(x.len()) {
            return Err(CnnError::value(
                "input batch",
                format!(
                    "{} values given for {n} samples of shape {}",
                    x.len(),
                    self.spec.input
                ),
            ));
        }
        let w = self.workspace_index(n, Mode::Train)?;
        self.backend
            .upload_into(x, self.workspaces[w].input.buffer_mut())?;
        self.run_forward(w, Mode::Train, Mode::Eval)
    }

    /// Run the layers in `mode` on workspace `w` of the `store` mode's
    /// workspaces.
    fn run_forward(&mut self, w: usize, store: Mode, mode: Mode) -> Result<&Tensor<B>> {
        if mode == Mode::Train {
            self.step += 1;
        }
        let ws = match store {
            Mode::Train => &mut self.workspaces[w],
            Mode::Eval => &mut self.eval_workspaces[w],
        };
        self.unformed.fill(false);
        // The nodes up to here ran inside a fused group.
        let mut fused_to = 0;
        for i in 0..self.nodes.len() {
            if self.folded[i] || i < fused_to {
                continue; // runs after the pooling that follows, or ran fused
            }
            if ws.slots.in_place[i] {
                // A ReLU over its input's buffer (the out-of-place ReLU's bits).
                let y = &mut ws.acts[ws.slots.slot[i]];
                self.backend.relu_in_place(y.buffer_mut())?;
                continue;
            }
            let x_node = effective_input(&self.folded, &self.resolved, i);
            let ctx = ForwardCtx {
                mode,
                seed: self.seed,
                step: self.step,
                node: i,
            };
            // Fused in training, and in evaluations no backward follows (an
            // eval-mode forward kept for a backward runs the ops apart: the
            // fused backward is training's).
            let evaluation = store == Mode::Eval;
            let group = self.fused[i]
                .filter(|_| self.fusion && (mode == Mode::Train || evaluation))
                .and_then(|g| {
                    let how = g.fusion(i, x_node, &ws.slots, &self.keep_grads, evaluation)?;
                    Some((g, how))
                });
            if let (Some((g, how)), Node::Layer(layer)) = (group, &mut self.nodes[i]) {
                let (acts, slots) = (&mut ws.acts, &ws.slots);
                let unformed = &mut self.unformed;
                g.forward(
                    how,
                    &mut **layer,
                    &self.backend,
                    &ctx,
                    x_node,
                    &ws.input,
                    acts,
                    slots,
                    unformed,
                )?;
                fused_to = g.relu + 1;
                continue;
            }
            let slot = &ws.slots.slot;
            let (y, others) = split_out(&mut ws.acts, slot[i]);
            let x = x_node.map_or(&ws.input, |j| others.get(slot[j]));
            match &mut self.nodes[i] {
                Node::Layer(layer) if i > 0 && self.folded[i - 1] => {
                    // Max pooling of the ReLU's input, then the ReLU: over
                    // the pooled values kept for backward, or in place
                    // where no backward follows (an evaluation workspace
                    // has no pooled buffers), with the same bits.
                    match ws.pooled[i].as_mut() {
                        Some(pooled) => {
                            layer.forward(&self.backend, &ctx, x, pooled)?;
                            self.backend.activation_forward(
                                Activation::Relu,
                                pooled.buffer(),
                                y.buffer_mut(),
                            )?;
                        }
                        None => {
                            layer.forward(&self.backend, &ctx, x, y)?;
                            self.backend.relu_in_place(y.buffer_mut())?;
                        }
                    }
                }
                Node::Layer(layer) => layer.forward(&self.backend, &ctx, x, y)?,
                Node::Add => {
                    let other = match self.resolved.adds[i] {
                        Some(Some(j)) => others.get(slot[j]),
                        _ => &ws.input,
                    };
                    self.backend
                        .add(x.buffer(), other.buffer(), y.buffer_mut())?;
                }
            }
        }
        self.last_forward = Some((ws.batch, mode));
        self.last_kept = store == Mode::Train;
        let last = ws.slots.slot[self.nodes.len() - 1];
        Ok(&ws.acts[last])
    }

    /// Back-propagate `dlogits` (the loss gradient with respect to the last
    /// training forward's output). Parameter gradients accumulate.
    pub fn backward(&mut self, dlogits: &Tensor<B>) -> Result<()> {
        self.run_backward(dlogits, false, false)
    }

    /// [`Graph::backward`], and the gradient with respect to the graph
    /// input (`[N, ...input shape]`), for saliency maps. After
    /// [`Graph::forward_host_for_gradients`] these are the evaluation-mode
    /// gradients.
    pub fn backward_to_input(&mut self, dlogits: &Tensor<B>) -> Result<&Tensor<B>> {
        self.run_backward(dlogits, false, true)?;
        let (batch, _) = self
            .last_forward
            .ok_or_else(|| CnnError::Graph("backward before forward".into()))?;
        workspace::at_batch(&self.workspaces, batch)
            .and_then(|ws| ws.input_grad.as_ref())
            .ok_or_else(|| CnnError::Graph("no input gradient was kept".into()))
    }

    /// [`Graph::backward`]; with `part`, each layer runs
    /// [`Layer::backward_part`] (one part of a data-parallel step); with
    /// `to_input`, the input gradient is kept in the workspace's
    /// `input_grad`.
    fn run_backward(&mut self, dlogits: &Tensor<B>, part: bool, to_input: bool) -> Result<()> {
        let (batch, mode) = match self.last_forward {
            Some(last) if self.last_kept => last,
            _ => {
                return Err(CnnError::Graph(
                    "backward needs a preceding training-mode forward".into(),
                ));
            }
        };
        let w = self.workspace_index(batch, Mode::Train)?;
        let last = self.nodes.len() - 1;
        let ws = &mut self.workspaces[w];
        let last_slot = ws.grad_slots.slot[last];
        if dlogits.shape() != ws.grads[last_slot].shape() {
            return Err(CnnError::ShapeMismatch {
                layer: "loss gradient".into(),
                expected: ws.grads[last_slot].shape().clone(),
                actual: dlogits.shape().clone(),
            });
        }
        self.backend
            .copy(dlogits.buffer(), ws.grads[last_slot].buffer_mut())?;
        if to_input && ws.input_grad.is_none() {
            ws.input_grad = Some(Tensor::zeros(&self.backend, ws.input.shape().clone())?);
        }
        // Whether the input gradient holds a value yet.
        let mut input_ready = false;
        let ready = &mut self.ready;
        self.fused_backward = 0;
        ready.fill(false);
        ready[last] = true;
        let step = self.step;
        for i in (0..self.nodes.len()).rev() {
            if !ready[i] {
                continue; // nothing downstream of this node reaches the loss
            }
            let ctx = ForwardCtx {
                mode,
                seed: self.seed,
                step,
                node: i,
            };
            // A batch norm + (add +) ReLU group whose forward ran fused.
            if let Some((k, g)) = fuse::ending_at(&self.fused, i).filter(|&(k, _)| self.unformed[k])
                && let Node::Layer(bn) = &mut self.nodes[k]
            {
                let x_node = effective_input(&self.folded, &self.resolved, k);
                let ctx = ForwardCtx { node: k, ..ctx };
                let keep = &self.keep_grads;
                if g.backward(&mut **bn, &self.backend, &ctx, x_node, ws, ready, keep)? {
                    self.fused_backward += 1;
                    continue;
                }
            }
            let input = effective_input(&self.folded, &self.resolved, i);
            let folded_before = i > 0 && self.folded[i - 1];
            let grad_slot = &ws.grad_slots.slot;
            match &mut self.nodes[i] {
                Node::Layer(layer) => {
                    // dy, and the gradient buffer of the node read (never
                    // dy's: see `Slots::backward`).
                    let (dy, dx_node) = match input {
                        Some(j) => {
                            let (g, others) = split_out(&mut ws.grads, grad_slot[j]);
                            (others.get(grad_slot[i]), Some(g))
                        }
                        None => (&ws.grads[grad_slot[i]], None),
                    };
                    // A node whose output is shared (backward-free) reads
                    // neither its x nor its y here: see
                    // `backward_free_outputs`.
                    let x = input.map_or(&ws.input, |j| &ws.acts[ws.slots.slot[j]]);
                    let y = &ws.acts[ws.slots.slot[i]];
                    let be = &self.backend;
                    // After a folded ReLU: its gradient on the pooled
                    // values first; the pooling then routes that.
                    let dy: &Tensor<B> = if folded_before {
                        let pooled = ws.pooled[i].as_mut().ok_or_else(|| {
                            CnnError::Graph(format!("node {i} has no pooled buffer"))
                        })?;
                        be.activation_backward(
                            Activation::Relu,
                            y.buffer(),
                            y.buffer(),
                            dy.buffer(),
                            pooled.buffer_mut(),
                        )?;
                        pooled
                    } else {
                        dy
                    };
                    let mut run = |dx: Option<&mut Tensor<B>>| {
                        if part {
                            layer.backward_part(be, &ctx, x, y, dy, dx)
                        } else {
                            layer.backward(be, &ctx, x, y, dy, dx)
                        }
                    };
                    match (input, ws.input_grad.as_mut()) {
                        (None, Some(dx)) if to_input => {
                            if input_ready {
                                // A second reader of the input (allocates:
                                // input gradients are not a training step's).
                                let mut more = Tensor::zeros(be, dx.shape().clone())?;
                                run(Some(&mut more))?;
                                be.axpy(1.0, more.buffer(), dx.buffer_mut())?;
                            } else {
                                run(Some(dx))?;
                                input_ready = true;
                            }
                        }
                        (None, _) => run(None)?,
                        (Some(j), _) if !ready[j] => {
                            run(dx_node)?;
                            ready[j] = true;
                        }
                        (Some(j), _) => {
                            let scratch = ws.scratch_of[j]
                                .and_then(|k| ws.scratch.get_mut(k))
                                .ok_or_else(|| {
                                    CnnError::Graph(format!("node {j} has no gradient scratch"))
                                })?;
                            run(Some(scratch))?;
                            let dx = dx_node.ok_or_else(|| {
                                CnnError::Graph(format!("node {j} has no gradient buffer"))
                            })?;
                            self.backend.axpy(1.0, scratch.buffer(), dx.buffer_mut())?;
                        }
                    }
                }
                Node::Add => {
                    let other = self.resolved.adds[i].flatten();
                    let dy = &ws.grads[grad_slot[i]];
                    if to_input && let Some(dx) = ws.input_grad.as_mut() {
                        // The graph input read directly by the sum.
                        let reads = usize::from(input.is_none())
                            + usize::from(self.resolved.adds[i] == Some(None));
                        for _ in 0..reads {
                            if input_ready {
                                self.backend.axpy(1.0, dy.buffer(), dx.buffer_mut())?;
                            } else {
                                self.backend.copy(dy.buffer(), dx.buffer_mut())?;
                                input_ready = true;
                            }
                        }
                    }
                    for j in [input, other].into_iter().flatten() {
                        let (g, others) = split_out(&mut ws.grads, grad_slot[j]);
                        let dy = others.get(grad_slot[i]);
                        if ready[j] {
                            self.backend.axpy(1.0, dy.buffer(), g.buffer_mut())?;
                        } else {
                            self.backend.copy(dy.buffer(), g.buffer_mut())?;
                            ready[j] = true;
                        }
                    }
                }
            }
        }
        if let Some(dx) = ws.input_grad.as_mut().filter(|_| to_input && !input_ready) {
            // No path from the input reaches the output.
            self.backend.fill(dx.buffer_mut(), 0.0)?;
        }
        Ok(())
    }

    /// Node `i`'s input and the gradient with respect to its output, from
    /// the last training forward and backward.
    fn node_input_and_grad(&self, i: usize) -> Option<(&Tensor<B>, &Tensor<B>)> {
        let (batch, Mode::Train) = self.last_forward? else {
            return None;
        };
        let ws = workspace::at_batch(&self.workspaces, batch)?;
        let x = match self.resolved.inputs[i] {
            None => &ws.input,
            Some(j) if ws.slots.holds[j] => ws.acts.get(ws.slots.slot[j])?,
            Some(_) => return None,
        };
        Some((x, ws.grad(i)?))
    }

    /// Whether every node's output gradient, and every node's output in a
    /// training forward, keeps a buffer of its own, so that
    /// [`Graph::node_grad`] and [`Graph::node_output`] see all of them
    /// (for anomaly detection and Grad-CAM). Off by default: a node's
    /// gradient then shares its buffer with others whose gradients are
    /// never live at the same time, and so do the outputs no backward
    /// reads (batch norm's before a ReLU, residual adds'); only some
    /// survive. The results are the same bits either way. Drops the
    /// training workspaces (reallocated on the next forward).
    pub fn set_keep_gradients(&mut self, on: bool) {
        self.keep_node_gradients(vec![on; self.nodes.len()]);
    }

    /// Drop every workspace, training and evaluation (the next forward
    /// makes its own again), so that their memory can serve what comes
    /// next: a run's final test evaluation, at batch sizes of its own,
    /// then peaks at what it needs instead of adding to the training and
    /// validation workspaces. Parameters, gradients and statistics stay.
    pub fn release_workspaces(&mut self) {
        self.workspaces.clear();
        self.eval_workspaces.clear();
        self.last_forward = None;
        self.last_kept = false;
    }

    /// Whether every node's gradient is kept ([`Graph::set_keep_gradients`]).
    pub fn keeps_gradients(&self) -> bool {
        self.keep_grads.iter().all(|&k| k)
    }

    /// Keep the output gradients of the nodes marked in `keep` (one flag
    /// per node); drops the training workspaces if that changes anything.
    pub(crate) fn keep_node_gradients(&mut self, keep: Vec<bool>) {
        if keep != self.keep_grads {
            self.keep_grads = keep;
            self.workspaces.clear();
            if self.last_kept {
                self.last_forward = None;
                self.last_kept = false;
            }
        }
    }

    /// Whether ReLUs read only by the max pooling right after them run
    /// folded into it (on by default; the results are the same up to the
    /// sign of a zero). Off runs every node as written, for measurements
    /// and checks. Drops the workspaces (reallocated on the next forward).
    pub fn set_relu_folding(&mut self, on: bool) {
        self.folded = if on {
            fold_relu_into_pool(&self.spec, &self.resolved, &self.consumers)
        } else {
            vec![false; self.nodes.len()]
        };
        self.fused =
            fuse::batch_norm_relu_groups(&self.spec, &self.resolved, &self.consumers, &self.folded);
        self.in_place = in_place_relus(&self.spec, &self.resolved, &self.consumers, &self.folded);
        self.backward_free =
            shareable_outputs(&self.spec, &self.resolved, &self.folded, &self.in_place);
        self.workspaces.clear();
        self.eval_workspaces.clear();
        self.last_forward = None;
        self.last_kept = false;
    }

    /// Whether a batch norm and the (residual add and) ReLU after it run
    /// as one op in training forwards and evaluations (on by default; the same bits either way, see
    /// `graph/fuse.rs`). Off runs every node as written, for measurements
    /// and checks; the batch norm's and the add's outputs are then formed.
    pub fn set_batch_norm_fusion(&mut self, on: bool) {
        self.fusion = on;
    }

    /// How many nodes the last forward ran inside fused groups without
    /// forming their outputs (see [`Graph::set_batch_norm_fusion`]).
    pub fn unformed_outputs(&self) -> usize {
        self.unformed.iter().filter(|&&u| u).count()
    }

    /// Output of node `i` from the last forward, if any forward ran (`None`
    /// for a ReLU folded into the pooling after it: its output is never
    /// formed; the pooling's output is the ReLU's, pooled; and for a batch
    /// norm and a residual add that ran fused with the ReLU after them,
    /// see [`Graph::set_batch_norm_fusion`]).
    pub fn node_output(&self, i: usize) -> Option<&Tensor<B>> {
        if self.folded.get(i) == Some(&true) || self.unformed.get(i) == Some(&true) {
            return None;
        }
        let (batch, _) = self.last_forward?;
        let store = if self.last_kept {
            &self.workspaces
        } else {
            &self.eval_workspaces
        };
        let ws = workspace::at_batch(store, batch)?;
        if !*ws.slots.holds.get(i)? {
            return None; // an evaluation forward reused its buffer
        }
        ws.acts.get(ws.slots.slot[i])
    }

    /// Gradient with respect to node `i`'s output from the last backward at
    /// the last forward's batch size (`None` for a folded ReLU, as for
    /// [`Graph::node_output`], and for a node whose gradient buffer a later
    /// node of the backward reused: [`Graph::set_keep_gradients`] keeps
    /// them all).
    pub fn node_grad(&self, i: usize) -> Option<&Tensor<B>> {
        if self.folded.get(i) == Some(&true) {
            return None;
        }
        let (batch, _) = self.last_forward?;
        workspace::at_batch(&self.workspaces, batch).and_then(|w| w.grad(i))
    }

    /// Node names in execution order.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.spec.nodes.iter().map(|n| n.name.as_str())
    }

    /// Trainable parameters in state_dict order, without allocating.
    pub fn params_iter(&self) -> impl Iterator<Item = &Param<B>> {
        self.nodes.iter().flat_map(Node::params)
    }

    /// Trainable parameters, mutably, in state_dict order, without
    /// allocating (for optimizers in a training step; see
    /// `cnn_optim::Optimizer::step_graph`).
    pub fn params_iter_mut(&mut self) -> impl Iterator<Item = &mut Param<B>> {
        self.nodes.iter_mut().flat_map(Node::params_mut)
    }

    /// Trainable parameters in state_dict order, collected (allocates; a
    /// training step uses [`Graph::params_iter`]).
    pub fn params(&self) -> Vec<&Param<B>> {
        self.params_iter().collect()
    }

    /// Trainable parameters, mutably, collected for APIs that take a slice
    /// (allocates; a training step uses [`Graph::params_iter_mut`]).
    pub fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        self.params_iter_mut().collect()
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.params_iter().map(Param::numel).sum()
    }

    /// Zero every parameter gradient (allocates nothing).
    pub fn zero_grad(&mut self) -> Result<()> {
        // Borrow the nodes and the backend separately rather than cloning
        // the backend: a clone may allocate.
        for p in self.nodes.iter_mut().flat_map(Node::params_mut) {
            p.zero_grad(&self.backend)?;
        }
        Ok(())
    }

    /// A human-readable table: node, kind, output shape, parameters.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{:<24} {:<16} {:<18} {:>10}\n",
            "node", "kind", "output", "params"
        );
        out.push_str(&format!(
            "{:<24} {:<16} {:<18} {:>10}\n",
            INPUT,
            "",
            self.spec.input.to_string(),
            ""
        ));
        for (i, node) in self.spec.nodes.iter().enumerate() {
            let (kind, params) = match (&node.op, &self.nodes[i]) {
                (NodeOp::Layer(s), Node::Layer(l)) => {
                    (s.kind(), l.params().map(Param::numel).sum::<usize>())
                }
                _ => ("add", 0),
            };
            out.push_str(&format!(
                "{:<24} {:<16} {:<18} {:>10}\n",
                node.name,
                kind,
                self.resolved.shapes[i].to_string(),
                params
            ));
        }
        out.push_str(&format!(
            "total trainable parameters: {}\n",
            self.num_params()
        ));
        out
    }
}
