//! `cnn curve`: score against training-set size (scikit-learn's
//! `learning_curve`): train on fractions of the training data, `--repeats`
//! times with different random subsets, and plot training and validation
//! accuracy with a band of one standard deviation (see
//! `cnn::train::learning_curve` for the files).

use std::path::{Path, PathBuf};

use clap::Args;
use cnn::train::learning_curve::{self, CurveManifest, CurvePoint, DEFAULT_FRACTIONS};
use cnn::train::plan::RunPlan;
use cnn::train::run_dir;
use cnn::train::study::{self, StudyKind, StudyManifest};
use cnn::train::{RunDir, TrainConfig, setup};

use crate::args::TrainArgs;
use crate::error::{CliResult, fail, failure, interrupted};
use crate::interrupt::install_interrupt;
use crate::job::prepare_output;
use crate::study::{ExecArgs, Execution};

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
    /// Continue the curve in DIR: fits that are over are never trained
    /// again and their files never change, an interrupted one resumes from
    /// its checkpoint, the others run, all as its plan says (only --quiet
    /// and the executor's flags may be added).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Start a curve of more than 256 fits (sizes × repeats; at most
    /// 100000), which is refused without it.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
}

pub fn curve(args: CurveArgs) -> CliResult {
    let processes = args.exec.processes(1)?;
    let (config, fractions, repeats, previous) = match &args.resume {
        Some(dir) => reopen(&args, dir)?,
        None => {
            if args.repeats == 0 {
                return Err(fail("--repeats must be at least 1"));
            }
            let fractions = if args.fractions.is_empty() {
                DEFAULT_FRACTIONS.to_vec()
            } else {
                args.fractions.clone()
            };
            (args.base.to_config()?, fractions, args.repeats, Vec::new())
        }
    };
    crate::precision_args::check(&config)?;
    crate::data_on_device_args::check(&config)?;
    // Sized before the data is read: sizes that come out equal only
    // lower the count.
    cnn::train::compare::check_plan_size(
        (fractions.len() as u64).checked_mul(repeats as u64),
        args.yes,
        "fits",
        &format!("{} sizes × {repeats} repeats", fractions.len()),
    )?;
    let data = setup::load_data(&config)?;
    let sizes = learning_curve::sizes(data.train.len(), &fractions)?;
    // Every fit's checks (model on this data, memory) before the curve
    // directory is made, as compare's preflight does.
    RunPlan::new(&config, None, Some(data.clone()))?;
    let resuming = args.resume.is_some();
    let root = match &args.resume {
        Some(dir) => dir.clone(),
        None => {
            let root = args.base.out.clone().unwrap_or_else(|| {
                RunDir::default_out(Some("curve"), &config, args.base.overwrite)
            });
            prepare_output(&root, args.base.overwrite)?;
            root
        }
    };
    eprintln!(
        "learning curve of {} on {}: sizes {:?} of {} training images, {repeats} repeats, {} validation images, in {}",
        config.model,
        data.name,
        sizes.iter().map(|s| s.1).collect::<Vec<_>>(),
        data.train.len(),
        data.val.len(),
        root.display()
    );
    // The plan: every fit's directory and config.toml, and study.json;
    // curve.json gets its points as the fits end.
    let entries = study::curve_entries(&config, data.train.len(), &fractions, repeats, &previous)?;
    let planned = if resuming {
        study::ensure_plan(&root, StudyKind::Curve, &entries)?
    } else {
        CurveManifest {
            base: config.clone(),
            repeats,
            train_images: data.train.len(),
            val_images: data.val.len(),
            fractions: fractions.clone(),
            points: Vec::new(),
        }
        .save(&root)?;
        study::write_plan(&root, StudyKind::Curve, &entries)?
    };
    if args.exec.planned_only(&root, planned.runs.len()) {
        return Ok(());
    }
    if args.exec.executor == crate::study::Executor::Slurm {
        let collect = || crate::study::print_collected(&root, &study::collect(&root)?);
        return crate::slurm::execute(&root, &planned, "cnn-curve", &args.exec.slurm, &collect);
    }
    let interrupt = install_interrupt();
    let started = std::time::Instant::now();
    let execution = Execution {
        root: &root,
        jobs: 1,
        threads: match (processes, config.threads) {
            (Some(n), 0) => {
                (std::thread::available_parallelism().map_or(1, |c| c.get()) / n).max(1)
            }
            _ => config.threads,
        },
        progress: !args.base.quiet && processes.is_none(),
        quiet: args.base.quiet,
        interrupt: interrupt.clone(),
        data: Some(&data),
        tensorboard: None,
    };
    let plan = crate::study::execute(&args.exec, &execution, &|index, result| {
        let Some(run) = entries.get(index) else {
            return;
        };
        let Some(subset) = &run.subset else { return };
        let mut point = CurvePoint {
            fraction: subset.fraction,
            train_size: subset.train_size,
            repeat: subset.repeat,
            seed: run.config.seed,
            dir: run.dir.clone(),
            status: "failed".into(),
            train_score: f64::NAN,
            val_score: f64::NAN,
            error: None,
        };
        let summary = match result {
            Ok(Some(s)) => Ok(s),
            Ok(None) => crate::study::load_summary(&root.join(&run.dir)).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match summary {
            Ok(s) => learning_curve::point_scores(&mut point, &s),
            Err(e) => point.error = Some(e),
        }
        eprintln!(
            "{} images (seed {}): {}, training accuracy {}, validation accuracy {}",
            point.train_size,
            point.seed,
            point.error.as_deref().unwrap_or(&point.status),
            pct(point.train_score),
            pct(point.val_score)
        )
    })
    .and_then(|()| Ok(StudyManifest::load(&root)?))?;
    let manifest = study::sync_curve(&root, &plan)?;
    if interrupt.load(std::sync::atomic::Ordering::SeqCst) {
        let over = plan.runs.iter().filter(|r| r.state.is_over()).count();
        return Err(interrupted(format!(
            "interrupted: {over} of {} fits are over; continue the curve with: cnn curve --resume {}",
            plan.runs.len(),
            root.display()
        )));
    }
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
    let missing = plan.missing().len();
    if missing > 0 {
        return Err(failure(format!(
            "{missing} of {} fits are not done (another worker holds them?): see cnn study status {}",
            plan.runs.len(),
            root.display()
        )));
    }
    if failed > 0 {
        return Err(failure(format!(
            "{failed} of {} fits failed (see {})",
            manifest.points.len(),
            root.join(run_dir::curve::MANIFEST).display()
        )));
    }
    Ok(())
}

/// A fit's accuracy as a percentage, or why there is none.
fn pct(score: f64) -> String {
    if score.is_finite() {
        format!("{:.2}%", score * 100.0)
    } else {
        "none".into()
    }
}

/// The configuration, fractions, repeats and fits of an interrupted curve.
fn reopen(
    args: &CurveArgs,
    dir: &Path,
) -> CliResult<(TrainConfig, Vec<f64>, usize, Vec<CurvePoint>)> {
    let plain = crate::args::TrainArgs {
        quiet: args.base.quiet,
        ..Default::default()
    };
    if !args.fractions.is_empty()
        || args.repeats != 3
        || args.yes
        || format!("{:?}", args.base) != format!("{plain:?}")
    {
        return Err(fail(
            "--resume continues the curve with its own curve.json; only --quiet may be added (and --executor, --devices, --per-device)",
        ));
    }
    if !dir.join(run_dir::curve::MANIFEST).is_file() {
        return Err(fail(format!(
            "{}: not a learning-curve directory (no {})",
            dir.display(),
            run_dir::curve::MANIFEST
        )));
    }
    let manifest = CurveManifest::load(dir)?;
    if manifest.fractions.is_empty() {
        return Err(fail(format!(
            "{}: written before curves recorded their fractions; start it again with --overwrite",
            dir.display()
        )));
    }
    Ok((
        manifest.base,
        manifest.fractions,
        manifest.repeats,
        manifest.points,
    ))
}

#[cfg(test)]
mod tests {
    use super::pct;

    #[test]
    fn a_failed_fit_has_no_accuracy_rather_than_nan_percent() {
        assert_eq!(pct(0.8125), "81.25%");
        assert_eq!(pct(f64::NAN), "none");
        assert_eq!(pct(f64::INFINITY), "none");
    }
}
