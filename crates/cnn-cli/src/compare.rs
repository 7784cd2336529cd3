//! `cnn compare`: train variants of one configuration (`--vary KEY=V1,V2`,
//! a `--runs` TOML file, `--repeats K` seeds each) and write their overlaid
//! curves, summary table, diagnosis and report into one directory (see
//! `cnn::train::compare` for the layout).

use std::path::{Path, PathBuf};

use clap::Args;
use cnn::train::compare::sample::{self, SampleSpec};
use cnn::train::compare::{self, Manifest, RunsFile, Search, SortMetric, VarySpec};
use cnn::train::prune::MedianRule;
use cnn::train::run_dir::comparison;
use cnn::train::study::{StudyKind, StudyManifest};
use cnn::train::{RunStatus, RunSummary, TrainConfig, TrainError};

use crate::args::TrainArgs;
use crate::error::{CliResult, fail, failure, interrupted};
use crate::interrupt::install_interrupt;
use crate::job::prepare_output;
use crate::study::{self, ExecArgs, Execution};

#[derive(Debug, Args, Clone, Default)]
pub struct CompareArgs {
    /// The base configuration: every `cnn train` flag; `--out` names the
    /// comparison directory (default `runs/compare-<model>-<data>`).
    #[command(flatten)]
    pub base: TrainArgs,
    /// KEY=V1,V2,...: one variant per value of a configuration key
    /// (optimizer, schedule, lr, l2, dropout, activation, batch_norm,
    /// mixup, ...; the wrappers as sam=off,on,0.05, sam.rho, sam.adaptive,
    /// lookahead=off,on, lookahead.k, lookahead.alpha). Several --vary make
    /// a grid.
    #[arg(long, value_name = "KEY=V1,V2,...")]
    pub vary: Vec<String>,
    // The doc comment below is the help text: plain text for clap, where
    // rustdoc would read `[base]` and `[[run]]` as links.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// A TOML file of runs: an optional [base] table (over --config, under
    /// the flags given) and [[run]] tables of the keys each variant changes
    /// (and an optional label).
    #[arg(long, value_name = "FILE")]
    pub runs: Option<PathBuf>,
    /// Runs per variant, with seeds seed, seed+1, ... (for error bands).
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
    /// Runs at once; the threads are divided between them.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Order of the summary table: best_val_accuracy, final_val_accuracy,
    /// best_val_loss, final_val_loss, gap or time.
    #[arg(long, default_value = "best_val_accuracy")]
    pub sort: String,
    /// Continue the comparison in DIR: runs that are over are never trained
    /// again and their files never change, interrupted ones resume from
    /// their checkpoints, the others run, all as its plan says (only
    /// --jobs, --quiet, --tensorboard and the executor's flags may be
    /// added).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Also write TensorBoard event files: each run's (as `cnn train
    /// --tensorboard`) into its directory, or DIR/<run>, and the HParams
    /// plugin's summaries (the varied hyperparameters and the metrics,
    /// a session per run) [default DIR: the comparison directory];
    /// `tensorboard --logdir DIR` compares the variants in its HParams tab.
    /// With the local executor's threads only (not --devices or Slurm).
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub tensorboard: Option<Option<PathBuf>>,
    /// KEY=DIST: random search, one value per trial drawn from DIST:
    /// loguniform(A,B) (0 < A <= B), uniform(A,B), int(A,B) (A and B
    /// included) or choice(X,Y,...); repeatable, with --trials. Each
    /// trial's values are in its label, config.toml, summary and report.
    #[arg(long, value_name = "KEY=DIST")]
    pub sample: Vec<String>,
    /// Trials of a random search (--sample), each run --repeats times.
    #[arg(long, value_name = "N")]
    pub trials: Option<usize>,
    /// Seed of the random search's draws (default: --seed); the same
    /// specs, trials and seed draw the same values.
    #[arg(long, value_name = "N")]
    pub search_seed: Option<u64>,
    /// Stop unpromising runs: `median` stops a run after an epoch when its
    /// best validation loss so far is above the median of the completed
    /// runs' at that epoch (Optuna's MedianPruner); its state is `pruned`.
    /// One run at a time a study is reproducible; with several, which runs
    /// have completed at a decision depends on timing.
    #[arg(long, value_name = "RULE")]
    pub prune: Option<String>,
    /// Epochs of each run that are never pruned (Optuna's n_warmup_steps).
    #[arg(long, value_name = "EPOCHS", default_value_t = 0)]
    pub prune_warmup: usize,
    /// Runs that must complete before any is pruned (Optuna's
    /// n_startup_trials).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub prune_startup: usize,
    /// Start a comparison of more than 256 runs (variants × repeats; at
    /// most 100000), which is refused without it.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
}

pub fn compare(args: CompareArgs) -> CliResult {
    if args.jobs == 0 {
        return Err(fail("--jobs must be at least 1"));
    }
    let processes = args.exec.processes(args.jobs)?;
    if args.tensorboard.is_some()
        && (processes.is_some() || args.exec.executor == study::Executor::Slurm)
    {
        return Err(fail(
            "--tensorboard is written by the local executor's threads only; leave out \
             --devices and --executor slurm, or --tensorboard",
        ));
    }
    let (root, mut manifest) = match &args.resume {
        Some(dir) => reopen(&args, dir)?,
        None => start(&args)?,
    };
    // The plan: every run's directory and config.toml, and study.json.
    let entries = cnn::train::study::compare_entries(&manifest);
    let plan = if args.resume.is_some() {
        cnn::train::study::ensure_plan(&root, StudyKind::Compare, &entries)?
    } else {
        cnn::train::study::write_plan(&root, StudyKind::Compare, &entries)?
    };
    if args.exec.planned_only(&root, plan.runs.len()) {
        return Ok(());
    }
    if args.exec.executor == study::Executor::Slurm {
        let collect = || study::print_collected(&root, &cnn::train::study::collect(&root)?);
        return crate::slurm::execute(&root, &plan, "cnn-compare", &args.exec.slurm, &collect);
    }
    let base = manifest.base.clone();
    let metric = manifest.metric;
    let resuming = args.resume.is_some();
    let jobs = processes
        .unwrap_or(args.jobs)
        .min(manifest.runs.len())
        .max(1);
    let total_threads = match base.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let threads = if jobs > 1 {
        (total_threads / jobs).max(1)
    } else {
        base.threads
    };
    // Threads for --jobs; one process per run for --devices.
    let jobs_threads = if processes.is_some() { 1 } else { jobs };
    let kept = plan.runs.iter().filter(|r| r.state.is_over()).count();
    eprintln!(
        "{} {} variants × {} repeats ({} runs{}, {} at a time{}) in {}",
        if resuming { "continuing" } else { "comparing" },
        manifest.variants.len(),
        manifest.repeats,
        manifest.runs.len(),
        if resuming {
            format!(", {kept} already over")
        } else {
            String::new()
        },
        jobs,
        if jobs > 1 {
            format!(", {threads} threads each")
        } else {
            String::new()
        },
        root.display()
    );
    let tensorboard = args
        .tensorboard
        .as_ref()
        .map(|dir| dir.clone().unwrap_or_else(|| root.clone()));
    let interrupt = install_interrupt();
    let started = std::time::Instant::now();
    let total = manifest.runs.len();
    let finished = std::sync::atomic::AtomicUsize::new(0);
    let execution = Execution {
        root: &root,
        jobs: jobs_threads,
        threads,
        progress: !args.base.quiet && jobs == 1,
        quiet: args.base.quiet,
        interrupt: interrupt.clone(),
        data: None,
        tensorboard: tensorboard.as_deref(),
    };
    study::execute(&args.exec, &execution, &|index, result| {
        let k = finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let planned = &manifest.runs[index];
        let label = &manifest.variants[planned.variant].label;
        let (before, line) = match result {
            Ok(Some(s)) => ("", describe(&Ok(s))),
            Ok(None) => (
                " (over before)",
                match study::load_summary(&root.join(&planned.dir)) {
                    Ok(s) => describe(&Ok(s)),
                    Err(e) => describe(&Err(e)),
                },
            ),
            Err(e) => ("", format!("failed: {e}")),
        };
        eprintln!(
            "[{k}/{total}] {label} (seed {}){before}: {line}",
            planned.seed
        );
    })?;
    let plan = StudyManifest::load(&root)?;
    manifest = cnn::train::study::sync_compare(&root, &plan)?;
    if let Some(tb) = &tensorboard {
        write_hparams(tb, &root, &manifest)?;
    }
    let stopped = manifest
        .runs
        .iter()
        .filter(|r| r.status == "interrupted")
        .count();
    if interrupt.load(std::sync::atomic::Ordering::SeqCst) {
        let over = manifest.runs.iter().filter(|r| is_over(&r.status)).count();
        return Err(interrupted(format!(
            "interrupted: {over} of {total} runs are over ({stopped} stopped at a checkpoint); \
             continue the comparison with: cnn compare --resume {}",
            root.display()
        )));
    }
    let failed = manifest
        .runs
        .iter()
        .filter(|r| r.status == "failed")
        .count();
    let missing = plan.missing().len();
    let rows = compare::write_outputs(&root)?;
    let report = cnn::train::report::write_report(&root)?;
    for line in compare::summary_md(&rows, metric).lines() {
        say!("{line}");
    }
    say!();
    say!("curves: {}", root.join(comparison::OVERLAY_PNG).display());
    if compare::numeric_key(&manifest).is_some() {
        say!(
            "validation curve: {}",
            root.join(comparison::VALIDATION_CURVE_PNG).display()
        );
    }
    say!("summary: {}", root.join(comparison::SUMMARY_CSV).display());
    say!(
        "diagnosis: {}",
        root.join(comparison::DIAGNOSIS_MD).display()
    );
    say!("report: {}", report.display());
    eprintln!("{total} runs in {:.1} s", started.elapsed().as_secs_f64());
    if missing > 0 {
        return Err(failure(format!(
            "{missing} of {total} runs are not done (another worker holds them?): see cnn study status {}",
            root.display()
        )));
    }
    if failed > 0 {
        return Err(failure(format!(
            "{failed} of {total} runs failed (see {})",
            root.join(comparison::DIAGNOSIS_MD).display()
        )));
    }
    Ok(())
}

/// The HParams plugin's experiment under `tb` and a session per run that
/// has event files (a run that failed before its directory has none).
fn write_hparams(tb: &Path, root: &Path, manifest: &Manifest) -> CliResult {
    let sessions = cnn::train::hparams::comparison_sessions(manifest);
    let runs: Vec<(PathBuf, _)> = sessions
        .into_iter()
        .map(|(dir, s)| (tb.join(dir), s))
        .filter(|(dir, _)| dir.is_dir())
        .collect();
    let runs: Vec<(&Path, _)> = runs.iter().map(|(d, s)| (d.as_path(), s.clone())).collect();
    let name = root.file_name().map_or_else(
        || root.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    cnn::train::hparams::write_hparams(tb, &name, &runs)?;
    Ok(())
}

/// Whether a run of the manifest is over (kept by `--resume`).
fn is_over(status: &str) -> bool {
    matches!(
        status,
        "completed" | "early_stopped" | "diverged" | "pruned"
    )
}

/// A new comparison: its variants sized and checked, its directory made
/// and its `compare.json` written.
fn start(args: &CompareArgs) -> CliResult<(PathBuf, Manifest)> {
    if args.vary.is_empty() && args.runs.is_none() && args.sample.is_empty() {
        return Err(fail(
            "nothing to compare: give --vary KEY=V1,V2 (e.g. --vary optimizer=sgd,adam), --runs FILE or --sample KEY=DIST --trials N",
        ));
    }
    if args.repeats == 0 {
        return Err(fail("--repeats must be at least 1"));
    }
    let base = args.base.to_config()?;
    let metric: SortMetric = args.sort.parse()?;
    let vary = args
        .vary
        .iter()
        .map(|v| v.parse::<VarySpec>())
        .collect::<Result<Vec<_>, _>>()?;
    let samples = args
        .sample
        .iter()
        .map(|s| s.parse::<SampleSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    let prune = prune_rule(args)?;
    let search = search(args, &samples, &base)?;
    sample::check(&samples, &base, &vary)?;
    let mut runs_file = match &search {
        Some(s) => Some(sample::trials_file(&sample::draw(
            &samples, s.trials, s.seed,
        ))),
        None => args.runs.as_deref().map(RunsFile::load).transpose()?,
    };
    // Flags win over the file's [base], as they do over --config.
    if let Some(file) = &mut runs_file {
        let given = args.base.keys_given();
        file.base
            .retain(|key, _| !given.contains(&key.replace('-', "_").as_str()));
    }
    // Sized before a variant is made or anything is written.
    let entries = runs_file.as_ref().map_or(1, |f| f.run.len());
    let mut how: Vec<String> = Vec::new();
    if search.is_some() {
        how.push(format!("{entries} trials"));
    } else if runs_file.is_some() {
        how.push(format!("{entries} [[run]] entries"));
    }
    how.extend(
        vary.iter()
            .map(|v| format!("{} {} values", v.values.len(), v.key)),
    );
    how.push(format!("{} repeats", args.repeats));
    compare::check_plan_size(
        compare::run_count(entries, &vary, args.repeats),
        args.yes,
        "runs",
        &how.join(" × "),
    )?;
    let variants = compare::expand(&base, runs_file.as_ref(), &vary)?;
    let root = args.base.out.clone().unwrap_or_else(|| {
        cnn::train::RunDir::default_out(Some("compare"), &base, args.base.overwrite)
    });
    for variant in &variants {
        crate::precision_args::check(&variant.config)?;
        crate::data_on_device_args::check(&variant.config)?;
    }
    compare::preflight(&variants)?;
    prepare_output(&root, args.base.overwrite)?;
    let manifest = Manifest {
        base,
        repeats: args.repeats,
        metric,
        runs: compare::plan(&variants, args.repeats),
        variants,
        search,
        prune,
    };
    manifest.save(&root)?;
    Ok((root, manifest))
}

/// The random search of `--sample`/`--trials`/`--search-seed`, checked.
fn search(
    args: &CompareArgs,
    samples: &[SampleSpec],
    base: &TrainConfig,
) -> CliResult<Option<Search>> {
    if samples.is_empty() {
        if args.trials.is_some() || args.search_seed.is_some() {
            return Err(fail(
                "--trials and --search-seed belong to a random search: give --sample KEY=DIST",
            ));
        }
        return Ok(None);
    }
    if args.runs.is_some() {
        return Err(fail(
            "--sample draws its trials from the base configuration; it cannot be combined with --runs",
        ));
    }
    let trials = match args.trials {
        None => {
            return Err(fail(
                "--sample needs --trials N, the number of trials to draw",
            ));
        }
        Some(0) => return Err(fail("--trials must be at least 1")),
        Some(n) => n,
    };
    Ok(Some(Search {
        samples: samples.iter().map(|s| s.text.clone()).collect(),
        trials,
        seed: args.search_seed.unwrap_or(base.seed),
    }))
}

/// The pruning rule of `--prune`, `--prune-warmup`, `--prune-startup`.
fn prune_rule(args: &CompareArgs) -> CliResult<Option<MedianRule>> {
    match args.prune.as_deref() {
        Some("median") => Ok(Some(MedianRule {
            warmup: args.prune_warmup,
            startup: args.prune_startup,
        })),
        Some(other) => Err(fail(format!(
            "--prune {other}: unknown rule (the one rule is `median`)"
        ))),
        None if args.prune_warmup != 0 || args.prune_startup != 5 => Err(fail(
            "--prune-warmup and --prune-startup belong to --prune median",
        )),
        None => Ok(None),
    }
}

/// An interrupted comparison to continue, as its `compare.json` says.
fn reopen(args: &CompareArgs, dir: &Path) -> CliResult<(PathBuf, Manifest)> {
    let plain = TrainArgs {
        quiet: args.base.quiet,
        ..TrainArgs::default()
    };
    if !args.vary.is_empty()
        || args.runs.is_some()
        || !args.sample.is_empty()
        || args.trials.is_some()
        || args.search_seed.is_some()
        || args.prune.is_some()
        || args.prune_warmup != 0
        || args.prune_startup != 5
        || args.repeats != 1
        || args.sort != "best_val_accuracy"
        || args.yes
        || format!("{:?}", args.base) != format!("{plain:?}")
    {
        return Err(fail(
            "--resume continues the comparison with its own compare.json; only --jobs and --quiet may be added (and --tensorboard, --executor, --devices, --per-device)",
        ));
    }
    if !compare::is_comparison(dir) {
        return Err(fail(format!(
            "{}: not a comparison directory (no compare.json)",
            dir.display()
        )));
    }
    Ok((dir.to_path_buf(), Manifest::load(dir)?))
}

/// One line about a finished run.
fn describe(result: &Result<RunSummary, TrainError>) -> String {
    match result {
        Err(e) => format!("failed: {e}"),
        Ok(s) => {
            let best = s
                .history
                .epochs
                .iter()
                .filter_map(|e| e.val.as_ref().map(|v| (e.epoch, v.accuracy)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let best = best.map_or(String::new(), |(e, a)| {
                format!(", best val acc {:.2}% (epoch {e})", a * 100.0)
            });
            let kinds: Vec<&str> = s.findings.iter().map(|f| f.kind.name()).collect();
            let status = match &s.status {
                RunStatus::Diverged(d) => format!("diverged at step {}", d.step),
                RunStatus::Pruned(p) => format!(
                    "pruned after epoch {} (best loss {:.4} > median {:.4} of {} completed runs)",
                    p.epoch, p.value, p.median, p.at_epoch
                ),
                other => other.name().replace('_', " "),
            };
            format!("{status}{best}, {:.1} s; {}", s.seconds, kinds.join(", "))
        }
    }
}
