//! Whole-graph gradient checks on the CPU backend: every parameter (and the
//! input, through an identity probe node) of LeNet-5, residual blocks with
//! batch norm, a net with every activation and padded average pooling, and
//! LeNet-5 with dropout, against finite differences of the loss; and checks
//! that the checker itself catches wrong gradients and leaves the graph as
//! it found it.
//!
//! Step, tolerances and kink handling are `cnn_testing::gradcheck`'s
//! (see its constants, measured on these tests); each test prints its
//! report (`--nocapture`). These checks run in f32 because the backend's
//! graph does; the derivatives of every op and of these graphs' layer
//! compositions are checked in f64 with a tight tolerance by cnn-testing's
//! `gradcheck64` tests.

use cnn_core::models::{ModelOptions, lenet5};
use cnn_core::{
    Activation, Conv2dGeometry, Graph, GraphBuilder, GraphSpec, LayerSpec, Pool2dGeometry,
    SoftmaxCrossEntropy,
};
use cnn_cpu::CpuBackend;
use cnn_testing::gradcheck::{
    GradCheckConfig, GradCheckReport, analytic_gradients, check_gradients, gradcheck,
    with_input_probe,
};
use cnn_testing::strategies::values;

fn backend() -> CpuBackend {
    CpuBackend::with_threads(2).expect("a 2-thread CPU backend")
}

/// A batch of `n` random samples for `graph` in general position (uniform
/// in [-1, 1): no exact zeros or ties) and targets spread over the classes.
fn batch(graph: &Graph<CpuBackend>, n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let x = values(seed, 0, n * graph.input_shape().numel(), -1.0, 1.0);
    let classes = graph.output_shape().numel() as u32;
    let targets = (0..n as u32).map(|i| (i * 3 + 1) % classes).collect();
    (x, targets)
}

/// Build `spec` with an input probe, run the check on a random batch of
/// `n`, print the report and return it with the graph.
fn check(
    spec: &GraphSpec,
    n: usize,
    seed: u64,
    cfg: &GradCheckConfig,
) -> (Graph<CpuBackend>, GradCheckReport) {
    let mut graph = Graph::new(&backend(), with_input_probe(spec), seed).unwrap();
    let (x, targets) = batch(&graph, n, seed + 1);
    let report = gradcheck(
        &mut graph,
        &x,
        n,
        &targets,
        &SoftmaxCrossEntropy::new(),
        cfg,
    )
    .unwrap_or_else(|e| panic!("gradient check could not run: {e}"));
    println!("{report}");
    (graph, report)
}

/// The report passes, lists every parameter of `graph` (in order) and then
/// the input, and compared at least one element of each.
fn assert_passes_covering_everything(graph: &Graph<CpuBackend>, report: &GradCheckReport) {
    if let Err(e) = report.verdict() {
        panic!("{e}");
    }
    let mut expected: Vec<String> = graph.params().iter().map(|p| p.name.clone()).collect();
    expected.push("input".into());
    let names: Vec<String> = report.tensors.iter().map(|t| t.name.clone()).collect();
    assert_eq!(names, expected);
    for t in &report.tensors {
        assert!(t.checked > 0, "no element of {} was compared", t.name);
        // The largest element is always compared; if even it were below
        // the absolute tolerance, a wrong gradient could pass unnoticed.
        assert!(
            t.max_abs_grad > SIGNIFICANT * report.abs_tol,
            "{}: gradients up to {:e} against an absolute tolerance of {:e}: the check would say little",
            t.name,
            t.max_abs_grad,
            report.abs_tol
        );
    }
}

/// How far above the absolute tolerance each tensor's largest gradient
/// must be: then a wrong gradient of that element (off by more than about
/// 1 / SIGNIFICANT of it) is caught.
const SIGNIFICANT: f64 = 4.0;

fn config() -> GradCheckConfig {
    GradCheckConfig {
        samples_per_tensor: 10,
        input_samples: 12,
        ..GradCheckConfig::default()
    }
}

fn conv(out: usize, k: usize, stride: usize, pad: usize, bias: bool) -> LayerSpec {
    LayerSpec::Conv2d {
        geometry: Conv2dGeometry::new(out, k).stride(stride).padding(pad),
        bias,
    }
}

#[test]
fn lenet5_gradients_match_finite_differences() {
    let spec = lenet5(&ModelOptions::new([1, 28, 28], 10)).unwrap();
    let (graph, report) = check(&spec, 3, 0, &config());
    assert_passes_covering_everything(&graph, &report);
    let names: Vec<_> = report.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
            "fc3.weight",
            "fc3.bias",
            "input",
        ]
    );
}

#[test]
fn lenet5_with_batch_norm_gradients_match_finite_differences() {
    let opts = ModelOptions {
        batch_norm: true,
        ..ModelOptions::new([1, 28, 28], 10)
    };
    let (graph, report) = check(&lenet5(&opts).unwrap(), 4, 10, &config());
    assert_passes_covering_everything(&graph, &report);
    assert!(report.tensors.iter().any(|t| t.name == "conv2_bn.weight"));
}

/// conv -> bn -> relu -> conv -> bn, plus the block input, relu, global
/// average pooling, linear. Batch norm makes every sample's loss depend on
/// the others, and the add sends the gradient down two paths.
#[test]
fn residual_block_with_batch_norm_gradients_match_finite_differences() {
    let spec = GraphBuilder::new([4, 6, 6])
        .layer("conv1", conv(4, 3, 1, 1, false))
        .batch_norm2d("bn1")
        .relu()
        .layer("conv2", conv(4, 3, 1, 1, false))
        .batch_norm2d("bn2")
        .add_nodes("add", "bn2", cnn_core::graph::INPUT)
        .relu()
        .global_avg_pool()
        .linear("fc", 5)
        .spec()
        .unwrap();
    let (graph, report) = check(&spec, 4, 20, &config());
    assert_passes_covering_everything(&graph, &report);
}

/// The downsampling variant: stride-2 main path and a 1x1 stride-2 conv +
/// batch norm shortcut from the block input (`layer_from`, `add_nodes`).
/// The block input also feeds two consumers, so its gradient is a sum.
#[test]
fn residual_block_with_projection_shortcut_gradients_match_finite_differences() {
    let input = cnn_core::graph::INPUT;
    let spec = GraphBuilder::new([3, 8, 8])
        .layer("conv1", conv(6, 3, 2, 1, false))
        .batch_norm2d("bn1")
        .relu()
        .layer("conv2", conv(6, 3, 1, 1, false))
        .batch_norm2d("bn2")
        .layer_from("downsample.0", input, conv(6, 1, 2, 0, false))
        .batch_norm2d("downsample.1")
        .add_nodes("add", "bn2", "downsample.1")
        .relu()
        .global_avg_pool()
        .linear("fc", 5)
        .spec()
        .unwrap();
    let (graph, report) = check(&spec, 4, 30, &config());
    assert_passes_covering_everything(&graph, &report);
    let shortcut = report
        .tensors
        .iter()
        .find(|t| t.name == "downsample.0.weight")
        .unwrap();
    assert_eq!(shortcut.numel, 6 * 3);
}

/// Every activation kind, each behind its own convolution of the input
/// (parallel branches summed by residual adds), so each conv's gradient
/// goes through exactly one activation's derivative and none is attenuated
/// by a deep stack; then average pooling with padding, counting the
/// padding and not, and a linear classifier. Non-default parameters where a
/// default would hide a wrong one: leaky slope 0.1, ELU alpha 0.7, softplus
/// beta 2.
#[test]
fn every_activation_and_padded_average_pooling_match_finite_differences() {
    let input = cnn_core::graph::INPUT;
    let activations = [
        Activation::Relu,
        Activation::LeakyRelu {
            negative_slope: 0.1,
        },
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Elu { alpha: 0.7 },
        Activation::Silu,
        Activation::Softplus {
            beta: 2.0,
            threshold: 20.0,
        },
    ];
    let mut b = GraphBuilder::new([2, 7, 7]);
    let mut sum: Option<String> = None;
    for act in activations {
        let name = act.name();
        b = b
            .layer_from(format!("conv_{name}"), input, conv(3, 3, 1, 1, true))
            .layer(format!("act_{name}"), LayerSpec::Activation(act));
        sum = Some(match sum {
            None => format!("act_{name}"),
            Some(prev) => {
                let node = format!("sum_{name}");
                b = b.add_nodes(node.clone(), prev, format!("act_{name}"));
                node
            }
        });
    }
    let spec = b
        .avg_pool2d(Pool2dGeometry::new(3).stride(2).padding(1))
        .avg_pool2d(
            Pool2dGeometry::new(2)
                .stride(1)
                .padding(1)
                .count_include_pad(false),
        )
        .flatten()
        .linear("fc", 6)
        .spec()
        .unwrap();
    let (graph, report) = check(&spec, 3, 40, &config());
    assert_passes_covering_everything(&graph, &report);
    assert_eq!(report.tensors.len(), 2 * 9 + 2 + 1);
}

fn lenet5_with_dropout() -> GraphSpec {
    let opts = ModelOptions {
        dropout: 0.3,
        ..ModelOptions::new([1, 28, 28], 10)
    };
    lenet5(&opts).unwrap()
}

/// With the step reset before every forward, each forward draws the
/// analytic pass's dropout mask and the check passes.
#[test]
fn dropout_gradients_match_finite_differences_with_a_fixed_step() {
    let spec = lenet5_with_dropout();
    assert!(spec.nodes.iter().any(|n| matches!(
        n.op,
        cnn_core::graph::NodeOp::Layer(LayerSpec::Dropout { .. })
    )));
    let (graph, report) = check(&spec, 3, 50, &config());
    assert_passes_covering_everything(&graph, &report);
}

/// Without the fixed step every forward draws a new mask: the differences
/// are noise and the check must fail, which shows both that dropout masks
/// follow the step and that the fixed-step pass above is not vacuous.
#[test]
fn dropout_gradients_do_not_match_when_the_mask_changes_between_forwards() {
    let cfg = GradCheckConfig {
        fix_step: false,
        ..config()
    };
    let (_, report) = check(&lenet5_with_dropout(), 3, 50, &cfg);
    assert!(
        report.verdict().is_err(),
        "a new dropout mask per forward must break the check:\n{report}"
    );
}

/// The checker catches a wrong gradient: scale one tensor's gradient by
/// 1.2, flip the sign of another's, zero the input gradient; each must be
/// named in the verdict.
#[test]
fn the_checker_rejects_wrong_gradients() {
    let b = backend();
    let spec = lenet5(&ModelOptions::new([1, 28, 28], 10)).unwrap();
    let mut graph = Graph::new(&b, with_input_probe(&spec), 60).unwrap();
    let (x, targets) = batch(&graph, 2, 61);
    let loss = SoftmaxCrossEntropy::new();
    let cfg = config();
    let analytic = analytic_gradients(&mut graph, &x, 2, &targets, &loss, true).unwrap();
    // The unaltered gradients pass, so any failure below is the alteration's.
    let report = check_gradients(&mut graph, &x, 2, &targets, &loss, &cfg, &analytic).unwrap();
    report.verdict().unwrap();

    let alter = |name: &str, f: fn(f32) -> f32| {
        let mut wrong = analytic.clone();
        match wrong.params.iter_mut().find(|(n, _)| n == name) {
            Some((_, g)) => g.iter_mut().for_each(|v| *v = f(*v)),
            None => wrong
                .input
                .as_mut()
                .unwrap()
                .iter_mut()
                .for_each(|v| *v = f(*v)),
        }
        wrong
    };
    for (name, f) in [
        ("conv2.weight", (|v| v * 1.2) as fn(f32) -> f32),
        ("fc1.bias", |v| -v),
        ("conv1.bias", |v| v * 0.5),
        ("input", |_| 0.0),
    ] {
        let wrong = alter(name, f);
        let report = check_gradients(&mut graph, &x, 2, &targets, &loss, &cfg, &wrong).unwrap();
        let msg = report
            .verdict()
            .expect_err(&format!("a wrong {name} gradient must fail"));
        assert!(
            msg.contains(&format!("{name}[")),
            "the verdict must name {name}:\n{msg}"
        );
        assert!(
            report.mismatches.iter().all(|m| m.tensor == name),
            "only {name} was altered:\n{msg}"
        );
    }
}

/// A check leaves parameters, running statistics, counters and the step
/// as found, and the parameter gradients hold the analytic gradients.
#[test]
fn gradcheck_leaves_the_graph_as_it_found_it() {
    let b = backend();
    let opts = ModelOptions {
        batch_norm: true,
        dropout: 0.2,
        ..ModelOptions::new([1, 28, 28], 10)
    };
    let mut graph = Graph::new(&b, lenet5(&opts).unwrap(), 70).unwrap();
    graph.set_step(41);
    let before = graph.state_dict().unwrap();
    let (x, targets) = batch(&graph, 2, 71);
    let loss = SoftmaxCrossEntropy::new();
    let cfg = GradCheckConfig {
        samples_per_tensor: 3,
        ..GradCheckConfig::default()
    };
    let report = gradcheck(&mut graph, &x, 2, &targets, &loss, &cfg).unwrap();
    report.verdict().unwrap();
    assert_eq!(graph.state_dict().unwrap(), before);
    assert_eq!(graph.step(), 41);
    let analytic = analytic_gradients(&mut graph, &x, 2, &targets, &loss, false).unwrap();
    for (p, (name, g)) in graph.params().iter().zip(&analytic.params) {
        assert_eq!(&p.name, name);
        assert_eq!(&p.grad.to_vec(&b).unwrap(), g, "{name}");
    }
}

#[test]
fn input_gradients_need_an_identity_first_node() {
    let b = backend();
    let spec = lenet5(&ModelOptions::new([1, 28, 28], 10)).unwrap();
    let mut graph = Graph::new(&b, spec, 0).unwrap();
    let (x, targets) = batch(&graph, 1, 1);
    let err = gradcheck(
        &mut graph,
        &x,
        1,
        &targets,
        &SoftmaxCrossEntropy::new(),
        &config(),
    )
    .unwrap_err();
    assert!(err.contains("with_input_probe"), "{err}");
}
