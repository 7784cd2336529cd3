//! Finite-difference gradient checks of a backend's own graph, in f32.
//!
//! Why this check is loose, and where it is still needed: a [`Graph`] runs
//! on a backend whose buffers are f32, so every intermediate of the
//! perturbed forwards is rounded to f32 and the loss differences carry that
//! rounding (`~1e-5` at `h = 1e-3`), and the step must be large enough to
//! rise above it, which makes it cross ReLU and max-pooling kinks. The
//! derivatives themselves are checked tightly elsewhere: the reference
//! kernels' backwards against f64 central differences, op by op and
//! chained through whole graphs ([`crate::gradcheck64`], tolerance
//! `1e-8 + 1e-6 |g|`), and each backend's ops against the reference kernels
//! (the conformance suite). What only this check covers is the backend's
//! graph as it runs: the layers' wiring of the backend ops, gradient
//! accumulation into the parameters, the input probe,
//! dropout masks kept across forwards. It is therefore kept for the
//! backends' graphs only, with tolerances measured on them (see
//! [`REL_TOL`], [`ABS_TOL_FRACTION`], [`MAX_KINK_FRACTION`]).
//!
//! [`gradcheck`] computes the analytic gradients of a [`Graph`] with one
//! training forward and backward (softmax cross-entropy on a host batch),
//! then compares a deterministic sample of them with central differences
//! `(L(w + h) - L(w - h)) / 2h`, each `L` a training-mode forward with the
//! same batch. It checks every parameter tensor and, for graphs whose first
//! node is an identity (see [`with_input_probe`]), the input.
//!
//! Why the perturbed forwards are training forwards, and what that needs:
//! - Batch norm normalises with the batch statistics in training, so `L` is
//!   the function the backward differentiates. (Its running statistics move
//!   on every forward; that does not change a training-mode loss, and the
//!   graph's state_dict is restored at the end anyway.)
//! - A training forward advances the step, and dropout masks are keyed by
//!   the step: with [`GradCheckConfig::fix_step`] (the default) the step is
//!   reset before every forward, so every forward draws the analytic pass's
//!   mask.
//!
//! Precision: the forwards run in f32 on the backend; the loss of each
//! forward is reduced on the host in f64 from the downloaded logits
//! ([`cross_entropy_f64`]), so the only rounding in `L` is the forward's.
//! The step actually taken is `(w + h) - (w - h)` as represented in f32.
//!
//! Kinks: ReLU, leaky ReLU, max pooling and ELU with `alpha != 1` have kinks;
//! a perturbation that crosses one makes a central difference average two
//! one-sided slopes while the analytic gradient (correctly) takes one.
//! Random inputs in general position make an exact kink rare, but a conv
//! weight moves thousands of pre-activations, some of which always cross.
//! So an element whose central difference fails is retried with the step
//! `h * RETRY_STEP_FACTOR`, and passes if the central, forward or backward
//! difference there agrees with the gradient (at a kink the gradient is one
//! of the one-sided slopes). If none does and the two one-sided slopes
//! disagree with each other, the loss is not smooth at that scale and the
//! element counts as a kink (reported, not compared); if they agree, it is a
//! mismatch: a smooth loss whose slope the gradient gets wrong. At
//! most [`MAX_KINK_FRACTION`] of the elements may be kinks.

use std::collections::BTreeSet;
use std::fmt;

use cnn_core::backend::Backend;
use cnn_core::graph::{Graph, GraphSpec, INPUT, NodeOp, NodeSpec};
use cnn_core::layers::{LayerSpec, Mode};
use cnn_core::losses::SoftmaxCrossEntropy;
use cnn_core::rng::CounterRng;
use cnn_core::tensor::Tensor;

/// Default perturbation `h`. The f32 forward's rounding moves `L` by
/// `~1e-8` (logits of order 0.1), i.e. `~1e-5` in a difference at this `h`,
/// and the truncation error `h^2 L''' / 6` is far below that. Larger steps
/// cross many more ReLU and max-pool kinks: on LeNet-5 at `h = 1e-2` conv
/// bias differences are off by 20-100 % while at `1e-3` they agree.
pub const DEFAULT_STEP: f32 = 1e-3;

/// Absolute tolerance, as a fraction of the largest analytic gradient
/// element of any parameter: covers the rounding error above (which scales
/// with the loss, not with an element's gradient) and the residue of the
/// many small kinks a conv weight crosses, for elements whose own gradient
/// is small.
/// Measured with [`REL_TOL`], the checks need 3.4e-4 at most.
pub const ABS_TOL_FRACTION: f64 = 1e-3;

/// Relative tolerance on the analytic gradient. Measured on the CPU
/// backend's checks (`crates/cnn-cpu/tests/gradcheck.rs`, every element's
/// differences at `h` and at the retry step logged): the smallest relative
/// tolerance that passes every compared element with [`ABS_TOL_FRACTION`]
/// is 1.3e-3 (a LeNet-5 with batch norm conv1 weight whose perturbation
/// crosses ReLU kinks; without the kinks the absolute part alone covers
/// every element); 5e-3 is four times that. (It was 5e-2.) A wrong formula
/// (a missing factor, a transposed index, a gradient that overwrote
/// instead of accumulated) is off by far more.
pub const REL_TOL: f64 = 5e-3;

/// The largest fraction of checked elements that may be classed as kinks
/// before the check fails (more means the check says little, or a bug
/// hides behind non-smoothness). None of the CPU backend's checks has one
/// at [`REL_TOL`]; 2 % leaves room for a few on another CPU's rounding.
/// (It was 10 %.)
pub const MAX_KINK_FRACTION: f64 = 0.02;

/// Tolerance between the host f64 loss and the backend's fused loss at the
/// unperturbed point (relative to `1 + |L|`): both see the same f32 logits.
const LOSS_AGREEMENT: f64 = 1e-5;

/// The retry step of an element that fails, relative to `h`.
pub const RETRY_STEP_FACTOR: f32 = 0.25;

/// How many mismatches a failed verdict lists.
const SHOWN_MISMATCHES: usize = 8;

/// The name [`with_input_probe`] gives its identity node.
pub const INPUT_PROBE: &str = "input_probe";

/// What to check and how.
#[derive(Debug, Clone, PartialEq)]
pub struct GradCheckConfig {
    /// Elements checked per parameter tensor (all of them when the tensor is
    /// smaller); always includes the element with the largest |gradient|.
    pub samples_per_tensor: usize,
    /// Input elements checked (0 = none). Needs an identity first node.
    pub input_samples: usize,
    /// The perturbation `h`.
    pub step: f32,
    /// Seeds the choice of elements.
    pub seed: u64,
    /// Reset the graph's step before every forward (keeps dropout masks).
    pub fix_step: bool,
}

impl Default for GradCheckConfig {
    fn default() -> Self {
        GradCheckConfig {
            samples_per_tensor: 12,
            input_samples: 0,
            step: DEFAULT_STEP,
            seed: 0,
            fix_step: true,
        }
    }
}

/// The outcome for one tensor (a parameter, or `input`).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorCheck {
    pub name: String,
    pub numel: usize,
    /// Elements compared (kinks excluded).
    pub checked: usize,
    /// Elements where the loss is not smooth at the scale of `h`.
    pub kinks: usize,
    /// Largest |analytic gradient| over the whole tensor.
    pub max_abs_grad: f64,
    /// Largest |numeric - analytic| among the compared elements.
    pub worst_abs: f64,
    /// Largest |numeric - analytic| / max(|numeric|, |analytic|) among the
    /// compared elements whose gradient exceeds the absolute tolerance.
    pub worst_rel: f64,
}

/// Finite differences of the loss at one element for one step `h`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Differences {
    /// `(L(w + h) - L(w - h)) / 2h`
    pub central: f64,
    /// `(L(w + h) - L(w)) / h`
    pub forward: f64,
    /// `(L(w) - L(w - h)) / h`
    pub backward: f64,
}

/// One element where the difference and the gradient disagree.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub tensor: String,
    /// Flat (row-major) index into the tensor.
    pub index: usize,
    pub analytic: f64,
    /// The central difference with `h`.
    pub numeric: f64,
    /// The differences with the retry step `h * RETRY_STEP_FACTOR`.
    pub retry: Differences,
    /// The tolerance the element failed.
    pub tol: f64,
}

/// Everything a gradient check found.
#[derive(Debug, Clone, PartialEq)]
pub struct GradCheckReport {
    /// Mean loss at the unperturbed point, reduced on the host in f64.
    pub loss: f64,
    /// The same loss from the backend's fused softmax cross-entropy.
    pub backend_loss: f32,
    pub step: f32,
    /// The absolute tolerance used (`ABS_TOL_FRACTION` times the largest
    /// parameter gradient element).
    pub abs_tol: f64,
    pub rel_tol: f64,
    /// Elements compared, over all tensors.
    pub checked: usize,
    pub kinks: usize,
    pub worst_abs: f64,
    pub worst_rel: f64,
    /// Per parameter tensor in state_dict order, then `input` if checked.
    pub tensors: Vec<TensorCheck>,
    pub mismatches: Vec<Mismatch>,
}

impl GradCheckReport {
    /// `Ok` when every compared element agrees, kinks are rare and the
    /// host and backend losses agree; otherwise a report of what did not.
    pub fn verdict(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.checked == 0 {
            problems.push("no element was compared".to_string());
        }
        let sampled = self.checked + self.kinks;
        if self.kinks as f64 > MAX_KINK_FRACTION * sampled as f64 {
            problems.push(format!(
                "{} of {sampled} elements sit on kinks (at most {MAX_KINK_FRACTION} allowed)",
                self.kinks
            ));
        }
        let loss_diff = (self.loss - f64::from(self.backend_loss)).abs();
        // NaN losses fail too.
        if loss_diff.is_nan() || loss_diff > LOSS_AGREEMENT * (1.0 + self.loss.abs()) {
            problems.push(format!(
                "the backend's loss {} differs from the host loss {} by {loss_diff:e}",
                self.backend_loss, self.loss
            ));
        }
        if !self.mismatches.is_empty() {
            let mut worst = self.mismatches.clone();
            worst.sort_by(|a, b| {
                let excess = |m: &Mismatch| (m.numeric - m.analytic).abs() / m.tol;
                excess(b).total_cmp(&excess(a))
            });
            let mut msg = format!(
                "{} of {} elements disagree beyond abs {:e} + rel {:e}; worst:",
                worst.len(),
                self.checked,
                self.abs_tol,
                self.rel_tol
            );
            for m in worst.iter().take(SHOWN_MISMATCHES) {
                msg.push_str(&format!(
                    "\n  {}[{}]: analytic {:e}, central difference {:e}; retry central {:e}, forward {:e}, backward {:e}; tolerance {:e}",
                    m.tensor,
                    m.index,
                    m.analytic,
                    m.numeric,
                    m.retry.central,
                    m.retry.forward,
                    m.retry.backward,
                    m.tol
                ));
            }
            problems.push(msg);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "gradient check failed:\n{}\n{self}",
                problems.join("\n")
            ))
        }
    }
}

impl fmt::Display for GradCheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "gradient check: loss {:.6}, h {:e}, abs tol {:e}, rel tol {:e}: {} elements compared, {} kinks, worst abs {:e}, worst rel {:e}",
            self.loss,
            self.step,
            self.abs_tol,
            self.rel_tol,
            self.checked,
            self.kinks,
            self.worst_abs,
            self.worst_rel
        )?;
        writeln!(
            f,
            "  {:<28} {:>8} {:>7} {:>5} {:>11} {:>11} {:>9}",
            "tensor", "numel", "checked", "kinks", "max|grad|", "worst abs", "worst rel"
        )?;
        for t in &self.tensors {
            writeln!(
                f,
                "  {:<28} {:>8} {:>7} {:>5} {:>11.3e} {:>11.3e} {:>9.2e}",
                t.name, t.numel, t.checked, t.kinks, t.max_abs_grad, t.worst_abs, t.worst_rel
            )?;
        }
        Ok(())
    }
}

/// `spec` with an identity node ([`INPUT_PROBE`], a dropout of
/// probability 0) in front, and every reference to the graph input redirected
/// to it. `Graph::backward` does not compute the gradient of the graph
/// input; the gradient of the probe's output is that gradient, readable
/// with `Graph::node_grad(0)`. Parameter values of the result differ from
/// `spec`'s for the same seed (initialisation is keyed by node index).
pub fn with_input_probe(spec: &GraphSpec) -> GraphSpec {
    let redirect = |r: &str| {
        if r == INPUT {
            INPUT_PROBE.to_string()
        } else {
            r.to_string()
        }
    };
    let mut nodes = vec![NodeSpec {
        name: INPUT_PROBE.to_string(),
        input: None,
        op: NodeOp::Layer(LayerSpec::Dropout { p: 0.0 }),
    }];
    nodes.extend(spec.nodes.iter().map(|n| NodeSpec {
        name: n.name.clone(),
        input: n.input.as_deref().map(redirect),
        op: match &n.op {
            NodeOp::Add { add } => NodeOp::Add { add: redirect(add) },
            op => op.clone(),
        },
    }));
    GraphSpec {
        input: spec.input.clone(),
        nodes,
    }
}

/// Whether `graph`'s first node passes the input through unchanged and is
/// its only reader, so that `node_grad(0)` is the input gradient.
fn first_node_is_input_probe(spec: &GraphSpec) -> Result<(), String> {
    let identity = matches!(
        spec.nodes.first().map(|n| &n.op),
        Some(NodeOp::Layer(LayerSpec::Flatten))
    ) || matches!(
        spec.nodes.first().map(|n| &n.op),
        Some(NodeOp::Layer(LayerSpec::Dropout { p })) if *p == 0.0
    );
    let other_reader = spec.nodes.iter().skip(1).find(|n| {
        n.input.as_deref() == Some(INPUT) || matches!(&n.op, NodeOp::Add { add } if add == INPUT)
    });
    match (identity, other_reader) {
        (true, None) => Ok(()),
        (false, _) => Err(
            "input gradients need an identity first node (a flatten or a dropout of p 0): \
             Graph::backward skips the first layer's input gradient; build the graph from \
             gradcheck::with_input_probe(spec)"
                .into(),
        ),
        (true, Some(n)) => Err(format!(
            "node `{}` reads the graph input directly, so node_grad(0) is not the whole input gradient; \
             build the graph from gradcheck::with_input_probe(spec)",
            n.name
        )),
    }
}

/// Mean softmax cross-entropy of `logits` (`n x classes`, row-major) in f64,
/// with PyTorch's label smoothing (target `(1 - s) one_hot + s / classes`).
pub fn cross_entropy_f64(logits: &[f32], classes: usize, targets: &[u32], smoothing: f32) -> f64 {
    let s = f64::from(smoothing);
    let total: f64 = logits
        .chunks_exact(classes)
        .zip(targets)
        .map(|(row, &t)| {
            let max = row
                .iter()
                .fold(f64::NEG_INFINITY, |m, &z| m.max(f64::from(z)));
            let lse = max
                + row
                    .iter()
                    .map(|&z| (f64::from(z) - max).exp())
                    .sum::<f64>()
                    .ln();
            let mean: f64 = row.iter().map(|&z| f64::from(z)).sum::<f64>() / classes as f64;
            lse - (1.0 - s) * f64::from(row[t as usize]) - s * mean
        })
        .sum();
    total / targets.len() as f64
}

/// Up to `k` distinct indices of `grad`, always including the largest
/// |grad|; the rest drawn from `(seed, stream)`. All indices when `k >= len`.
fn sample_indices(grad: &[f32], k: usize, seed: u64, stream: u64) -> Vec<usize> {
    let len = grad.len();
    if k >= len {
        return (0..len).collect();
    }
    let largest = grad
        .iter()
        .enumerate()
        .fold((0, -1.0f32), |best, (i, g)| {
            if g.abs() > best.1 { (i, g.abs()) } else { best }
        })
        .0;
    let mut chosen = BTreeSet::from([largest]);
    let mut rng = CounterRng::new(seed, stream);
    while chosen.len() < k {
        chosen.insert((rng.next_u32() as usize) % len);
    }
    chosen.into_iter().collect()
}

/// The differences from the losses at `w`, `w + du` and `w - dd` (the
/// steps as actually represented in f32).
fn differences(l0: f64, l_up: f64, l_down: f64, du: f32, dd: f32) -> Differences {
    let (du, dd) = (f64::from(du), f64::from(dd));
    Differences {
        central: (l_up - l_down) / (du + dd),
        forward: (l_up - l0) / du,
        backward: (l0 - l_down) / dd,
    }
}

fn err<E: fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The graph, batch and loss a check evaluates, and how to run a forward.
struct Problem<'a, B: Backend> {
    graph: &'a mut Graph<B>,
    n: usize,
    classes: usize,
    targets: &'a [u32],
    smoothing: f32,
    /// The step every forward starts from (when fixed).
    step0: u64,
    fix_step: bool,
}

impl<B: Backend> Problem<'_, B> {
    /// Training-mode loss of the graph as it stands on input `x`.
    fn loss(&mut self, x: &[f32]) -> Result<f64, String> {
        if self.fix_step {
            self.graph.set_step(self.step0);
        }
        let backend = self.graph.backend().clone();
        let y = self
            .graph
            .forward_host(x, self.n, Mode::Train)
            .map_err(err("forward"))?;
        backend.synchronize().map_err(err("synchronize"))?;
        let logits = y.to_vec(&backend).map_err(err("download logits"))?;
        Ok(cross_entropy_f64(
            &logits,
            self.classes,
            self.targets,
            self.smoothing,
        ))
    }
}

/// Accumulates one tensor's comparisons.
struct Tally<'a> {
    check: TensorCheck,
    mismatches: &'a mut Vec<Mismatch>,
    abs_tol: f64,
}

impl Tally<'_> {
    /// Compare element `index` with analytic gradient `analytic`;
    /// `numeric(h)` gives the finite differences for a step `h`.
    fn compare(
        &mut self,
        index: usize,
        analytic: f64,
        h: f32,
        numeric: &mut dyn FnMut(f32) -> Result<Differences, String>,
    ) -> Result<(), String> {
        let tol = self.abs_tol + REL_TOL * analytic.abs();
        let close = |d: f64| (d - analytic).abs() <= tol;
        let first = numeric(h)?;
        let used = if close(first.central) {
            Some(first.central)
        } else {
            // Retry with a smaller step, and accept either one-sided
            // derivative: at a kink the analytic gradient is one of them.
            let retry = numeric(h * RETRY_STEP_FACTOR)?;
            let candidates = [retry.central, retry.forward, retry.backward];
            if let Some(&d) = candidates.iter().find(|&&d| close(d)) {
                Some(d)
            } else if (retry.forward - retry.backward).abs() > tol {
                None // not smooth even at the smaller step: cannot judge
            } else {
                self.mismatches.push(Mismatch {
                    tensor: self.check.name.clone(),
                    index,
                    analytic,
                    numeric: first.central,
                    retry,
                    tol,
                });
                Some(first.central)
            }
        };
        let Some(d) = used else {
            self.check.kinks += 1;
            return Ok(());
        };
        self.check.checked += 1;
        let diff = (d - analytic).abs();
        self.check.worst_abs = self.check.worst_abs.max(diff);
        let magnitude = d.abs().max(analytic.abs());
        if magnitude > self.abs_tol {
            self.check.worst_rel = self.check.worst_rel.max(diff / magnitude);
        }
        Ok(())
    }
}

/// The gradients one training forward and backward computed, on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticGradients {
    /// The backend's fused loss of that forward.
    pub loss: f32,
    /// `(name, gradient)` per parameter, in state_dict order.
    pub params: Vec<(String, Vec<f32>)>,
    /// The input gradient (`node_grad(0)`), when asked for.
    pub input: Option<Vec<f32>>,
}

/// The number of classes of `graph`'s flat output, after checking `targets`.
fn classes_for<B: Backend>(graph: &Graph<B>, n: usize, targets: &[u32]) -> Result<usize, String> {
    let classes = match *graph.output_shape().dims() {
        [c] => c,
        _ => {
            return Err(format!(
                "softmax cross-entropy needs a flat output, the graph gives {}",
                graph.output_shape()
            ));
        }
    };
    if targets.len() != n || targets.iter().any(|&t| t as usize >= classes) {
        return Err(format!("need {n} targets below {classes}, got {targets:?}"));
    }
    Ok(classes)
}

/// Zero the gradients, run one training forward on `x` and back-propagate
/// `loss`; return the gradients (and the input gradient when `with_input`,
/// which needs an identity first node, see [`with_input_probe`]). The
/// graph's state_dict and step are left as found; its parameter gradients
/// hold the result.
pub fn analytic_gradients<B: Backend>(
    graph: &mut Graph<B>,
    x: &[f32],
    n: usize,
    targets: &[u32],
    loss: &SoftmaxCrossEntropy,
    with_input: bool,
) -> Result<AnalyticGradients, String> {
    let backend = graph.backend().clone();
    classes_for(graph, n, targets)?;
    if with_input {
        first_node_is_input_probe(graph.spec())?;
    }
    let saved_state = graph.state_dict().map_err(err("state_dict"))?;
    let step0 = graph.step();
    graph.zero_grad().map_err(err("zero_grad"))?;
    let logits = graph
        .forward_host(x, n, Mode::Train)
        .map_err(err("forward"))?
        .try_clone(&backend)
        .map_err(err("copy logits"))?;
    let target_buf = backend
        .upload_indices(targets)
        .map_err(err("upload targets"))?;
    let mut dlogits =
        Tensor::zeros(&backend, logits.shape().clone()).map_err(err("alloc dlogits"))?;
    let backend_loss = loss
        .forward_backward(&backend, &logits, &target_buf, &mut dlogits)
        .map_err(err("loss"))?;
    graph.backward(&dlogits).map_err(err("backward"))?;
    backend.synchronize().map_err(err("synchronize"))?;
    let input = if with_input {
        let g = graph
            .node_grad(0)
            .ok_or("no gradient for node 0 after backward")?;
        Some(g.to_vec(&backend).map_err(err("download input gradient"))?)
    } else {
        None
    };
    let params = graph
        .params()
        .iter()
        .map(|p| Ok((p.name.clone(), p.grad.to_vec(&backend)?)))
        .collect::<cnn_core::Result<_>>()
        .map_err(err("download gradients"))?;
    restore(graph, &saved_state, step0)?;
    Ok(AnalyticGradients {
        loss: backend_loss,
        params,
        input,
    })
}

/// Check `graph`'s gradients on the batch `x` (`n` samples of its input
/// shape, row-major) with class `targets` under softmax cross-entropy
/// `loss`, as described in the module docs: [`analytic_gradients`], then
/// [`check_gradients`].
///
/// Afterwards the graph's parameters, running statistics, counters and step
/// are as before the call; its parameter gradients hold the analytic
/// gradients of this batch (they are zeroed first). `Err` means the check
/// could not run (a backend error, bad targets, input gradients without an
/// identity first node); a failed check is an `Ok` report whose
/// [`GradCheckReport::verdict`] is `Err`.
pub fn gradcheck<B: Backend>(
    graph: &mut Graph<B>,
    x: &[f32],
    n: usize,
    targets: &[u32],
    loss: &SoftmaxCrossEntropy,
    cfg: &GradCheckConfig,
) -> Result<GradCheckReport, String> {
    let analytic = analytic_gradients(graph, x, n, targets, loss, cfg.input_samples > 0)?;
    check_gradients(graph, x, n, targets, loss, cfg, &analytic)
}

/// Compare `analytic` (as [`analytic_gradients`] returns them, or altered:
/// that is how the checker's own tests show it catches a wrong gradient)
/// with finite differences of `graph`'s loss. The graph's parameters,
/// state_dict and step are left as found.
pub fn check_gradients<B: Backend>(
    graph: &mut Graph<B>,
    x: &[f32],
    n: usize,
    targets: &[u32],
    loss: &SoftmaxCrossEntropy,
    cfg: &GradCheckConfig,
    analytic: &AnalyticGradients,
) -> Result<GradCheckReport, String> {
    let backend = graph.backend().clone();
    let classes = classes_for(graph, n, targets)?;
    if !(cfg.step.is_finite() && cfg.step > 0.0) {
        return Err(format!("step h must be positive, got {}", cfg.step));
    }
    if cfg.input_samples > 0 && analytic.input.is_none() {
        return Err("input samples asked for, but no analytic input gradient given".into());
    }
    let saved_state = graph.state_dict().map_err(err("state_dict"))?;
    let step0 = graph.step();
    let values = graph
        .params()
        .iter()
        .map(|p| p.value.to_vec(&backend))
        .collect::<cnn_core::Result<Vec<_>>>()
        .map_err(err("download parameters"))?;
    if values.len() != analytic.params.len()
        || values
            .iter()
            .zip(&analytic.params)
            .any(|(v, (_, g))| v.len() != g.len())
    {
        return Err("the analytic gradients do not match the graph's parameters".into());
    }
    let params: Vec<(String, Vec<f32>, Vec<f32>)> = analytic
        .params
        .iter()
        .zip(values)
        .map(|((name, g), v)| (name.clone(), v, g.clone()))
        .collect();
    let max_grad = params
        .iter()
        .flat_map(|(_, _, g)| g.iter())
        .fold(0.0f64, |m, &g| m.max(f64::from(g).abs()));
    let abs_tol = ABS_TOL_FRACTION * max_grad.max(f64::MIN_POSITIVE);

    let mut problem = Problem {
        graph,
        n,
        classes,
        targets,
        smoothing: loss.label_smoothing,
        step0,
        fix_step: cfg.fix_step,
    };
    let mut mismatches = Vec::new();
    let mut tensors = Vec::new();
    let h = cfg.step;
    // The unperturbed loss (for the one-sided differences and the report).
    let host_loss = problem.loss(x)?;

    for (pi, (name, values, grad)) in params.iter().enumerate() {
        let mut tally = Tally {
            check: TensorCheck {
                name: name.clone(),
                numel: values.len(),
                checked: 0,
                kinks: 0,
                max_abs_grad: grad.iter().fold(0.0, |m, &g| m.max(f64::from(g).abs())),
                worst_abs: 0.0,
                worst_rel: 0.0,
            },
            mismatches: &mut mismatches,
            abs_tol,
        };
        let mut work = values.clone();
        for i in sample_indices(grad, cfg.samples_per_tensor, cfg.seed, pi as u64) {
            let mut numeric = |h: f32| -> Result<Differences, String> {
                let (up, down) = (values[i] + h, values[i] - h);
                let mut at = |v: f32, p: &mut Problem<'_, B>| -> Result<f64, String> {
                    work[i] = v;
                    let mut params = p.graph.params_mut();
                    params[pi]
                        .value
                        .copy_from_slice(&backend, &work)
                        .map_err(err("set parameter"))?;
                    p.loss(x)
                };
                let l_up = at(up, &mut problem)?;
                let l_down = at(down, &mut problem)?;
                work[i] = values[i];
                problem.graph.params_mut()[pi]
                    .value
                    .copy_from_slice(&backend, &work)
                    .map_err(err("restore parameter"))?;
                Ok(differences(
                    host_loss,
                    l_up,
                    l_down,
                    up - values[i],
                    values[i] - down,
                ))
            };
            tally.compare(i, f64::from(grad[i]), h, &mut numeric)?;
        }
        tensors.push(tally.check);
    }

    if let Some(grad) = analytic.input.as_ref().filter(|_| cfg.input_samples > 0) {
        let mut tally = Tally {
            check: TensorCheck {
                name: INPUT.to_string(),
                numel: x.len(),
                checked: 0,
                kinks: 0,
                max_abs_grad: grad.iter().fold(0.0, |m, &g| m.max(f64::from(g).abs())),
                worst_abs: 0.0,
                worst_rel: 0.0,
            },
            mismatches: &mut mismatches,
            abs_tol,
        };
        let mut work = x.to_vec();
        let stream = params.len() as u64;
        for i in sample_indices(grad, cfg.input_samples, cfg.seed, stream) {
            let mut numeric = |h: f32| -> Result<Differences, String> {
                let (up, down) = (x[i] + h, x[i] - h);
                work[i] = up;
                let l_up = problem.loss(&work)?;
                work[i] = down;
                let l_down = problem.loss(&work)?;
                work[i] = x[i];
                Ok(differences(host_loss, l_up, l_down, up - x[i], x[i] - down))
            };
            tally.compare(i, f64::from(grad[i]), h, &mut numeric)?;
        }
        tensors.push(tally.check);
    }

    // Leave the state (running statistics, counters) and the step as found.
    restore(problem.graph, &saved_state, step0)?;

    let checked = tensors.iter().map(|t| t.checked).sum();
    let kinks = tensors.iter().map(|t| t.kinks).sum();
    let worst_abs = tensors.iter().fold(0.0f64, |m, t| m.max(t.worst_abs));
    let worst_rel = tensors.iter().fold(0.0f64, |m, t| m.max(t.worst_rel));
    Ok(GradCheckReport {
        loss: host_loss,
        backend_loss: analytic.loss,
        step: h,
        abs_tol,
        rel_tol: REL_TOL,
        checked,
        kinks,
        worst_abs,
        worst_rel,
        tensors,
        mismatches,
    })
}

fn restore<B: Backend>(
    graph: &mut Graph<B>,
    state: &[cnn_core::graph::NamedArray],
    step: u64,
) -> Result<(), String> {
    graph
        .load_state_dict(state)
        .map_err(err("restore state_dict"))?;
    graph.set_step(step);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cross_entropy_matches_a_hand_computation() {
        // Row [0, ln 3] target 1: softmax = [1/4, 3/4], loss = ln(4/3).
        let logits = [0.0f32, 3f32.ln()];
        let l = cross_entropy_f64(&logits, 2, &[1], 0.0);
        assert!((l - (4.0f64 / 3.0).ln()).abs() < 1e-7, "{l}");
        // Smoothing 1: the target is uniform, loss = lse - mean.
        let l = cross_entropy_f64(&logits, 2, &[1], 1.0);
        let expected = 4f64.ln() - 0.5 * 3f64.ln();
        assert!((l - expected).abs() < 1e-7, "{l}");
    }

    #[test]
    fn samples_include_the_largest_gradient_and_are_distinct() {
        // Distinct magnitudes 0..=100 (37 is invertible mod 101), alternating signs.
        let grad: Vec<f32> = (0..100)
            .map(|i| ((i * 37) % 101) as f32 * if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let s = sample_indices(&grad, 10, 3, 0);
        assert_eq!(s.len(), 10);
        let largest = (0..100)
            .max_by(|&a, &b| grad[a].abs().total_cmp(&grad[b].abs()))
            .unwrap();
        assert!(s.contains(&largest), "{s:?}");
        assert_eq!(sample_indices(&grad, 10, 3, 0), s, "deterministic");
        assert_eq!(sample_indices(&grad[..5], 10, 3, 0), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn input_probe_redirects_every_input_reference() {
        let spec = GraphSpec {
            input: cnn_core::Shape::from([2, 4, 4]),
            nodes: vec![
                NodeSpec {
                    name: "a".into(),
                    input: None,
                    op: NodeOp::Layer(LayerSpec::Flatten),
                },
                NodeSpec {
                    name: "b".into(),
                    input: Some(INPUT.into()),
                    op: NodeOp::Layer(LayerSpec::Flatten),
                },
                NodeSpec {
                    name: "c".into(),
                    input: Some("a".into()),
                    op: NodeOp::Add { add: "b".into() },
                },
            ],
        };
        assert!(first_node_is_input_probe(&spec).is_err());
        let probed = with_input_probe(&spec);
        assert_eq!(probed.nodes[0].name, INPUT_PROBE);
        assert_eq!(probed.nodes[2].input.as_deref(), Some(INPUT_PROBE));
        assert!(probed.resolve().is_ok());
        assert!(first_node_is_input_probe(&probed).is_ok());
    }
}
