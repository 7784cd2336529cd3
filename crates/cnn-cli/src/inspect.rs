//! `cnn inspect`: what saved weights see in images (image files, or
//! `--index N` of a dataset split): the first layer's filters, the feature
//! maps after each convolution and pooling, the class probabilities, a
//! Grad-CAM heat map and a saliency map (see `cnn::train::inspect`). Writes
//! the PNGs, `inspect.json` and a self-contained `inspect.html` into its
//! output directory and prints the predictions.

use std::path::PathBuf;

use clap::Args;
use cnn::backends::{WithBackend, with_backend};
use cnn::core::Backend;
use cnn::train::inspect::{
    InspectOptions, InspectedImage, PageInfo, first_layer_filters, gradcam_layer, inspect_image,
    write_inspection,
};
use cnn::train::{RunDir, TrainConfig, TrainError, setup};

use crate::args::{ModelDataArgs, config_for};
use crate::error::{CliResult, existing_output, fail};
use crate::job::prepare_output;

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub common: ModelDataArgs,
    /// The weights to inspect (safetensors state_dict). In a run directory,
    /// its config.toml gives the model and data (the flags override it).
    #[arg(long)]
    pub weights: PathBuf,
    /// Image files (PNG or JPEG), resized to the model's input.
    pub images: Vec<PathBuf>,
    /// Inspect image N of the dataset split (repeatable; after the files).
    #[arg(long = "index", value_name = "N")]
    pub indices: Vec<usize>,
    /// The split --index counts in: train, val or test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Grad-CAM and saliency for class K [default: the predicted class].
    #[arg(long, value_name = "K")]
    pub class: Option<usize>,
    /// Grad-CAM at this node (a name from `cnn summary`, with an image-shaped
    /// output) [default: the last convolution].
    #[arg(long, value_name = "NAME")]
    pub layer: Option<String>,
    /// Output directory [default: runs/inspect-<model>-<data>, or the first
    /// free -2, -3, ...].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the output directory if it exists (only one cnn wrote).
    #[arg(long)]
    pub overwrite: bool,
}

pub fn inspect(args: InspectArgs) -> CliResult {
    if args.images.is_empty() && args.indices.is_empty() {
        return Err(fail("give image files or --index N of a dataset split"));
    }
    if !matches!(args.split.as_str(), "train" | "val" | "validation" | "test") {
        return Err(fail(format!(
            "unknown split `{}` (expected train, val or test)",
            args.split
        )));
    }
    let config = config_for(&args.common, &args.weights)?;
    config.validate()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| RunDir::default_out(Some("inspect"), &config, args.overwrite));
    RunDir::check_free(&out, args.overwrite).map_err(existing_output)?;
    let job = InspectJob {
        config: config.clone(),
        out,
        args,
    };
    with_backend(&config.backend, config.threads, job)?
}

struct InspectJob {
    config: TrainConfig,
    out: PathBuf,
    args: InspectArgs,
}

impl WithBackend for InspectJob {
    type Output = CliResult;

    fn run<B: Backend>(self, backend: B) -> CliResult {
        let args = &self.args;
        let data = setup::load_data(&self.config)?;
        let mut graph = setup::build_graph(&backend, &self.config, &data)?;
        setup::load_weights(&mut graph, &args.weights)?;
        let &[c, h, w] = data.shape.dims() else {
            return Err(fail(format!(
                "cnn inspect needs images; {} has samples of shape {}",
                data.name, data.shape
            )));
        };
        // Refuse a bad --layer or --class before any work.
        gradcam_layer(&graph, args.layer.as_deref())?;
        if let Some(k) = args.class.filter(|&k| k >= data.num_classes()) {
            return Err(fail(format!(
                "--class {k}: the model has {} classes (0 to {})",
                data.num_classes(),
                data.num_classes() - 1
            )));
        }
        let mut inputs: Vec<(String, Option<usize>, Vec<f32>)> = Vec::new();
        for path in &args.images {
            let pixels = cnn::data::load_image(path, &data.shape, &data.normalization)
                .map_err(TrainError::from)?;
            inputs.push((path.display().to_string(), None, pixels));
        }
        let subset = match args.split.as_str() {
            "train" => &data.train,
            "val" | "validation" => &data.val,
            _ => &data.test,
        };
        for &i in &args.indices {
            if i >= subset.len() {
                return Err(fail(format!(
                    "--index {i}: the {} split of {} has {} images",
                    args.split,
                    data.name,
                    subset.len()
                )));
            }
            let mut pixels = vec![0.0; data.shape.numel()];
            subset.write_image(i, &data.normalization, &mut pixels);
            let label = subset.label(i) as usize;
            inputs.push((format!("{}[{i}]", args.split), Some(label), pixels));
        }
        let options = InspectOptions {
            class: args.class,
            layer: args.layer.clone(),
        };
        let mut images = Vec::new();
        for (source, label, pixels) in inputs {
            let inspection = inspect_image(&mut graph, &pixels, &options)?;
            images.push(InspectedImage {
                source,
                label,
                pixels,
                inspection,
            });
        }
        let filters = first_layer_filters(&graph)?;
        prepare_output(&self.out, args.overwrite)?;
        let title = format!("{} on {}: inspect", self.config.model, data.name);
        let info = PageInfo {
            title: &title,
            weights: &args.weights,
            class_names: &data.class_names,
            normalization: &data.normalization,
            input_shape: [c, h, w],
        };
        let page = write_inspection(&self.out, &info, &images, filters.as_ref())?;
        for im in &images {
            let ins = &im.inspection;
            let mut ranked: Vec<usize> = (0..ins.probabilities.len()).collect();
            ranked.sort_by(|&a, &b| ins.probabilities[b].total_cmp(&ins.probabilities[a]));
            let top: Vec<String> = ranked
                .iter()
                .take(3)
                .map(|&k| {
                    format!(
                        "{} {:.2}%",
                        data.class_names[k],
                        ins.probabilities[k] * 100.0
                    )
                })
                .collect();
            say!(
                "{}: {}; Grad-CAM for {} at {}",
                im.source,
                top.join(", "),
                data.class_names[ins.class],
                ins.layer
            );
        }
        say!("page: {}", page.display());
        Ok(())
    }
}
