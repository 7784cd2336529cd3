//! Comparing variants of one configuration by their learning curves
//! (`cnn compare`).
//!
//! - [`VarySpec`] (`optimizer=sgd,adam`) and [`RunsFile`] (a TOML list of
//!   runs) describe the variants; [`expand`] turns a base [`TrainConfig`]
//!   plus those into [`Variant`]s (the grid of every `--vary`), and
//!   [`plan`] into [`PlannedRun`]s, `repeats` per variant with seeds
//!   `seed`, `seed + 1`, ...
//! - [`run_all`] runs them one after another or `jobs` at once (scoped
//!   threads pulling from a shared queue); a run that diverges is a result
//!   like any other.
//! - A comparison directory holds each run's own directory, `compare.json`
//!   (the [`Manifest`]: base configuration, variants, runs and their
//!   status) and what [`write_outputs`] derives from those files alone:
//!   `overlay.png`/`overlay.svg` (mean ± std over repeats per variant),
//!   `summary.csv`/`summary.md` (sorted by the chosen [`SortMetric`]) and
//!   `diagnosis.md` (the [`crate::diagnose`](mod@crate::diagnose) findings of every run).

use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::diagnose::{Finding, FindingKind};
use crate::error::{Result, TrainError};
use crate::history::EpochRecord;
use crate::io::write_atomic;
use crate::plot::{OverlaySeries, draw_overlay};
use crate::run::{RunStatus, RunSummary};

/// File names of a comparison directory.
pub const MANIFEST: &str = "compare.json";
pub const OVERLAY_PNG: &str = "overlay.png";
pub const OVERLAY_SVG: &str = "overlay.svg";
pub const SUMMARY_CSV: &str = "summary.csv";
pub const SUMMARY_MD: &str = "summary.md";
pub const DIAGNOSIS_MD: &str = "diagnosis.md";

// ---------------------------------------------------------------------------
// Variants
// ---------------------------------------------------------------------------

/// One `--vary key=v1,v2,...`: a `TrainConfig` field and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct VarySpec {
    pub key: String,
    pub values: Vec<String>,
}

impl FromStr for VarySpec {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |m: &str| TrainError::Config(format!("--vary `{s}`: {m}"));
        let (key, values) = s
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE[,VALUE...], e.g. optimizer=sgd,adam"))?;
        let key = key.trim().replace('-', "_");
        let values: Vec<String> = values
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if key.is_empty() {
            return Err(bad("the key is empty"));
        }
        if values.is_empty() {
            return Err(bad("no values"));
        }
        Ok(VarySpec { key, values })
    }
}

/// A TOML file listing runs: `[base]` overrides the command's base
/// configuration, each `[[run]]` holds a variant's overrides and an optional
/// `label`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsFile {
    #[serde(default)]
    pub base: toml::Table,
    #[serde(default)]
    pub run: Vec<toml::Table>,
}

impl RunsFile {
    /// Read and parse a runs file; errors name it.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let file: RunsFile =
            toml::from_str(&text).map_err(|e| TrainError::bad_file(path, e.message()))?;
        if file.run.is_empty() {
            return Err(TrainError::bad_file(
                path,
                "no [[run]] entries (each lists the keys it changes)",
            ));
        }
        Ok(file)
    }
}

/// One configuration of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// What it changes, e.g. `optimizer=adam, dropout=0.5` (or `base`).
    pub label: String,
    /// File-name form of the label.
    pub slug: String,
    /// The changed keys and their values as given.
    pub overrides: Vec<(String, String)>,
    pub config: TrainConfig,
}

/// Set `key` of `config` to a TOML value; integers become floats where the
/// field is a float, and `on`/`off` strings booleans where it is a bool.
pub fn apply_value(config: &TrainConfig, key: &str, value: toml::Value) -> Result<TrainConfig> {
    let key = key.replace('-', "_");
    let mut table = toml::Table::try_from(config)
        .map_err(|e| TrainError::Config(format!("cannot represent the configuration: {e}")))?;
    let value = match (table.get(&key), value) {
        (Some(toml::Value::Float(_)), toml::Value::Integer(i)) => toml::Value::Float(i as f64),
        (Some(toml::Value::Boolean(_)), toml::Value::String(s)) => match parse_on_off(&s) {
            Some(b) => toml::Value::Boolean(b),
            None => toml::Value::String(s),
        },
        (Some(toml::Value::String(_)), v @ (toml::Value::Integer(_) | toml::Value::Float(_))) => {
            toml::Value::String(v.to_string())
        }
        (_, v) => v,
    };
    let shown = value.to_string();
    table.insert(key.clone(), value);
    let out: TrainConfig = table.try_into().map_err(|e: toml::de::Error| {
        TrainError::Config(format!("{key} = {shown}: {}", e.message()))
    })?;
    out.validate()?;
    Ok(out)
}

/// Set `key` of `config` to the text `value` as a command line gives it.
pub fn apply_text(config: &TrainConfig, key: &str, value: &str) -> Result<TrainConfig> {
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    apply_value(config, key, parsed)
}

fn parse_on_off(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// A label as a file name: letters, digits, `.`, `-`, `_`.
pub fn slug(label: &str) -> String {
    let mut s = String::new();
    for c in label.chars() {
        match c {
            c if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' => s.push(c),
            '=' => s.push('-'),
            _ if !s.ends_with('_') => s.push('_'),
            _ => {}
        }
    }
    let s = s.trim_matches('_').to_string();
    if s.is_empty() { "run".into() } else { s }
}

/// The variants: each run of `runs` (or the base alone) crossed with every
/// combination of the `vary` values, in order. Every configuration is
/// validated here, before anything runs.
pub fn expand(
    base: &TrainConfig,
    runs: Option<&RunsFile>,
    vary: &[VarySpec],
) -> Result<Vec<Variant>> {
    let mut seeds: Vec<Variant> = Vec::new();
    let base = match runs {
        Some(file) => file.base.iter().try_fold(base.clone(), |c, (k, v)| {
            apply_value(&c, k, v.clone())
                .map_err(|e| TrainError::Config(format!("[base] {k}: {e}")))
        })?,
        None => base.clone(),
    };
    match runs {
        Some(file) => {
            for (i, run) in file.run.iter().enumerate() {
                let mut config = base.clone();
                let mut overrides = Vec::new();
                let mut label = None;
                for (k, v) in run {
                    if k == "label" {
                        label = Some(v.as_str().map_or_else(|| v.to_string(), str::to_string));
                        continue;
                    }
                    config = apply_value(&config, k, v.clone())
                        .map_err(|e| TrainError::Config(format!("run {} ({k}): {e}", i + 1)))?;
                    let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    overrides.push((k.clone(), text));
                }
                let label = label.unwrap_or_else(|| label_of(&overrides));
                seeds.push(Variant {
                    slug: slug(&label),
                    label,
                    overrides,
                    config,
                });
            }
        }
        None => seeds.push(Variant {
            label: "base".into(),
            slug: "base".into(),
            overrides: Vec::new(),
            config: base.clone(),
        }),
    }
    let mut variants = seeds;
    for spec in vary {
        let mut next = Vec::with_capacity(variants.len() * spec.values.len());
        for v in &variants {
            for value in &spec.values {
                let config = apply_text(&v.config, &spec.key, value).map_err(|e| {
                    let e = match e {
                        TrainError::Config(m) => m,
                        other => other.to_string(),
                    };
                    TrainError::Config(format!("--vary {}={value}: {e}", spec.key))
                })?;
                let mut overrides = v.overrides.clone();
                overrides.push((spec.key.clone(), value.clone()));
                let label = if runs.is_none() {
                    label_of(&overrides)
                } else {
                    format!("{}, {}={value}", v.label, spec.key)
                };
                next.push(Variant {
                    slug: slug(&label),
                    label,
                    overrides,
                    config,
                });
            }
        }
        variants = next;
    }
    for v in &variants {
        crate::setup::optimizer_config(&v.config)
            .map_err(|e| TrainError::Config(format!("{}: {e}", v.label)))?;
        crate::setup::schedule_config(&v.config, 1)
            .map_err(|e| TrainError::Config(format!("{}: {e}", v.label)))?;
    }
    // Distinct directory names.
    let mut seen = std::collections::HashSet::new();
    for v in &mut variants {
        let stem = v.slug.clone();
        let mut k = 2;
        while !seen.insert(v.slug.clone()) {
            v.slug = format!("{stem}-{k}");
            k += 1;
        }
    }
    Ok(variants)
}

fn label_of(overrides: &[(String, String)]) -> String {
    if overrides.is_empty() {
        return "base".into();
    }
    overrides
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One run of a comparison: a variant with one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    /// Index into the manifest's variants.
    pub variant: usize,
    pub repeat: usize,
    pub seed: u64,
    /// The run's directory, relative to the comparison directory.
    pub dir: String,
    /// `pending`, `completed`, `early_stopped`, `diverged` or `failed`.
    pub status: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `repeats` runs per variant (at least one), seeds `seed + r`.
pub fn plan(variants: &[Variant], repeats: usize) -> Vec<PlannedRun> {
    let repeats = repeats.max(1);
    let mut out = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        for r in 0..repeats {
            let seed = v.config.seed.wrapping_add(r as u64);
            let dir = if repeats == 1 {
                v.slug.clone()
            } else {
                format!("{}-seed{seed}", v.slug)
            };
            out.push(PlannedRun {
                variant: i,
                repeat: r,
                seed,
                dir,
                status: "pending".into(),
                error: None,
            });
        }
    }
    out
}

impl PlannedRun {
    /// The run's configuration: its variant's with its seed.
    pub fn config(&self, variants: &[Variant]) -> TrainConfig {
        TrainConfig {
            seed: self.seed,
            ..variants[self.variant].config.clone()
        }
    }
}

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

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

/// Check every variant as a run checks itself before it writes anything:
/// its configuration, optimizer and schedule, its data (each distinct
/// dataset loaded once), its model on that data, the memory it needs and
/// that its `init_from` file reads. Call it before the comparison
/// directory is prepared, so that a comparison that cannot start fails
/// with its first error and leaves an existing directory as it was.
pub fn preflight(variants: &[Variant]) -> Result<()> {
    let mut loaded: Vec<(String, crate::setup::DataSplits)> = Vec::new();
    for variant in variants {
        let config = &variant.config;
        config.validate()?;
        crate::setup::optimizer_config(config)?;
        crate::setup::schedule_config(config, 1)?;
        // The synthetic set is drawn from the seed; files are not.
        let key = format!(
            "{}|{:?}|{}|{}|{}",
            config.data,
            config.data_dir,
            config.val_fraction,
            config.limit_train,
            if config.data == "synthetic" {
                config.seed
            } else {
                0
            }
        );
        let index = match loaded.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                loaded.push((key, crate::setup::load_data(config)?));
                loaded.len() - 1
            }
        };
        let data = &loaded[index].1;
        let spec = crate::setup::model_spec(config, &data.shape, data.num_classes())?;
        let memory = crate::memory::estimate(&spec, config.batch_size, data, config.threads)?;
        crate::memory::check(&memory, config.max_memory)?;
        if let Some(init) = &config.init_from {
            crate::checkpoint::load_safetensors(init)?;
        }
    }
    Ok(())
}

/// Run every planned run with `run`, `jobs` at a time (1 = one after
/// another), in plan order as far as a queue allows. `done` is called as
/// each finishes (from the worker thread). Results are in plan order.
pub fn run_all<F, D>(runs: &[PlannedRun], jobs: usize, run: F, done: D) -> Vec<Result<RunSummary>>
where
    F: Fn(&PlannedRun) -> Result<RunSummary> + Sync,
    D: Fn(usize, &PlannedRun, &Result<RunSummary>) + Sync,
{
    let jobs = jobs.clamp(1, runs.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<RunSummary>>>> =
        Mutex::new((0..runs.len()).map(|_| None).collect());
    let worker = || {
        loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(planned) = runs.get(i) else { break };
            let result = run(planned);
            done(i, planned, &result);
            let interrupted = matches!(result, Err(TrainError::Interrupted { .. }));
            results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
            if interrupted {
                // Skip the rest of the queue.
                next.store(runs.len(), Ordering::SeqCst);
            }
        }
    };
    if jobs == 1 {
        worker();
    } else {
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(worker);
            }
        });
    }
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(TrainError::Config(
                    "not run: the comparison was interrupted".into(),
                ))
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Aggregation and outputs
// ---------------------------------------------------------------------------

/// A finished run read back from its directory.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub planned: PlannedRun,
    /// `None` for a run that failed before writing a summary.
    pub summary: Option<RunSummary>,
}

/// Read every run's summary and history.
pub fn load_results(root: &Path, manifest: &Manifest) -> Result<Vec<RunResult>> {
    manifest
        .runs
        .iter()
        .map(|p| {
            let dir = root.join(&p.dir);
            let summary = if dir.join(crate::run::SUMMARY_JSON).is_file() {
                let mut s = RunSummary::load(&dir)?;
                s.history = crate::records::read_history(&dir)?;
                Some(s)
            } else {
                None
            };
            Ok(RunResult {
                planned: p.clone(),
                summary,
            })
        })
        .collect()
}

/// Mean and population standard deviation of the finite values; NaN when
/// there are none.
pub fn mean_std(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Per-epoch mean ± std over the runs of one variant (NaN where no run has
/// the epoch).
pub fn overlay_series(label: &str, histories: &[&[EpochRecord]]) -> OverlaySeries {
    let len = histories.iter().map(|h| h.len()).max().unwrap_or(0);
    let mut s = OverlaySeries {
        label: label.to_string(),
        epochs: (1..=len).map(|e| e as f64).collect(),
        ..OverlaySeries::default()
    };
    for i in 0..len {
        let at = |f: &dyn Fn(&EpochRecord) -> f64| {
            mean_std(histories.iter().filter_map(|h| h.get(i)).map(f))
        };
        let push = |(m, sd): (f64, f64), mean: &mut Vec<f64>, std: &mut Vec<f64>| {
            mean.push(m);
            std.push(if sd.is_finite() { sd } else { 0.0 });
        };
        push(
            at(&|e| e.train.loss),
            &mut s.train_loss_mean,
            &mut s.train_loss_std,
        );
        push(
            at(&|e| e.train.accuracy),
            &mut s.train_acc_mean,
            &mut s.train_acc_std,
        );
        push(
            at(&|e| e.val.as_ref().map_or(f64::NAN, |v| v.loss)),
            &mut s.val_loss_mean,
            &mut s.val_loss_std,
        );
        push(
            at(&|e| e.val.as_ref().map_or(f64::NAN, |v| v.accuracy)),
            &mut s.val_acc_mean,
            &mut s.val_acc_std,
        );
    }
    s
}

/// One line of the summary table: a variant, aggregated over its runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    pub label: String,
    pub runs: usize,
    pub diverged: usize,
    pub failed: usize,
    pub best_val_accuracy: f64,
    pub best_val_accuracy_std: f64,
    /// Mean over runs of the epoch of the best validation accuracy.
    pub best_epoch: f64,
    pub final_val_accuracy: f64,
    pub final_val_accuracy_std: f64,
    pub final_train_accuracy: f64,
    /// Final training minus final validation accuracy.
    pub gap: f64,
    pub best_val_loss: f64,
    pub final_val_loss: f64,
    /// Mean wall-clock seconds per run.
    pub seconds: f64,
    /// The kinds of finding over its runs, e.g. `overfitting (2/3)`.
    pub diagnosis: String,
}

/// The summary rows, one per variant, in variant order.
pub fn summary_rows(manifest: &Manifest, results: &[RunResult]) -> Vec<SummaryRow> {
    manifest
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mine: Vec<&RunResult> = results.iter().filter(|r| r.planned.variant == i).collect();
            let summaries: Vec<&RunSummary> =
                mine.iter().filter_map(|r| r.summary.as_ref()).collect();
            let val = |s: &RunSummary| -> Vec<(usize, f64, f64)> {
                s.history
                    .epochs
                    .iter()
                    .filter_map(|e| e.val.as_ref().map(|v| (e.epoch, v.accuracy, v.loss)))
                    .collect()
            };
            let best: Vec<Option<(usize, f64)>> = summaries
                .iter()
                .map(|s| {
                    val(s)
                        .into_iter()
                        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
                        .map(|(e, a, _)| (e, a))
                })
                .collect();
            let last = |f: &dyn Fn(&EpochRecord) -> Option<f64>| {
                mean_std(
                    summaries
                        .iter()
                        .map(|s| s.history.epochs.last().and_then(f).unwrap_or(f64::NAN)),
                )
            };
            let (best_acc, best_acc_std) =
                mean_std(best.iter().map(|b| b.map_or(f64::NAN, |b| b.1)));
            let (best_epoch, _) = mean_std(best.iter().map(|b| b.map_or(f64::NAN, |b| b.0 as f64)));
            let (final_val, final_val_std) = last(&|e| e.val.as_ref().map(|v| v.accuracy));
            let (final_train, _) = last(&|e| Some(e.train.accuracy));
            let (gap, _) = last(&|e| e.val.as_ref().map(|v| e.train.accuracy - v.accuracy));
            let (final_loss, _) = last(&|e| e.val.as_ref().map(|v| v.loss));
            let (best_loss, _) = mean_std(
                summaries
                    .iter()
                    .map(|s| val(s).iter().map(|x| x.2).fold(f64::NAN, f64::min)),
            );
            let (seconds, _) = mean_std(summaries.iter().map(|s| s.seconds));
            let mut kinds: Vec<(FindingKind, usize)> = Vec::new();
            for s in &summaries {
                for f in &s.findings {
                    match kinds.iter_mut().find(|(k, _)| *k == f.kind) {
                        Some((_, n)) => *n += 1,
                        None => kinds.push((f.kind, 1)),
                    }
                }
            }
            let failed = mine.len() - summaries.len();
            let mut diagnosis: Vec<String> = kinds
                .iter()
                .map(|(k, n)| {
                    if mine.len() == 1 {
                        k.name().to_string()
                    } else {
                        format!("{} ({n}/{})", k.name(), mine.len())
                    }
                })
                .collect();
            if failed > 0 {
                diagnosis.push(format!("failed ({failed}/{})", mine.len()));
            }
            SummaryRow {
                label: v.label.clone(),
                runs: mine.len(),
                diverged: summaries
                    .iter()
                    .filter(|s| matches!(s.status, RunStatus::Diverged(_)))
                    .count(),
                failed,
                best_val_accuracy: best_acc,
                best_val_accuracy_std: best_acc_std,
                best_epoch,
                final_val_accuracy: final_val,
                final_val_accuracy_std: final_val_std,
                final_train_accuracy: final_train,
                gap,
                best_val_loss: best_loss,
                final_val_loss: final_loss,
                seconds,
                diagnosis: diagnosis.join(", "),
            }
        })
        .collect()
}

/// Sort best first by `metric`; runs that diverged or failed, and missing
/// values, go last.
pub fn sort_rows(rows: &mut [SummaryRow], metric: SortMetric) {
    let key = |r: &SummaryRow| -> f64 {
        let v = match metric {
            SortMetric::BestValAccuracy => -r.best_val_accuracy,
            SortMetric::FinalValAccuracy => -r.final_val_accuracy,
            SortMetric::BestValLoss => r.best_val_loss,
            SortMetric::FinalValLoss => r.final_val_loss,
            SortMetric::Gap => r.gap,
            SortMetric::Time => r.seconds,
        };
        if v.is_finite() { v } else { f64::INFINITY }
    };
    rows.sort_by(|a, b| {
        let broken = |r: &SummaryRow| r.diverged + r.failed == r.runs;
        broken(a).cmp(&broken(b)).then(key(a).total_cmp(&key(b)))
    });
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        String::new()
    }
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2}%", v * 100.0)
    } else {
        "—".into()
    }
}

fn csv_text(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Header of `summary.csv`.
pub const SUMMARY_HEADER: &str = "rank,variant,runs,diverged,failed,best_val_accuracy,best_val_accuracy_std,\
best_epoch,final_val_accuracy,final_val_accuracy_std,final_train_accuracy,generalization_gap,\
best_val_loss,final_val_loss,seconds,diagnosis";

/// The text of `summary.csv` (rows in the given order).
pub fn summary_csv(rows: &[SummaryRow]) -> String {
    let mut s = String::from(SUMMARY_HEADER);
    s.push('\n');
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            i + 1,
            csv_text(&r.label),
            r.runs,
            r.diverged,
            r.failed,
            num(r.best_val_accuracy),
            num(r.best_val_accuracy_std),
            num(r.best_epoch),
            num(r.final_val_accuracy),
            num(r.final_val_accuracy_std),
            num(r.final_train_accuracy),
            num(r.gap),
            num(r.best_val_loss),
            num(r.final_val_loss),
            num(r.seconds),
            csv_text(&r.diagnosis)
        );
    }
    s
}

/// The header cells and text cells of the summary table (Markdown and HTML).
pub fn summary_cells(rows: &[SummaryRow]) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let header = vec![
        "#",
        "variant",
        "runs",
        "best val acc",
        "best epoch",
        "final val acc",
        "final train acc",
        "gap (train − val)",
        "final val loss",
        "time",
        "diagnosis",
    ];
    let body = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let pm = |m: f64, sd: f64| {
                if r.runs > 1 && sd.is_finite() && m.is_finite() {
                    format!("{} ± {:.2}", pct(m), sd * 100.0)
                } else {
                    pct(m)
                }
            };
            vec![
                (i + 1).to_string(),
                r.label.clone(),
                r.runs.to_string(),
                pm(r.best_val_accuracy, r.best_val_accuracy_std),
                if r.best_epoch.is_finite() {
                    let e = format!("{:.1}", r.best_epoch);
                    e.trim_end_matches(".0").to_string()
                } else {
                    "—".into()
                },
                pm(r.final_val_accuracy, r.final_val_accuracy_std),
                pct(r.final_train_accuracy),
                if r.gap.is_finite() {
                    format!("{:.1} pts", r.gap * 100.0)
                } else {
                    "—".into()
                },
                if r.final_val_loss.is_finite() {
                    format!("{:.4}", r.final_val_loss)
                } else {
                    "—".into()
                },
                if r.seconds.is_finite() {
                    format!("{:.1} s", r.seconds)
                } else {
                    "—".into()
                },
                r.diagnosis.clone(),
            ]
        })
        .collect();
    (header, body)
}

/// The text of `summary.md`: a Markdown table.
pub fn summary_md(rows: &[SummaryRow], metric: SortMetric) -> String {
    let (header, body) = summary_cells(rows);
    let mut s = format!(
        "# Comparison summary\n\nSorted by {} (best first; diverged and failed variants last). \
         Accuracies are means over runs (± std when repeated); the gap is final training \
         minus final validation accuracy.\n\n",
        serde_json::to_value(metric)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    );
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(header.len()));
    for row in body {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    }
    s
}

/// Findings of every run: (variant label, run directory, seed, findings or
/// the error of a failed run).
pub fn diagnoses(
    manifest: &Manifest,
    results: &[RunResult],
) -> Vec<(String, String, u64, Vec<Finding>)> {
    results
        .iter()
        .map(|r| {
            let findings = match &r.summary {
                Some(s) => s.findings.clone(),
                None => vec![Finding {
                    kind: FindingKind::Inconclusive,
                    epoch: None,
                    message: format!(
                        "failed: {}",
                        r.planned.error.as_deref().unwrap_or("no summary.json")
                    ),
                }],
            };
            (
                manifest.variants[r.planned.variant].label.clone(),
                r.planned.dir.clone(),
                r.planned.seed,
                findings,
            )
        })
        .collect()
}

/// The text of `diagnosis.md`.
pub fn diagnosis_md(manifest: &Manifest, results: &[RunResult]) -> String {
    let mut s = String::from("# Diagnosis\n\nWhat each run's learning curves show.\n");
    for (label, dir, seed, findings) in diagnoses(manifest, results) {
        let _ = writeln!(s, "\n## {label} (seed {seed}, `{dir}/`)\n");
        for f in findings {
            let _ = writeln!(s, "- **{}**: {}", f.kind.name(), f.message);
        }
    }
    s
}

/// Write the overlay, summary tables and diagnosis of the comparison in
/// `root` from `compare.json` and the runs' files. Returns the sorted rows.
pub fn write_outputs(root: &Path) -> Result<Vec<SummaryRow>> {
    let manifest = Manifest::load(root)?;
    let results = load_results(root, &manifest)?;
    let series: Vec<OverlaySeries> = manifest
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let histories: Vec<&[EpochRecord]> = results
                .iter()
                .filter(|r| r.planned.variant == i)
                .filter_map(|r| r.summary.as_ref().map(|s| s.history.epochs.as_slice()))
                .collect();
            overlay_series(&v.label, &histories)
        })
        .collect();
    draw_overlay(&series, &root.join(OVERLAY_PNG), &root.join(OVERLAY_SVG))?;
    let mut rows = summary_rows(&manifest, &results);
    sort_rows(&mut rows, manifest.metric);
    write_atomic(&root.join(SUMMARY_CSV), summary_csv(&rows).as_bytes())?;
    write_atomic(
        &root.join(SUMMARY_MD),
        summary_md(&rows, manifest.metric).as_bytes(),
    )?;
    write_atomic(
        &root.join(DIAGNOSIS_MD),
        diagnosis_md(&manifest, &results).as_bytes(),
    )?;
    Ok(rows)
}

/// Whether `dir` is a comparison directory.
pub fn is_comparison(dir: &Path) -> bool {
    dir.join(MANIFEST).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_specs_make_a_grid_of_labelled_validated_variants() {
        let base = TrainConfig::default();
        let vary: Vec<VarySpec> = ["optimizer=sgd,adam", "dropout=0,0.5", "batch-norm=off,on"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let v = expand(&base, None, &vary).unwrap();
        assert_eq!(v.len(), 8);
        assert_eq!(v[0].label, "optimizer=sgd, dropout=0, batch_norm=off");
        assert_eq!(v[7].label, "optimizer=adam, dropout=0.5, batch_norm=on");
        assert_eq!(v[7].slug, "optimizer-adam_dropout-0.5_batch_norm-on");
        assert_eq!(v[7].config.optimizer, "adam");
        assert_eq!(v[7].config.dropout, 0.5);
        assert!(v[7].config.batch_norm && !v[0].config.batch_norm);
        let v = expand(
            &base,
            None,
            &["l2=0,1e-4".parse().unwrap(), "lr=0.1".parse().unwrap()],
        )
        .unwrap();
        assert_eq!(v[1].config.l2, 1e-4);
        assert_eq!(v[1].config.lr, Some(0.1));
        let runs = plan(&v, 3);
        assert_eq!(runs.len(), 6);
        assert_eq!(runs[4].seed, base.seed + 1);
        assert_eq!(runs[4].dir, "l2-1e-4_lr-0.1-seed1");
    }

    #[test]
    fn bad_vary_specs_are_config_errors() {
        let base = TrainConfig::default();
        for (spec, needle) in [
            ("optimizer", "KEY=VALUE"),
            ("=1", "empty"),
            ("dropout=", "no values"),
        ] {
            let err = spec.parse::<VarySpec>().unwrap_err();
            assert!(err.to_string().contains(needle), "{spec}: {err}");
        }
        for (spec, needle) in [
            ("optimizer=sgd,lbfgs", "lbfgs"),
            ("dropout=1.5", "dropout 1.5"),
            ("learning_rate=0.1", "learning_rate"),
            ("activation=swishy", "swishy"),
            ("epochs=many", "epochs"),
        ] {
            let err = expand(&base, None, &[spec.parse().unwrap()]).unwrap_err();
            assert!(matches!(err, TrainError::Config(_)), "{err:?}");
            assert!(err.to_string().contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn a_runs_file_lists_variants_crossed_with_vary() {
        let file: RunsFile = toml::from_str(
            "[base]\nepochs = 2\n[[run]]\nlabel = \"plain SGD\"\noptimizer = \"sgd\"\nmomentum = 0\n\
             [[run]]\noptimizer = \"adam\"\nl2 = 0\n",
        )
        .unwrap();
        let v = expand(
            &TrainConfig::default(),
            Some(&file),
            &["seed=1,2".parse().unwrap()],
        )
        .unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].label, "plain SGD, seed=1");
        assert_eq!(v[0].config.momentum, Some(0.0));
        assert_eq!(v[0].config.epochs, 2);
        assert_eq!(
            v[2].label, "l2=0, optimizer=adam, seed=1",
            "keys in table order"
        );
        assert_eq!(v[3].config.seed, 2);
    }

    #[test]
    fn aggregation_is_mean_and_population_std() {
        assert_eq!(mean_std([1.0, 3.0, f64::NAN]), (2.0, 1.0));
        assert!(mean_std([]).0.is_nan());
        let mk = |loss: &[f64]| -> Vec<EpochRecord> {
            loss.iter()
                .enumerate()
                .map(|(i, &l)| EpochRecord {
                    epoch: i + 1,
                    train: crate::history::SplitMetrics {
                        loss: l,
                        accuracy: 0.5,
                        ..Default::default()
                    },
                    val: None,
                    lr: 0.1,
                    seconds: 1.0,
                    images_per_sec: 1.0,
                    val_per_class: Vec::new(),
                })
                .collect()
        };
        let (a, b) = (mk(&[2.0, 1.0, 0.5]), mk(&[4.0, 1.0]));
        let s = overlay_series("x", &[&a, &b]);
        assert_eq!(s.epochs, vec![1.0, 2.0, 3.0]);
        assert_eq!(s.train_loss_mean, vec![3.0, 1.0, 0.5]);
        assert_eq!(s.train_loss_std, vec![1.0, 0.0, 0.0]);
        assert!(s.val_loss_mean.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn rows_sort_by_the_metric_with_broken_variants_last() {
        let row = |label: &str, acc: f64, diverged: usize| SummaryRow {
            label: label.into(),
            runs: 1,
            diverged,
            failed: 0,
            best_val_accuracy: acc,
            best_val_accuracy_std: 0.0,
            best_epoch: 1.0,
            final_val_accuracy: acc,
            final_val_accuracy_std: 0.0,
            final_train_accuracy: acc,
            gap: 0.0,
            best_val_loss: 1.0 - acc,
            final_val_loss: 1.0 - acc,
            seconds: 1.0,
            diagnosis: String::new(),
        };
        let mut rows = vec![
            row("a", 0.5, 0),
            row("b", 0.9, 1),
            row("c", 0.7, 0),
            row("d", f64::NAN, 0),
        ];
        sort_rows(&mut rows, SortMetric::BestValAccuracy);
        let order: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(order, ["c", "a", "d", "b"]);
        sort_rows(&mut rows, SortMetric::FinalValLoss);
        assert_eq!(rows[0].label, "c");
        let csv = summary_csv(&rows);
        assert!(csv.starts_with(SUMMARY_HEADER));
        assert!(csv.lines().nth(1).unwrap().starts_with("1,c,1,0,0,0.7,"));
        let md = summary_md(&rows, SortMetric::FinalValLoss);
        assert!(
            md.contains("final_val_loss") && md.contains("| 1 | c | 1 | 70.00% |"),
            "{md}"
        );
    }
}
