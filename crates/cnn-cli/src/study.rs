//! `cnn study`: the runs of a comparison's or learning curve's plan
//! (`study.json`, see `cnn::train::study`) one at a time (`cnn study run
//! DIR INDEX`), their states (`cnn study status DIR`) and the files of
//! whatever is done (`cnn study collect DIR`); and the executors that
//! `cnn compare` and `cnn curve` run their plans with ([`ExecArgs`],
//! [`execute`]): threads of this process, or one child process per run
//! placed on the GPUs of `--devices`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use cnn::backends::with_backend_in;
use cnn::train::lock::DirLock;
use cnn::train::study::{self, Begin, RunState, StudyKind, StudyManifest};
use cnn::train::{DataSplits, RunDir, RunSummary, TrainError};

use crate::error::{CliResult, fail, failure, interrupted};
use crate::interrupt::install_interrupt;
use crate::job::TrainJob;

#[derive(Debug, Args)]
pub struct StudyCmd {
    #[command(subcommand)]
    pub command: StudyCommand,
}

#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// Train one planned run of the study in DIR (INDEX counts from 0, as
    /// `study status` lists them), resuming it from its checkpoint when it
    /// has one; a run that is over is left as it is. Exit codes: 0 done or
    /// diverged (both results), 1 failed or locked by another worker, 130
    /// stopped by SIGINT/SIGTERM at a checkpoint (run it again to resume).
    Run(RunArgs),
    /// A table of the study's runs and their states.
    Status(StatusArgs),
    /// Write the overlays, summary, diagnosis and report from the runs that
    /// are done; a partial study gives partial files that name the runs
    /// missing.
    Collect(CollectArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The study directory (of `cnn compare` or `cnn curve`).
    pub dir: PathBuf,
    /// The run's index, from 0 (a Slurm array `--array=0-(N-1)` passes
    /// $SLURM_ARRAY_TASK_ID as it is).
    pub index: usize,
    /// Worker threads (0 = one per core); default: the run's own.
    #[arg(long)]
    pub threads: Option<usize>,
    /// No per-epoch lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The study directory.
    pub dir: PathBuf,
    /// Print study.json's runs as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CollectArgs {
    /// The study directory.
    pub dir: PathBuf,
}

/// Where a study's runs train.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Executor {
    /// This machine: --jobs runs at once as threads of this process, or
    /// with --devices one process per run on each GPU.
    #[default]
    Local,
    /// A Slurm cluster: one `sbatch --array` job, a task per run (see
    /// the --slurm-* flags and docs/studies.md).
    Slurm,
}

/// How `cnn compare` and `cnn curve` run their plan.
#[derive(Debug, Args, Clone, Default)]
pub struct ExecArgs {
    /// Where the runs train.
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    pub executor: Executor,
    /// Place runs on these GPUs, one `cnn study run` process per run with
    /// CUDA_VISIBLE_DEVICES set to its device (e.g. 0,1,2,3): a run that
    /// fails or crashes is recorded as failed and the others go on.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub devices: Vec<String>,
    /// Runs at once on each device of --devices.
    #[arg(long, value_name = "K")]
    pub per_device: Option<usize>,
    /// Write the plan (each run's directory and config.toml, study.json)
    /// and stop: run it with `cnn study run DIR INDEX` for INDEX 0 to N-1,
    /// by hand or a scheduler of your own, then `cnn study collect DIR`.
    #[arg(long)]
    pub plan_only: bool,
    #[command(flatten)]
    pub slurm: crate::slurm::SlurmArgs,
}

impl ExecArgs {
    /// With `--plan-only`: say how to run the plan of `runs` runs in
    /// `root`; gives whether the command stops here.
    pub(crate) fn planned_only(&self, root: &Path, runs: usize) -> bool {
        if self.plan_only {
            say!(
                "planned {runs} runs in {root}: run them with `cnn study run {root} INDEX` for INDEX 0 to {}, then `cnn study collect {root}`",
                runs.saturating_sub(1),
                root = root.display()
            );
        }
        self.plan_only
    }
}

impl ExecArgs {
    /// The processes at once with `--devices`, or `None` for threads.
    pub(crate) fn processes(&self, jobs: usize) -> CliResult<Option<usize>> {
        crate::slurm::check_flags(
            self.executor == Executor::Slurm,
            &self.slurm,
            jobs,
            !self.devices.is_empty(),
        )?;
        if self.devices.is_empty() {
            if self.per_device.is_some() {
                return Err(fail("--per-device needs --devices"));
            }
            return Ok(None);
        }
        if jobs != 1 {
            return Err(fail(
                "--jobs and --devices cannot be combined: with --devices, --per-device K runs at once on each device",
            ));
        }
        if let Some(d) = self.devices.iter().find(|d| d.trim().is_empty()) {
            return Err(fail(format!("--devices: empty device name `{d}`")));
        }
        match self.per_device {
            Some(0) => Err(fail("--per-device must be at least 1")),
            k => Ok(Some(self.devices.len() * k.unwrap_or(1))),
        }
    }
}

/// One `cnn study ...` command.
pub fn study(cmd: StudyCmd) -> CliResult {
    match cmd.command {
        StudyCommand::Run(a) => run_command(a),
        StudyCommand::Status(a) => status(a),
        StudyCommand::Collect(a) => collect(a),
    }
}

fn open(dir: &Path) -> CliResult<StudyManifest> {
    if !study::is_study(dir) {
        return Err(fail(format!(
            "{}: not a study directory (no study.json; `cnn compare` and `cnn curve` write one)",
            dir.display()
        )));
    }
    Ok(StudyManifest::load(dir)?)
}

fn run_command(args: RunArgs) -> CliResult {
    let manifest = open(&args.dir)?;
    let run = manifest.run(args.index)?.clone();
    let interrupt = install_interrupt();
    let options = RunOne {
        threads: args.threads,
        threads_when_resumed: true,
        progress: false,
        log: !args.quiet,
        interrupt,
        data: None,
        tensorboard: None,
    };
    match run_one(&args.dir, args.index, &options) {
        Ok(None) => {
            let state = StudyManifest::load(&args.dir)?.runs[args.index].state;
            say!(
                "run {} ({}/) is {} already; nothing to do",
                args.index,
                run.dir,
                state.name()
            );
            Ok(())
        }
        Ok(Some(s)) => {
            say!(
                "run {} ({}/): {}",
                args.index,
                run.dir,
                s.status.name().replace('_', " ")
            );
            Ok(())
        }
        Err(e @ TrainError::Interrupted { .. }) => Err(interrupted(format!(
            "{}; run {} stopped at a checkpoint: continue it with `cnn study run {} {}`",
            e.to_string().split(';').next().unwrap_or("interrupted"),
            args.index,
            args.dir.display(),
            args.index
        ))),
        Err(e) => Err(e.into()),
    }
}

/// How [`run_one`] trains.
pub(crate) struct RunOne<'a> {
    /// Worker threads of a fresh run (and of a resumed one when
    /// `threads_when_resumed`; else it keeps its own).
    pub threads: Option<usize>,
    pub threads_when_resumed: bool,
    pub progress: bool,
    pub log: bool,
    pub interrupt: Arc<AtomicBool>,
    /// A learning curve's data, loaded once by the caller.
    pub data: Option<&'a DataSplits>,
    /// `compare --tensorboard DIR`: each run writes its event files into
    /// DIR/<its directory in the study>.
    pub tensorboard: Option<&'a Path>,
}

/// Take run `index` of the study in `root`, train it and record how it
/// ended (see `cnn::train::study::worker`): its summary, or `None` when
/// the run was over before (nothing is done then).
pub(crate) fn run_one(
    root: &Path,
    index: usize,
    how: &RunOne,
) -> Result<Option<RunSummary>, TrainError> {
    let device = std::env::var("CUDA_VISIBLE_DEVICES")
        .ok()
        .filter(|d| !d.is_empty());
    let claim = match study::claim(root, index, device.as_deref())? {
        Begin::Over(_) => return Ok(None),
        Begin::Claimed(c) => c,
    };
    let trained = (|| {
        let mut config = claim.config.clone();
        let resumed = matches!(claim.target, cnn::train::RunTarget::Resume(_));
        if let Some(threads) = how.threads
            && (!resumed || how.threads_when_resumed)
        {
            config.threads = threads;
        }
        let mut opts = claim.run_options(how.data)?;
        opts.progress = how.progress;
        opts.log = how.log;
        opts.interrupt = Some(Arc::clone(&how.interrupt));
        opts.tensorboard = how.tensorboard.map(|tb| tb.join(&claim.run.dir));
        let job = TrainJob {
            config: config.clone(),
            target: claim.target.clone(),
            opts,
            report: claim.writes_report(),
        };
        with_backend_in(&config.backend, config.threads, config.precision, job)?.map(|(s, _)| s)
    })();
    claim.finish(&trained)?;
    trained.map(Some)
}

/// A run's summary with its history, as its directory holds them.
pub(crate) fn load_summary(dir: &Path) -> Result<RunSummary, TrainError> {
    let mut s = RunSummary::load(dir)?;
    s.history = cnn::train::records::read_history(dir)?;
    Ok(s)
}

/// How [`execute`] runs a plan.
pub(crate) struct Execution<'a> {
    pub root: &'a Path,
    /// Runs at once as threads (without --devices).
    pub jobs: usize,
    /// Worker threads of each run (0 = one per core).
    pub threads: usize,
    pub progress: bool,
    pub quiet: bool,
    pub interrupt: Arc<AtomicBool>,
    pub data: Option<&'a DataSplits>,
    /// `compare --tensorboard DIR` (threads only).
    pub tensorboard: Option<&'a Path>,
}

/// Run every run of the plan in `e.root` that is not over, with the
/// executor of `exec`; `done(index, result)` is told as each ends
/// (`Ok(None)`: the run was over before; `Err` its error). Changes are
/// recorded in `study.json` by the runs themselves.
pub(crate) fn execute(
    exec: &ExecArgs,
    e: &Execution,
    done: &(dyn Fn(usize, Result<Option<RunSummary>, String>) + Sync),
) -> CliResult {
    let manifest = StudyManifest::load(e.root)?;
    let indices: Vec<usize> = manifest.runs.iter().map(|r| r.index).collect();
    match exec.processes(e.jobs)? {
        None => {
            let how = RunOne {
                threads: Some(e.threads),
                threads_when_resumed: false,
                progress: e.progress,
                log: false,
                interrupt: Arc::clone(&e.interrupt),
                data: e.data,
                tensorboard: e.tensorboard,
            };
            cnn::train::compare::run_all(
                &indices,
                e.jobs,
                |&i| run_one(e.root, i, &how),
                |_, &i, result| match result {
                    Ok(s) => done(i, Ok(s.clone())),
                    Err(err) => done(i, Err(err.to_string())),
                },
            );
        }
        Some(_) => run_processes(exec, e, &manifest, done)?,
    }
    Ok(())
}

/// One child process per run that is not over, `--per-device` at a time
/// on each device of `--devices`. The parent records each run's device
/// before it starts it; a child that ends without recording its run
/// (killed, crashed) has the run recorded as failed with its exit status.
/// Each child runs in a process group of its own, so a terminal's Ctrl-C
/// reaches only this process; an interrupt here (Ctrl-C, or a SIGTERM
/// sent to this process alone, as a scheduler or `kill` does) is
/// forwarded once as SIGTERM to every running child, which stops at a
/// checkpoint. After an interrupt no new child starts.
fn run_processes(
    exec: &ExecArgs,
    e: &Execution,
    manifest: &StudyManifest,
    done: &(dyn Fn(usize, Result<Option<RunSummary>, String>) + Sync),
) -> CliResult {
    let per_device = exec.per_device.unwrap_or(1);
    let slots = exec.devices.len() * per_device;
    let threads = match e.threads {
        0 => (std::thread::available_parallelism().map_or(1, |n| n.get()) / slots).max(1),
        n => n,
    };
    let exe = std::env::current_exe()
        .map_err(|err| failure(format!("cannot find the cnn executable: {err}")))?;
    let mut queue: std::collections::VecDeque<usize> = manifest
        .runs
        .iter()
        .filter(|r| {
            if r.state.is_over() {
                done(r.index, Ok(None));
                false
            } else {
                true
            }
        })
        .map(|r| r.index)
        .collect();
    // (device, child, run index) per slot.
    let mut running: Vec<Option<(String, Child, usize)>> = (0..slots).map(|_| None).collect();
    let mut forwarded = false;
    loop {
        if !forwarded && e.interrupt.load(Ordering::SeqCst) {
            running
                .iter()
                .flatten()
                .for_each(|(_, child, _)| stop(child));
            forwarded = true;
        }
        for (slot, place) in running.iter_mut().enumerate() {
            if place.is_some() || e.interrupt.load(Ordering::SeqCst) {
                continue;
            }
            let Some(index) = queue.pop_front() else {
                break;
            };
            let device = exec.devices[slot / per_device].trim().to_string();
            StudyManifest::update(e.root, |m| {
                m.runs[index].device = Some(device.clone());
                Ok(())
            })?;
            let started = RunDir::open(&e.root.join(&manifest.runs[index].dir)).is_ok();
            let mut command = Command::new(&exe);
            command
                .arg("study")
                .arg("run")
                .arg(e.root)
                .arg(index.to_string())
                .env("CUDA_VISIBLE_DEVICES", &device)
                // Its one line of result is the parent's to print.
                .stdout(std::process::Stdio::null());
            // Signals reach it through this process alone (see above).
            #[cfg(unix)]
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            // A resumed run keeps the threads it started with.
            if !started {
                command.arg("--threads").arg(threads.to_string());
            }
            if e.quiet {
                command.arg("--quiet");
            }
            match command.spawn() {
                Ok(child) => *place = Some((device, child, index)),
                Err(err) => {
                    let line = format!("cannot start {}: {err}", exe.display());
                    record_failure(e.root, index, None, &line)?;
                    done(index, Err(line));
                }
            }
        }
        let mut busy = false;
        for place in running.iter_mut() {
            let Some((device, child, index)) = place else {
                continue;
            };
            let Some(status) = child.try_wait().map_err(|err| failure(err.to_string()))? else {
                busy = true;
                continue;
            };
            let index = *index;
            let worker = study::worker_name_of(child.id());
            let line = format!("its process on device {device} exited with {status}");
            let recorded = record_failure(e.root, index, Some(&worker), &line)?;
            let run = StudyManifest::load(e.root)?.runs[index].clone();
            let result = match run.state {
                RunState::Done | RunState::Diverged => load_summary(&e.root.join(&run.dir))
                    .map(Some)
                    .map_err(|err| err.to_string()),
                _ if recorded => Err(line),
                _ => Err(run
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("{} ({line})", run.state.name()))),
            };
            done(index, result);
            *place = None;
        }
        let idle = queue.is_empty() || e.interrupt.load(Ordering::SeqCst);
        if idle && !busy && running.iter().all(Option::is_none) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ask `child` to stop at a checkpoint, as an interrupt of its own would.
fn stop(child: &Child) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a valid signal on the pid of our own child,
        // which has not been waited for (its pid cannot have been reused).
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    #[cfg(not(unix))]
    let _ = child;
}

/// Record run `index` as failed with `line` when `worker` (its child,
/// `pid@host`) left it running, or when no child started (`worker` is
/// `None`); gives whether it did.
fn record_failure(root: &Path, index: usize, worker: Option<&str>, line: &str) -> CliResult<bool> {
    Ok(StudyManifest::update(root, |m| {
        let run = &mut m.runs[index];
        let left = match worker {
            Some(w) => run.state == RunState::Running && run.worker.as_deref() == Some(w),
            None => !run.state.is_over(),
        };
        if left {
            run.state = RunState::Failed;
            run.error = Some(line.to_string());
        }
        Ok(left)
    })?)
}

fn status(args: StatusArgs) -> CliResult {
    let manifest = open(&args.dir)?;
    if args.json {
        let json = serde_json::to_string_pretty(&manifest)
            .map_err(|e| failure(format!("study.json: {e}")))?;
        say!("{json}");
        return Ok(());
    }
    let rows: Vec<[String; 5]> = manifest
        .runs
        .iter()
        .map(|r| {
            let state = match (&r.status, r.state) {
                (Some(s), RunState::Done) if s != "completed" => format!("done ({s})"),
                _ => r.state.name().to_string(),
            };
            [
                r.index.to_string(),
                format!("{}/", r.dir),
                state,
                [r.device.as_deref(), r.worker.as_deref()]
                    .iter()
                    .flatten()
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" "),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["index", "run", "state", "device worker", "error"];
    let widths: Vec<usize> = (0..5)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (c, cell) in cells.iter().enumerate() {
            if c == 4 {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        s.trim_end().to_string()
    };
    say!("{}", line(header));
    for r in &rows {
        say!(
            "{}",
            line([
                r[0].as_str(),
                r[1].as_str(),
                r[2].as_str(),
                r[3].as_str(),
                r[4].as_str()
            ])
        );
    }
    say!();
    say!(
        "{} {}: {}",
        match manifest.kind {
            StudyKind::Compare => "comparison",
            StudyKind::Curve => "learning curve",
        },
        args.dir.display(),
        manifest.counts()
    );
    Ok(())
}

fn collect(args: CollectArgs) -> CliResult {
    open(&args.dir)?;
    // Not while a compare or curve works in it.
    let _lock = DirLock::acquire(&args.dir)?;
    let collected = study::collect(&args.dir)?;
    print_collected(&args.dir, &collected)
}

/// What a collected study wrote, and what it lacks (on stderr).
pub(crate) fn print_collected(root: &Path, c: &study::Collected) -> CliResult {
    use cnn::train::run_dir::{comparison, curve};
    match c.kind {
        StudyKind::Compare => {
            let m = cnn::train::compare::Manifest::load(root)?;
            let results = cnn::train::compare::load_results(root, &m)?;
            let mut rows = cnn::train::compare::summary_rows(&m, &results);
            cnn::train::compare::sort_rows(&mut rows, m.metric);
            for line in cnn::train::compare::summary_md(&rows, m.metric).lines() {
                say!("{line}");
            }
            say!();
            say!("curves: {}", root.join(comparison::OVERLAY_PNG).display());
            say!("summary: {}", root.join(comparison::SUMMARY_CSV).display());
            say!(
                "diagnosis: {}",
                root.join(comparison::DIAGNOSIS_MD).display()
            );
        }
        StudyKind::Curve => {
            let m = cnn::train::learning_curve::CurveManifest::load(root)?;
            say!(
                "{}",
                cnn::train::learning_curve::summary_csv(
                    &cnn::train::learning_curve::score_vs_size(&m)
                )
                .trim_end()
            );
            say!("curve: {}", root.join(curve::CURVE_PNG).display());
            say!("table: {}", root.join(curve::POINTS_CSV).display());
        }
    }
    say!("report: {}", c.report.display());
    if !c.missing.is_empty() {
        let names: Vec<String> = c
            .missing
            .iter()
            .map(|r| format!("{} ({})", r.index, r.state.name()))
            .collect();
        eprintln!(
            "partial: {} of {} runs are missing: {}",
            c.missing.len(),
            c.runs,
            names.join(", ")
        );
    }
    Ok(())
}
