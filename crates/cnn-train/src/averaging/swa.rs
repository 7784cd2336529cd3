//! Stochastic weight averaging as `torch.optim.swa_utils` does it:
//! `AveragedModel`'s equal-weight average of the parameters, the `SWALR`
//! learning rate and `update_bn`.
//!
//! - From epoch `start` on (counting from 1) the rate is SWALR's: epoch
//!   `start + k` (k from 0) trains at
//!   `swa_lr * a(t) + lr0 * (1 - a(t))`, `t = min(1, (k + 1) / anneal_epochs)`
//!   (1 when `anneal_epochs` is 0), `a` the cosine anneal
//!   `(1 - cos(pi t)) / 2` or the linear `t`, and `lr0` the rate the run's
//!   schedule gives when SWA starts (the schedule stops there). This is
//!   torch's closed form of SWALR's recursion, stepped once per epoch as in
//!   torch's example, its first step taken as epoch `start` begins.
//! - After each epoch from `start` on, the parameters are averaged in:
//!   the first copies, the n-th (from 0) adds `(w - avg) / (n + 1)`, as
//!   `AveragedModel` does with `use_buffers=False`: the buffers (running
//!   statistics, `num_batches_tracked`) are not averaged but copied from
//!   the model. The arithmetic runs on the backend (`scale`, `axpy`).
//! - Batch norm's running statistics of the average are then recomputed
//!   as `update_bn` does: reset, then one training-mode forward per batch
//!   of the training split (in order, no augmentation, the run's batch
//!   size), with momentum `None`, the cumulative average: after batch k
//!   `running = (1 - 1/k) running + (1/k) batch`, `num_batches_tracked`
//!   the number of batches. cnn does this after every SWA epoch, before
//!   the average is validated, so that each point of the SWA curve is the
//!   model `swa.safetensors` would hold had the run ended there. A model
//!   without batch norm skips it (as `update_bn` returns at once).

use cnn_core::graph::NodeOp;
use cnn_core::{Backend, Graph, GraphSpec, LayerSpec, Mode, NamedArray, StateKind, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// SWALR's anneal strategy (torch's `anneal_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Anneal {
    /// `(1 - cos(pi t)) / 2` (torch's default, `"cos"`).
    #[default]
    Cos,
    /// `t`.
    Linear,
}

impl Anneal {
    fn alpha(self, t: f64) -> f64 {
        match self {
            Anneal::Cos => (1.0 - (std::f64::consts::PI * t).cos()) / 2.0,
            Anneal::Linear => t,
        }
    }
}

/// SWALR's rate for `epoch` (counting from 1) of a run whose SWA starts
/// at epoch `start`; `None` before it. `lr0` is the rate before SWA.
pub fn swa_lr(
    epoch: usize,
    start: usize,
    swa_lr: f64,
    anneal_epochs: usize,
    anneal: Anneal,
    lr0: f64,
) -> Option<f64> {
    if epoch < start {
        return None;
    }
    let k = (epoch - start + 1) as f64;
    let t = if anneal_epochs == 0 {
        1.0
    } else {
        (k / anneal_epochs as f64).min(1.0)
    };
    let a = anneal.alpha(t);
    Some(swa_lr * a + lr0 * (1.0 - a))
}

/// The running average of the weights, on its own graph.
pub struct Swa<B: Backend> {
    /// The model's layers with every batch norm's momentum 1, so that a
    /// training forward leaves the batch's statistics in the running
    /// buffers (the forward itself does not depend on the momentum).
    graph: Graph<B>,
    /// Models averaged so far (`AveragedModel.n_averaged`).
    n_averaged: u64,
    /// The running statistics' cumulative averages during `update_bn`.
    sums: Vec<Tensor<B>>,
    /// Batches of the `update_bn` under way.
    bn_batches: u64,
}

impl<B: Backend> std::fmt::Debug for Swa<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swa")
            .field("n_averaged", &self.n_averaged)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Swa<B> {
    /// An empty average of models like `model`.
    pub fn new(model: &Graph<B>) -> Result<Self> {
        let mut spec: GraphSpec = model.spec().clone();
        for node in &mut spec.nodes {
            if let NodeOp::Layer(LayerSpec::BatchNorm2d { momentum, .. }) = &mut node.op {
                *momentum = 1.0;
            }
        }
        let mut graph = Graph::new(model.backend(), spec, model.seed())?;
        // AveragedModel deep-copies the model it is made from.
        graph.load_state_dict(&model.state_dict()?)?;
        Ok(Swa {
            graph,
            n_averaged: 0,
            sums: Vec::new(),
            bn_batches: 0,
        })
    }

    /// Models averaged so far.
    pub fn n_averaged(&self) -> u64 {
        self.n_averaged
    }

    /// `AveragedModel.update_parameters(model)`: average the parameters
    /// in, copy the buffers.
    pub fn update(&mut self, model: &Graph<B>) -> Result<()> {
        let b = model.backend().clone();
        let n = self.n_averaged;
        let w = 1.0 / (n as f64 + 1.0);
        self.graph.zip_state_mut(model, |kind, avg, m| {
            if kind != StateKind::Param || n == 0 {
                b.copy(m.buffer(), avg.buffer_mut())
            } else {
                b.scale((1.0 - w) as f32, avg.buffer_mut())?;
                b.axpy(w as f32, m.buffer(), avg.buffer_mut())
            }
        })?;
        self.graph.set_counters(&model.counters());
        self.n_averaged += 1;
        Ok(())
    }

    /// `update_bn`, first part: reset the counters and the cumulative
    /// averages; then [`update_bn_batch`](Self::update_bn_batch) for each
    /// batch and [`update_bn_end`](Self::update_bn_end). Gives whether the
    /// model has batch norm at all (without, there is nothing to do).
    pub fn update_bn_begin(&mut self) -> Result<bool> {
        let b = self.graph.backend().clone();
        if self.graph.buffer_tensors_mut().is_empty() {
            return Ok(false);
        }
        if self.sums.is_empty() {
            for t in self.graph.buffer_tensors_mut() {
                self.sums.push(Tensor::zeros(&b, t.shape().clone())?);
            }
        }
        let zeroed: Vec<(String, i64)> = self
            .graph
            .counters()
            .into_iter()
            .map(|(name, _)| (name, 0))
            .collect();
        self.graph.set_counters(&zeroed);
        self.graph.set_step(0);
        self.bn_batches = 0;
        Ok(true)
    }

    /// `update_bn`'s forward of one batch of `n` normalised images: the
    /// k-th batch's statistics enter the cumulative average with weight 1/k.
    pub fn update_bn_batch(&mut self, images: &[f32], n: usize) -> Result<()> {
        let b = self.graph.backend().clone();
        self.graph.forward_host(images, n, Mode::Train)?;
        self.bn_batches += 1;
        let k = self.bn_batches;
        let f = 1.0 / k as f64;
        for (sum, running) in self.sums.iter_mut().zip(self.graph.buffer_tensors_mut()) {
            if k == 1 {
                b.copy(running.buffer(), sum.buffer_mut())?;
            } else {
                b.scale((1.0 - f) as f32, sum.buffer_mut())?;
                b.axpy(f as f32, running.buffer(), sum.buffer_mut())?;
            }
        }
        Ok(())
    }

    /// `update_bn`, last part: the cumulative averages become the running
    /// statistics (left as they were when no batch came).
    pub fn update_bn_end(&mut self) -> Result<()> {
        let b = self.graph.backend().clone();
        if self.bn_batches > 0 {
            for (sum, running) in self.sums.iter().zip(self.graph.buffer_tensors_mut()) {
                b.copy(sum.buffer(), running.buffer_mut())?;
            }
        }
        Ok(())
    }

    /// The averaged model (evaluated in eval mode).
    pub fn graph_mut(&mut self) -> &mut Graph<B> {
        &mut self.graph
    }

    /// The average's state_dict (`swa.safetensors`).
    pub fn state_dict(&self) -> Result<Vec<NamedArray>> {
        Ok(self.graph.state_dict()?)
    }

    /// Continue from a saved average of `n_averaged` models.
    pub fn load(&mut self, state: &[NamedArray], n_averaged: u64) -> Result<()> {
        self.graph.load_state_dict(state)?;
        self.n_averaged = n_averaged;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Anneal, swa_lr};

    #[test]
    fn swalr_anneals_from_the_rate_before_to_the_swa_rate() {
        assert_eq!(swa_lr(2, 3, 0.01, 2, Anneal::Cos, 0.1), None);
        // Half-way through a 2-epoch cosine anneal: the mean of the two.
        let mid = swa_lr(3, 3, 0.01, 2, Anneal::Cos, 0.1).unwrap();
        assert!((mid - 0.055).abs() < 1e-12, "{mid}");
        assert_eq!(swa_lr(4, 3, 0.01, 2, Anneal::Linear, 0.1), Some(0.01));
        assert_eq!(swa_lr(9, 3, 0.01, 0, Anneal::Cos, 0.1), Some(0.01));
    }
}
