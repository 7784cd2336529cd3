//! What a comparison directory shows, derived from `compare.json` and the
//! runs' files alone: `overlay.png`/`overlay.svg` (mean ± std over repeats
//! per variant), `summary.csv`/`summary.md` (one row per variant, sorted by
//! the manifest's [`SortMetric`]; a pruned run said so in its diagnosis),
//! `diagnosis.md` (the [`crate::diagnose`](mod@crate::diagnose) findings
//! of every run) and, when the variants differ in one numeric setting,
//! `validation_curve.png`/`.svg`.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::compare::manifest::{Manifest, SortMetric};
use crate::compare::validation_curve::validation_curve;
use crate::compare::variants::PlannedRun;
use crate::diagnose::{Finding, FindingKind};
use crate::error::Result;
use crate::history::EpochRecord;
use crate::io::write_atomic;
use crate::plot::{OverlaySeries, draw_overlay, draw_validation_curve};
use crate::run::{RunStatus, RunSummary};
use crate::run_dir::{SUMMARY_JSON, comparison};
use crate::stats::{mean_std, num, pct};

/// A finished run read back from its directory.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub planned: PlannedRun,
    /// `None` for a run that failed before writing a summary, or whose
    /// files could not be read.
    pub summary: Option<RunSummary>,
    /// Why its `summary.json` or history could not be read: such a run
    /// counts as failed, and the summary and report say why.
    pub unreadable: Option<String>,
}

/// Read every run's summary and history. A run whose files are damaged is
/// not an error of the whole comparison: it is a result without a summary,
/// with what could not be read.
pub fn load_results(root: &Path, manifest: &Manifest) -> Result<Vec<RunResult>> {
    Ok(manifest
        .runs
        .iter()
        .map(|p| {
            let dir = root.join(&p.dir);
            let read = || -> Result<RunSummary> {
                let mut s = RunSummary::load(&dir)?;
                s.history = crate::records::read_history(&dir)?;
                Ok(s)
            };
            let (summary, unreadable) = if dir.join(SUMMARY_JSON).is_file() {
                match read() {
                    Ok(s) => (Some(s), None),
                    Err(e) => (None, Some(e.to_string())),
                }
            } else {
                (None, None)
            };
            RunResult {
                planned: p.clone(),
                summary,
                unreadable,
            }
        })
        .collect())
}

/// Whether a run has no result yet (a partial study's runs that are still
/// pending or running): left out of the summary and diagnosis, which say
/// it is missing instead.
pub fn is_missing(r: &RunResult) -> bool {
    r.summary.is_none()
        && r.unreadable.is_none()
        && matches!(
            r.planned.status.as_str(),
            "pending" | "interrupted" | "running"
        )
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
    /// Runs stopped by the study's pruner ([`crate::prune`]).
    #[serde(default)]
    pub pruned: usize,
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
            let mine: Vec<&RunResult> = results
                .iter()
                .filter(|r| r.planned.variant == i && !is_missing(r))
                .collect();
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
            let pruned: Vec<usize> = summaries
                .iter()
                .filter_map(|s| match &s.status {
                    RunStatus::Pruned(p) => Some(p.epoch),
                    _ => None,
                })
                .collect();
            match pruned.as_slice() {
                [] => {}
                [epoch] if mine.len() == 1 => {
                    diagnosis.insert(0, format!("pruned after epoch {epoch}"));
                }
                _ => diagnosis.insert(0, format!("pruned ({}/{})", pruned.len(), mine.len())),
            }
            let unreadable = mine.iter().filter(|r| r.unreadable.is_some()).count();
            if failed > unreadable {
                diagnosis.push(format!("failed ({}/{})", failed - unreadable, mine.len()));
            }
            if unreadable > 0 {
                diagnosis.push(format!("unreadable files ({unreadable}/{})", mine.len()));
            }
            SummaryRow {
                label: v.label.clone(),
                runs: mine.len(),
                diverged: summaries
                    .iter()
                    .filter(|s| matches!(s.status, RunStatus::Diverged(_)))
                    .count(),
                failed,
                pruned: pruned.len(),
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

/// Sort best first by `metric`; variants whose every run was pruned come
/// after the others, and runs that diverged or failed, and missing
/// values, last.
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
        let pruned = |r: &SummaryRow| r.runs > 0 && r.pruned == r.runs;
        broken(a)
            .cmp(&broken(b))
            .then(pruned(a).cmp(&pruned(b)))
            .then(key(a).total_cmp(&key(b)))
    });
}

/// Header of `summary.csv`.
pub const SUMMARY_HEADER: &str = "rank,variant,runs,diverged,failed,best_val_accuracy,best_val_accuracy_std,\
best_epoch,final_val_accuracy,final_val_accuracy_std,final_train_accuracy,generalization_gap,\
best_val_loss,final_val_loss,seconds,diagnosis";

/// The text of `summary.csv` (rows in the given order).
pub fn summary_csv(rows: &[SummaryRow]) -> String {
    crate::csv_table::csv_text(
        SUMMARY_HEADER,
        rows.iter().enumerate().map(|(i, r)| {
            [
                (i + 1).to_string(),
                r.label.clone(),
                r.runs.to_string(),
                r.diverged.to_string(),
                r.failed.to_string(),
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
                r.diagnosis.clone(),
            ]
        }),
    )
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
        .filter(|r| !is_missing(r))
        .map(|r| {
            let findings = match &r.summary {
                Some(s) => s.findings.clone(),
                None => vec![Finding {
                    kind: FindingKind::Inconclusive,
                    epoch: None,
                    message: match &r.unreadable {
                        Some(e) => format!("its files could not be read: {e}"),
                        None => format!(
                            "failed: {}",
                            r.planned.error.as_deref().unwrap_or("no summary.json")
                        ),
                    },
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

/// The runs that wrote a summary, each with its variant's index (what
/// [`validation_curve`] takes).
pub fn finished(results: &[RunResult]) -> impl Iterator<Item = (usize, &RunSummary)> {
    results
        .iter()
        .filter_map(|r| Some((r.planned.variant, r.summary.as_ref()?)))
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
    draw_overlay(
        &series,
        &root.join(comparison::OVERLAY_PNG),
        &root.join(comparison::OVERLAY_SVG),
    )?;
    let mut rows = summary_rows(&manifest, &results);
    sort_rows(&mut rows, manifest.metric);
    write_atomic(
        &root.join(comparison::SUMMARY_CSV),
        summary_csv(&rows).as_bytes(),
    )?;
    let mut md = summary_md(&rows, manifest.metric);
    if let Some(note) = crate::study::manifest::missing_note(root) {
        md.push_str(&format!("\n{note}\n"));
    }
    write_atomic(&root.join(comparison::SUMMARY_MD), md.as_bytes())?;
    write_atomic(
        &root.join(comparison::DIAGNOSIS_MD),
        diagnosis_md(&manifest, &results).as_bytes(),
    )?;
    if let Some(curve) = validation_curve(&manifest, finished(&results)) {
        draw_validation_curve(
            &curve,
            &root.join(comparison::VALIDATION_CURVE_PNG),
            &root.join(comparison::VALIDATION_CURVE_SVG),
        )?;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

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
                    ema_val: None,
                    swa_val: None,
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
            pruned: 0,
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
