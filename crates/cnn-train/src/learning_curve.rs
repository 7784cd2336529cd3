//! Score against training-set size (`cnn curve`), with scikit-learn's
//! `learning_curve` semantics.
//!
//! For each repeat `r` the training split is shuffled once with seed
//! `seed + r` and each size takes a prefix of that order, so the subsets of
//! one repeat are nested and those of different repeats differ (as
//! scikit-learn shuffles per cross-validation split). Sizes are
//! `floor(fraction * n)` (at least 1, duplicates dropped). The validation
//! split stays the same. Each fit trains from scratch (seed `seed + r`);
//! its training score is the final model's accuracy on its own training
//! subset (evaluation mode), its validation score the final model's
//! validation accuracy.
//!
//! A curve directory holds one run directory per fit (`n<size>-seed<s>/`),
//! `curve.json` (the [`CurveManifest`]), `learning_curve.csv` (one row per
//! fit), `learning_curve_summary.csv` (mean and std per size) and
//! `learning_curve.png`/`.svg` (mean ± one standard deviation); the names
//! are in [`crate::run_dir::curve`]. Each fit is a run of the caller's
//! (`cnn curve`: [`crate::run::run_training`], which makes the fit's own
//! [`RunPlan`](crate::plan::RunPlan)); a fit that cannot start is recorded
//! as failed and the curve goes on.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use cnn_data::{ImageSet, Pixels, Subset};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::io::write_atomic;
use crate::plot::{ScoreVsSize, draw_score_vs_size};
use crate::run::{RunStatus, RunSummary};
use crate::run_dir::curve::{CURVE_PNG, CURVE_SVG, MANIFEST, POINTS_CSV, SUMMARY_CSV};
use crate::setup::DataSplits;
use crate::stats::{mean_std, num};

/// scikit-learn's default `train_sizes = np.linspace(0.1, 1.0, 5)`.
pub const DEFAULT_FRACTIONS: [f64; 5] = [0.1, 0.325, 0.55, 0.775, 1.0];

/// Stream tag of the subset shuffles ("LCRV").
const STREAM_CURVE: u64 = 0x4c43_5256;

/// Training-set sizes for `fractions` of `n` images: `floor(f * n)`, at
/// least 1, increasing, duplicates dropped. Fractions must be in (0, 1].
pub fn sizes(n: usize, fractions: &[f64]) -> Result<Vec<(f64, usize)>> {
    if fractions.is_empty() {
        return Err(TrainError::Config("no training-set fractions".into()));
    }
    let mut out: Vec<(f64, usize)> = Vec::new();
    for &f in fractions {
        if !(f > 0.0 && f <= 1.0) {
            return Err(TrainError::Config(format!(
                "training-set fraction {f} is outside (0, 1]"
            )));
        }
        let size = ((f * n as f64).floor() as usize).clamp(1, n.max(1));
        if !out.iter().any(|&(_, s)| s == size) {
            out.push((f, size));
        }
    }
    out.sort_by_key(|&(_, s)| s);
    Ok(out)
}

/// The order in which repeat `repeat` takes training images: a permutation
/// of `0..n`, a pure function of `(seed, repeat, n)`.
pub fn subset_order(seed: u64, repeat: usize, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = cnn_data::shuffle::rng_for(seed, STREAM_CURVE, repeat as u64, 0);
    cnn_data::shuffle::shuffle(&mut order, &mut rng);
    order
}

/// `data` with its training split replaced by the images `indices` of it
/// (copied into a new set); validation and test are unchanged.
pub fn with_train_subset(data: &DataSplits, indices: &[usize]) -> Result<DataSplits> {
    let train = &data.train;
    let numel = train.shape().numel();
    let set = train.set();
    let base = train.offset();
    let labels: Vec<u32> = indices.iter().map(|&i| train.label(i)).collect();
    let pixels = match set.pixels() {
        Pixels::U8(v) => Pixels::U8(
            indices
                .iter()
                .flat_map(|&i| &v[(base + i) * numel..(base + i + 1) * numel])
                .copied()
                .collect(),
        ),
        Pixels::F32(v) => Pixels::F32(
            indices
                .iter()
                .flat_map(|&i| &v[(base + i) * numel..(base + i + 1) * numel])
                .copied()
                .collect(),
        ),
    };
    let subset = ImageSet::new(train.shape().clone(), pixels, labels)?;
    Ok(DataSplits {
        train: Subset::full(Arc::new(subset)),
        ..data.clone()
    })
}

/// One fit of the curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub fraction: f64,
    pub train_size: usize,
    pub repeat: usize,
    pub seed: u64,
    /// The fit's run directory, relative to the curve directory.
    pub dir: String,
    /// `completed`, `early_stopped`, `diverged` or `failed`.
    pub status: String,
    /// Accuracy of the final model on its training subset (NaN = none).
    #[serde(with = "crate::json_float")]
    pub train_score: f64,
    /// Validation accuracy of the final model (NaN = none).
    #[serde(with = "crate::json_float")]
    pub val_score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `curve.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveManifest {
    pub base: TrainConfig,
    pub repeats: usize,
    /// Images in the full training split.
    pub train_images: usize,
    pub val_images: usize,
    /// The fractions asked for (empty in files written before they were
    /// recorded): with `repeats`, what `cnn curve --resume` plans.
    #[serde(default)]
    pub fractions: Vec<f64>,
    pub points: Vec<CurvePoint>,
}

impl CurveManifest {
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

/// Run the curve: for each repeat and size, `fit(config, data, dir_name)`
/// trains one model on the subset (the caller picks the backend and
/// directory under `root`). `done` is told about each finished fit. A
/// diverged or failed fit is recorded with NaN scores; an interrupt stops
/// the curve. Writes every file of the curve directory.
pub fn run_curve<F, D>(
    root: &Path,
    base: &TrainConfig,
    data: &DataSplits,
    fractions: &[f64],
    repeats: usize,
    fit: F,
    done: D,
) -> Result<CurveManifest>
where
    F: Fn(&TrainConfig, DataSplits, &str) -> Result<RunSummary>,
    D: Fn(&CurvePoint),
{
    run_curve_from(root, base, data, fractions, repeats, &[], fit, done)
}

/// The configuration of repeat `repeat`'s fits: seed `seed + repeat`, and
/// no `limit_train` (the subset is taken from the limited split).
pub fn fit_config(base: &TrainConfig, repeat: usize) -> TrainConfig {
    TrainConfig {
        seed: base.seed.wrapping_add(repeat as u64),
        limit_train: 0,
        ..base.clone()
    }
}

/// A fit's run directory name: `n<size>-seed<seed>`.
pub fn fit_dir(train_size: usize, seed: u64) -> String {
    format!("n{train_size}-seed{seed}")
}

/// A fit's point on the curve from its summary: its status and, unless it
/// diverged, its final training (`train_eval`) and validation accuracy.
pub fn point_scores(point: &mut CurvePoint, s: &RunSummary) {
    point.status = s.status.name().into();
    if !matches!(s.status, RunStatus::Diverged(_)) {
        point.train_score = s.train_eval.as_ref().map_or(f64::NAN, |m| m.accuracy);
        point.val_score = s
            .history
            .epochs
            .last()
            .and_then(|e| e.val.as_ref())
            .map_or(f64::NAN, |v| v.accuracy);
    }
}

/// Whether a fit of a curve is over (kept when the curve is resumed).
pub fn is_over(status: &str) -> bool {
    matches!(status, "completed" | "early_stopped" | "diverged")
}

/// [`run_curve`], continuing a curve: the fits of `previous` that are
/// over (same directory) are kept as they are, and `fit` is called only
/// for the others (`cnn curve --resume`; the caller resumes a fit that has
/// a checkpoint).
#[allow(clippy::too_many_arguments)]
pub fn run_curve_from<F, D>(
    root: &Path,
    base: &TrainConfig,
    data: &DataSplits,
    fractions: &[f64],
    repeats: usize,
    previous: &[CurvePoint],
    fit: F,
    done: D,
) -> Result<CurveManifest>
where
    F: Fn(&TrainConfig, DataSplits, &str) -> Result<RunSummary>,
    D: Fn(&CurvePoint),
{
    let repeats = repeats.max(1);
    let n = data.train.len();
    let sizes = sizes(n, fractions)?;
    let mut manifest = CurveManifest {
        base: base.clone(),
        repeats,
        train_images: n,
        val_images: data.val.len(),
        fractions: fractions.to_vec(),
        points: Vec::new(),
    };
    for repeat in 0..repeats {
        let seed = base.seed.wrapping_add(repeat as u64);
        let order = subset_order(base.seed, repeat, n);
        for &(fraction, size) in &sizes {
            let subset = with_train_subset(data, &order[..size])?;
            let config = fit_config(base, repeat);
            let dir = fit_dir(size, seed);
            if let Some(kept) = previous
                .iter()
                .find(|p| p.dir == dir && p.repeat == repeat && is_over(&p.status))
            {
                done(kept);
                manifest.points.push(kept.clone());
                continue;
            }
            let mut point = CurvePoint {
                fraction,
                train_size: size,
                repeat,
                seed,
                dir: dir.clone(),
                status: "failed".into(),
                train_score: f64::NAN,
                val_score: f64::NAN,
                error: None,
            };
            match fit(&config, subset, &dir) {
                Ok(s) => point_scores(&mut point, &s),
                Err(e @ TrainError::Interrupted { .. }) => {
                    manifest.save(root)?;
                    return Err(e);
                }
                Err(e) => point.error = Some(e.to_string()),
            }
            done(&point);
            manifest.points.push(point);
            manifest.save(root)?;
        }
    }
    write_outputs(root, &manifest)?;
    Ok(manifest)
}

/// Mean and std per size (sizes ascending).
pub fn score_vs_size(manifest: &CurveManifest) -> ScoreVsSize {
    let mut sizes: Vec<usize> = manifest.points.iter().map(|p| p.train_size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut s = ScoreVsSize {
        title: format!(
            "Learning curve: {} on {} (mean ± 1 std over {} repeats)",
            manifest.base.model, manifest.base.data, manifest.repeats
        ),
        score_label: "accuracy".into(),
        ..ScoreVsSize::default()
    };
    for size in sizes {
        let at = |f: fn(&CurvePoint) -> f64| {
            mean_std(
                manifest
                    .points
                    .iter()
                    .filter(|p| p.train_size == size)
                    .map(f),
            )
        };
        let (tm, ts) = at(|p| p.train_score);
        let (vm, vs) = at(|p| p.val_score);
        s.train_sizes.push(size as f64);
        s.train_mean.push(tm);
        s.train_std.push(ts);
        s.val_mean.push(vm);
        s.val_std.push(vs);
    }
    s
}

/// The text of `learning_curve.csv`.
pub fn points_csv(manifest: &CurveManifest) -> String {
    let mut s =
        String::from("train_size,fraction,repeat,seed,train_accuracy,val_accuracy,status\n");
    for p in &manifest.points {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{}",
            p.train_size,
            p.fraction,
            p.repeat,
            p.seed,
            num(p.train_score),
            num(p.val_score),
            p.status
        );
    }
    s
}

/// The text of `learning_curve_summary.csv`.
pub fn summary_csv(points: &ScoreVsSize) -> String {
    let mut s = String::from("train_size,train_mean,train_std,val_mean,val_std\n");
    for i in 0..points.train_sizes.len() {
        let _ = writeln!(
            s,
            "{},{},{},{},{}",
            points.train_sizes[i],
            num(points.train_mean[i]),
            num(points.train_std[i]),
            num(points.val_mean[i]),
            num(points.val_std[i])
        );
    }
    s
}

/// Write the CSV files and the plot of a curve directory.
pub fn write_outputs(root: &Path, manifest: &CurveManifest) -> Result<()> {
    let points = score_vs_size(manifest);
    write_atomic(&root.join(POINTS_CSV), points_csv(manifest).as_bytes())?;
    write_atomic(&root.join(SUMMARY_CSV), summary_csv(&points).as_bytes())?;
    draw_score_vs_size(&points, &root.join(CURVE_PNG), &root.join(CURVE_SVG))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_sklearn() {
        let s = sizes(4500, &DEFAULT_FRACTIONS).unwrap();
        let n: Vec<usize> = s.iter().map(|p| p.1).collect();
        assert_eq!(n, vec![450, 1462, 2475, 3487, 4500]);
        let s = sizes(3, &[0.1, 0.2, 1.0]).unwrap();
        assert_eq!(s.iter().map(|p| p.1).collect::<Vec<_>>(), vec![1, 3]);
        assert!(sizes(10, &[0.0]).is_err());
        assert!(sizes(10, &[1.5]).is_err());
        assert!(sizes(10, &[]).is_err());
    }

    #[test]
    fn subsets_are_random_permutations_that_differ_by_repeat() {
        let a = subset_order(0, 0, 100);
        let b = subset_order(0, 1, 100);
        assert_ne!(a, b);
        assert_eq!(a, subset_order(0, 0, 100));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(&a[..10], &(0..10).collect::<Vec<_>>()[..], "not a prefix");
    }

    #[test]
    fn nan_scores_round_trip_through_json() {
        let p = CurvePoint {
            fraction: 0.1,
            train_size: 5,
            repeat: 0,
            seed: 0,
            dir: "n5-seed0".into(),
            status: "diverged".into(),
            train_score: f64::NAN,
            val_score: 0.5,
            error: None,
        };
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"train_score\":\"NaN\""), "{json}");
        let back: CurvePoint = serde_json::from_str(&json).unwrap();
        assert!(back.train_score.is_nan() && back.val_score == 0.5);
        // curve.json files written before held `null`.
        let old = json.replace("\"NaN\"", "null");
        let back: CurvePoint = serde_json::from_str(&old).unwrap();
        assert!(back.train_score.is_nan());
    }
}
