//! Whole graphs in f64: LeNet-5 (plain, and with batch norm and dropout),
//! a residual block with batch norm, the small VGG (conv-bn-relu-pool
//! blocks) and a net with every activation and both average poolings, run
//! by the reference kernels and their backwards chained as `Graph<B>`
//! chains them (`gradcheck64::graph`), against central differences of the
//! mean softmax cross-entropy, with `gradcheck64::TOLERANCE`.
//!
//! Each test prints its report (`--nocapture`): the seed of the draw
//! checked, the draws rejected because a perturbation crossed a kink, and
//! per tensor the worst error against the tolerance.

use cnn_core::graph::INPUT;
use cnn_core::models::{ModelOptions, lenet5, vgg_small};
use cnn_core::{Activation, Conv2dGeometry, GraphBuilder, GraphSpec, LayerSpec, Pool2dGeometry};
use cnn_testing::gradcheck64::TOLERANCE;
use cnn_testing::gradcheck64::graph::{GraphCheckConfig, GraphReport, RefGraph, check_graph};

/// Checks `spec`, prints the report and asserts that it covers every
/// parameter (in order) and the input, each with gradients large enough
/// against the absolute tolerance for a wrong one to show.
fn check(spec: &GraphSpec, cfg: &GraphCheckConfig) -> GraphReport {
    let report = check_graph(spec, cfg).unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
    let graph = RefGraph::new(spec, report.seed).unwrap();
    let mut expected: Vec<String> = graph.params.iter().map(|p| p.name.clone()).collect();
    expected.push("input".into());
    let names: Vec<String> = report.tensors.iter().map(|t| t.name.clone()).collect();
    assert_eq!(names, expected);
    for t in &report.tensors {
        assert!(t.checked > 0, "{}: nothing compared", t.name);
        assert!(
            t.max_abs_grad > 100.0 * TOLERANCE.abs,
            "{}: gradients up to {:e} against an absolute tolerance of {:e} say little",
            t.name,
            t.max_abs_grad,
            TOLERANCE.abs
        );
    }
    assert!(report.worst_ratio() <= 1.0);
    report
}

#[test]
fn lenet5_in_f64() {
    let spec = lenet5(&ModelOptions::new([1, 28, 28], 10)).unwrap();
    let report = check(&spec, &GraphCheckConfig::default());
    let names: Vec<&str> = report.tensors.iter().map(|t| t.name.as_str()).collect();
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

/// LeNet-5 with batch norm after each convolution and dropout after the
/// flatten and the hidden linear layers (fixed masks), and label smoothing.
#[test]
fn lenet5_with_batch_norm_dropout_and_label_smoothing_in_f64() {
    let opts = ModelOptions {
        batch_norm: true,
        dropout: 0.25,
        ..ModelOptions::new([1, 28, 28], 10)
    };
    let spec = lenet5(&opts).unwrap();
    assert!(spec.nodes.iter().any(|n| matches!(
        n.op,
        cnn_core::graph::NodeOp::Layer(LayerSpec::Dropout { .. })
    )));
    let cfg = GraphCheckConfig {
        n: 3,
        label_smoothing: 0.1,
        seed: 100,
        ..GraphCheckConfig::default()
    };
    let report = check(&spec, &cfg);
    assert!(report.tensors.iter().any(|t| t.name == "conv2_bn.weight"));
}

fn conv(out: usize, k: usize, stride: usize, pad: usize, bias: bool) -> LayerSpec {
    LayerSpec::Conv2d {
        geometry: Conv2dGeometry::new(out, k).stride(stride).padding(pad),
        bias,
    }
}

/// conv -> bn -> relu -> conv -> bn, plus the block input, relu, global
/// average pooling, linear: batch norm couples the samples and the add
/// sends the gradient down two paths (one of them to the graph input).
#[test]
fn residual_block_with_batch_norm_in_f64() {
    let spec = GraphBuilder::new([4, 6, 6])
        .layer("conv1", conv(4, 3, 1, 1, false))
        .batch_norm2d("bn1")
        .relu()
        .layer("conv2", conv(4, 3, 1, 1, false))
        .batch_norm2d("bn2")
        .add_nodes("add", "bn2", INPUT)
        .relu()
        .global_avg_pool()
        .linear("fc", 5)
        .spec()
        .unwrap();
    let cfg = GraphCheckConfig {
        n: 3,
        samples_per_tensor: 24,
        input_samples: 24,
        seed: 200,
        ..GraphCheckConfig::default()
    };
    check(&spec, &cfg);
}

/// The small VGG with batch norm: three blocks of conv-bn-relu twice and a
/// 2x2 max pooling, then fc-relu-fc, on 8x8 images.
#[test]
fn vgg_small_with_batch_norm_in_f64() {
    let opts = ModelOptions {
        batch_norm: true,
        ..ModelOptions::new([3, 8, 8], 10)
    };
    let spec = vgg_small(&opts).unwrap();
    let cfg = GraphCheckConfig {
        samples_per_tensor: 8,
        input_samples: 12,
        seed: 300,
        ..GraphCheckConfig::default()
    };
    let report = check(&spec, &cfg);
    assert!(report.tensors.iter().any(|t| t.name.contains("bn")));
}

/// Every activation kind in one net, with strided, padded and dilated
/// convolutions, both average-pooling divisors and a max pooling with
/// padding, so that each backward is chained with the others.
#[test]
fn every_activation_and_pooling_in_one_graph_in_f64() {
    let b = GraphBuilder::new([2, 9, 9])
        .layer(
            "conv1",
            LayerSpec::Conv2d {
                geometry: Conv2dGeometry::new(4, 3).padding(2).dilation(2),
                bias: true,
            },
        )
        .activation(Activation::Gelu)
        .avg_pool2d(
            Pool2dGeometry::new(3)
                .stride(2)
                .padding(1)
                .count_include_pad(false),
        )
        .activation(Activation::Elu { alpha: 0.5 })
        .layer("conv2", conv(6, 3, 2, 1, true))
        .activation(Activation::Silu)
        .max_pool2d(Pool2dGeometry::new(3).stride(1).padding(1))
        .activation(Activation::LeakyRelu {
            negative_slope: -0.3,
        })
        .avg_pool2d(Pool2dGeometry::new(2).padding(1))
        .flatten()
        .linear("fc1", 8)
        .activation(Activation::Sigmoid)
        .linear("fc2", 8)
        .activation(Activation::Tanh)
        .activation(Activation::GeluTanh)
        .linear("fc3", 8)
        .activation(Activation::Softplus {
            beta: 2.0,
            threshold: 3.0,
        })
        .activation(Activation::Relu);
    let spec = b.linear("out", 4).spec().unwrap();
    let cfg = GraphCheckConfig {
        n: 3,
        samples_per_tensor: 24,
        input_samples: 24,
        seed: 400,
        ..GraphCheckConfig::default()
    };
    check(&spec, &cfg);
}
