//! Hostile model specs: sizes whose arithmetic overflows `usize` (the
//! release profile has no overflow checks, so an unchecked product wraps
//! around to a small, plausible number) are typed errors naming the node;
//! and, when specs are read from files (`serde`), a node that is both a
//! layer and a residual add, or that has a key its kind does not take, is
//! an error naming the node and the key — never a layer silently dropped.

use cnn_core::backend::{Conv2dGeometry, Pool2dGeometry};
use cnn_core::graph::GraphBuilder;
use cnn_core::{CnnError, LayerSpec};

/// `err` is a size overflow of `layer` (`None`: of the whole model) whose
/// one-line message says what is too large.
fn assert_too_large(err: &CnnError, layer: Option<&str>, what: &str) {
    let msg = err.to_string();
    assert!(
        matches!(err, CnnError::SizeOverflow { layer: l, .. } if l.as_deref() == layer),
        "{msg}"
    );
    if let Some(layer) = layer {
        assert!(msg.starts_with(&format!("layer `{layer}`: ")), "{msg}");
    }
    assert!(msg.contains("too large"), "{msg}");
    assert!(msg.contains(what), "{msg}");
    assert!(msg.contains("overflows 64-bit sizes"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn input_whose_element_count_wraps_around_is_a_size_error() {
    // 3 x (2^63 + 1) x 2 = 3 x (2^64 + 2) wraps to 6.
    let input = [3, (1usize << 63) + 1, 2];
    let err = GraphBuilder::new(input)
        .flatten()
        .linear("fc", 10)
        .spec()
        .unwrap_err();
    assert_too_large(&err, None, "the input shape [3, 9223372036854775809, 2]");
}

#[test]
fn conv_output_too_large_to_count_is_a_size_error() {
    // [2^30, 2^20, 2^20] = 2^70 elements.
    let err = GraphBuilder::new([1, 1 << 20, 1 << 20])
        .conv2d("c", Conv2dGeometry::new(1 << 30, 1))
        .spec()
        .unwrap_err();
    assert_too_large(
        &err,
        Some("c"),
        "output shape [1073741824, 1048576, 1048576]",
    );
}

#[test]
fn layer_parameter_counts_that_overflow_are_size_errors() {
    // 2^33 x 2^32 weights.
    let err = GraphBuilder::new([1, 1 << 32, 1])
        .flatten()
        .linear("fc", 1 << 33)
        .spec()
        .unwrap_err();
    assert_too_large(
        &err,
        Some("fc"),
        "parameter count (8589934592 x 4294967296 + 8589934592)",
    );
    // 2^40 output channels x 2^30 input channels.
    let err = GraphBuilder::new([1 << 30, 1, 1])
        .conv2d("c", Conv2dGeometry::new(1 << 40, 1))
        .spec()
        .unwrap_err();
    assert_too_large(
        &err,
        Some("c"),
        "parameter count (1099511627776 x 1073741824 x 1 x 1",
    );
}

#[test]
fn model_totals_that_overflow_are_size_errors() {
    // Two linear layers of 2^63 + 2^31 parameters each: each fits, the
    // total does not.
    let spec = GraphBuilder::new([1, 1 << 32, 1])
        .flatten()
        .linear("fc1", 1 << 31)
        .layer_from(
            "fc2",
            "flatten1",
            LayerSpec::Linear {
                in_features: None,
                out_features: 1 << 31,
                bias: true,
            },
        )
        .spec()
        .unwrap();
    assert_too_large(&spec.num_params().unwrap_err(), None, "parameter count");
    // An input of 2^63 elements and an activation of as many: each fits,
    // the per-sample total does not.
    let spec = GraphBuilder::new([1, 1 << 32, 1 << 31])
        .relu()
        .spec()
        .unwrap();
    assert_too_large(
        &spec.activation_elements_per_sample().unwrap_err(),
        None,
        "activation element count",
    );
}

#[test]
fn window_arithmetic_that_overflows_is_a_size_error() {
    // dilation 4 x (2^62 + 1 - 1) + 1 wraps to 1: the giant kernel would
    // act as a 1x1 one.
    let mut g = Conv2dGeometry::new(2, 1);
    g.kernel = [(1 << 62) + 1, 1];
    g.dilation = [4, 1];
    let err = GraphBuilder::new([1, 8, 8])
        .conv2d("c", g)
        .spec()
        .unwrap_err();
    assert_too_large(&err, Some("c"), "dilated kernel height");
    // 8 + 2 x 2^63 wraps to 8: the padding would vanish.
    let g = Conv2dGeometry::new(2, 1).padding(1 << 63);
    let err = GraphBuilder::new([1, 8, 8])
        .conv2d("c", g)
        .spec()
        .unwrap_err();
    assert_too_large(
        &err,
        Some("c"),
        "padded input height (8 + 2 x 9223372036854775808)",
    );
    // A pool's "padding at most half the kernel" check doubles it too.
    let mut p = Pool2dGeometry::new(2);
    p.padding = [0, 1 << 63];
    let err = GraphBuilder::new([1, 8, 8])
        .layer("pool", LayerSpec::MaxPool2d(p))
        .spec()
        .unwrap_err();
    assert_too_large(&err, Some("pool"), "padded input width");
    // Ceil mode steps a stride past the padded input.
    let p = Pool2dGeometry::new(1).stride(usize::MAX).ceil_mode(true);
    let err = GraphBuilder::new([1, 8, 8])
        .layer("pool", LayerSpec::AvgPool2d(p))
        .spec()
        .unwrap_err();
    assert_too_large(&err, Some("pool"), "plus the stride");
}

/// Large sizes that do fit are counted exactly: 100,000 channels on a
/// 10^6 x 10^6 input (what `cnn train` refuses by its memory estimate).
#[test]
fn large_sizes_that_fit_are_exact() {
    let spec = GraphBuilder::new([1, 1_000_000, 1_000_000])
        .conv2d("c", Conv2dGeometry::new(100_000, 3).padding(1))
        .flatten()
        .linear("fc", 10)
        .spec()
        .unwrap();
    let out = 100_000usize * 1_000_000 * 1_000_000;
    assert_eq!(
        spec.num_params().unwrap(),
        100_000 * 9 + 100_000 + 10 * out + 10
    );
    assert_eq!(
        spec.activation_elements_per_sample().unwrap(),
        1_000_000_000_000 + out + out + 10
    );
}

/// Model specs as a file holds them: TOML values, as cnn-train reads a
/// `--model` file (the library itself depends on no format).
#[cfg(feature = "serde")]
mod from_files {
    use serde::Deserialize;
    use toml::Value;

    use super::*;
    use cnn_core::backend::Activation;
    use cnn_core::graph::{GraphSpec, NodeOp};

    type Error = toml::de::Error;

    /// A short way to write TOML values in the tables below.
    #[derive(Clone)]
    enum V {
        S(&'static str),
        I(i64),
        F(f64),
        B(bool),
        A(Vec<V>),
        T(Vec<(&'static str, V)>),
    }

    impl V {
        fn into_toml(self) -> Value {
            match self {
                V::S(s) => Value::String(s.to_string()),
                V::I(i) => Value::Integer(i),
                V::F(f) => Value::Float(f),
                V::B(b) => Value::Boolean(b),
                V::A(a) => Value::Array(a.into_iter().map(V::into_toml).collect()),
                V::T(t) => Value::Table(
                    t.into_iter()
                        .map(|(k, v)| (k.to_string(), v.into_toml()))
                        .collect(),
                ),
            }
        }
    }

    fn pair(a: i64, b: i64) -> V {
        V::A(vec![V::I(a), V::I(b)])
    }

    /// Every node kind with all its keys (after `name`), as the docs write
    /// them, each keeping an `[1, 8, 8]` input valid.
    fn kinds() -> Vec<(&'static str, Vec<(&'static str, V)>)> {
        let pool = |t| {
            vec![
                ("type", V::S(t)),
                ("kernel", pair(1, 1)),
                ("stride", pair(1, 1)),
                ("padding", pair(0, 0)),
                ("ceil_mode", V::B(false)),
                ("count_include_pad", V::B(true)),
            ]
        };
        let act = |kind, params: Vec<(&'static str, V)>| {
            let mut keys = vec![("type", V::S("activation")), ("kind", V::S(kind))];
            keys.extend(params);
            keys
        };
        vec![
            (
                "conv2d",
                vec![
                    ("type", V::S("conv2d")),
                    ("out_channels", V::I(1)),
                    ("kernel", pair(3, 3)),
                    ("stride", pair(1, 1)),
                    ("padding", pair(1, 1)),
                    ("dilation", pair(1, 1)),
                    ("groups", V::I(1)),
                    ("bias", V::B(false)),
                ],
            ),
            ("max_pool2d", pool("max_pool2d")),
            ("avg_pool2d", pool("avg_pool2d")),
            (
                "batch_norm2d",
                vec![
                    ("type", V::S("batch_norm2d")),
                    ("eps", V::F(1e-5)),
                    ("momentum", V::F(0.1)),
                ],
            ),
            ("dropout", vec![("type", V::S("dropout")), ("p", V::F(0.5))]),
            ("relu", act("relu", vec![])),
            (
                "leaky_relu",
                act("leaky_relu", vec![("negative_slope", V::F(0.1))]),
            ),
            ("sigmoid", act("sigmoid", vec![])),
            ("tanh", act("tanh", vec![])),
            ("gelu", act("gelu", vec![])),
            ("gelu_tanh", act("gelu_tanh", vec![])),
            ("elu", act("elu", vec![("alpha", V::I(1))])),
            ("silu", act("silu", vec![])),
            (
                "softplus",
                act("softplus", vec![("beta", V::I(1)), ("threshold", V::I(20))]),
            ),
            ("add", vec![("add", V::S("first"))]),
            ("global_avg_pool", vec![("type", V::S("global_avg_pool"))]),
            ("flatten", vec![("type", V::S("flatten"))]),
            (
                "linear",
                vec![
                    ("type", V::S("linear")),
                    ("in_features", V::I(1)),
                    ("out_features", V::I(2)),
                ],
            ),
        ]
    }

    fn node(name: &'static str, keys: &[(&'static str, V)]) -> V {
        let mut table = vec![("name", V::S(name))];
        table.extend(keys.iter().cloned());
        V::T(table)
    }

    /// A spec: a 1x1 convolution named `first`, then `nodes`.
    fn spec(nodes: Vec<V>) -> Result<GraphSpec, Error> {
        let first = node(
            "first",
            &[
                ("type", V::S("conv2d")),
                ("out_channels", V::I(1)),
                ("kernel", pair(1, 1)),
                ("stride", pair(1, 1)),
                ("padding", pair(0, 0)),
                ("dilation", pair(1, 1)),
                ("groups", V::I(1)),
            ],
        );
        let mut all = vec![first];
        all.extend(nodes);
        let input = V::A(vec![V::I(1), V::I(8), V::I(8)]);
        GraphSpec::deserialize(V::T(vec![("input", input), ("nodes", V::A(all))]).into_toml())
    }

    #[test]
    fn every_node_kind_reads_as_documented() {
        let nodes: Vec<V> = kinds()
            .iter()
            .enumerate()
            .map(|(i, (_, keys))| node(Box::leak(format!("n{i}").into_boxed_str()), keys))
            .collect();
        let spec = spec(nodes).unwrap();
        let kinds: Vec<String> = spec
            .nodes
            .iter()
            .map(|n| match &n.op {
                NodeOp::Layer(l) => l.kind().to_string(),
                NodeOp::Add { add } => format!("add {add}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "conv2d",
                "conv2d",
                "max_pool2d",
                "avg_pool2d",
                "batch_norm2d",
                "dropout",
                "relu",
                "leaky_relu",
                "sigmoid",
                "tanh",
                "gelu",
                "gelu_tanh",
                "elu",
                "silu",
                "softplus",
                "add first",
                "global_avg_pool",
                "flatten",
                "linear"
            ]
        );
        assert_eq!(
            spec.nodes[2].op,
            NodeOp::Layer(LayerSpec::MaxPool2d(Pool2dGeometry::new(1)))
        );
        assert_eq!(
            spec.nodes[7].op,
            NodeOp::Layer(LayerSpec::Activation(Activation::LeakyRelu {
                negative_slope: 0.1
            }))
        );
        // `bias` defaults to true.
        assert!(matches!(
            spec.nodes[0].op,
            NodeOp::Layer(LayerSpec::Conv2d { bias: true, .. })
        ));
        assert!(matches!(
            spec.nodes[1].op,
            NodeOp::Layer(LayerSpec::Conv2d { bias: false, .. })
        ));
        assert_eq!(spec.output_shape().unwrap().dims(), [2]);
    }

    /// A layer node with `add` as well: with a conv the conv used to be
    /// dropped (the node read as an add), with a pool, an activation or
    /// any other layer the add was ignored.
    #[test]
    fn a_node_with_type_and_add_is_an_error_naming_it() {
        for (kind, keys) in kinds().into_iter().filter(|(k, _)| *k != "add") {
            let mut keys = keys;
            keys.push(("add", V::S("first")));
            let err = spec(vec![node("both", &keys)]).unwrap_err().to_string();
            assert!(
                err.starts_with("node `both`: ") && err.contains("both `type` and `add`"),
                "{kind}: {err}"
            );
        }
    }

    /// Every node kind rejects a key it does not take, naming the node and
    /// the key (conv nodes did; activation, pool, parameterless and add
    /// nodes ignored it).
    #[test]
    fn every_node_kind_rejects_unknown_keys() {
        for (kind, keys) in kinds() {
            let mut keys = keys;
            keys.push(("slope", V::F(0.2)));
            let err = spec(vec![node("odd", &keys)]).unwrap_err().to_string();
            assert!(
                err.starts_with("node `odd`: ") && err.contains("`slope`"),
                "{kind}: {err}"
            );
        }
        // A parameter of another activation kind is as unknown.
        let err = spec(vec![node(
            "act",
            &[
                ("type", V::S("activation")),
                ("kind", V::S("relu")),
                ("negative_slope", V::F(0.1)),
            ],
        )])
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("node `act`: ") && err.contains("`negative_slope`"),
            "{err}"
        );
    }

    #[test]
    fn malformed_nodes_are_errors_naming_what_is_wrong() {
        let cases: Vec<(V, &str)> = vec![
            (
                V::T(vec![("type", V::S("flatten"))]),
                "missing field `name`",
            ),
            (
                V::T(vec![("name", V::I(3)), ("type", V::S("flatten"))]),
                "`name` must be a string",
            ),
            (
                node("x", &[("type", V::S("flatten")), ("input", V::I(1))]),
                "node `x`: `input` must be the name of a node",
            ),
            (
                node("x", &[("add", V::I(1))]),
                "node `x`: `add` must be the name",
            ),
            (node("x", &[]), "node `x`: missing field `type`"),
            (
                node("x", &[("type", V::S("conv3d"))]),
                "node `x`: unknown variant `conv3d`",
            ),
            (V::S("flatten"), "a node must be a table"),
        ];
        for (bad, expected) in cases {
            let err = spec(vec![bad]).unwrap_err().to_string();
            assert!(err.contains(expected), "expected `{expected}`: {err}");
        }
    }
}
