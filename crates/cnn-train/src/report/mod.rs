//! `report.html`: one self-contained page for a run, a comparison or a
//! learning curve (`cnn report DIR`; `cnn train`, `cnn compare` and
//! `cnn curve` write it when their run, comparison or curve is over).
//!
//! The page holds interactive charts of the curves (values at the cursor,
//! zoom, series toggled from the legend, a smoothing slider for per-step
//! curves, log/linear axes), the PNG figures (embedded as base64 `data:`
//! URIs), the summary table, the confusion matrix, the configuration and
//! the diagnosis, all drawn from the directory's files. It fetches
//! nothing: its Content-Security-Policy allows no request, and the chart
//! library (uPlot, vendored under `assets/uplot/`) is inlined. A small
//! inline script marks the page for automated checks: `<body
//! data-rendered="ok">` once every image has decoded, every chart has a
//! canvas and no script error or policy violation occurred,
//! `data-rendered="failed"` and the reasons in `data-errors` otherwise.
//!
//! This file gathers what each kind of page shows; `page` holds the page
//! as data and renders it through the template, `charts` the charts' data.

mod charts;
mod page;

use std::path::Path;

use crate::compare::{self, Manifest};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::history::EpochRecord;
use crate::io::write_atomic;
use crate::learning_curve::{self, CurveManifest};
use crate::run::RunSummary;
use crate::run_dir::{
    CONFIG_TOML, CONFUSION_PNG, CURVES_PNG, HISTORY_JSONL, REPORT_HTML, STEPS_CSV, SUMMARY_JSON,
    comparison, curve,
};
use crate::stats::{fixed, pct};

use self::page::Page;
pub use self::page::base64;

/// Write `report.html` into `dir`, whatever kind of directory it is: a
/// comparison (`compare.json`), a learning curve (`curve.json`) or a run
/// (`config.toml` and `history.jsonl`). Returns the report's path.
pub fn write_report(dir: &Path) -> Result<std::path::PathBuf> {
    if !dir.is_dir() {
        return Err(TrainError::bad_file(dir, "no such directory"));
    }
    let html = if compare::is_comparison(dir) {
        comparison_page(dir)?
    } else if dir.join(curve::MANIFEST).is_file() {
        curve_page(dir)?
    } else if dir.join(CONFIG_TOML).is_file() {
        run_page(dir)?
    } else {
        return Err(TrainError::bad_file(
            dir,
            "not a run, comparison or learning-curve directory (no config.toml, compare.json or curve.json)",
        ));
    };
    let path = dir.join(REPORT_HTML);
    write_atomic(&path, html.as_bytes())?;
    Ok(path)
}

/// How to use the charts, above the first one.
const CHART_HINT: &str = "Interactive charts: hover for values, drag to zoom (double-click to reset), \
click a legend entry to hide or show its series, switch an axis between linear and log; \
per-step curves have a smoothing slider (TensorBoard's exponential moving average). \
The PNG figure below each set is the same data as the PNG and SVG files of the directory.";

fn epoch_table(page: &mut Page, epochs: &[EpochRecord]) {
    let rows: Vec<Vec<String>> = epochs
        .iter()
        .map(|e| {
            vec![
                e.epoch.to_string(),
                fixed(e.train.loss),
                pct(e.train.accuracy),
                e.val.as_ref().map_or("—".into(), |v| fixed(v.loss)),
                e.val.as_ref().map_or("—".into(), |v| pct(v.accuracy)),
                e.val.as_ref().map_or("—".into(), |v| fixed(v.f1_macro)),
                format!("{:.3e}", e.lr),
                format!("{:.1}", e.seconds),
            ]
        })
        .collect();
    page.table(
        "epochs",
        &[
            "epoch",
            "train loss",
            "train acc",
            "val loss",
            "val acc",
            "val macro F1",
            "lr",
            "seconds",
        ],
        &rows,
        &[],
    );
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))
}

// ---------------------------------------------------------------------------
// The three kinds of page
// ---------------------------------------------------------------------------

/// The epochs of `history.jsonl` that read, and a sentence for each thing
/// that did not (a missing file, a damaged or truncated line).
fn readable_history(dir: &Path) -> (Vec<EpochRecord>, Vec<String>) {
    let path = dir.join(HISTORY_JSONL);
    let text = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            return (
                Vec::new(),
                vec![format!(
                    "{HISTORY_JSONL} could not be read ({e}): no epoch figures"
                )],
            );
        }
    };
    let mut epochs = Vec::new();
    let mut damage = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match crate::records::parse_history_jsonl(line, &path) {
            Ok(mut records) => epochs.append(&mut records),
            Err(e) => {
                let e = e.to_string();
                let why = e.rsplit_once("line 1: ").map_or(e.as_str(), |(_, m)| m);
                damage.push(format!(
                    "{HISTORY_JSONL} line {} could not be read ({why}); that epoch is missing below",
                    i + 1
                ));
            }
        }
    }
    (epochs, damage)
}

fn run_page(dir: &Path) -> Result<String> {
    let config_text = read_text(&dir.join(CONFIG_TOML))?;
    let config = TrainConfig::from_toml(&config_text, &dir.join(CONFIG_TOML))?;
    let (history, mut damage) = readable_history(dir);
    let steps = match crate::records::read_steps_csv(&dir.join(STEPS_CSV)) {
        Ok(steps) => steps,
        Err(e) => {
            damage.push(format!(
                "{STEPS_CSV} could not be read ({e}): no per-step charts"
            ));
            Vec::new()
        }
    };
    let summary = if dir.join(SUMMARY_JSON).is_file() {
        match RunSummary::load(dir) {
            Ok(s) => Some(s),
            Err(e) => {
                damage.push(format!(
                    "{SUMMARY_JSON} could not be read ({e}): no status, test metrics or diagnosis of the run"
                ));
                None
            }
        }
    } else {
        None
    };
    if let Some(s) = &summary
        && s.epochs > history.len()
    {
        damage.push(format!(
            "{SUMMARY_JSON} records {} completed epochs but only {} could be read from {HISTORY_JSONL}",
            s.epochs,
            history.len()
        ));
    }
    let mut page = Page::new(
        &format!("{} on {}", config.model, config.data),
        &format!("Run report for {}", dir.display()),
    );
    if !damage.is_empty() {
        page.h2("Could not be read");
        page.list("damage", &damage);
    }
    page.h2("Summary");
    let best = history
        .iter()
        .filter_map(|e| e.val.as_ref().map(|v| (e.epoch, v.accuracy)))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
    let last = history.last();
    let mut rows = vec![
        vec![
            "status".to_string(),
            summary
                .as_ref()
                .map_or("unknown (no summary.json)".into(), |s| {
                    s.status.name().replace('_', " ")
                }),
        ],
        vec![
            "epochs".into(),
            match &summary {
                Some(s) if s.epochs != history.len() => {
                    format!("{} ({} readable)", s.epochs, history.len())
                }
                _ => history.len().to_string(),
            },
        ],
        vec![
            "best validation accuracy".into(),
            best.map_or("—".into(), |(e, a)| format!("{} (epoch {e})", pct(a))),
        ],
        vec![
            "final validation accuracy".into(),
            last.and_then(|e| e.val.as_ref())
                .map_or("—".into(), |v| pct(v.accuracy)),
        ],
        vec![
            "final training accuracy".into(),
            last.map_or("—".into(), |e| pct(e.train.accuracy)),
        ],
        vec![
            "generalisation gap (train − val accuracy)".into(),
            last.and_then(|e| e.val.as_ref().map(|v| e.train.accuracy - v.accuracy))
                .map_or("—".into(), |g| format!("{:.1} points", g * 100.0)),
        ],
    ];
    if let Some(s) = &summary {
        rows.push(vec!["parameters".into(), s.params.to_string()]);
        rows.push(vec![
            "images (train / validation)".into(),
            format!("{} / {}", s.train_images, s.val_images),
        ]);
        rows.push(vec!["time".into(), format!("{:.1} s", s.seconds)]);
        if let Some(t) = &s.test {
            rows.push(vec![
                "test".into(),
                format!(
                    "accuracy {}, loss {:.4} (n = {})",
                    pct(t.accuracy),
                    t.loss,
                    t.n
                ),
            ]);
        }
    }
    page.table("summary", &["", "value"], &rows, &[0, 1]);
    page.h2("Diagnosis");
    let findings = match &summary {
        Some(s) => s.findings.clone(),
        None => crate::diagnose::diagnose(
            &crate::history::History {
                steps: Vec::new(),
                epochs: history.clone(),
            },
            None,
        ),
    };
    page.findings(&findings);
    page.h2("Learning curves");
    page.p(CHART_HINT);
    for (chart, caption) in charts::run_charts(&steps, &history) {
        page.chart(chart, caption);
    }
    page.png(
        &dir.join(CURVES_PNG),
        "learning curves",
        "Loss and accuracy per epoch (training and validation) and the learning rate per step.",
    )?;
    page.h3("Per epoch");
    epoch_table(&mut page, &history);
    page.h2("Confusion matrix");
    page.png(
        &dir.join(CONFUSION_PNG),
        "confusion matrix",
        "Validation confusion matrix after the last epoch (rows: true class, columns: predicted).",
    )?;
    page.h2("Configuration");
    page.pre(&config_text);
    page.finish()
}

/// A partial study's note of the runs it lacks (`study.json`).
fn missing_runs(page: &mut Page, dir: &Path) {
    if let Some(note) = crate::study::manifest::missing_note(dir) {
        page.h2("Missing runs");
        page.p(&note);
    }
}

fn comparison_page(dir: &Path) -> Result<String> {
    let manifest = Manifest::load(dir)?;
    let results = compare::load_results(dir, &manifest)?;
    let mut rows = compare::summary_rows(&manifest, &results);
    compare::sort_rows(&mut rows, manifest.metric);
    let mut page = Page::new(
        &format!(
            "Comparison: {} on {}",
            manifest.base.model, manifest.base.data
        ),
        &format!(
            "{} variants × {} repeats, in {}",
            manifest.variants.len(),
            manifest.repeats,
            dir.display()
        ),
    );
    missing_runs(&mut page, dir);
    page.h2("Summary");
    let (header, body) = compare::summary_cells(&rows);
    page.table("summary", &header, &body, &[1, 10]);
    page.p("Sorted best first; accuracies are means over repeats (± one standard deviation).");
    for line in crate::compare::search_lines(&manifest, &results) {
        page.p(&line);
    }
    page.h2("Learning curves");
    page.p(CHART_HINT);
    for (chart, caption) in comparison_charts(&manifest, &results) {
        page.chart(chart, caption);
    }
    page.png(
        &dir.join(comparison::OVERLAY_PNG),
        "overlaid learning curves",
        "Training and validation loss and accuracy per epoch, one colour per variant: the mean over repeats with a band of ± one standard deviation.",
    )?;
    if let Some(curve) = compare::validation_curve(&manifest, compare::finished(&results)) {
        page.h2("Validation curve");
        page.png(
            &dir.join(comparison::VALIDATION_CURVE_PNG),
            "validation curve",
            &format!(
                "Final and best accuracy and loss, training and validation, against {}{}: the mean over the runs of each value with a band of ± one standard deviation{}.",
                curve.key,
                if curve.log_x { " (log scale)" } else { "" },
                if manifest.prune.is_some() { "; pruned runs are left out" } else { "" }
            ),
        )?;
    }
    page.h2("Diagnosis");
    for (label, run_dir, seed, findings) in compare::diagnoses(&manifest, &results) {
        page.h3(&format!("{label} (seed {seed}, {run_dir}/)"));
        page.findings(&findings);
    }
    page.h2("Confusion matrix");
    let best_label = rows.first().map(|r| r.label.clone()).unwrap_or_default();
    let best_run = manifest.runs.iter().find(|r| {
        manifest.variants[r.variant].label == best_label
            && dir.join(&r.dir).join(CONFUSION_PNG).is_file()
    });
    match best_run {
        Some(r) => page.png(
            &dir.join(&r.dir).join(CONFUSION_PNG),
            "confusion matrix of the best variant",
            &format!(
                "Validation confusion matrix of the best variant ({best_label}, seed {}) after its last epoch.",
                r.seed
            ),
        )?,
        None => page.p("No run wrote a confusion matrix."),
    }
    page.h2("Configuration");
    page.h3("Variants");
    let variant_rows: Vec<Vec<String>> = manifest
        .variants
        .iter()
        .map(|v| {
            let dirs: Vec<&str> = manifest
                .runs
                .iter()
                .filter(|r| manifest.variants[r.variant].label == v.label)
                .map(|r| r.dir.as_str())
                .collect();
            vec![
                v.label.clone(),
                v.overrides
                    .iter()
                    .map(|(k, x)| format!("{k} = {x}"))
                    .collect::<Vec<_>>()
                    .join("; "),
                dirs.join(", "),
            ]
        })
        .collect();
    page.table(
        "variants",
        &["variant", "changes", "run directories"],
        &variant_rows,
        &[0, 1, 2],
    );
    page.h3("Base configuration");
    page.pre(&manifest.base.to_toml());
    page.finish()
}

/// The charts of a comparison: each variant's runs that have a summary,
/// averaged as in `overlay.png`.
fn comparison_charts(
    manifest: &Manifest,
    results: &[compare::RunResult],
) -> Vec<(charts::Chart, &'static str)> {
    let runs_of = |i: usize| -> Vec<&crate::history::History> {
        results
            .iter()
            .filter(|r| r.planned.variant == i)
            .filter_map(|r| r.summary.as_ref().map(|s| &s.history))
            .collect()
    };
    let overlay: Vec<_> = manifest
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let epochs: Vec<&[EpochRecord]> =
                runs_of(i).iter().map(|h| h.epochs.as_slice()).collect();
            compare::overlay_series(&v.label, &epochs)
        })
        .collect();
    let steps: Vec<(String, Vec<&crate::history::History>)> = manifest
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| (v.label.clone(), runs_of(i)))
        .collect();
    charts::comparison_charts(&overlay, &steps)
}

fn curve_page(dir: &Path) -> Result<String> {
    let manifest = CurveManifest::load(dir)?;
    let points = learning_curve::score_vs_size(&manifest);
    let mut page = Page::new(
        &format!(
            "Learning curve: {} on {}",
            manifest.base.model, manifest.base.data
        ),
        &format!(
            "Score against training-set size, {} repeats, {} training and {} validation images, in {}",
            manifest.repeats,
            manifest.train_images,
            manifest.val_images,
            dir.display()
        ),
    );
    missing_runs(&mut page, dir);
    page.h2("Learning curve");
    page.p(CHART_HINT);
    let (chart, caption) = charts::curve_chart(&points);
    page.chart(chart, caption);
    page.png(
        &dir.join(curve::CURVE_PNG),
        "score against training-set size",
        "Training and validation accuracy of the final model against the number of training images: mean with a band of ± one standard deviation over repeats.",
    )?;
    page.h2("Summary");
    let rows: Vec<Vec<String>> = (0..points.train_sizes.len())
        .map(|i| {
            vec![
                format!("{}", points.train_sizes[i]),
                format!(
                    "{} ± {:.2}",
                    pct(points.train_mean[i]),
                    points.train_std[i] * 100.0
                ),
                format!(
                    "{} ± {:.2}",
                    pct(points.val_mean[i]),
                    points.val_std[i] * 100.0
                ),
                if points.train_mean[i].is_finite() && points.val_mean[i].is_finite() {
                    format!(
                        "{:.1} points",
                        (points.train_mean[i] - points.val_mean[i]) * 100.0
                    )
                } else {
                    "—".into()
                },
            ]
        })
        .collect();
    page.table(
        "summary",
        &[
            "training images",
            "training accuracy",
            "validation accuracy",
            "gap",
        ],
        &rows,
        &[],
    );
    page.h2("Diagnosis");
    for p in &manifest.points {
        page.h3(&format!(
            "{} images, seed {} ({}/)",
            p.train_size, p.seed, p.dir
        ));
        match RunSummary::load(&dir.join(&p.dir)) {
            Ok(s) => page.findings(&s.findings),
            Err(_) => page.p(&format!(
                "failed: {}",
                p.error.as_deref().unwrap_or("no summary.json")
            )),
        }
    }
    page.h2("Configuration");
    page.pre(&manifest.base.to_toml());
    page.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected, "{input}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn a_directory_of_nothing_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let err = write_report(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("not a run, comparison"), "{err}");
    }
}
