//! Data-parallel training steps: the batch is cut into contiguous parts,
//! one per worker of the backend, and each worker runs the forward and the
//! backward of its part on its own replica of the graph.
//!
//! Why: a LeNet-sized step is a few dozen small ops. Splitting every op
//! across threads costs a fork and a join per op (tens of microseconds
//! each, against ops of a few hundred); splitting the batch costs two per
//! step.
//!
//! A step runs in four phases:
//! 1. in parallel, each replica copies the graph's parameters and runs the
//!    training forward of its part;
//! 2. the logits are gathered and the loss of the whole batch is computed
//!    by the graph's backend, then its gradient is handed back in parts;
//! 3. in parallel, each replica runs the backward of its part: input
//!    gradients, and the parameter gradients that are summed part by part
//!    ([`Layer::part_summed`](crate::layers::Layer::part_summed): the
//!    convolution weights, which the CPU backend sums per contiguous part of
//!    the batch anyway);
//! 4. the graph adds those partial sums in part order and computes the
//!    remaining parameter gradients (linear layers, convolution biases)
//!    from all the parts' inputs and output gradients.
//!
//! On the CPU backend the result is the unsplit step's, bit for bit: every
//! per-sample op is the same arithmetic, and every sum over the batch runs
//! in the same order. Only graphs whose training forward treats each sample
//! on its own can be split: batch normalisation (statistics over the
//! batch) and dropout (masks drawn for the whole batch) keep the unsplit
//! step.

use crate::backend::Backend;
use crate::error::{CnnError, Result};
use crate::graph::{Graph, GraphSpec, Node, NodeOp};
use crate::layers::{LayerSpec, MAX_PARTS, Mode, PartIo};
use crate::losses::SoftmaxCrossEntropy;
use crate::per_size::PerSize;
use crate::tensor::Tensor;

/// How many batch sizes keep their buffers (training, last partial batch).
const MAX_SIZES: usize = 2;

/// The whole batch's loss buffers, for one batch size.
struct WholeBatch<B: Backend> {
    logits: Tensor<B>,
    dlogits: Tensor<B>,
    targets: B::IndexBuffer,
    /// The partner targets of a mixed batch (mixup, CutMix).
    partners: B::IndexBuffer,
    preds: B::IndexBuffer,
}

/// One worker's replica of the graph.
struct Replica<B: Backend> {
    /// A handle whose ops run on the calling thread.
    backend: B,
    graph: Graph<B>,
    /// Loss gradient of the part, per part size (this step's is the
    /// latest).
    dlogits: PerSize<Tensor<B>, MAX_SIZES>,
    /// This step's part: first sample and sample count.
    first: usize,
    n: usize,
    /// The error of the last phase this replica ran, if any.
    outcome: Result<()>,
}

/// Runs training steps of a [`Graph`] split across the backend's workers;
/// see the module docs. [`DataParallel::for_graph`] says `None` where
/// splitting does not apply.
pub struct DataParallel<B: Backend> {
    replicas: Vec<Replica<B>>,
    /// A one-thread handle for the per-layer tasks of phase 4.
    worker: B,
    classes: usize,
    whole: PerSize<WholeBatch<B>, MAX_SIZES>,
    /// Host staging for gathering and scattering the logits.
    host: Vec<f32>,
}

impl<B: Backend> std::fmt::Debug for DataParallel<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataParallel")
            .field("parts", &self.replicas.len())
            .finish_non_exhaustive()
    }
}

/// Whether every layer of `spec` treats each sample on its own in a
/// training forward (no batch normalisation, no dropout).
pub fn samples_independent(spec: &GraphSpec) -> bool {
    spec.nodes.iter().all(|node| {
        !matches!(
            node.op,
            NodeOp::Layer(LayerSpec::BatchNorm2d { .. } | LayerSpec::Dropout { .. })
        )
    })
}

impl<B: Backend> DataParallel<B> {
    /// A data-parallel runner for `graph`, or `None` when its backend has a
    /// single worker, the graph mixes samples in training (see
    /// [`samples_independent`]) or its output is not one row of logits per
    /// sample. Replicas are built here; they take `graph`'s parameters at
    /// every step.
    pub fn for_graph(graph: &Graph<B>) -> Result<Option<Self>> {
        let backend = graph.backend();
        let parts = backend.shards().min(MAX_PARTS);
        if parts <= 1 || !samples_independent(graph.spec()) {
            return Ok(None);
        }
        let classes = match *graph.output_shape().dims() {
            [c] => c,
            _ => return Ok(None),
        };
        let replicas = (0..parts)
            .map(|_| {
                let backend = backend.shard_handle();
                let mut replica = Graph::new(&backend, graph.spec().clone(), graph.seed())?;
                // Phase 4 reads these nodes' output gradients after backward.
                let keep = replica.nodes.iter().map(has_whole_batch_params).collect();
                replica.keep_node_gradients(keep);
                Ok(Replica {
                    graph: replica,
                    backend,
                    dlogits: PerSize::new(),
                    first: 0,
                    n: 0,
                    outcome: Ok(()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(DataParallel {
            replicas,
            worker: backend.shard_handle(),
            classes,
            whole: PerSize::new(),
            host: Vec::new(),
        }))
    }

    /// Number of parts a full batch is cut into.
    pub fn parts(&self) -> usize {
        self.replicas.len()
    }

    /// One training forward, softmax cross-entropy and backward of `n =
    /// labels.len()` samples `x` (row-major, normalised), split across the
    /// workers: what [`Graph::forward_host`] in training mode, `loss` and
    /// [`Graph::backward`] do together. Adds the parameter gradients into
    /// `graph`'s, advances its step, writes each sample's arg-max class
    /// into `preds` when given (length `n`) and returns the batch's mean
    /// loss.
    ///
    /// `graph` keeps no activations of this step ([`Graph::node_output`]
    /// does not see it). On an error, `graph`'s gradients and step are
    /// unchanged unless the error came from adding the gradients up.
    pub fn forward_backward(
        &mut self,
        graph: &mut Graph<B>,
        x: &[f32],
        labels: &[u32],
        loss: &SoftmaxCrossEntropy,
        preds: Option<&mut [u32]>,
    ) -> Result<f32> {
        self.forward_backward_mixed(graph, x, labels, None, loss, preds)
    }

    /// [`forward_backward`](Self::forward_backward) of a batch that may
    /// be mixed (mixup, CutMix): with `mix = Some((partners, lam))` the
    /// loss is [`SoftmaxCrossEntropy::forward_backward_mixed`] against
    /// `lam` of `labels` and `1 - lam` of `partners` (`n` classes).
    pub fn forward_backward_mixed(
        &mut self,
        graph: &mut Graph<B>,
        x: &[f32],
        labels: &[u32],
        mix: Option<(&[u32], f64)>,
        loss: &SoftmaxCrossEntropy,
        preds: Option<&mut [u32]>,
    ) -> Result<f32> {
        let n = labels.len();
        let sample = graph.input_shape().numel();
        if n == 0 || sample.checked_mul(n) != Some(x.len()) {
            return Err(CnnError::value(
                "input batch",
                format!(
                    "{} values given for {n} samples of shape {}",
                    x.len(),
                    graph.input_shape()
                ),
            ));
        }
        if let Some(p) = &preds
            && p.len() != n
        {
            return Err(CnnError::value(
                "predictions",
                format!("room for {} given for {n} samples", p.len()),
            ));
        }
        // The same contiguous parts as the CPU backend's per-thread sums.
        let per = n.div_ceil(self.replicas.len().min(n));
        for (k, r) in self.replicas.iter_mut().enumerate() {
            r.first = (k * per).min(n);
            r.n = ((k + 1) * per).min(n) - r.first;
        }
        let step = graph.step();

        // 1. Forward of every part.
        let primary: &Graph<B> = graph;
        primary
            .backend()
            .for_each_shard(&mut self.replicas, |_, r| {
                if r.n > 0 {
                    r.outcome = r.forward(primary, step, x);
                }
            });
        self.take_errors()?;

        // 2. The loss of the whole batch.
        let backend = graph.backend().clone();
        let w = self.whole_index(&backend, n)?;
        let whole = &mut self.whole[w];
        whole.logits.concat_from(
            &backend,
            self.replicas
                .iter()
                .filter(|r| r.n > 0)
                .filter_map(|r| r.graph.node_output(r.graph.nodes.len() - 1)),
            &mut self.host,
        )?;
        backend.upload_indices_into(labels, &mut whole.targets)?;
        let mean_loss = match mix {
            None => {
                loss.forward_backward(&backend, &whole.logits, &whole.targets, &mut whole.dlogits)?
            }
            Some((partners, lam)) => {
                backend.upload_indices_into(partners, &mut whole.partners)?;
                let mix = crate::losses::MixedTargets {
                    targets: &whole.targets,
                    partners: &whole.partners,
                    lam,
                };
                loss.forward_backward_mixed(&backend, &whole.logits, &mix, &mut whole.dlogits)?
            }
        };
        if preds.is_some() {
            backend.argmax_rows(n, self.classes, whole.logits.buffer(), &mut whole.preds)?;
        }
        let classes = self.classes;
        for r in self.replicas.iter_mut().filter(|r| r.n > 0) {
            r.part_dlogits(classes)?;
        }
        whole.dlogits.split_into(
            &backend,
            self.replicas
                .iter_mut()
                .filter(|r| r.n > 0)
                .filter_map(|r| r.dlogits.latest_mut()),
            &mut self.host,
        )?;

        // 3. Backward of every part.
        backend.for_each_shard(&mut self.replicas, |_, r| {
            if r.n > 0 {
                r.outcome = r.backward();
            }
        });
        self.take_errors()?;

        // 4. The parameter gradients of the whole batch.
        self.add_param_grads(graph)?;
        graph.set_step(step + 1);
        if let Some(preds) = preds {
            backend.download_indices_into(&self.whole[w].preds, preds)?;
        }
        Ok(mean_loss)
    }

    /// The first error of the last phase (every replica's is cleared).
    fn take_errors(&mut self) -> Result<()> {
        let mut first = Ok(());
        for r in &mut self.replicas {
            let outcome = std::mem::replace(&mut r.outcome, Ok(()));
            if first.is_ok() {
                first = outcome;
            }
        }
        first
    }

    /// The whole-batch buffers for batch size `n`, allocated on first use.
    fn whole_index(&mut self, backend: &B, n: usize) -> Result<usize> {
        let classes = self.classes;
        self.whole.use_or_insert(n, || {
            Ok(WholeBatch {
                logits: Tensor::zeros(backend, [n, classes])?,
                dlogits: Tensor::zeros(backend, [n, classes])?,
                targets: backend.alloc_indices(n)?,
                partners: backend.alloc_indices(n)?,
                preds: backend.alloc_indices(n)?,
            })
        })
    }

    /// Phase 4, on the workers, one layer per task: for every layer, add
    /// the replicas' part-summed parameter gradients into `graph`'s in part
    /// order, then let the layer compute the others from all parts. Each
    /// task runs on a one-thread handle: the ops it calls give the same
    /// results whatever the thread count (the CPU backend's GEMM and sums
    /// do not depend on it).
    fn add_param_grads(&self, graph: &mut Graph<B>) -> Result<()> {
        let backend = graph.backend().clone();
        let first_error = std::sync::Mutex::new(None);
        backend.for_each_shard(&mut graph.nodes, |i, node| {
            if let Err(e) = self.node_param_grads(i, node) {
                let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert(e);
            }
        });
        match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// [`DataParallel::add_param_grads`] for node `i`.
    fn node_param_grads(&self, i: usize, node: &mut Node<B>) -> Result<()> {
        let Node::Layer(layer) = node else {
            return Ok(());
        };
        let backend = &self.worker;
        let active = || self.replicas.iter().filter(|r| r.n > 0);
        let summed = layer.part_summed();
        let mut whole_batch_params = false;
        for (j, p) in layer.params_mut().enumerate() {
            if !summed[j] {
                whole_batch_params = true;
                continue;
            }
            for r in active() {
                let q = replica_param(&r.graph, i, j)?;
                backend.axpy(1.0, q.grad.buffer(), p.grad.buffer_mut())?;
            }
        }
        let Some(first) = active().next().filter(|_| whole_batch_params) else {
            return Ok(());
        };
        // The parts as one slice, without allocating.
        let mut parts = [part_io(first, i)?; MAX_PARTS];
        let mut count = 0;
        for (slot, r) in parts.iter_mut().zip(active()) {
            *slot = part_io(r, i)?;
            count += 1;
        }
        layer.backward_params_from_parts(backend, &parts[..count])
    }
}

/// Whether some parameter gradient of `node` is put together from the
/// parts' inputs and output gradients ([`Layer::backward_params_from_parts`](crate::layers::Layer::backward_params_from_parts)).
fn has_whole_batch_params<B: Backend>(node: &Node<B>) -> bool {
    let Node::Layer(layer) = node else {
        return false;
    };
    let summed = layer.part_summed();
    layer.params().enumerate().any(|(j, _)| !summed[j])
}

/// What a replica kept for node `i` in this step.
fn part_io<B: Backend>(r: &Replica<B>, i: usize) -> Result<PartIo<'_, B>> {
    r.graph
        .node_input_and_grad(i)
        .map(|(x, dy)| PartIo { x, dy })
        .ok_or_else(|| CnnError::Graph(format!("a replica kept no data for node {i}")))
}

/// Parameter `j` of node `i` of a replica.
fn replica_param<B: Backend>(
    graph: &Graph<B>,
    i: usize,
    j: usize,
) -> Result<&crate::param::Param<B>> {
    match &graph.nodes[i] {
        Node::Layer(layer) => layer.params().nth(j),
        Node::Add => None,
    }
    .ok_or_else(|| CnnError::Graph(format!("a replica has no parameter {j} at node {i}")))
}

/// Zero the gradients a replica's backward adds into (the part-summed
/// ones); the others are computed from the parts in phase 4 and never
/// read from a replica, so clearing them would only cost time (fc1's
/// weight is 80% of LeNet-5's parameters).
fn zero_part_summed_grads<B: Backend>(graph: &mut Graph<B>) -> Result<()> {
    // Borrow the nodes and the backend apart: a backend clone may allocate.
    let (nodes, backend) = (&mut graph.nodes, &graph.backend);
    for node in nodes.iter_mut() {
        let Node::Layer(layer) = node else { continue };
        let summed = layer.part_summed();
        for (j, p) in layer.params_mut().enumerate() {
            if summed[j] {
                p.zero_grad(backend)?;
            }
        }
    }
    Ok(())
}

impl<B: Backend> Replica<B> {
    /// Phase 1: take the parameters and step of `primary`, clear the
    /// gradients, run the training forward of this part.
    fn forward(&mut self, primary: &Graph<B>, step: u64, x: &[f32]) -> Result<()> {
        for (dst, src) in self.graph.params_iter_mut().zip(primary.params_iter()) {
            self.backend
                .copy(src.value.buffer(), dst.value.buffer_mut())?;
        }
        zero_part_summed_grads(&mut self.graph)?;
        self.graph.set_step(step);
        let sample = primary.input_shape().numel();
        let part = &x[self.first * sample..(self.first + self.n) * sample];
        self.graph.forward_host(part, self.n, Mode::Train)?;
        Ok(())
    }

    /// Makes the loss-gradient tensor for this step's part size the latest,
    /// allocating it on first use.
    fn part_dlogits(&mut self, classes: usize) -> Result<()> {
        let (n, backend) = (self.n, &self.backend);
        self.dlogits
            .use_or_insert(n, || Tensor::zeros(backend, [n, classes]))?;
        Ok(())
    }

    /// Phase 3: the backward of this part.
    fn backward(&mut self) -> Result<()> {
        let dlogits = self.dlogits.latest().ok_or_else(|| {
            CnnError::Graph("data-parallel backward before the loss gradient".into())
        })?;
        self.graph.run_backward(dlogits, true, false)
    }
}
