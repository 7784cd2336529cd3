//! Turning a `TrainConfig` into its parts: the data splits, the model spec
//! (a built-in model or a TOML spec file, checked against the data), the
//! graph and its initial weights.

use std::path::Path;

use cnn_core::models::{self, ModelOptions};
use cnn_core::{Activation, Backend, Graph, GraphSpec, LayerSpec, NamedArray, Shape};
use cnn_data::{Dataset, DatasetKind, LoadOptions, Normalization, Subset};

use crate::checkpoint::load_safetensors;
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};

/// The data a run trains and evaluates on.
#[derive(Debug, Clone)]
pub struct DataSplits {
    pub name: String,
    pub train: Subset,
    pub val: Subset,
    /// True when `val` is the test split (`val_fraction = 0`).
    pub val_is_test: bool,
    pub test: Subset,
    pub normalization: Normalization,
    pub class_names: Vec<String>,
    /// Per-image shape `[C, H, W]`.
    pub shape: Shape,
}

impl DataSplits {
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }
}

/// Load the configured dataset and carve out the validation split.
pub fn load_data(config: &TrainConfig) -> Result<DataSplits> {
    let kind: DatasetKind = config.data.parse()?;
    let mut options = LoadOptions::default();
    options.synthetic.seed = config.seed;
    options.folder.size = config.image_size.map(|[h, w]| (h, w));
    options.folder.channels = config.channels;
    let dataset = cnn_data::load(kind, config.data_dir.as_deref(), &options)?;
    if config.val_fraction == 0.0 && dataset.test.is_empty() {
        // Training on without validation would call the training loss
        // "validation" in early stopping and in the best checkpoint.
        let message = "has no test images, and a validation fraction of 0 validates on them; \
                       give --val-fraction above 0";
        return Err(match &config.data_dir {
            Some(dir) => TrainError::bad_file(dir, message),
            None => TrainError::Config(format!("dataset `{}` {message}", dataset.name)),
        });
    }
    splits(dataset, config.val_fraction, config.limit_train)
}

/// Split a loaded dataset: the last `val_fraction` of the training data
/// validates (0 = validate on the test split, Keras's convention), and the
/// first `limit_train` of the rest trains (0 = all), so the validation set
/// stays the same whatever the training-set size.
pub fn splits(dataset: Dataset, val_fraction: f64, limit_train: usize) -> Result<DataSplits> {
    let mut split = cnn_data::split(&dataset, val_fraction)?;
    if limit_train > 0 {
        split = split.limit_train(limit_train);
    }
    if split.train.is_empty() {
        return Err(TrainError::Config(format!(
            "no training images (dataset `{}` has {}, validation fraction {val_fraction})",
            dataset.name,
            dataset.train.len()
        )));
    }
    Ok(DataSplits {
        name: dataset.name.clone(),
        train: split.train,
        val_is_test: split.val_is_test,
        val: split.val,
        test: split.test,
        normalization: dataset.normalization.clone(),
        class_names: dataset.class_names.clone(),
        shape: dataset.shape.clone(),
    })
}

/// The model: a built-in name, or a TOML model spec file (a `GraphSpec`:
/// `input` may be omitted and is then the data's image shape; its output
/// must have one value per class).
pub fn model_spec(config: &TrainConfig, input: &Shape, classes: usize) -> Result<GraphSpec> {
    let path = Path::new(&config.model);
    if config.model_is_spec_file() {
        // These shape the built-in models only; a spec file says its own.
        let defaults = TrainConfig::default();
        let given: Vec<&str> = [
            ("--activation", config.activation != defaults.activation),
            ("--dropout", config.dropout != defaults.dropout),
            ("--batch-norm", config.batch_norm != defaults.batch_norm),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if !given.is_empty() {
            return Err(TrainError::Config(format!(
                "{} {} to the built-in models only; {} defines its own layers",
                given.join(" and "),
                if given.len() == 1 { "applies" } else { "apply" },
                path.display()
            )));
        }
        let spec = load_model_spec(path, input)?;
        let outputs = spec
            .output_shape()
            .map_err(|e| TrainError::bad_file(path, e.to_string()))?
            .numel();
        if outputs != classes {
            return Err(TrainError::bad_file(
                path,
                format!("the model has {outputs} outputs but the data has {classes} classes"),
            ));
        }
        return Ok(spec);
    }
    let opts = ModelOptions {
        input: input.clone(),
        classes,
        activation: Activation::from_name(&config.activation)?,
        dropout: config.dropout,
        batch_norm: config.batch_norm,
    };
    // A geometry error of a built-in model means the images are too small
    // for it: say so, and how to resize an image folder.
    let too_small = |e: cnn_core::CnnError| match e {
        e @ cnn_core::CnnError::InvalidGeometry { .. } => {
            let resize = if config.data == "folder" {
                "; resize the images with --image-size (e.g. --image-size 32)"
            } else {
                ""
            };
            TrainError::Config(format!(
                "{e}: the images ({input}) are too small for the built-in model `{}`{resize}",
                config.model
            ))
        }
        e => e.into(),
    };
    let spec = models::builtin(&config.model, &opts).map_err(too_small)?;
    spec.output_shape().map_err(too_small)?;
    Ok(spec)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    input: Option<Shape>,
    nodes: Vec<cnn_core::graph::NodeSpec>,
}

/// Read a TOML model spec; errors name the file.
pub fn load_model_spec(path: &Path, data_shape: &Shape) -> Result<GraphSpec> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    parse_model_spec(&text, path, data_shape)
}

/// Parse a TOML model spec (see [`load_model_spec`]).
pub fn parse_model_spec(text: &str, origin: &Path, data_shape: &Shape) -> Result<GraphSpec> {
    let file: ModelFile = toml::from_str(text).map_err(|e| {
        let message = node_error(text).unwrap_or_else(|| crate::config::toml_message(&e));
        TrainError::bad_file(origin, message)
    })?;
    let spec = GraphSpec {
        input: file.input.unwrap_or_else(|| data_shape.clone()),
        nodes: file.nodes,
    };
    if spec.input != *data_shape {
        return Err(TrainError::bad_file(
            origin,
            format!(
                "the model's input {} differs from the data's image shape {data_shape}",
                spec.input
            ),
        ));
    }
    check_declared_sizes(&spec).map_err(|m| TrainError::bad_file(origin, m))?;
    let resolved = spec
        .resolve()
        .map_err(|e| TrainError::bad_file(origin, e.to_string()))?;
    check_model_size(&spec, &resolved).map_err(|m| TrainError::bad_file(origin, m))?;
    Ok(spec)
}

/// What is wrong with the first node of a model spec that does not parse,
/// named: serde reports an untagged node only as matching no variant.
fn node_error(text: &str) -> Option<String> {
    let doc: toml::Table = toml::from_str(text).ok()?;
    let nodes = doc.get("nodes")?.as_array()?;
    for (i, node) in nodes.iter().enumerate() {
        let mut table = node.as_table()?.clone();
        let name = match table.remove("name") {
            Some(toml::Value::String(n)) => format!("node `{n}`"),
            Some(_) => return Some(format!("node {}: `name` must be a string", i + 1)),
            None => return Some(format!("node {} has no `name`", i + 1)),
        };
        table.remove("input");
        if table.contains_key("add") {
            if table.len() > 1 {
                // cnn-core's own error names the node and what is wrong:
                // `type` and `add` both given, or the key an add does not
                // take.
                return None;
            }
            if !table["add"].is_str() {
                return Some(format!(
                    "{name}: a residual add takes only `add = \"<node>\"` (and `input`)"
                ));
            }
            continue;
        }
        if let Err(e) = toml::Value::Table(table).try_into::<LayerSpec>() {
            return Some(format!("{name}: {}", e.message()));
        }
    }
    None
}

/// Largest channel or feature count a model spec may declare.
pub const MAX_SPEC_CHANNELS: usize = 1 << 20;
/// Largest kernel, stride, padding or dilation a model spec may declare.
pub const MAX_SPEC_WINDOW: usize = 1 << 16;
/// Most parameters, or activation values per sample, a model spec may have.
pub const MAX_SPEC_ELEMENTS: u128 = 1 << 40;

/// Bound every size a spec declares, so shape inference on an image-sized
/// input cannot overflow (a file is outside data: `out_features =
/// 18446744073709551615` must be an error, not an arithmetic panic).
fn check_declared_sizes(spec: &GraphSpec) -> std::result::Result<(), String> {
    for node in &spec.nodes {
        let cnn_core::graph::NodeOp::Layer(layer) = &node.op else {
            continue;
        };
        let (channels, windows): (usize, Vec<usize>) = match layer {
            LayerSpec::Conv2d { geometry: g, .. } => (
                g.out_channels,
                [g.kernel, g.stride, g.padding, g.dilation]
                    .concat()
                    .into_iter()
                    .chain([g.groups])
                    .collect(),
            ),
            LayerSpec::Linear {
                in_features,
                out_features,
                ..
            } => ((*out_features).max(in_features.unwrap_or(0)), Vec::new()),
            LayerSpec::MaxPool2d(g) | LayerSpec::AvgPool2d(g) => {
                (0, [g.kernel, g.stride, g.padding].concat())
            }
            _ => (0, Vec::new()),
        };
        if channels > MAX_SPEC_CHANNELS {
            return Err(format!(
                "node `{}`: {channels} channels or features is more than the {MAX_SPEC_CHANNELS} allowed",
                node.name
            ));
        }
        if let Some(w) = windows.iter().find(|&&w| w > MAX_SPEC_WINDOW) {
            return Err(format!(
                "node `{}`: a kernel, stride, padding, dilation or group count of {w} is more than the {MAX_SPEC_WINDOW} allowed",
                node.name
            ));
        }
    }
    Ok(())
}

/// The parameter count and per-sample activation size, computed without
/// overflow, must stay below [`MAX_SPEC_ELEMENTS`].
fn check_model_size(
    spec: &GraphSpec,
    resolved: &cnn_core::graph::ResolvedGraph,
) -> std::result::Result<(), String> {
    let numel = |s: &Shape| -> u128 { s.dims().iter().map(|&d| d as u128).product() };
    let mut params: u128 = 0;
    let mut activations: u128 = numel(&spec.input);
    for (i, node) in spec.nodes.iter().enumerate() {
        let input = resolved.inputs[i].map_or(&spec.input, |j| &resolved.shapes[j]);
        activations += numel(&resolved.shapes[i]);
        params += match &node.op {
            cnn_core::graph::NodeOp::Layer(LayerSpec::Conv2d { geometry: g, bias }) => {
                let c_in = input.dim(0).unwrap_or(0) / g.groups.max(1);
                g.out_channels as u128 * c_in as u128 * g.kernel[0] as u128 * g.kernel[1] as u128
                    + if *bias { g.out_channels as u128 } else { 0 }
            }
            cnn_core::graph::NodeOp::Layer(LayerSpec::Linear {
                out_features, bias, ..
            }) => {
                *out_features as u128 * numel(input) + if *bias { *out_features as u128 } else { 0 }
            }
            cnn_core::graph::NodeOp::Layer(LayerSpec::BatchNorm2d { .. }) => {
                2 * input.dim(0).unwrap_or(0) as u128
            }
            _ => 0,
        };
        if params > MAX_SPEC_ELEMENTS || activations > MAX_SPEC_ELEMENTS {
            return Err(format!(
                "node `{}`: the model reaches {params} parameters and {activations} activation values per sample, more than the {MAX_SPEC_ELEMENTS} allowed",
                node.name
            ));
        }
    }
    Ok(())
}

/// Build the configured model on `backend` for `data`.
pub fn build_graph<B: Backend>(
    backend: &B,
    config: &TrainConfig,
    data: &DataSplits,
) -> Result<Graph<B>> {
    let spec = model_spec(config, &data.shape, data.num_classes())?;
    Ok(Graph::new(backend, spec, config.seed)?)
}

/// Load a safetensors state_dict into `graph`; errors name the file.
pub fn load_weights<B: Backend>(graph: &mut Graph<B>, path: &Path) -> Result<()> {
    let (weights, _) = load_safetensors(path)?;
    apply_weights(graph, &weights, path)
}

/// Put `weights`, read from `path`, into `graph`; errors name the file.
pub fn apply_weights<B: Backend>(
    graph: &mut Graph<B>,
    weights: &[NamedArray],
    path: &Path,
) -> Result<()> {
    // NaN or infinite weights would only diverge at step 0 (blaming the
    // optimizer) or evaluate to NaN: name the tensor instead.
    for array in weights {
        if let cnn_core::ArrayData::F32(values) = &array.data
            && values.iter().any(|v| !v.is_finite())
        {
            return Err(TrainError::bad_file(
                path,
                format!(
                    "tensor `{}` holds non-finite values (NaN or inf)",
                    array.name
                ),
            ));
        }
    }
    graph
        .load_state_dict(weights)
        .map_err(|e| TrainError::bad_file(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of docs/models.md.
    const DOC_EXAMPLE: &str = r#"
input = [1, 28, 28]

[[nodes]]
name = "conv1"
type = "conv2d"
out_channels = 8
kernel = [3, 3]
stride = [1, 1]
padding = [1, 1]
dilation = [1, 1]
groups = 1

[[nodes]]
name = "relu1"
type = "activation"
kind = "relu"

[[nodes]]
name = "pool1"
type = "max_pool2d"
kernel = [2, 2]
stride = [2, 2]
padding = [0, 0]
ceil_mode = false
count_include_pad = true

[[nodes]]
name = "flat"
type = "flatten"

[[nodes]]
name = "fc"
type = "linear"
out_features = 10
"#;

    #[test]
    fn the_documented_model_spec_parses_and_resolves() {
        let spec = parse_model_spec(
            DOC_EXAMPLE,
            Path::new("net.toml"),
            &Shape::from([1, 28, 28]),
        )
        .unwrap();
        assert_eq!(spec.nodes.len(), 5);
        assert_eq!(spec.output_shape().unwrap().dims(), &[10]);
        assert_eq!(
            spec.num_params().unwrap(),
            8 * 9 + 8 + 8 * 14 * 14 * 10 + 10
        );
    }

    #[test]
    fn model_spec_errors_name_the_file() {
        let bad = DOC_EXAMPLE.replace("out_features = 10", "out_features = 10\nin_features = 99");
        let err =
            parse_model_spec(&bad, Path::new("net.toml"), &Shape::from([1, 28, 28])).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("net.toml: ") && msg.contains("1568") && msg.contains("99"),
            "{msg}"
        );
        let err = parse_model_spec(
            DOC_EXAMPLE,
            Path::new("net.toml"),
            &Shape::from([3, 32, 32]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("differs from the data"), "{err}");
        // A node that matches no layer names the node and what is wrong.
        let typo = DOC_EXAMPLE.replace("out_channels = 8", "out_channel = 8");
        let err =
            parse_model_spec(&typo, Path::new("net.toml"), &Shape::from([1, 28, 28])).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("net.toml: node `conv1`: ") && msg.contains("out_channels"),
            "{msg}"
        );
        let kind = DOC_EXAMPLE.replace("type = \"conv2d\"", "type = \"conv3d\"");
        let err =
            parse_model_spec(&kind, Path::new("net.toml"), &Shape::from([1, 28, 28])).unwrap_err();
        assert!(
            err.to_string()
                .contains("node `conv1`: unknown variant `conv3d`"),
            "{err}"
        );
    }

    #[test]
    fn residual_specs_parse_with_add_nodes() {
        let text = r#"
[[nodes]]
name = "conv"
type = "conv2d"
out_channels = 1
kernel = [3, 3]
stride = [1, 1]
padding = [1, 1]
dilation = [1, 1]
groups = 1

[[nodes]]
name = "sum"
add = "input"

[[nodes]]
name = "gap"
type = "global_avg_pool"

[[nodes]]
name = "fc"
type = "linear"
out_features = 2
"#;
        let spec = parse_model_spec(text, Path::new("res.toml"), &Shape::from([1, 8, 8])).unwrap();
        assert!(matches!(
            spec.nodes[1].op,
            cnn_core::graph::NodeOp::Add { .. }
        ));
    }
}
