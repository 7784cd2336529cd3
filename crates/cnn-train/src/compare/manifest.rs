//! `compare.json`, the [`Manifest`] of a comparison: its base
//! configuration, variants, runs and their status, and the order of its
//! summary table ([`SortMetric`]). Everything else in a comparison
//! directory is derived from it and the runs' own files.

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::compare::variants::{PlannedRun, Variant};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::io::write_atomic;
use crate::prune::MedianRule;
use crate::run_dir::comparison::MANIFEST;

/// Which summary column orders the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SortMetric {
    #[default]
    BestValAccuracy,
    FinalValAccuracy,
    BestValLoss,
    FinalValLoss,
    Gap,
    Time,
}

impl FromStr for SortMetric {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.replace('-', "_").as_str() {
            "best_val_accuracy" | "best_val_acc" | "accuracy" => SortMetric::BestValAccuracy,
            "final_val_accuracy" | "final_val_acc" => SortMetric::FinalValAccuracy,
            "best_val_loss" | "loss" => SortMetric::BestValLoss,
            "final_val_loss" => SortMetric::FinalValLoss,
            "gap" => SortMetric::Gap,
            "time" => SortMetric::Time,
            other => {
                return Err(TrainError::Config(format!(
                    "unknown metric `{other}` (expected best_val_accuracy, final_val_accuracy, \
                     best_val_loss, final_val_loss, gap or time)"
                )));
            }
        })
    }
}

/// `compare.json`: what a comparison ran, enough to redraw its outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub base: TrainConfig,
    pub repeats: usize,
    pub metric: SortMetric,
    pub variants: Vec<Variant>,
    pub runs: Vec<PlannedRun>,
    /// The random search that drew the variants (`--sample`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<Search>,
    /// The pruning rule of the study (`--prune median`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<MedianRule>,
}

/// A random search as `compare.json` records it: the `--sample` specs as
/// given, the number of trials and the seed of the draws.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Search {
    pub samples: Vec<String>,
    pub trials: usize,
    pub seed: u64,
}

impl Manifest {
    pub fn load(root: &Path) -> Result<Self> {
        let path = root.join(MANIFEST);
        let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| TrainError::bad_file(&path, e.to_string()))
    }

    pub fn save(&self, root: &Path) -> Result<()> {
        let path = root.join(MANIFEST);
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| TrainError::bad_file(&path, e.to_string()))?;
        write_atomic(&path, &json)
    }
}

/// Whether `dir` is a comparison directory.
pub fn is_comparison(dir: &Path) -> bool {
    dir.join(MANIFEST).is_file()
}
