//! The subcommands.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cnn::backends::{WithBackend, with_backend};
use cnn::core::models::{self, ModelOptions};
use cnn::core::{Backend, Mode, Shape, SoftmaxCrossEntropy};
use cnn::train::setup;
use cnn::train::{
    RunDir, RunOptions, RunStatus, RunSummary, RunTarget, TrainConfig, TrainError, run_training,
};

use crate::args::{Command, EvalArgs, ModelsArgs, PredictArgs, TrainCmd};

/// A command failure: the one line to print and the exit code.
#[derive(Debug)]
pub struct CliError {
    message: String,
    code: i32,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // One line, always.
        f.write_str(&self.message.replace('\n', " "))
    }
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        self.code
    }
}

impl From<TrainError> for CliError {
    fn from(e: TrainError) -> Self {
        let code = match e {
            TrainError::Interrupted { .. } => 130,
            TrainError::Diverged { .. } => 3,
            _ => 1,
        };
        CliError {
            message: e.to_string(),
            code,
        }
    }
}

impl From<cnn::core::CnnError> for CliError {
    fn from(e: cnn::core::CnnError) -> Self {
        TrainError::from(e).into()
    }
}

pub(crate) type CliResult<T = ()> = Result<T, CliError>;

/// [`RunDir::prepare_output`] for the roots of `compare` and `curve`.
pub(crate) fn prepare_output(root: &Path, overwrite: bool) -> CliResult {
    RunDir::prepare_output(root, overwrite).map_err(existing_output)
}

/// A refusal to replace an existing directory suggests `--resume` only
/// for a run, which is the only thing `--resume` continues.
fn existing_output(e: TrainError) -> CliError {
    match e {
        TrainError::RunDirExists(p) if !p.join("config.toml").is_file() => CliError {
            message: format!(
                "{} already exists; pass --overwrite to replace it",
                p.display()
            ),
            code: 1,
        },
        e => e.into(),
    }
}

pub(crate) fn fail(message: impl Into<String>) -> CliError {
    CliError {
        message: message.into(),
        code: 2,
    }
}

pub fn run(command: Command) -> CliResult {
    match command {
        Command::Train(a) => train(*a),
        Command::Eval(a) => eval(a),
        Command::Predict(a) => predict(a),
        Command::Models(a) => list_models(a),
        Command::Compare(a) => crate::compare::compare(*a),
        Command::Curve(a) => crate::curve::curve(*a),
        Command::Report(a) => crate::report::report(a),
    }
}

/// `runs/<model>-<data>`, or the first free `-2`, `-3`, ... variant.
fn train(cmd: TrainCmd) -> CliResult {
    let TrainCmd {
        args,
        resume,
        given,
    } = cmd;
    let (config, target) = match &resume {
        Some(path) => {
            let extra: Vec<String> = given
                .iter()
                .filter(|f| !matches!(f.as_str(), "resume" | "quiet"))
                .map(|f| format!("--{}", f.replace('_', "-")))
                .collect();
            if !extra.is_empty() {
                return Err(fail(format!(
                    "--resume continues the run with its own config.toml; it cannot be combined with {}",
                    extra.join(", ")
                )));
            }
            let dir = RunDir::open(path)?;
            (TrainConfig::load(&dir.config())?, RunTarget::Resume(dir))
        }
        None => {
            let config = args.to_config()?;
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| RunDir::default_out(None, &config, args.overwrite));
            RunDir::check_free(&out, args.overwrite).map_err(existing_output)?;
            let overwrite = args.overwrite;
            (config, RunTarget::Fresh { out, overwrite })
        }
    };
    let job = TrainJob {
        config: config.clone(),
        target,
        opts: RunOptions {
            progress: !args.quiet,
            log: true,
            interrupt: Some(install_interrupt()),
            report: true,
            ..RunOptions::default()
        },
    };
    let (summary, root) = with_backend(&config.backend, config.threads, job)??;
    if let RunStatus::Diverged(d) = summary.status {
        eprintln!("report: {}", root.join("report.html").display());
        return Err(TrainError::Diverged {
            step: d.step,
            epoch: d.epoch,
            loss: d.loss.parse().unwrap_or(f64::NAN),
            location: d.location,
        }
        .into());
    }
    say!("curves: {}", root.join("curves.png").display());
    say!("report: {}", root.join("report.html").display());
    Ok(())
}

/// Ctrl-C sets the returned flag: runs finish their step, checkpoint and
/// stop. A second Ctrl-C while the checkpoint is written kills the process.
pub(crate) fn install_interrupt() -> Arc<AtomicBool> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupt);
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: finishing the current step and writing a checkpoint...");
    });
    interrupt
}

/// One training job (`cnn::train::run_training`) on the chosen backend;
/// gives the summary and the run directory.
pub(crate) struct TrainJob {
    pub config: TrainConfig,
    pub target: RunTarget,
    pub opts: RunOptions,
}

impl WithBackend for TrainJob {
    type Output = Result<(RunSummary, PathBuf), TrainError>;

    fn run<B: Backend>(self, backend: B) -> Self::Output {
        let root = match &self.target {
            RunTarget::Fresh { out, .. } => out.clone(),
            RunTarget::Resume(dir) => dir.root().to_path_buf(),
        };
        let summary = run_training(backend, &self.config, self.target, self.opts)?;
        Ok((summary, root))
    }
}

/// Config for eval/predict: the `config.toml` of the run the weights come
/// from when they sit in a run directory (its model, data and seed, which
/// fixes the synthetic set), else the defaults; then the flags given.
fn config_for(common: &crate::args::ModelDataArgs, weights: &Path) -> CliResult<TrainConfig> {
    let run_config = weights
        .parent()
        .map(|dir| dir.join("config.toml"))
        .filter(|p| p.is_file());
    let mut c = match &run_config {
        Some(path) => TrainConfig::load(path)?,
        None => TrainConfig::default(),
    };
    common.apply(&mut c);
    Ok(c)
}

fn eval(args: EvalArgs) -> CliResult {
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
        let mut graph = cnn::train::run::build_graph(&backend, &self.config, &data)?;
        cnn::train::run::load_weights(&mut graph, &self.args.weights)?;
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

fn predict(args: PredictArgs) -> CliResult {
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
        let mut graph = cnn::train::run::build_graph(&backend, &self.config, &data)?;
        cnn::train::run::load_weights(&mut graph, &self.args.weights)?;
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

fn list_models(args: ModelsArgs) -> CliResult {
    if args.classes == 0 {
        return Err(fail("--classes must be at least 1"));
    }
    let dims: Vec<usize> = args
        .input
        .split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            fail(format!(
                "--input expects C,H,W like 3,32,32, got `{}`",
                args.input
            ))
        })?;
    let input = Shape::new(dims);
    say!(
        "{:<10} {:>12}  description (input {input}, {} classes)",
        "model",
        "parameters",
        args.classes
    );
    for (name, description) in models::BUILTIN {
        let opts = ModelOptions::new(input.clone(), args.classes);
        let count = match models::builtin(name, &opts).and_then(|s| s.num_params()) {
            Ok(n) => n.to_string(),
            Err(e) => format!("n/a ({e})"),
        };
        say!("{name:<10} {count:>12}  {description}");
    }
    Ok(())
}
