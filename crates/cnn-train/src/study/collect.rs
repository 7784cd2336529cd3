//! Collecting a study: its command's own manifest (`compare.json` or
//! `curve.json`) brought up to date from `study.json` and the runs' files
//! ([`sync_compare`], [`sync_curve`]), then the overlays, summary,
//! diagnosis and report written from whatever runs are over ([`collect`]).
//! A partial study gives partial files that name the runs missing (see
//! [`missing_note`](crate::study::manifest::missing_note)).

use std::path::Path;

use crate::compare::{self, Manifest};
use crate::error::Result;
use crate::learning_curve::{self, CurveManifest, CurvePoint};
use crate::run::RunSummary;
use crate::run_dir::RunDir;
use crate::study::manifest::{RunState, StudyKind, StudyManifest, StudyRun};

/// What [`collect`] wrote from.
#[derive(Debug, Clone)]
pub struct Collected {
    pub kind: StudyKind,
    pub runs: usize,
    /// Runs without a result (pending or running).
    pub missing: Vec<StudyRun>,
    /// Runs that failed.
    pub failed: usize,
    /// The report's path.
    pub report: std::path::PathBuf,
}

/// `compare.json`'s run statuses from `study.json`: a run over keeps its
/// summary's status, a failed one its error; one without a result is
/// `interrupted` when it has a checkpoint to resume from, else `pending`.
pub fn sync_compare(root: &Path, study: &StudyManifest) -> Result<Manifest> {
    let mut manifest = Manifest::load(root)?;
    for planned in &mut manifest.runs {
        let Some(run) = study.runs.iter().find(|r| r.dir == planned.dir) else {
            continue;
        };
        planned.error = None;
        planned.status = match run.state {
            RunState::Done => run.status.clone().unwrap_or_else(|| "completed".into()),
            RunState::Diverged => "diverged".into(),
            RunState::Pruned => "pruned".into(),
            RunState::Failed => {
                planned.error = run.error.clone();
                "failed".into()
            }
            RunState::Pending | RunState::Running => {
                if RunDir::open(&root.join(&run.dir)).is_ok() {
                    "interrupted".into()
                } else {
                    "pending".into()
                }
            }
        };
    }
    manifest.save(root)?;
    Ok(manifest)
}

/// `curve.json`'s points from `study.json`: one per fit that is over or
/// failed, in plan order, scored from its `summary.json` and history.
pub fn sync_curve(root: &Path, study: &StudyManifest) -> Result<CurveManifest> {
    let mut manifest = CurveManifest::load(root)?;
    manifest.points = study
        .runs
        .iter()
        .filter(|r| {
            matches!(
                r.state,
                RunState::Done | RunState::Diverged | RunState::Failed
            )
        })
        .filter_map(|r| {
            let subset = r.subset.as_ref()?;
            let mut point = CurvePoint {
                fraction: subset.fraction,
                train_size: subset.train_size,
                repeat: subset.repeat,
                seed: manifest.base.seed.wrapping_add(subset.repeat as u64),
                dir: r.dir.clone(),
                status: "failed".into(),
                train_score: f64::NAN,
                val_score: f64::NAN,
                error: r.error.clone(),
            };
            if r.state != RunState::Failed {
                let dir = root.join(&r.dir);
                let read = || -> Result<RunSummary> {
                    let mut s = RunSummary::load(&dir)?;
                    s.history = crate::records::read_history(&dir)?;
                    Ok(s)
                };
                match read() {
                    Ok(s) => learning_curve::point_scores(&mut point, &s),
                    Err(e) => point.error = Some(e.to_string()),
                }
            }
            Some(point)
        })
        .collect();
    manifest.save(root)?;
    learning_curve::write_outputs(root, &manifest)?;
    Ok(manifest)
}

/// Bring the study's own manifest up to date and write its overlays,
/// summary, diagnosis and report from the runs that are over.
pub fn collect(root: &Path) -> Result<Collected> {
    let study = StudyManifest::load(root)?;
    match study.kind {
        StudyKind::Compare => {
            sync_compare(root, &study)?;
            compare::write_outputs(root)?;
        }
        StudyKind::Curve => {
            sync_curve(root, &study)?;
        }
    }
    let report = crate::report::write_report(root)?;
    Ok(Collected {
        kind: study.kind,
        runs: study.runs.len(),
        missing: study.missing().into_iter().cloned().collect(),
        failed: study
            .runs
            .iter()
            .filter(|r| r.state == RunState::Failed)
            .count(),
        report,
    })
}
