//! `report.html`: one self-contained page for a run, a comparison or a
//! learning curve (`cnn report DIR`; `cnn train`, `cnn compare` and
//! `cnn curve` write it when their run, comparison or curve is over).
//!
//! The page holds the curves (the PNGs, embedded as base64 `data:` URIs),
//! the summary table, the confusion matrix, the configuration and the
//! diagnosis, all drawn from the directory's files. It fetches nothing: no
//! external URL, font or script. A small inline script marks the page for
//! automated checks: `<body data-rendered="ok">` once every image has
//! decoded and no script error occurred, `data-rendered="failed"` and the
//! reasons in `data-errors` otherwise.

use std::fmt::Write as _;
use std::path::Path;

use crate::compare::{self, Manifest};
use crate::config::TrainConfig;
use crate::diagnose::Finding;
use crate::error::{Result, TrainError};
use crate::history::EpochRecord;
use crate::io::write_atomic;
use crate::learning_curve::{self, CurveManifest};
use crate::run::RunSummary;
use crate::run_dir::{
    CONFIG_TOML, CONFUSION_PNG, CURVES_PNG, HISTORY_JSONL, REPORT_HTML, SUMMARY_JSON, comparison,
    curve,
};
use crate::stats::{fixed, pct};

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(TABLE[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Escape text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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

// ---------------------------------------------------------------------------
// Page pieces
// ---------------------------------------------------------------------------

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2rem auto;
       max-width: 1240px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
h3 { font-size: 1.05rem; margin: 1rem 0 .3rem; }
.meta { color: #555; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9rem; }
table { border-collapse: collapse; font-size: .9rem; margin: .5rem 0; }
th, td { border: 1px solid #ccc; padding: .25rem .55rem; text-align: right; }
th { background: #f3f5f8; }
td.text, th.text { text-align: left; }
pre { background: #f7f7f7; padding: .75rem; overflow-x: auto; font-size: .85rem; }
ul.findings li { margin: .3rem 0; }
.kind { font-weight: 600; }
.kind-divergence, .kind-overfitting { color: #b22222; }
.kind-underfitting, .kind-plateau { color: #a0522d; }
.kind-healthy { color: #2e7d32; }
ul.damage li { color: #b22222; font-weight: 600; }
";

/// Marks the page `data-rendered="ok"` when every image decoded and no
/// script error was seen; errors go to `data-errors`.
const CHECK_SCRIPT: &str = "
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    var t = e.target;
    errors.push(t && t.tagName ? 'failed to load ' + t.tagName.toLowerCase() : String(e.message));
  }, true);
  function check() {
    var images = document.images, bad = 0;
    for (var i = 0; i < images.length; i++) {
      if (!images[i].complete || images[i].naturalWidth === 0) { bad++; }
    }
    if (bad > 0) { errors.push(bad + ' image(s) did not decode'); }
    document.body.dataset.images = String(images.length);
    document.body.dataset.tables = String(document.querySelectorAll('table').length);
    document.body.dataset.errors = errors.join('; ');
    document.body.dataset.rendered = errors.length === 0 ? 'ok' : 'failed';
  }
  if (document.readyState === 'complete') { check(); } else { window.addEventListener('load', check); }
})();
";

struct Page {
    html: String,
}

impl Page {
    fn new(title: &str, subtitle: &str) -> Self {
        let mut html = String::new();
        let _ = write!(
            html,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{t}</title>\n<style>{STYLE}</style>\n</head>\n\
             <body data-rendered=\"pending\">\n<script>{CHECK_SCRIPT}</script>\n\
             <h1>{t}</h1>\n<p class=\"meta\">{s}</p>\n",
            t = escape(title),
            s = escape(subtitle)
        );
        Page { html }
    }

    fn h2(&mut self, text: &str) {
        let _ = writeln!(self.html, "<h2>{}</h2>", escape(text));
    }

    fn h3(&mut self, text: &str) {
        let _ = writeln!(self.html, "<h3>{}</h3>", escape(text));
    }

    fn p(&mut self, text: &str) {
        let _ = writeln!(self.html, "<p>{}</p>", escape(text));
    }

    /// Embed a PNG file; a missing file is a note, not an error.
    fn png(&mut self, path: &Path, alt: &str, caption: &str) -> Result<()> {
        if !path.is_file() {
            self.p(&format!("({} was not written.)", path.display()));
            return Ok(());
        }
        let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
        let _ = writeln!(
            self.html,
            "<figure><img alt=\"{}\" src=\"data:image/png;base64,{}\"><figcaption>{}</figcaption></figure>",
            escape(alt),
            base64(&bytes),
            escape(caption)
        );
        Ok(())
    }

    fn table(&mut self, class: &str, header: &[&str], rows: &[Vec<String>], text_cols: &[usize]) {
        let _ = writeln!(
            self.html,
            "<table class=\"{}\">\n<thead><tr>",
            escape(class)
        );
        for (i, h) in header.iter().enumerate() {
            let c = if text_cols.contains(&i) {
                " class=\"text\""
            } else {
                ""
            };
            let _ = write!(self.html, "<th{c}>{}</th>", escape(h));
        }
        self.html.push_str("</tr></thead>\n<tbody>\n");
        for row in rows {
            self.html.push_str("<tr>");
            for (i, cell) in row.iter().enumerate() {
                let c = if text_cols.contains(&i) {
                    " class=\"text\""
                } else {
                    ""
                };
                let _ = write!(self.html, "<td{c}>{}</td>", escape(cell));
            }
            self.html.push_str("</tr>\n");
        }
        self.html.push_str("</tbody></table>\n");
    }

    fn findings(&mut self, findings: &[Finding]) {
        self.html.push_str("<ul class=\"findings\">\n");
        for f in findings {
            let _ = writeln!(
                self.html,
                "<li><span class=\"kind kind-{k}\">{k}</span>: {m}</li>",
                k = f.kind.name(),
                m = escape(&f.message)
            );
        }
        self.html.push_str("</ul>\n");
    }

    /// A list of plain sentences, e.g. what could not be read.
    fn list(&mut self, class: &str, items: &[String]) {
        let _ = writeln!(self.html, "<ul class=\"{}\">", escape(class));
        for item in items {
            let _ = writeln!(self.html, "<li>{}</li>", escape(item));
        }
        self.html.push_str("</ul>\n");
    }

    fn pre(&mut self, text: &str) {
        let _ = writeln!(self.html, "<pre>{}</pre>", escape(text));
    }

    fn finish(mut self) -> String {
        self.html.push_str("</body>\n</html>\n");
        self.html
    }
}

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
    Ok(page.finish())
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
    Ok(page.finish())
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
    Ok(page.finish())
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
    fn escape_covers_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn a_directory_of_nothing_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let err = write_report(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("not a run, comparison"), "{err}");
    }
}
