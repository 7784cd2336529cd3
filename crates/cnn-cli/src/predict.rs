//! `cnn predict`: class probabilities of image files under saved weights.

use std::path::PathBuf;

use clap::Args;
use cnn::backends::{WithBackend, with_backend};
use cnn::core::{Backend, Mode};
use cnn::train::{TrainConfig, TrainError, setup};

use crate::args::{ModelDataArgs, config_for};
use crate::error::{CliResult, fail};

#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub common: ModelDataArgs,
    /// The weights to use (safetensors state_dict). In a run directory,
    /// its config.toml gives the model and data (the flags override it).
    #[arg(long)]
    pub weights: PathBuf,
    /// Image files (PNG or JPEG), resized to the model's input.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn predict(args: PredictArgs) -> CliResult {
    if args.top == 0 {
        return Err(fail("--top must be at least 1"));
    }
    let config = config_for(&args.common, &args.weights)?;
    let job = PredictJob {
        config: config.clone(),
        args,
    };
    with_backend(&config.backend, config.threads, job)?
}

struct PredictJob {
    config: TrainConfig,
    args: PredictArgs,
}

impl WithBackend for PredictJob {
    type Output = CliResult;

    fn run<B: Backend>(self, backend: B) -> CliResult {
        // The dataset tells the input shape, classes and normalisation.
        let data = setup::load_data(&self.config)?;
        let mut graph = setup::build_graph(&backend, &self.config, &data)?;
        setup::load_weights(&mut graph, &self.args.weights)?;
        let shape = data.shape.clone();
        let classes = data.num_classes();
        let mut results = Vec::new();
        for path in &self.args.images {
            let pixels = cnn::data::load_image(path, &shape, &data.normalization)
                .map_err(TrainError::from)?;
            let logits = graph
                .forward_host(&pixels, 1, Mode::Eval)?
                .to_vec(&backend)?;
            let probs = cnn::train::metrics::softmax_rows(&logits, classes);
            let mut ranked: Vec<(usize, f32)> = probs.iter().copied().enumerate().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            ranked.truncate(self.args.top);
            results.push((path.clone(), ranked));
        }
        if self.args.json {
            let out: Vec<_> = results
                .iter()
                .map(|(p, r)| {
                    serde_json::json!({
                        "file": p.display().to_string(),
                        "top": r.iter().map(|(c, prob)| serde_json::json!({"class": c, "name": data.class_names[*c], "probability": prob})).collect::<Vec<_>>(),
                    })
                })
                .collect();
            say!("{}", serde_json::Value::Array(out));
        } else {
            for (p, r) in results {
                let parts: Vec<String> = r
                    .iter()
                    .map(|(c, prob)| format!("{} {:.2}%", data.class_names[*c], prob * 100.0))
                    .collect();
                say!("{}: {}", p.display(), parts.join(", "));
            }
        }
        Ok(())
    }
}
