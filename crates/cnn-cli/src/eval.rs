//! `cnn eval`: the metrics of saved weights on a data split.

use std::path::PathBuf;

use clap::Args;
use cnn::backends::{WithBackend, with_backend};
use cnn::core::{Backend, SoftmaxCrossEntropy};
use cnn::train::{TrainConfig, setup};

use crate::args::{ModelDataArgs, config_for};
use crate::error::{CliResult, fail};

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub common: ModelDataArgs,
    /// The weights to evaluate (safetensors state_dict). In a run
    /// directory, its config.toml gives the model, data and seed (the
    /// flags override it).
    #[arg(long)]
    pub weights: PathBuf,
    /// train, val or test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Validation fraction used to carve `val` out of the training data
    /// [default: the run's (see --weights), else 0.1].
    #[arg(long, allow_negative_numbers = true)]
    pub val_fraction: Option<f64>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn eval(args: EvalArgs) -> CliResult {
    if args.batch_size == 0 {
        return Err(fail("--batch-size must be at least 1"));
    }
    let mut config = config_for(&args.common, &args.weights)?;
    if let Some(v) = args.val_fraction {
        config.val_fraction = v;
    }
    if matches!(args.split.as_str(), "val" | "validation") && config.val_fraction == 0.0 {
        return Err(fail(
            "the validation split with a validation fraction of 0 would be the test split; \
             use --split test or give --val-fraction",
        ));
    }
    config.validate()?;
    let job = EvalJob {
        config: config.clone(),
        args,
    };
    with_backend(&config.backend, config.threads, job)?
}

struct EvalJob {
    config: TrainConfig,
    args: EvalArgs,
}

impl WithBackend for EvalJob {
    type Output = CliResult;

    fn run<B: Backend>(self, backend: B) -> CliResult {
        let data = setup::load_data(&self.config)?;
        let mut graph = setup::build_graph(&backend, &self.config, &data)?;
        setup::load_weights(&mut graph, &self.args.weights)?;
        let subset = match self.args.split.as_str() {
            "train" => data.train.clone(),
            "val" | "validation" => data.val.clone(),
            "test" => data.test.clone(),
            other => {
                return Err(fail(format!(
                    "unknown split `{other}` (expected train, val or test)"
                )));
            }
        };
        if subset.is_empty() {
            return Err(fail(format!(
                "the {} split of {} is empty",
                self.args.split, data.name
            )));
        }
        let (m, cm) = cnn::train::evaluate(
            &mut graph,
            &subset,
            &data.normalization,
            self.args.batch_size,
            // The run's own loss, so the numbers match its metrics.csv.
            SoftmaxCrossEntropy {
                label_smoothing: self.config.label_smoothing,
            },
        )?;
        if self.args.json {
            let out = serde_json::json!({
                "split": self.args.split,
                "n": m.n,
                "loss": m.loss,
                "accuracy": m.accuracy,
                "precision_macro": m.precision_macro,
                "recall_macro": m.recall_macro,
                "f1_macro": m.f1_macro,
                "top5_accuracy": m.top5_accuracy,
                "per_class": cm.per_class(),
            });
            say!("{out}");
        } else {
            say!(
                "{} split: n = {}, loss {:.4}, accuracy {:.2}%, macro precision {:.4}, recall {:.4}, F1 {:.4}",
                self.args.split,
                m.n,
                m.loss,
                m.accuracy * 100.0,
                m.precision_macro,
                m.recall_macro,
                m.f1_macro
            );
        }
        Ok(())
    }
}
