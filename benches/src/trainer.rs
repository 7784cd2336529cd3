//! [`Trainer`]: a classifier's training step with every buffer allocated
//! once, as a training loop should run it.

use cnn_core::{Backend, DataParallel, Graph, GraphSpec, Mode, SoftmaxCrossEntropy, Tensor};
use cnn_optim::{Optimizer, OptimizerConfig};

use crate::Result;

/// Loss-gradient and target buffers for one batch size.
struct BatchBuffers<B: Backend> {
    n: usize,
    /// dL/dlogits, `[n, classes]`.
    dlogits: Tensor<B>,
    /// Class targets, `n` values.
    targets: B::IndexBuffer,
}

/// A graph, its optimizer and the loss, trained one batch at a time.
///
/// A step is: zero the gradients, upload the batch and targets, forward in
/// training mode, softmax cross-entropy (mean loss and its gradient),
/// backward, optimizer step. Buffers for a batch size are allocated on its
/// first step (a partial last batch gets its own).
pub struct Trainer<B: Backend> {
    backend: B,
    graph: Graph<B>,
    /// Splits each training batch across the backend's workers, where the
    /// graph allows it.
    parallel: Option<DataParallel<B>>,
    optimizer: Optimizer<B>,
    loss: SoftmaxCrossEntropy,
    classes: usize,
    batches: Vec<BatchBuffers<B>>,
    /// Host copy of eval logits, `[n, classes]`.
    host_logits: Vec<f32>,
}

impl<B: Backend> std::fmt::Debug for Trainer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("graph", &self.graph)
            .field("classes", &self.classes)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Trainer<B> {
    /// Build `spec` on `backend` (parameters from `seed`) with an optimizer
    /// from `config`.
    pub fn new(backend: &B, spec: GraphSpec, seed: u64, config: OptimizerConfig) -> Result<Self> {
        let graph = Graph::new(backend, spec, seed)?;
        let classes = graph.output_shape().numel();
        let parallel = DataParallel::for_graph(&graph)?;
        Ok(Trainer {
            backend: backend.clone(),
            graph,
            parallel,
            optimizer: Optimizer::new(config)?,
            loss: SoftmaxCrossEntropy::new(),
            classes,
            batches: Vec::new(),
            host_logits: Vec::new(),
        })
    }

    /// SGD with the workloads' settings: lr 0.05, momentum 0.9.
    pub fn sgd_config() -> Result<OptimizerConfig> {
        Ok(OptimizerConfig::from_name("sgd")?
            .with_lr(0.05)
            .with_momentum(0.9)?)
    }

    /// The graph.
    pub fn graph(&self) -> &Graph<B> {
        &self.graph
    }

    /// Number of classes (outputs per sample).
    pub fn classes(&self) -> usize {
        self.classes
    }

    fn buffers(&mut self, n: usize) -> Result<usize> {
        if let Some(i) = self.batches.iter().position(|b| b.n == n) {
            return Ok(i);
        }
        self.batches.push(BatchBuffers {
            n,
            dlogits: Tensor::zeros(&self.backend, [n, self.classes])?,
            targets: self.backend.alloc_indices(n)?,
        });
        Ok(self.batches.len() - 1)
    }

    /// One training step on `labels.len()` samples `x` (row-major, already
    /// normalised); returns the mean loss.
    pub fn step(&mut self, x: &[f32], labels: &[u32]) -> Result<f32> {
        let backend = self.backend.clone();
        backend.run(|| self.step_here(x, labels))
    }

    fn step_here(&mut self, x: &[f32], labels: &[u32]) -> Result<f32> {
        if let Some(parallel) = &mut self.parallel {
            self.graph.zero_grad()?;
            let loss = parallel.forward_backward(&mut self.graph, x, labels, &self.loss, None)?;
            self.optimizer.step_graph(&self.backend, &mut self.graph)?;
            return Ok(loss);
        }
        let n = labels.len();
        let i = self.buffers(n)?;
        let BatchBuffers {
            dlogits, targets, ..
        } = &mut self.batches[i];
        self.backend.upload_indices_into(labels, targets)?;
        self.graph.zero_grad()?;
        let logits = self.graph.forward_host(x, n, Mode::Train)?;
        let loss = self
            .loss
            .forward_backward(&self.backend, logits, targets, dlogits)?;
        self.graph.backward(dlogits)?;
        self.optimizer.step_graph(&self.backend, &mut self.graph)?;
        Ok(loss)
    }

    /// How many of the `labels.len()` samples `x` an eval-mode forward
    /// classifies correctly (arg-max of the logits).
    pub fn correct(&mut self, x: &[f32], labels: &[u32]) -> Result<usize> {
        let n = labels.len();
        let logits = self.graph.forward_host(x, n, Mode::Eval)?;
        self.host_logits.resize(n * self.classes, 0.0);
        self.backend
            .download_into(logits.buffer(), &mut self.host_logits)?;
        let correct = self
            .host_logits
            .chunks_exact(self.classes)
            .zip(labels)
            .filter(|&(row, &label)| argmax(row) == label as usize)
            .count();
        Ok(correct)
    }
}

/// Index of the largest value (the first on ties).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}
