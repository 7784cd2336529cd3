//! Writing a study's plan: every run's resolved configuration as the
//! `config.toml` of its own run directory (marked as cnn's, so that the
//! run may replace it when it starts) and `study.json` listing the runs,
//! all pending. [`compare_entries`] and [`curve_entries`] list the runs of
//! `cnn compare` and `cnn curve`; a directory that those commands wrote
//! before studies had plans gets one from its `compare.json` or
//! `curve.json` when it is resumed ([`ensure_plan`]).

use std::path::Path;

use crate::compare::Manifest;
use crate::config::TrainConfig;
use crate::error::Result;
use crate::io::write_atomic;
use crate::learning_curve::{self, CurvePoint};
use crate::run_dir::{CONFIG_TOML, RunDir, is_non_empty_dir};
use crate::study::manifest::{RunState, StudyKind, StudyManifest, StudyRun, TrainSubset};

/// One run of a plan before it is written.
#[derive(Debug, Clone)]
pub struct PlanEntry {
    /// Relative to the study directory.
    pub dir: String,
    pub config: TrainConfig,
    pub subset: Option<TrainSubset>,
    /// Its state: pending for a new plan; what the old manifest says for
    /// a directory planned before `study.json` existed.
    pub state: RunState,
    pub status: Option<String>,
}

/// The runs of a comparison, in `compare.json`'s order, with the states
/// its statuses give.
pub fn compare_entries(manifest: &Manifest) -> Vec<PlanEntry> {
    manifest
        .runs
        .iter()
        .map(|r| {
            let (state, status) = match r.status.as_str() {
                "completed" | "early_stopped" => (RunState::Done, Some(r.status.clone())),
                "diverged" => (RunState::Diverged, Some(r.status.clone())),
                "pruned" => (RunState::Pruned, Some(r.status.clone())),
                "failed" => (RunState::Failed, None),
                _ => (RunState::Pending, None),
            };
            PlanEntry {
                dir: r.dir.clone(),
                config: r.config(&manifest.variants),
                subset: None,
                state,
                status,
            }
        })
        .collect()
}

/// The fits of a learning curve on a training split of `n` images, in
/// [`learning_curve::run_curve`]'s order (repeat by repeat, sizes
/// ascending); the fits of `previous` that are over keep their state.
pub fn curve_entries(
    base: &TrainConfig,
    n: usize,
    fractions: &[f64],
    repeats: usize,
    previous: &[CurvePoint],
) -> Result<Vec<PlanEntry>> {
    let sizes = learning_curve::sizes(n, fractions)?;
    let mut out = Vec::new();
    for repeat in 0..repeats.max(1) {
        let seed = base.seed.wrapping_add(repeat as u64);
        for &(fraction, train_size) in &sizes {
            let dir = learning_curve::fit_dir(train_size, seed);
            let kept = previous
                .iter()
                .find(|p| p.dir == dir && p.repeat == repeat && learning_curve::is_over(&p.status));
            let (state, status) = match kept {
                Some(p) if p.status == "diverged" => (RunState::Diverged, Some(p.status.clone())),
                Some(p) => (RunState::Done, Some(p.status.clone())),
                None => (RunState::Pending, None),
            };
            out.push(PlanEntry {
                dir,
                config: learning_curve::fit_config(base, repeat),
                subset: Some(TrainSubset {
                    fraction,
                    train_size,
                    repeat,
                    base_seed: base.seed,
                    limit_train: base.limit_train,
                }),
                state,
                status,
            });
        }
    }
    Ok(out)
}

/// Write the plan into `root` (which exists): each run directory that is
/// missing or empty gets the run's configuration (relative paths made
/// absolute, so that the file is read the same from anywhere) as its
/// `config.toml`; a run directory with files (a run that started) is left
/// as it is. Then `study.json`.
pub fn write_plan(root: &Path, kind: StudyKind, entries: &[PlanEntry]) -> Result<StudyManifest> {
    for entry in entries {
        let dir = root.join(&entry.dir);
        if !is_non_empty_dir(&dir) {
            RunDir::prepare_output(&dir, false)?;
            write_atomic(
                &dir.join(CONFIG_TOML),
                entry.config.with_absolute_paths().to_toml().as_bytes(),
            )?;
        }
    }
    let manifest = StudyManifest {
        kind,
        runs: entries
            .iter()
            .enumerate()
            .map(|(index, e)| StudyRun {
                index,
                dir: e.dir.clone(),
                state: e.state,
                status: e.status.clone(),
                error: None,
                device: None,
                worker: None,
                subset: e.subset.clone(),
            })
            .collect(),
    };
    manifest.save(root)?;
    Ok(manifest)
}

/// The plan of `root`: its `study.json` when it has one, else one written
/// from `entries` (a directory from before study plans).
pub fn ensure_plan(root: &Path, kind: StudyKind, entries: &[PlanEntry]) -> Result<StudyManifest> {
    if crate::study::manifest::is_study(root) {
        return StudyManifest::load(root);
    }
    write_plan(root, kind, entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_writes_each_config_once_and_keeps_started_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let base = TrainConfig::default();
        let entries = curve_entries(&base, 100, &[0.5, 1.0], 2, &[]).unwrap();
        let dirs: Vec<&str> = entries.iter().map(|e| e.dir.as_str()).collect();
        assert_eq!(
            dirs,
            [
                format!("n50-seed{}", base.seed),
                format!("n100-seed{}", base.seed),
                format!("n50-seed{}", base.seed + 1),
                format!("n100-seed{}", base.seed + 1)
            ]
        );
        // A run that started keeps its files.
        std::fs::create_dir_all(root.join(&entries[1].dir)).unwrap();
        std::fs::write(root.join(&entries[1].dir).join(CONFIG_TOML), "mine").unwrap();
        let m = write_plan(root, StudyKind::Curve, &entries).unwrap();
        assert_eq!(m.runs.len(), 4);
        assert!(m.runs.iter().all(|r| r.state == RunState::Pending));
        assert_eq!(m.runs[3].subset.as_ref().unwrap().repeat, 1);
        let planned = TrainConfig::load(&root.join(&entries[2].dir).join(CONFIG_TOML)).unwrap();
        assert_eq!(planned.seed, base.seed + 1);
        assert_eq!(planned.limit_train, 0);
        assert_eq!(
            std::fs::read_to_string(root.join(&entries[1].dir).join(CONFIG_TOML)).unwrap(),
            "mine"
        );
        assert_eq!(StudyManifest::load(root).unwrap(), m);
        assert_eq!(ensure_plan(root, StudyKind::Curve, &[]).unwrap(), m);
    }
}
