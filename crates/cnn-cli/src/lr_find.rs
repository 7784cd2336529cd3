//! `cnn lr-find`: the LR range test (fastai's `lr_find`, Lightning's
//! `Tuner.lr_find`) on a model's initial weights: an exponential sweep of
//! the learning rate, the smoothed loss against it, and the suggestions
//! (see `cnn::train::lr_find`). Writes `lr_find.csv`, `lr_find.png` and
//! `lr_find.svg` into its output directory and prints the suggestions
//! (`--json` for scripts).

use std::path::PathBuf;

use clap::Args;
use cnn::backends::{WithBackend, with_backend_in};
use cnn::core::Backend;
use cnn::train::lr_find::{LrFinding, range_test};
use cnn::train::run_dir::lr_find::{CSV, PNG, SVG};
use cnn::train::{LrFindSettings, RunDir, RunPlan, TrainConfig, TrainError, setup};
use serde::Serialize;

use crate::args::TrainArgs;
use crate::error::{CliResult, existing_output, fail};
use crate::job::prepare_output;

#[derive(Debug, Args, Clone, Default)]
pub struct LrFindArgs {
    /// The model, data, optimizer and batches: the `cnn train` flags (the
    /// sweep replaces --lr and the schedule; epochs, step budget, early
    /// stopping and checkpoints do not apply); `--out` names the output
    /// directory (default `runs/lr-find-<model>-<data>`).
    #[command(flatten)]
    pub base: TrainArgs,
    /// The learning rate of the first step.
    #[arg(long, default_value_t = 1e-7)]
    pub start_lr: f64,
    /// The learning rate of the last step.
    #[arg(long, default_value_t = 10.0)]
    pub end_lr: f64,
    /// Optimizer steps of the sweep; it stops sooner once the smoothed loss
    /// exceeds 4 times its minimum.
    #[arg(long, value_parser = crate::args::parse_positive, default_value_t = 100)]
    pub steps: usize,
    /// Print the result as JSON (settings, suggestions, every point).
    #[arg(long)]
    pub json: bool,
}

/// The test on the chosen backend, from the configured initial weights.
struct LrFindJob {
    config: TrainConfig,
    settings: LrFindSettings,
}

impl WithBackend for LrFindJob {
    type Output = Result<LrFinding, TrainError>;

    fn run<B: Backend>(self, backend: B) -> Self::Output {
        let plan = RunPlan::new(&self.config, None, None)?;
        let mut graph = plan.build_graph(&backend)?;
        if let (Some(weights), Some(path)) = (plan.init_weights(), &self.config.init_from) {
            setup::apply_weights(&mut graph, weights, path)?;
        }
        range_test(backend, &plan, &graph, &self.settings)
    }
}

/// What `--json` prints.
#[derive(Serialize)]
struct JsonOut<'a> {
    /// The steepest descent (Lightning's rule).
    suggestion: Option<f64>,
    /// The minimum's rate / 10 (fastai's).
    min_over_10: Option<f64>,
    csv: PathBuf,
    png: PathBuf,
    svg: PathBuf,
    #[serde(flatten)]
    finding: &'a LrFinding,
}

pub fn lr_find(args: LrFindArgs) -> CliResult {
    if args.base.lr.is_some() {
        return Err(fail(
            "cnn lr-find sweeps the learning rate from --start-lr to --end-lr; --lr does not apply",
        ));
    }
    let settings = LrFindSettings {
        start_lr: args.start_lr,
        end_lr: args.end_lr,
        steps: args.steps,
        suggestion: None,
    };
    settings.validate().map_err(|e| fail(e.to_string()))?;
    let mut config = args.base.to_config()?;
    // A config file's rate or test record: the sweep sets the rate.
    config.lr = None;
    config.lr_find = None;
    crate::precision_args::check(&config)?;
    crate::data_on_device_args::check(&config)?;
    let overwrite = args.base.overwrite;
    let out = args
        .base
        .out
        .clone()
        .unwrap_or_else(|| RunDir::default_out(Some("lr-find"), &config, overwrite));
    RunDir::check_free(&out, overwrite).map_err(existing_output)?;
    eprintln!(
        "LR range test of {} on {}: up to {} steps of {} images from lr {:e} to {:e}, into {}",
        config.model,
        config.data,
        settings.steps,
        config.batch_size * config.accumulate,
        settings.start_lr,
        settings.end_lr,
        out.display()
    );
    let title = format!("{} on {}: LR range test", config.model, config.data);
    let job = LrFindJob {
        config: config.clone(),
        settings,
    };
    let finding = with_backend_in(&config.backend, config.threads, config.precision, job)??;
    prepare_output(&out, overwrite)?;
    finding.write_files(&out, &title)?;
    let (csv, png, svg) = (out.join(CSV), out.join(PNG), out.join(SVG));
    if args.json {
        let json = JsonOut {
            suggestion: finding.suggestion(),
            min_over_10: finding.min_over_10(),
            csv,
            png,
            svg,
            finding: &finding,
        };
        let text = serde_json::to_string_pretty(&json)
            .map_err(|e| fail(format!("could not write the result as JSON: {e}")))?;
        say!("{text}");
    } else {
        say!("{}", finding.summary());
        say!("plot: {}", png.display());
        say!("table: {}", csv.display());
    }
    Ok(())
}
