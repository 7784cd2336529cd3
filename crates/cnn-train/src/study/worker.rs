//! Taking one planned run and recording how it ended, as every executor
//! does (threads of `cnn compare`, or `cnn study run DIR INDEX` in a
//! process of its own, on a GPU or as a Slurm array task): [`claim`] locks
//! the run directory first (a second worker is refused with the holder's
//! pid and host, and changes nothing), marks the run `running` with its
//! worker, and gives the [`Claim`]: the run's configuration (its
//! `config.toml`), where it trains (from its newest checkpoint when it has
//! one, else afresh into the planned directory) and, for a learning
//! curve's fit, its training subset. The caller trains it
//! ([`crate::run::run_training`] with [`Claim::run_options`]) and hands
//! the result to [`Claim::finish`], which records it in `study.json`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::compare::Manifest;
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::learning_curve::{self, CurveManifest};
use crate::lock::DirLock;
use crate::run::{RunOptions, RunStatus, RunSummary};
use crate::run_dir::{RunDir, RunTarget};
use crate::setup::{self, DataSplits};
use crate::study::manifest::{RunState, StudyKind, StudyManifest, StudyRun};

/// What [`claim`] found.
#[derive(Debug)]
pub enum Begin {
    /// The run has its result already (done, diverged or pruned): nothing
    /// to do, nothing changed.
    Over(StudyRun),
    /// The run is this worker's until the claim is dropped.
    Claimed(Box<Claim>),
}

/// A run taken by this worker (see the module docs).
#[derive(Debug)]
pub struct Claim {
    root: PathBuf,
    kind: StudyKind,
    pub run: StudyRun,
    /// Its configuration: the plan's, or the run's own once it started.
    pub config: TrainConfig,
    pub target: RunTarget,
    lock: Arc<DirLock>,
}

/// `pid@host` of this process.
pub fn worker_name() -> String {
    worker_name_of(std::process::id())
}

/// `pid@host` of process `pid` on this host.
pub fn worker_name_of(pid: u32) -> String {
    format!("{pid}@{}", gethostname::gethostname().to_string_lossy())
}

/// Take run `index` of the study in `root` (see the module docs).
/// `device`, when given, is recorded as the run's placement.
pub fn claim(root: &Path, index: usize, device: Option<&str>) -> Result<Begin> {
    let manifest = StudyManifest::load(root)?;
    let run = manifest.run(index)?.clone();
    if run.state.is_over() {
        return Ok(Begin::Over(run));
    }
    let dir = root.join(&run.dir);
    let lock = DirLock::acquire(&dir).map_err(|e| match e {
        TrainError::BadFile { path, message } if message.starts_with("is in use by") => {
            TrainError::BadFile {
                path,
                message: format!(
                    "run {index} is locked: {}",
                    message.trim_start_matches("is in use by ")
                ),
            }
        }
        e => e,
    })?;
    // Under the lock, the manifest as it is now (another worker may have
    // finished the run since it was read).
    let run = StudyManifest::update(root, |m| {
        let run = &mut m.runs[index];
        if !run.state.is_over() {
            run.state = RunState::Running;
            run.worker = Some(worker_name());
            run.error = None;
            if let Some(device) = device {
                run.device = Some(device.to_string());
            }
        }
        Ok(run.clone())
    })?;
    if run.state.is_over() {
        return Ok(Begin::Over(run));
    }
    let (config, target) = match RunDir::open(&dir) {
        Ok(opened) => (
            TrainConfig::load(&opened.config())?,
            RunTarget::Resume(opened),
        ),
        Err(_) => {
            let path = dir.join(crate::run_dir::CONFIG_TOML);
            let config = if path.is_file() {
                TrainConfig::load(&path)?
            } else {
                // Stopped between emptying the directory and writing the
                // run's own config.toml: the study's manifest has it.
                planned_config(root, manifest.kind, &run)?
            };
            (
                config,
                RunTarget::Fresh {
                    out: dir,
                    overwrite: true,
                },
            )
        }
    };
    Ok(Begin::Claimed(Box::new(Claim {
        root: root.to_path_buf(),
        kind: manifest.kind,
        run,
        config,
        target,
        lock: Arc::new(lock),
    })))
}

/// A run's configuration as the study's own manifest (`compare.json` or
/// `curve.json`) plans it.
fn planned_config(root: &Path, kind: StudyKind, run: &StudyRun) -> Result<TrainConfig> {
    let missing = || {
        TrainError::bad_file(
            root.join(&run.dir),
            "has no config.toml and the study's manifest does not list it",
        )
    };
    match kind {
        StudyKind::Compare => {
            let m = Manifest::load(root)?;
            let planned = m
                .runs
                .iter()
                .find(|p| p.dir == run.dir)
                .ok_or_else(missing)?;
            Ok(planned.config(&m.variants))
        }
        StudyKind::Curve => {
            let m = CurveManifest::load(root)?;
            let subset = run.subset.as_ref().ok_or_else(missing)?;
            Ok(learning_curve::fit_config(&m.base, subset.repeat))
        }
    }
}

impl Claim {
    /// The run directory.
    pub fn dir(&self) -> PathBuf {
        self.root.join(&self.run.dir)
    }

    /// Whether the run's report is written when it ends (a comparison's
    /// runs have one each; a curve's fits do not).
    pub fn writes_report(&self) -> bool {
        self.kind == StudyKind::Compare
    }

    /// How the run trains: under this claim's lock, with a curve's fits
    /// also scored on their training subset; `loaded` is the curve's data
    /// when the caller has it (else it is loaded here).
    pub fn run_options(&self, loaded: Option<&DataSplits>) -> Result<RunOptions> {
        let data = match &self.run.subset {
            None => None,
            Some(subset) => {
                let data = match loaded {
                    Some(d) => d.clone(),
                    None => setup::load_data(&TrainConfig {
                        seed: subset.base_seed,
                        limit_train: subset.limit_train,
                        ..self.config.clone()
                    })?,
                };
                let n = data.train.len();
                if subset.train_size > n {
                    return Err(TrainError::Config(format!(
                        "run {}: its subset of {} images is larger than the training split ({n})",
                        self.run.index, subset.train_size
                    )));
                }
                let order = learning_curve::subset_order(subset.base_seed, subset.repeat, n);
                Some(learning_curve::with_train_subset(
                    &data,
                    &order[..subset.train_size],
                )?)
            }
        };
        // A comparison's pruner, judging by the study's runs done by then.
        let gate = match self.kind {
            StudyKind::Compare => Manifest::load(&self.root)?
                .prune
                .map(|rule| crate::prune::study_gate(rule, self.root.clone())),
            StudyKind::Curve => None,
        };
        Ok(RunOptions {
            eval_train: self.kind == StudyKind::Curve,
            data,
            held_lock: Some(Arc::clone(&self.lock)),
            gate,
            ..RunOptions::default()
        })
    }

    /// Record how the run ended and release it: done or diverged with its
    /// summary's status, pending after an interrupt (it resumes from its
    /// checkpoint), failed with the error's line. Gives the new state.
    pub fn finish(self, result: &Result<RunSummary>) -> Result<RunState> {
        let index = self.run.index;
        StudyManifest::update(&self.root, |m| {
            let run = &mut m.runs[index];
            match result {
                Ok(s) => {
                    run.state = match s.status {
                        RunStatus::Diverged(_) => RunState::Diverged,
                        RunStatus::Pruned(_) => RunState::Pruned,
                        _ => RunState::Done,
                    };
                    run.status = Some(s.status.name().to_string());
                    run.error = None;
                }
                Err(TrainError::Interrupted { .. }) => run.state = RunState::Pending,
                Err(e) => {
                    run.state = RunState::Failed;
                    run.error = Some(e.to_string().replace('\n', " "));
                }
            }
            Ok(run.state)
        })
    }
}
