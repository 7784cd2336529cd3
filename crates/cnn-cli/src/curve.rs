//! `cnn curve`: score against training-set size (scikit-learn's
//! `learning_curve`): train on fractions of the training data, `--repeats`
//! times with different random subsets, and plot training and validation
//! accuracy with a band of one standard deviation (see
//! `cnn::train::learning_curve` for the files).

use clap::Args;
use cnn::backends::with_backend;
use cnn::train::learning_curve::{self, DEFAULT_FRACTIONS};
use cnn::train::run_dir;
use cnn::train::plan::RunPlan;
use cnn::train::{RunOptions, RunTarget, TrainError, setup};

use crate::args::TrainArgs;
use crate::error::{CliResult, fail};
use crate::interrupt::install_interrupt;
use crate::job::{TrainJob, prepare_output};

#[derive(Debug, Args, Clone, Default)]
pub struct CurveArgs {
    /// The configuration of every fit: every `cnn train` flag; `--out`
    /// names the curve directory (default `runs/curve-<model>-<data>`).
    #[command(flatten)]
    pub base: TrainArgs,
    /// Fractions of the training data, comma-separated
    /// (default 0.1,0.325,0.55,0.775,1.0).
    #[arg(long, value_delimiter = ',')]
    pub fractions: Vec<f64>,
    /// Fits per size, each on a different random subset (seed, seed+1, ...).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Start a curve of more than 256 fits (sizes × repeats; at most
    /// 100000), which is refused without it.
    #[arg(long)]
    pub yes: bool,
}

pub fn curve(args: CurveArgs) -> CliResult {
    if args.repeats == 0 {
        return Err(fail("--repeats must be at least 1"));
    }
    let config = args.base.to_config()?;
    let fractions = if args.fractions.is_empty() {
        DEFAULT_FRACTIONS.to_vec()
    } else {
        args.fractions.clone()
    };
    // Sized before the data is read: sizes that come out equal only
    // lower the count.
    cnn::train::compare::check_plan_size(
        (fractions.len() as u64).checked_mul(args.repeats as u64),
        args.yes,
        "fits",
        &format!("{} sizes × {} repeats", fractions.len(), args.repeats),
    )?;
    let data = setup::load_data(&config)?;
    let sizes = learning_curve::sizes(data.train.len(), &fractions)?;
    // Every fit's checks (model on this data, memory) before the curve
    // directory is made, as compare's preflight does.
    RunPlan::new(&config, None, Some(data.clone()))?;
    let root = args.base.out.clone().unwrap_or_else(|| {
        cnn::train::RunDir::default_out(Some("curve"), &config, args.base.overwrite)
    });
    prepare_output(&root, args.base.overwrite)?;
    eprintln!(
        "learning curve of {} on {}: sizes {:?} of {} training images, {} repeats, {} validation images, in {}",
        config.model,
        data.name,
        sizes.iter().map(|s| s.1).collect::<Vec<_>>(),
        data.train.len(),
        args.repeats,
        data.val.len(),
        root.display()
    );
    let interrupt = install_interrupt();
    let started = std::time::Instant::now();
    let manifest = learning_curve::run_curve(
        &root,
        &config,
        &data,
        &fractions,
        args.repeats,
        |config, data, dir| {
            let job = TrainJob {
                config: config.clone(),
                target: RunTarget::Fresh {
                    out: root.join(dir),
                    overwrite: false,
                },
                opts: RunOptions {
                    progress: !args.base.quiet,
                    interrupt: Some(interrupt.clone()),
                    data: Some(data),
                    eval_train: true,
                    ..RunOptions::default()
                },
                report: false,
            };
            with_backend(&config.backend, config.threads, job)?.map(|(s, _)| s)
        },
        |p| {
            eprintln!(
                "{} images (seed {}): {}, training accuracy {:.2}%, validation accuracy {:.2}%",
                p.train_size,
                p.seed,
                p.error.as_deref().unwrap_or(&p.status),
                p.train_score * 100.0,
                p.val_score * 100.0
            )
        },
    )?;
    let report = cnn::train::report::write_report(&root)?;
    say!(
        "{}",
        learning_curve::summary_csv(&learning_curve::score_vs_size(&manifest)).trim_end()
    );
    say!("curve: {}", root.join(run_dir::curve::CURVE_PNG).display());
    say!("table: {}", root.join(run_dir::curve::POINTS_CSV).display());
    say!("report: {}", report.display());
    eprintln!(
        "{} fits in {:.1} s",
        manifest.points.len(),
        started.elapsed().as_secs_f64()
    );
    let failed = manifest
        .points
        .iter()
        .filter(|p| p.status == "failed")
        .count();
    if failed > 0 {
        return Err(TrainError::Config(format!(
            "{failed} of {} fits failed (see {})",
            manifest.points.len(),
            root.join(run_dir::curve::MANIFEST).display()
        ))
        .into());
    }
    Ok(())
}
