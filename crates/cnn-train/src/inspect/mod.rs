//! `cnn inspect`: what a trained model sees in an image. For saved weights
//! and an image: the first layer's filters, the feature maps after each
//! convolution and pooling, the class probabilities, a Grad-CAM heat map
//! (Selvaraju et al. 2017) for the predicted class or a chosen one at the
//! last convolution or a chosen layer, and the vanilla gradient saliency
//! map. The gradients are those of an evaluation-mode forward (batch norm
//! with its running statistics, no dropout) with respect to the class's
//! logit, as pytorch-grad-cam takes them after `model.eval()`.
//!
//! `cam` holds the maths, `picture` the PNGs, `files` the output directory
//! and `page` its `inspect.html`.

pub mod cam;
mod files;
mod page;
pub mod picture;

pub use files::{InspectedImage, PageInfo, write_inspection};

use cnn_core::graph::NodeOp;
use cnn_core::{Backend, Graph, LayerSpec, Tensor};

use crate::error::{Result, TrainError};
use crate::metrics::softmax_rows;

/// What to explain.
#[derive(Debug, Clone, Default)]
pub struct InspectOptions {
    /// Grad-CAM's class (default: the predicted one).
    pub class: Option<usize>,
    /// Grad-CAM's layer, a node name (default: the last convolution).
    pub layer: Option<String>,
}

/// A node's output for one image, `[channels, height, width]`.
#[derive(Debug, Clone)]
pub struct FeatureMap {
    pub node: String,
    pub kind: &'static str,
    pub shape: [usize; 3],
    pub values: Vec<f32>,
}

/// Everything `cnn inspect` computes for one image.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// Softmax of the logits, one per class.
    pub probabilities: Vec<f32>,
    pub predicted: usize,
    /// Grad-CAM's class.
    pub class: usize,
    /// Grad-CAM's layer and its output shape.
    pub layer: String,
    pub layer_shape: [usize; 3],
    /// Grad-CAM at the layer's resolution (ReLU'd, not normalised).
    pub cam: Vec<f32>,
    /// Grad-CAM upsampled bilinearly to the input's height and width.
    pub cam_upsampled: Vec<f32>,
    /// Saliency: max over channels of |d logit / d input|, `[H, W]`.
    pub saliency: Vec<f32>,
    /// The outputs of every convolution and pooling, in graph order.
    pub feature_maps: Vec<FeatureMap>,
}

/// The first convolution's weights, `[out, in, kh, kw]`.
#[derive(Debug, Clone)]
pub struct Filters {
    pub node: String,
    pub shape: [usize; 4],
    pub values: Vec<f32>,
}

/// `[C, H, W]` of a per-sample shape, if it has three dimensions.
fn chw(dims: &[usize]) -> Option<[usize; 3]> {
    match *dims {
        [c, h, w] => Some([c, h, w]),
        _ => None,
    }
}

fn layer_kind(graph: &Graph<impl Backend>, i: usize) -> Option<&LayerSpec> {
    match &graph.spec().nodes[i].op {
        NodeOp::Layer(spec) => Some(spec),
        NodeOp::Add { .. } => None,
    }
}

/// Grad-CAM's node: `name`, or the last convolution. It must give an
/// image-shaped output (`[C, H, W]`).
pub fn gradcam_layer(graph: &Graph<impl Backend>, name: Option<&str>) -> Result<usize> {
    let names: Vec<&str> = graph.node_names().collect();
    let i = match name {
        Some(name) => names.iter().position(|n| *n == name).ok_or_else(|| {
            TrainError::Config(format!(
                "--layer {name}: no such node (the model has {})",
                names.join(", ")
            ))
        })?,
        None => (0..names.len())
            .rev()
            .find(|&i| matches!(layer_kind(graph, i), Some(LayerSpec::Conv2d { .. })))
            .ok_or_else(|| {
                TrainError::Config(
                    "the model has no convolution for Grad-CAM; name a layer with --layer".into(),
                )
            })?,
    };
    if chw(graph.node_shapes()[i].dims()).is_none() {
        return Err(TrainError::Config(format!(
            "--layer {}: its output {} is not an image ([C, H, W]); Grad-CAM needs one",
            names[i],
            graph.node_shapes()[i]
        )));
    }
    Ok(i)
}

/// The first convolution's weights, if the model has a convolution.
pub fn first_layer_filters<B: Backend>(graph: &Graph<B>) -> Result<Option<Filters>> {
    let Some(i) = (0..graph.spec().nodes.len())
        .find(|&i| matches!(layer_kind(graph, i), Some(LayerSpec::Conv2d { .. })))
    else {
        return Ok(None);
    };
    let node = graph.spec().nodes[i].name.clone();
    let weight = format!("{node}.weight");
    let Some(p) = graph.params_iter().find(|p| p.name == weight) else {
        return Ok(None);
    };
    let &[o, c, kh, kw] = p.value.shape().dims() else {
        return Ok(None);
    };
    Ok(Some(Filters {
        node,
        shape: [o, c, kh, kw],
        values: p.value.to_vec(graph.backend())?,
    }))
}

/// Inspect one image (`pixels`, normalised, of the model's input shape).
/// Turns the graph's ReLU folding off, so every node's output is formed.
pub fn inspect_image<B: Backend>(
    graph: &mut Graph<B>,
    pixels: &[f32],
    options: &InspectOptions,
) -> Result<Inspection> {
    let Some([c, h, w]) = chw(graph.input_shape().dims()) else {
        return Err(TrainError::Config(format!(
            "cnn inspect needs an image input ([C, H, W]); the model takes {}",
            graph.input_shape()
        )));
    };
    let layer = gradcam_layer(graph, options.layer.as_deref())?;
    graph.set_relu_folding(false);
    graph.set_keep_gradients(true);
    let backend = graph.backend().clone();
    let logits = graph
        .forward_host_for_gradients(pixels, 1)?
        .to_vec(&backend)?;
    let classes = logits.len();
    let probabilities = softmax_rows(&logits, classes);
    let predicted = (0..classes)
        .max_by(|&a, &b| {
            probabilities[a]
                .total_cmp(&probabilities[b])
                .then(b.cmp(&a))
        })
        .unwrap_or(0);
    let class = options.class.unwrap_or(predicted);
    if class >= classes {
        return Err(TrainError::Config(format!(
            "--class {class}: the model has {classes} classes (0 to {})",
            classes.saturating_sub(1)
        )));
    }
    let mut feature_maps = Vec::new();
    for (i, node) in graph.spec().nodes.iter().enumerate() {
        let shown = matches!(
            layer_kind(graph, i),
            Some(LayerSpec::Conv2d { .. } | LayerSpec::MaxPool2d(_) | LayerSpec::AvgPool2d(_))
        );
        let (Some(shape), true) = (chw(graph.node_shapes()[i].dims()), shown) else {
            continue;
        };
        let out = graph
            .node_output(i)
            .ok_or_else(|| TrainError::Config(format!("node {} kept no output", node.name)))?;
        feature_maps.push(FeatureMap {
            node: node.name.clone(),
            kind: layer_kind(graph, i).map_or("add", LayerSpec::kind),
            shape,
            values: out.to_vec(&backend)?,
        });
    }
    let layer_shape = chw(graph.node_shapes()[layer].dims()).unwrap_or([0; 3]);
    let missing = || TrainError::Config("the Grad-CAM layer kept no output".into());
    let activation = graph
        .node_output(layer)
        .ok_or_else(missing)?
        .to_vec(&backend)?;
    let mut one_hot = vec![0.0; classes];
    one_hot[class] = 1.0;
    let dlogits = Tensor::from_slice(&backend, [1, classes], &one_hot)?;
    let input_gradient = graph.backward_to_input(&dlogits)?.to_vec(&backend)?;
    let gradient = graph
        .node_grad(layer)
        .ok_or_else(missing)?
        .to_vec(&backend)?;
    // The parameter gradients this left are no one's.
    graph.zero_grad()?;
    let [lc, lh, lw] = layer_shape;
    let cam = cam::grad_cam(&activation, &gradient, lc, lh, lw);
    Ok(Inspection {
        probabilities,
        predicted,
        class,
        layer: graph.spec().nodes[layer].name.clone(),
        layer_shape,
        cam_upsampled: cam::upsample_bilinear(&cam, lh, lw, h, w),
        cam,
        saliency: cam::saliency(&input_gradient, c, h, w),
        feature_maps,
    })
}
