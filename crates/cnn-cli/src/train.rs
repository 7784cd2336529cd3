//! `cnn train`: train one model into a run directory, or `--resume` an
//! interrupted run.

use std::path::PathBuf;

use clap::Args;
use cnn::backends::with_backend_in;
use cnn::train::lock::DirLock;
use cnn::train::run_dir::{CURVES_PNG, REPORT_HTML};
use cnn::train::{RunDir, RunOptions, RunStatus, RunTarget, TrainConfig, TrainError};

use crate::args::TrainArgs;
use crate::error::{CliResult, existing_output, fail};
use crate::interrupt::install_interrupt;
use crate::job::TrainJob;

/// `cnn train`: the training flags, or `--resume` of an interrupted run.
#[derive(Debug, Args, Clone, Default)]
pub struct TrainCmd {
    #[command(flatten)]
    pub args: TrainArgs,
    /// Continue an interrupted run from its last checkpoint, with the
    /// configuration in its config.toml (only --quiet and --tensorboard may be added).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Also write TensorBoard event files (per-step loss and learning rate,
    /// per-epoch metrics, the validation confusion matrix) into DIR
    /// [default: the run directory]; `tensorboard --logdir runs` shows them.
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub tensorboard: Option<Option<PathBuf>>,
    /// The flags given on the command line (filled in by `main`).
    #[arg(skip)]
    pub given: Vec<String>,
}

/// `cnn train`: a fresh run (in `--out`, else `runs/<model>-<data>` or the
/// first free `-2`, `-3`, ... variant), or `--resume` of an interrupted one.
pub fn train(cmd: TrainCmd) -> CliResult {
    let TrainCmd {
        args,
        resume,
        tensorboard,
        given,
    } = cmd;
    let (config, target) = match &resume {
        Some(path) => {
            let extra: Vec<String> = given
                .iter()
                .filter(|f| !matches!(f.as_str(), "resume" | "quiet" | "tensorboard"))
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
            // A live run in `out` is named, not taken for one to resume.
            DirLock::check_free(&out)?;
            RunDir::check_free(&out, args.overwrite).map_err(existing_output)?;
            let overwrite = args.overwrite;
            (config, RunTarget::Fresh { out, overwrite })
        }
    };
    crate::precision_args::check(&config)?;
    crate::data_on_device_args::check(&config)?;
    let root = match &target {
        RunTarget::Fresh { out, .. } => out.clone(),
        RunTarget::Resume(dir) => dir.root().to_path_buf(),
    };
    let tensorboard = tensorboard.map(|dir| dir.unwrap_or(root));
    let job = TrainJob {
        config: config.clone(),
        target,
        opts: RunOptions {
            progress: !args.quiet,
            log: true,
            interrupt: Some(install_interrupt()),
            tensorboard,
            ..RunOptions::default()
        },
        report: true,
    };
    let (summary, root) = with_backend_in(&config.backend, config.threads, config.precision, job)??;
    if let RunStatus::Diverged(d) = summary.status {
        eprintln!("report: {}", root.join(REPORT_HTML).display());
        return Err(TrainError::Diverged {
            step: d.step,
            epoch: d.epoch,
            loss: d.loss.parse().unwrap_or(f64::NAN),
            location: d.location,
        }
        .into());
    }
    say!("curves: {}", root.join(CURVES_PNG).display());
    say!("report: {}", root.join(REPORT_HTML).display());
    Ok(())
}
