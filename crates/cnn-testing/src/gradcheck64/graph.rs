//! Whole graphs in f64: a [`GraphSpec`] run by the reference kernels
//! ([`RefGraph`]), forward and backward chained as `Graph<B>` chains its
//! layers, and its gradients checked against central differences
//! ([`check_graph`]).
//!
//! Why not `Graph<B>` itself: its backends hold f32 (the `Backend` trait's
//! buffers are f32), so a graph cannot run in f64. The argument is in two
//! steps instead: a backend's ops equal the reference kernels (the
//! conformance suite, op by op, f32 tolerances), and the reference
//! kernels' backwards, chained the way the graph chains them, are the
//! derivative of their forwards (this module, in f64, tight tolerance).
//!
//! The chaining follows `Graph<B>`: nodes run in order, each reads its
//! input node's output (or the graph input); a residual add reads two; the
//! backward visits the nodes in reverse and sums the gradients of an output
//! read by several nodes. Layers compute what the backend layers compute:
//! `Linear` is the GEMM `x W^T` plus the bias, its backward `dy W`,
//! `dy^T x` and the bias sum; batch norm uses the batch statistics
//! (training mode), dropout a fixed mask per node (seed, stream = node
//! index, step 0). The loss is the mean softmax cross-entropy.

use cnn_core::backend::{
    BatchNormParams, BiasParams, Conv2dParams, CrossEntropyParams, DropoutParams, GemmParams,
    Pool2dParams,
};
use cnn_core::graph::{GraphSpec, NodeOp, ResolvedGraph};
use cnn_core::layers::LayerSpec;
use cnn_core::{Activation, Shape};

use super::{
    Eval, Failure, KinkPrint, TOLERANCE, TensorReport, check_tensor, sample_indices, uniform,
};
use crate::reference as r;

/// A trainable tensor of a [`RefGraph`], named as the graph's state_dict
/// names it (`conv1.weight`, `bn1.bias` for beta, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct RefParam {
    pub name: String,
    pub value: Vec<f64>,
}

/// A graph spec evaluated in f64 by the reference kernels.
#[derive(Debug, Clone)]
pub struct RefGraph {
    spec: GraphSpec,
    resolved: ResolvedGraph,
    /// Per node: the indices of its parameters in `params` (weight, bias).
    node_params: Vec<Vec<usize>>,
    pub params: Vec<RefParam>,
    /// Seeds the dropout masks.
    seed: u64,
}

/// What a forward keeps for the backward.
struct Forward {
    /// Every node's output, (N, shape).
    outputs: Vec<Vec<f64>>,
    /// Per max-pooling node, its argmaxes.
    argmax: Vec<Vec<u32>>,
    kinks: u64,
}

/// The analytic gradients of the mean loss.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    pub loss: f64,
    /// In the order of [`RefGraph::params`].
    pub params: Vec<Vec<f64>>,
    pub input: Vec<f64>,
}

/// `[C, H, W]` of a per-sample shape (a rank-1 shape is `[C, 1, 1]`).
fn chw(shape: &Shape) -> Result<(usize, usize, usize), String> {
    match *shape.dims() {
        [c, h, w] => Ok((c, h, w)),
        [c] => Ok((c, 1, 1)),
        _ => Err(format!("shape {shape} is not [C, H, W]")),
    }
}

/// Whether an activation has a point where its derivative jumps, and the
/// side of it `x` is on.
fn activation_side(act: Activation, x: f64) -> Option<bool> {
    match act {
        Activation::Relu | Activation::LeakyRelu { .. } | Activation::Elu { .. } => Some(x > 0.0),
        Activation::Softplus { beta, threshold } => {
            Some(((x * f64::from(beta)) as f32) > threshold)
        }
        Activation::Sigmoid
        | Activation::Tanh
        | Activation::Gelu
        | Activation::GeluTanh
        | Activation::Silu => None,
    }
}

impl RefGraph {
    /// The graph of `spec` with parameters drawn from `seed`: weights and
    /// biases uniform in `+-1/sqrt(fan_in)` (PyTorch's default bound),
    /// batch norm's gamma in `[0.5, 1.5)` and beta in `[-0.5, 0.5)` (not
    /// 1 and 0, so that their gradients are generic).
    pub fn new(spec: &GraphSpec, seed: u64) -> Result<Self, String> {
        let resolved = spec.resolve().map_err(|e| e.to_string())?;
        let mut params = Vec::new();
        let mut node_params = Vec::new();
        for (i, node) in spec.nodes.iter().enumerate() {
            let in_shape = match resolved.inputs[i] {
                Some(j) => resolved.shapes[j].clone(),
                None => spec.input.clone(),
            };
            let mut mine = Vec::new();
            let mut push = |suffix: &str, len: usize, lo: f64, hi: f64| {
                let stream = params.len() as u64;
                mine.push(params.len());
                params.push(RefParam {
                    name: format!("{}.{suffix}", node.name),
                    value: uniform(seed, stream, len, lo, hi),
                });
            };
            if let NodeOp::Layer(layer) = &node.op {
                match layer {
                    LayerSpec::Conv2d { geometry, bias } => {
                        let (c, _, _) = chw(&in_shape)?;
                        let per_out = c / geometry.groups * geometry.kernel[0] * geometry.kernel[1];
                        let bound = 1.0 / (per_out as f64).sqrt();
                        push("weight", geometry.out_channels * per_out, -bound, bound);
                        if *bias {
                            push("bias", geometry.out_channels, -bound, bound);
                        }
                    }
                    LayerSpec::Linear {
                        out_features, bias, ..
                    } => {
                        let fan_in = in_shape.numel();
                        let bound = 1.0 / (fan_in as f64).sqrt();
                        push("weight", out_features * fan_in, -bound, bound);
                        if *bias {
                            push("bias", *out_features, -bound, bound);
                        }
                    }
                    LayerSpec::BatchNorm2d { .. } => {
                        let (c, _, _) = chw(&in_shape)?;
                        push("weight", c, 0.5, 1.5);
                        push("bias", c, -0.5, 0.5);
                    }
                    _ => {}
                }
            }
            node_params.push(mine);
        }
        Ok(RefGraph {
            spec: spec.clone(),
            resolved,
            node_params,
            params,
            seed,
        })
    }

    /// The per-sample input shape.
    pub fn input_shape(&self) -> &Shape {
        &self.spec.input
    }

    /// The number of classes (the output's per-sample size).
    pub fn classes(&self) -> usize {
        self.resolved.shapes.last().map_or(0, Shape::numel)
    }

    fn in_shape(&self, i: usize) -> &Shape {
        match self.resolved.inputs[i] {
            Some(j) => &self.resolved.shapes[j],
            None => &self.spec.input,
        }
    }

    fn dropout(&self, i: usize, p: f32) -> DropoutParams {
        DropoutParams {
            prob: p,
            seed: self.seed,
            stream: i as u64,
            step: 0,
        }
    }

    /// The forward of a batch of `n` with parameter values `params` (in
    /// the order of [`RefGraph::params`]).
    fn forward(&self, params: &[Vec<f64>], x: &[f64], n: usize) -> Result<Forward, String> {
        let mut outputs: Vec<Vec<f64>> = Vec::with_capacity(self.spec.nodes.len());
        let mut argmax = Vec::new();
        let mut kinks = KinkPrint::default();
        for (i, node) in self.spec.nodes.iter().enumerate() {
            let input: &[f64] = match self.resolved.inputs[i] {
                Some(j) => &outputs[j],
                None => x,
            };
            let (c, h, w) = chw(self.in_shape(i)).unwrap_or((0, 0, 0));
            let pi = &self.node_params[i];
            let y = match &node.op {
                NodeOp::Add { .. } => {
                    let other: &[f64] = match self.resolved.adds[i].flatten() {
                        Some(j) => &outputs[j],
                        None => x,
                    };
                    r::add(input, other)
                }
                NodeOp::Layer(layer) => match layer {
                    LayerSpec::Conv2d { geometry, .. } => {
                        let p =
                            Conv2dParams::new(n, c, h, w, geometry).map_err(|e| e.to_string())?;
                        let b = pi.get(1).map(|&k| params[k].as_slice());
                        r::conv2d_forward(&p, input, &params[pi[0]], b)
                    }
                    LayerSpec::Linear { out_features, .. } => {
                        let fan_in = self.in_shape(i).numel();
                        let p = GemmParams {
                            trans_b: true,
                            ..GemmParams::new(n, *out_features, fan_in)
                        };
                        let y = r::gemm(&p, input, &params[pi[0]], &[]);
                        match pi.get(1) {
                            Some(&k) => {
                                let bp = BiasParams {
                                    outer: n,
                                    channels: *out_features,
                                    inner: 1,
                                };
                                r::bias_add(&bp, &params[k], &y)
                            }
                            None => y,
                        }
                    }
                    LayerSpec::MaxPool2d(geometry) => {
                        let p =
                            Pool2dParams::new(n, c, h, w, geometry).map_err(|e| e.to_string())?;
                        let (y, idx) = r::max_pool2d_forward(&p, input);
                        for &k in &idx {
                            kinks.push(k);
                        }
                        argmax.push(idx);
                        y
                    }
                    LayerSpec::AvgPool2d(geometry) => {
                        let p =
                            Pool2dParams::new(n, c, h, w, geometry).map_err(|e| e.to_string())?;
                        r::avg_pool2d_forward(&p, input)
                    }
                    LayerSpec::GlobalAvgPool => r::global_avg_pool_forward(n, c, h * w, input),
                    LayerSpec::BatchNorm2d { eps, momentum } => {
                        let p = BatchNormParams {
                            n,
                            c,
                            hw: h * w,
                            eps: *eps,
                            momentum: *momentum,
                        };
                        let (zeros, ones) = (vec![0.0f64; c], vec![1.0f64; c]);
                        let gamma = &params[pi[0]];
                        let beta = &params[pi[1]];
                        r::batch_norm2d_forward_train(&p, input, gamma, beta, &zeros, &ones).y
                    }
                    LayerSpec::Dropout { p } => r::dropout_forward(&self.dropout(i, *p), input),
                    LayerSpec::Flatten => input.to_vec(),
                    LayerSpec::Activation(act) => {
                        for &v in input {
                            if let Some(side) = activation_side(*act, v) {
                                kinks.push(u32::from(side));
                            }
                        }
                        r::activation_forward(*act, input)
                    }
                },
            };
            outputs.push(y);
        }
        Ok(Forward {
            outputs,
            argmax,
            kinks: kinks.finish(),
        })
    }

    fn loss_params(&self, n: usize, label_smoothing: f32) -> CrossEntropyParams {
        CrossEntropyParams {
            n,
            classes: self.classes(),
            label_smoothing,
        }
    }

    /// The mean softmax cross-entropy of a batch of `n` with parameter
    /// values `params`, and the fingerprint of its kink sides.
    pub fn loss(
        &self,
        params: &[Vec<f64>],
        x: &[f64],
        n: usize,
        targets: &[u32],
        label_smoothing: f32,
    ) -> Result<Eval, String> {
        let fwd = self.forward(params, x, n)?;
        let logits = fwd.outputs.last().ok_or("an empty graph")?;
        let (value, _) =
            r::softmax_cross_entropy(&self.loss_params(n, label_smoothing), logits, targets);
        Ok(Eval {
            value,
            kinks: fwd.kinks,
        })
    }

    /// The current parameter values, in order.
    pub fn values(&self) -> Vec<Vec<f64>> {
        self.params.iter().map(|p| p.value.clone()).collect()
    }

    /// The loss and its gradients with respect to every parameter and the
    /// input: the reference backwards chained in reverse node order.
    pub fn gradients(
        &self,
        x: &[f64],
        n: usize,
        targets: &[u32],
        label_smoothing: f32,
    ) -> Result<Gradients, String> {
        let params = self.values();
        let fwd = self.forward(&params, x, n)?;
        let nodes = self.spec.nodes.len();
        let (loss, dlogits) = r::softmax_cross_entropy(
            &self.loss_params(n, label_smoothing),
            &fwd.outputs[nodes - 1],
            targets,
        );
        let mut grads: Vec<Option<Vec<f64>>> = vec![None; nodes];
        grads[nodes - 1] = Some(dlogits);
        let mut dinput = vec![0.0f64; x.len()];
        let mut dparams: Vec<Vec<f64>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
        let mut pool_index = fwd.argmax.len();
        // Adds `d` into the gradient of node `j`'s output (the input's for None).
        let accumulate = |grads: &mut Vec<Option<Vec<f64>>>,
                          dinput: &mut Vec<f64>,
                          j: Option<usize>,
                          d: Vec<f64>| {
            let slot = match j {
                Some(j) => grads[j].get_or_insert_with(|| vec![0.0; d.len()]),
                None => dinput,
            };
            for (s, v) in slot.iter_mut().zip(d) {
                *s += v;
            }
        };
        for (i, node) in self.spec.nodes.iter().enumerate().rev() {
            if let NodeOp::Layer(LayerSpec::MaxPool2d(_)) = node.op {
                pool_index -= 1;
            }
            let Some(dy) = grads[i].take() else {
                continue;
            };
            let src = self.resolved.inputs[i];
            let input: &[f64] = match src {
                Some(j) => &fwd.outputs[j],
                None => x,
            };
            let (c, h, w) = chw(self.in_shape(i)).unwrap_or((0, 0, 0));
            let pi = &self.node_params[i];
            let dx = match &node.op {
                NodeOp::Add { .. } => {
                    accumulate(
                        &mut grads,
                        &mut dinput,
                        self.resolved.adds[i].flatten(),
                        dy.clone(),
                    );
                    dy
                }
                NodeOp::Layer(layer) => match layer {
                    LayerSpec::Conv2d { geometry, .. } => {
                        let p =
                            Conv2dParams::new(n, c, h, w, geometry).map_err(|e| e.to_string())?;
                        dparams[pi[0]] = r::conv2d_backward_weight(&p, input, &dy);
                        if let Some(&k) = pi.get(1) {
                            dparams[k] = r::conv2d_backward_bias(&p, &dy);
                        }
                        r::conv2d_backward_input(&p, &dy, &params[pi[0]])
                    }
                    LayerSpec::Linear { out_features, .. } => {
                        let fan_in = self.in_shape(i).numel();
                        // dW (out, in) = dy^T (out, N) x (N, in); dx (N, in) = dy (N, out) W.
                        let pw = GemmParams {
                            trans_a: true,
                            ..GemmParams::new(*out_features, fan_in, n)
                        };
                        dparams[pi[0]] = r::gemm(&pw, &dy, input, &[]);
                        if let Some(&k) = pi.get(1) {
                            let bp = BiasParams {
                                outer: n,
                                channels: *out_features,
                                inner: 1,
                            };
                            dparams[k] = r::bias_backward(&bp, &dy);
                        }
                        let px = GemmParams::new(n, fan_in, *out_features);
                        r::gemm(&px, &dy, &params[pi[0]], &[])
                    }
                    LayerSpec::MaxPool2d(geometry) => {
                        let p =
                            Pool2dParams::new(n, c, h, w, geometry).map_err(|e| e.to_string())?;
                        r::max_pool2d_backward(&p, &dy, &fwd.argmax[pool_index])
                    }
                    LayerSpec::AvgPool2d(geometry) => {
                        let p =
                            Pool2dParams::new(n, c, h, w, geometry).map_err(|e| e.to_string())?;
                        r::avg_pool2d_backward(&p, &dy)
                    }
                    LayerSpec::GlobalAvgPool => r::global_avg_pool_backward(n, c, h * w, &dy),
                    LayerSpec::BatchNorm2d { eps, momentum } => {
                        let p = BatchNormParams {
                            n,
                            c,
                            hw: h * w,
                            eps: *eps,
                            momentum: *momentum,
                        };
                        let g = r::batch_norm2d_backward(&p, input, &params[pi[0]], &dy);
                        dparams[pi[0]] = g.dgamma;
                        dparams[pi[1]] = g.dbeta;
                        g.dx
                    }
                    LayerSpec::Dropout { p } => r::dropout_backward(&self.dropout(i, *p), &dy),
                    LayerSpec::Flatten => dy,
                    LayerSpec::Activation(act) => r::activation_backward(*act, input, &dy),
                },
            };
            accumulate(&mut grads, &mut dinput, src, dx);
        }
        Ok(Gradients {
            loss,
            params: dparams,
            input: dinput,
        })
    }
}

/// What [`check_graph`] checks.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphCheckConfig {
    /// Batch size.
    pub n: usize,
    /// Label smoothing of the loss.
    pub label_smoothing: f32,
    /// Elements checked per parameter tensor (all when it has fewer);
    /// always including the largest gradient.
    pub samples_per_tensor: usize,
    /// Input elements checked.
    pub input_samples: usize,
    /// The first seed of the draws (parameters, input, targets).
    pub seed: u64,
    /// How many draws to try before giving up (a draw is rejected when a
    /// perturbation crosses a kink).
    pub max_draws: u64,
}

impl Default for GraphCheckConfig {
    fn default() -> Self {
        GraphCheckConfig {
            n: 2,
            label_smoothing: 0.0,
            samples_per_tensor: 16,
            input_samples: 16,
            seed: 0,
            max_draws: 16,
        }
    }
}

/// The outcome of a whole-graph check.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphReport {
    /// The seed of the draw that was checked.
    pub seed: u64,
    /// Draws rejected before it, each with the kink it crossed.
    pub rejected: Vec<String>,
    pub loss: f64,
    /// Per parameter tensor in order, then `input`.
    pub tensors: Vec<TensorReport>,
}

impl GraphReport {
    /// The largest error relative to the tolerance over all tensors.
    pub fn worst_ratio(&self) -> f64 {
        self.tensors
            .iter()
            .map(|t| t.worst_ratio)
            .fold(0.0, f64::max)
    }
}

impl std::fmt::Display for GraphReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "f64 gradient check at seed {} (loss {:.6}, {} draws rejected), tolerance {:e} + {:e} |g|, h = {:e}",
            self.seed,
            self.loss,
            self.rejected.len(),
            TOLERANCE.abs,
            TOLERANCE.rel,
            super::STEP
        )?;
        for r in &self.rejected {
            writeln!(f, "  rejected: {r}")?;
        }
        for t in &self.tensors {
            writeln!(f, "  {t}")?;
        }
        Ok(())
    }
}

/// One draw of parameters, batch and targets for `spec` at `seed`.
fn draw(
    spec: &GraphSpec,
    cfg: &GraphCheckConfig,
    seed: u64,
) -> Result<(RefGraph, Vec<f64>, Vec<u32>), String> {
    let graph = RefGraph::new(spec, seed)?;
    let x = uniform(seed, u64::MAX, cfg.n * spec.input.numel(), -1.0, 1.0);
    let classes = graph.classes() as u32;
    let targets = (0..cfg.n as u32)
        .map(|i| (i * 3 + 1 + seed as u32) % classes.max(1))
        .collect();
    Ok((graph, x, targets))
}

/// Checks the chained reference backward of `spec` against central
/// differences of its forward: sampled elements of every parameter and of
/// the input, in f64 with [`TOLERANCE`]. A draw whose perturbations cross
/// a kink is rejected and the next seed drawn (at most `max_draws`); a
/// mismatch fails at once.
pub fn check_graph(spec: &GraphSpec, cfg: &GraphCheckConfig) -> Result<GraphReport, String> {
    let mut rejected = Vec::new();
    for seed in cfg.seed..cfg.seed + cfg.max_draws {
        let (graph, x, targets) = draw(spec, cfg, seed)?;
        let grads = graph.gradients(&x, cfg.n, &targets, cfg.label_smoothing)?;
        let values = graph.values();
        match check_draw(&graph, &values, &grads, &x, &targets, cfg, seed) {
            Ok(tensors) => {
                return Ok(GraphReport {
                    seed,
                    rejected,
                    loss: grads.loss,
                    tensors,
                });
            }
            Err(Failure::KinkCrossed { tensor, index }) => {
                rejected.push(format!("seed {seed}: {tensor}[{index}] crosses a kink"));
            }
            Err(Failure::Mismatch(m)) => return Err(format!("seed {seed}: {m}")),
        }
    }
    Err(format!(
        "every one of {} draws crosses a kink: {}",
        cfg.max_draws,
        rejected.join("; ")
    ))
}

fn check_draw(
    graph: &RefGraph,
    values: &[Vec<f64>],
    grads: &Gradients,
    x: &[f64],
    targets: &[u32],
    cfg: &GraphCheckConfig,
    seed: u64,
) -> Result<Vec<TensorReport>, Failure> {
    let loss_failed = |e: String| Failure::Mismatch(format!("the forward failed: {e}"));
    let mut tensors = Vec::new();
    for (k, param) in graph.params.iter().enumerate() {
        let indices = sample_indices(&grads.params[k], cfg.samples_per_tensor, seed, k as u64);
        let mut err = None;
        let mut f = |v: &[f64]| {
            let mut p = values.to_vec();
            p[k] = v.to_vec();
            graph
                .loss(&p, x, cfg.n, targets, cfg.label_smoothing)
                .unwrap_or_else(|e| {
                    err = Some(e);
                    Eval::smooth(f64::NAN)
                })
        };
        let report = check_tensor(
            &param.name,
            &param.value,
            &grads.params[k],
            &indices,
            TOLERANCE,
            &mut f,
        );
        if let Some(e) = err {
            return Err(loss_failed(e));
        }
        tensors.push(report?);
    }
    let indices = sample_indices(&grads.input, cfg.input_samples, seed, u64::MAX);
    let mut err = None;
    let mut f = |v: &[f64]| {
        graph
            .loss(values, v, cfg.n, targets, cfg.label_smoothing)
            .unwrap_or_else(|e| {
                err = Some(e);
                Eval::smooth(f64::NAN)
            })
    };
    let report = check_tensor("input", x, &grads.input, &indices, TOLERANCE, &mut f);
    if let Some(e) = err {
        return Err(loss_failed(e));
    }
    tensors.push(report?);
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnn_core::Pool2dGeometry;
    use cnn_core::graph::GraphBuilder;

    fn cfg() -> GraphCheckConfig {
        GraphCheckConfig {
            n: 1,
            samples_per_tensor: 64,
            input_samples: 64,
            ..GraphCheckConfig::default()
        }
    }

    /// Runs the checks of one draw with the given input and targets.
    fn check_at(
        spec: &GraphSpec,
        x: &[f64],
        scale_first_grad: f64,
    ) -> Result<Vec<TensorReport>, Failure> {
        let graph = RefGraph::new(spec, 7).unwrap();
        let targets = [1];
        let mut grads = graph.gradients(x, 1, &targets, 0.0).unwrap();
        grads.params[0][0] *= scale_first_grad;
        check_draw(&graph, &graph.values(), &grads, x, &targets, &cfg(), 7)
    }

    #[test]
    fn a_relu_input_within_a_step_of_zero_is_a_crossed_kink() {
        let spec = GraphBuilder::new([4])
            .relu()
            .linear("fc", 3)
            .spec()
            .unwrap();
        let x = [5e-7, 0.5, -0.5, 0.3];
        assert_eq!(
            check_at(&spec, &x, 1.0),
            Err(Failure::KinkCrossed {
                tensor: "input".into(),
                index: 0
            })
        );
        // A step further from the kink, the same graph passes everywhere.
        let reports = check_at(&spec, &[2e-6, 0.5, -0.5, 0.3], 1.0).unwrap();
        assert_eq!(reports.len(), 3);
        assert!(
            reports
                .iter()
                .all(|r| r.checked > 0 && r.worst_ratio <= 1.0)
        );
    }

    #[test]
    fn a_max_pool_window_within_a_step_of_a_tie_is_a_crossed_kink() {
        let geometry = Pool2dGeometry {
            kernel: [1, 2],
            stride: [1, 2],
            ..Pool2dGeometry::new(1)
        };
        let spec = GraphBuilder::new([1, 1, 4])
            .max_pool2d(geometry)
            .flatten()
            .linear("fc", 2)
            .spec()
            .unwrap();
        let x = [0.3, 0.3 + 5e-7, -0.2, 0.4];
        assert_eq!(
            check_at(&spec, &x, 1.0),
            Err(Failure::KinkCrossed {
                tensor: "input".into(),
                index: 0
            })
        );
    }

    #[test]
    fn a_wrong_chained_gradient_is_a_mismatch() {
        let spec = GraphBuilder::new([2, 3, 3])
            .conv2d("conv", cnn_core::Conv2dGeometry::new(2, 2))
            .activation(Activation::Tanh)
            .flatten()
            .linear("fc", 3)
            .spec()
            .unwrap();
        let x = uniform(1, 0, 18, -1.0, 1.0);
        assert!(check_at(&spec, &x, 1.0).is_ok());
        match check_at(&spec, &x, 1.0 + 1e-4) {
            Err(Failure::Mismatch(m)) => assert!(m.contains("conv.weight[0]"), "{m}"),
            other => panic!("a conv weight gradient off by 1e-4 passed: {other:?}"),
        }
    }
}
