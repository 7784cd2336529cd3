//! The built-in architectures, as [`GraphSpec`]s.
//!
//! Each takes [`ModelOptions`] so the comparisons the project is about
//! (activation choice, dropout, batch norm) change one thing at a time.

use crate::backend::{Activation, Conv2dGeometry, Pool2dGeometry};
use crate::error::{CnnError, Result};
use crate::graph::{GraphBuilder, GraphSpec};
use crate::layers::LayerSpec;
use crate::shape::Shape;

/// Options shared by the built-in models.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptions {
    /// Per-sample input shape `[C, H, W]`.
    pub input: Shape,
    pub classes: usize,
    /// The hidden activation (ReLU in every original architecture).
    pub activation: Activation,
    /// Dropout probability before each hidden and the final linear layer
    /// (0 = no dropout layers).
    pub dropout: f32,
    /// Insert `BatchNorm2d` after each convolution (always on for ResNet).
    pub batch_norm: bool,
}

impl ModelOptions {
    /// ReLU, no dropout, no batch norm.
    pub fn new(input: impl Into<Shape>, classes: usize) -> Self {
        ModelOptions {
            input: input.into(),
            classes,
            activation: Activation::Relu,
            dropout: 0.0,
            batch_norm: false,
        }
    }
}

/// The built-in model names, with a one-line description.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "article",
        "the source article's classifier, corrected: conv 6, conv 12, linear 256, linear 10",
    ),
    (
        "lenet5",
        "LeNet-5: conv1 6@5x5 pad 2, conv2 16@5x5, fc 120, 84, 10",
    ),
    (
        "vgg",
        "a small VGG-style net: 3 blocks of two 3x3 convs (32, 64, 128) with max pooling, fc 256",
    ),
    (
        "resnet20",
        "ResNet-20 (He et al. 2016, CIFAR variant): 3 stages x 3 basic blocks, 16/32/64 channels",
    ),
    (
        "airbench94",
        "airbench94's network (Jordan 2024): 2x2 conv 24 + GELU, 3 groups of conv-pool-BN-GELU-conv-BN-GELU (64/256/256), max pool 3, linear 10",
    ),
];

/// The built-in model called `name`.
pub fn builtin(name: &str, opts: &ModelOptions) -> Result<GraphSpec> {
    match name {
        "article" => article(opts),
        "lenet5" | "lenet" => lenet5(opts),
        "vgg" | "vgg_small" => vgg_small(opts),
        "resnet20" | "resnet" => resnet20(opts),
        "airbench94" | "airbench" => airbench94(opts),
        other => Err(CnnError::value(
            "model",
            format!(
                "unknown model `{other}` (built-in: article, lenet5, vgg, resnet20, airbench94; or a .toml model spec)"
            ),
        )),
    }
}

fn conv_block(
    mut b: GraphBuilder,
    name: &str,
    geometry: Conv2dGeometry,
    opts: &ModelOptions,
) -> GraphBuilder {
    b = b.layer(
        name,
        LayerSpec::Conv2d {
            geometry,
            bias: !opts.batch_norm,
        },
    );
    if opts.batch_norm {
        b = b.batch_norm2d(format!("{name}_bn"));
    }
    b.activation(opts.activation)
}

fn maybe_dropout(b: GraphBuilder, p: f32) -> GraphBuilder {
    if p > 0.0 { b.dropout(p) } else { b }
}

/// The source article's classifier in corrected form: conv 3->6 k3 p1, act,
/// maxpool 2; conv 6->12 k3 p1, act, maxpool 2; flatten (768 for 3x32x32);
/// fc1 ->256, act; fc2 256->classes.
pub fn article(opts: &ModelOptions) -> Result<GraphSpec> {
    let mut b = GraphBuilder::new(opts.input.clone());
    b = conv_block(b, "conv1", Conv2dGeometry::new(6, 3).padding(1), opts)
        .max_pool2d(Pool2dGeometry::new(2));
    b = conv_block(b, "conv2", Conv2dGeometry::new(12, 3).padding(1), opts)
        .max_pool2d(Pool2dGeometry::new(2));
    b = maybe_dropout(b.flatten(), opts.dropout);
    b = maybe_dropout(
        b.linear("fc1", 256).activation(opts.activation),
        opts.dropout,
    );
    b.linear("fc2", opts.classes).spec()
}

/// The article's classifier exactly as published, declaring 128 input
/// features for its first linear layer. It does not build: the flatten gives
/// 768 features for a 3x32x32 input.
pub fn article_as_published() -> Result<GraphSpec> {
    GraphBuilder::new([3, 32, 32])
        .conv2d("conv1", Conv2dGeometry::new(6, 3).padding(1))
        .relu()
        .max_pool2d(Pool2dGeometry::new(2))
        .conv2d("conv2", Conv2dGeometry::new(12, 3).padding(1))
        .relu()
        .max_pool2d(Pool2dGeometry::new(2))
        .flatten()
        .linear_in_out("fc1", 128, 256)
        .linear_in_out("fc2", 256, 10)
        .spec()
}

/// LeNet-5: conv1 Conv2d(C,6,5,padding=2), act, maxpool 2; conv2
/// Conv2d(6,16,5), act, maxpool 2; flatten (400 for 1x28x28); fc1 ->120,
/// act; fc2 120->84, act; fc3 84->classes.
pub fn lenet5(opts: &ModelOptions) -> Result<GraphSpec> {
    let mut b = GraphBuilder::new(opts.input.clone());
    b = conv_block(b, "conv1", Conv2dGeometry::new(6, 5).padding(2), opts)
        .max_pool2d(Pool2dGeometry::new(2));
    b = conv_block(b, "conv2", Conv2dGeometry::new(16, 5), opts).max_pool2d(Pool2dGeometry::new(2));
    b = maybe_dropout(b.flatten(), opts.dropout);
    b = maybe_dropout(
        b.linear("fc1", 120).activation(opts.activation),
        opts.dropout,
    );
    b = maybe_dropout(
        b.linear("fc2", 84).activation(opts.activation),
        opts.dropout,
    );
    b.linear("fc3", opts.classes).spec()
}

/// A small VGG-style net: three blocks of two 3x3 convolutions (32, 64, 128
/// channels) each followed by 2x2 max pooling, then fc 256 and the classifier.
pub fn vgg_small(opts: &ModelOptions) -> Result<GraphSpec> {
    let mut b = GraphBuilder::new(opts.input.clone());
    for (block, channels) in [(1, 32), (2, 64), (3, 128)] {
        for conv in 1..=2 {
            b = conv_block(
                b,
                &format!("features.{block}.{conv}"),
                Conv2dGeometry::new(channels, 3).padding(1),
                opts,
            );
        }
        b = b.max_pool2d(Pool2dGeometry::new(2));
    }
    b = maybe_dropout(b.flatten(), opts.dropout);
    b = maybe_dropout(
        b.linear("fc1", 256).activation(opts.activation),
        opts.dropout,
    );
    b.linear("fc2", opts.classes).spec()
}

/// ResNet-20 for 32x32 inputs: a 3x3 stem of 16 channels, three stages of
/// three basic blocks (16, 32, 64 channels; stride 2 at the start of stages
/// 2 and 3, with a 1x1 convolution + batch norm shortcut), global average
/// pooling and a linear classifier. Batch norm is always on.
pub fn resnet20(opts: &ModelOptions) -> Result<GraphSpec> {
    let act = opts.activation;
    let conv = |c: usize, k: usize, s: usize, p: usize| LayerSpec::Conv2d {
        geometry: Conv2dGeometry::new(c, k).stride(s).padding(p),
        bias: false,
    };
    let mut b = GraphBuilder::new(opts.input.clone())
        .layer("conv1", conv(16, 3, 1, 1))
        .batch_norm2d("bn1")
        .activation(act);
    let mut channels = 16;
    for (stage, out) in [(1, 16), (2, 32), (3, 64)] {
        for block in 0..3 {
            let stride = if stage > 1 && block == 0 { 2 } else { 1 };
            let p = format!("layer{stage}.{block}");
            let block_in = b.last();
            b = b
                .layer(format!("{p}.conv1"), conv(out, 3, stride, 1))
                .batch_norm2d(format!("{p}.bn1"))
                .activation(act)
                .layer(format!("{p}.conv2"), conv(out, 3, 1, 1))
                .batch_norm2d(format!("{p}.bn2"));
            let main = b.last();
            let shortcut = if stride != 1 || channels != out {
                b = b
                    .layer_from(
                        format!("{p}.downsample.0"),
                        block_in,
                        conv(out, 1, stride, 0),
                    )
                    .batch_norm2d(format!("{p}.downsample.1"));
                b.last()
            } else {
                block_in
            };
            b = b
                .add_nodes(format!("{p}.add"), main, shortcut)
                .activation(act);
            channels = out;
        }
    }
    b = maybe_dropout(b.global_avg_pool(), opts.dropout);
    b.linear("fc", opts.classes).spec()
}

/// airbench94's batch norm (`BatchNorm(momentum=0.6, eps=1e-12)` in the
/// script, whose `momentum` is the running statistics' decay: PyTorch's
/// `momentum` is 1 - 0.6).
const AIRBENCH_BN: LayerSpec = LayerSpec::BatchNorm2d {
    eps: 1e-12,
    momentum: 0.4,
};

/// The network of airbench94 (Jordan 2024, "94% on CIFAR-10 in 3.29
/// seconds on a single GPU", arXiv 2404.00498), as its script's
/// `make_net` builds it:
///
/// - `whiten`: Conv2d(C, 24, 2, padding 0, bias), then GELU;
/// - three groups `block1..3` of widths 64/256/256, each conv3x3 (pad 1,
///   no bias) -> max pool 2 -> batch norm -> GELU -> conv3x3 -> batch norm
///   -> GELU;
/// - max pool 3 (at 3x3 maps for 32x32 inputs: 32 -> 31 -> 15 -> 7 -> 3
///   -> 1), flatten, `head`: Linear(256, classes) without bias.
///
/// Where it differs from the script: `whiten` is a plain trainable
/// convolution with PyTorch's default initialisation (the script
/// initialises it from the training set's 2x2 patch covariance and freezes
/// its weight); the batch norms' weights are trainable (the script freezes
/// them at 1; the parameter count is the same, PyTorch counts frozen
/// parameters too); the logits are not multiplied by 1/9 (no scale layer
/// exists). Batch norm uses the script's eps 1e-12 and running-statistics
/// momentum 0.4 (its `momentum=0.6` is the decay).
///
/// GELU (exact) and batch norm are part of the network: `opts.activation`
/// and `opts.batch_norm` do not change it (as batch norm is part of
/// ResNet-20); `opts.dropout` adds dropout before `head`.
pub fn airbench94(opts: &ModelOptions) -> Result<GraphSpec> {
    let conv3 = |c: usize| LayerSpec::Conv2d {
        geometry: Conv2dGeometry::new(c, 3).padding(1),
        bias: false,
    };
    let gelu = Activation::Gelu;
    let mut b = GraphBuilder::new(opts.input.clone())
        .layer(
            "whiten",
            LayerSpec::Conv2d {
                geometry: Conv2dGeometry::new(24, 2),
                bias: true,
            },
        )
        .activation(gelu);
    for (i, width) in [(1, 64), (2, 256), (3, 256)] {
        let p = format!("block{i}");
        b = b
            .layer(format!("{p}.conv1"), conv3(width))
            .max_pool2d(Pool2dGeometry::new(2))
            .layer(format!("{p}.norm1"), AIRBENCH_BN)
            .activation(gelu)
            .layer(format!("{p}.conv2"), conv3(width))
            .layer(format!("{p}.norm2"), AIRBENCH_BN)
            .activation(gelu);
    }
    b = maybe_dropout(b.max_pool2d(Pool2dGeometry::new(3)).flatten(), opts.dropout);
    b.layer(
        "head",
        LayerSpec::Linear {
            in_features: None,
            out_features: opts.classes,
            bias: false,
        },
    )
    .spec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::NodeOp;

    #[test]
    fn article_as_published_is_rejected_naming_both_feature_counts() {
        let err = article_as_published().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("fc1") && msg.contains("768") && msg.contains("128"),
            "message must name the layer and both counts: {msg}"
        );
        assert_eq!(
            msg,
            "layer `fc1`: the input gives 768 features (shape [768]) where the linear layer expects 128"
        );
    }

    #[test]
    fn corrected_article_builds_with_768_features() {
        let spec = article(&ModelOptions::new([3, 32, 32], 10)).unwrap();
        let r = spec.resolve().unwrap();
        let flatten = spec
            .nodes
            .iter()
            .position(|n| n.name.starts_with("flatten"))
            .unwrap();
        assert_eq!(r.shapes[flatten].dims(), &[768]);
        assert_eq!(spec.output_shape().unwrap().dims(), &[10]);
        assert_eq!(spec.num_params().unwrap(), 168 + 660 + 196_864 + 2_570);
    }

    #[test]
    fn lenet5_matches_the_classic_shapes_and_parameter_count() {
        let spec = lenet5(&ModelOptions::new([1, 28, 28], 10)).unwrap();
        let names: Vec<_> = spec.nodes.iter().map(|n| n.name.as_str()).collect();
        for expected in ["conv1", "conv2", "fc1", "fc2", "fc3"] {
            assert!(names.contains(&expected), "{names:?}");
        }
        let r = spec.resolve().unwrap();
        let fc1 = names.iter().position(|n| *n == "fc1").unwrap();
        assert_eq!(r.shapes[fc1 - 1].dims(), &[400]);
        assert_eq!(spec.num_params().unwrap(), 61_706);
    }

    #[test]
    fn resnet20_resolves_with_residual_adds() {
        let spec = resnet20(&ModelOptions::new([3, 32, 32], 10)).unwrap();
        let adds = spec
            .nodes
            .iter()
            .filter(|n| matches!(n.op, crate::graph::NodeOp::Add { .. }))
            .count();
        assert_eq!(adds, 9);
        assert_eq!(spec.output_shape().unwrap().dims(), &[10]);
        let convs = spec
            .nodes
            .iter()
            .filter(|n| matches!(n.op, crate::graph::NodeOp::Layer(LayerSpec::Conv2d { .. })))
            .count();
        // 1 stem + 18 in blocks + 2 projection shortcuts.
        assert_eq!(convs, 21);
    }

    #[test]
    fn airbench94_has_the_scripts_layers_and_shapes() {
        let spec = builtin("airbench94", &ModelOptions::new([3, 32, 32], 10)).unwrap();
        let r = spec.resolve().unwrap();
        let shape = |name: &str| {
            let i = spec.nodes.iter().position(|n| n.name == name).unwrap();
            r.shapes[i].dims().to_vec()
        };
        // 2x2 without padding: 32 -> 31; each group's pool halves (floor):
        // 31 -> 15 -> 7 -> 3; the final max pool 3 leaves 1x1.
        assert_eq!(shape("whiten"), [24, 31, 31]);
        assert_eq!(shape("block1.conv1"), [64, 31, 31]);
        assert_eq!(shape("block1.norm1"), [64, 15, 15]);
        assert_eq!(shape("block2.norm2"), [256, 7, 7]);
        assert_eq!(shape("block3.norm2"), [256, 3, 3]);
        assert_eq!(spec.output_shape().unwrap().dims(), &[10]);
        let gelus = spec
            .nodes
            .iter()
            .filter(|n| matches!(n.op, NodeOp::Layer(LayerSpec::Activation(Activation::Gelu))))
            .count();
        assert_eq!(gelus, 7);
        let bns: Vec<_> = spec
            .nodes
            .iter()
            .filter_map(|n| match n.op {
                NodeOp::Layer(LayerSpec::BatchNorm2d { eps, momentum }) => Some((eps, momentum)),
                _ => None,
            })
            .collect();
        assert_eq!(bns, [(1e-12, 0.4); 6]);
        let head = spec.nodes.last().unwrap();
        assert_eq!(head.name, "head");
        assert!(matches!(
            head.op,
            NodeOp::Layer(LayerSpec::Linear { bias: false, .. })
        ));
        // ReLU options do not change it; dropout adds one layer before the head.
        let relu = ModelOptions {
            activation: Activation::Relu,
            ..ModelOptions::new([3, 32, 32], 10)
        };
        assert_eq!(airbench94(&relu).unwrap(), spec);
        let dropout = ModelOptions {
            dropout: 0.25,
            ..ModelOptions::new([3, 32, 32], 10)
        };
        let with = airbench94(&dropout).unwrap();
        assert_eq!(with.nodes.len(), spec.nodes.len() + 1);
        assert!(matches!(
            with.nodes[with.nodes.len() - 2].op,
            NodeOp::Layer(LayerSpec::Dropout { p: 0.25 })
        ));
    }

    #[test]
    fn builtin_rejects_unknown_names() {
        let err = builtin("alexnet", &ModelOptions::new([3, 32, 32], 10)).unwrap_err();
        assert!(err.to_string().contains("unknown model `alexnet`"));
    }
}
