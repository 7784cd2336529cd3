//! The run files of a history, and reading them back.
//!
//! - `steps.csv`: `step,epoch,loss,lr`, one row per optimizer step; with
//!   loss scaling on, `loss_scale,skipped` after them (the step's scale,
//!   and 1 for a step skipped on a non-finite gradient, else 0).
//! - `metrics.csv`: one row per epoch, for spreadsheets and pandas (written,
//!   never read back); with weight averaging, `ema_val_*` and `swa_val_*`
//!   columns at the end.
//! - `history.jsonl`: one JSON [`EpochRecord`] per line; with `steps.csv`
//!   the source of truth for resuming and comparing runs.
//!
//! Both CSV files are written and read through [`crate::csv_table`] (the
//! `csv` crate). Floats are written with Rust's `Display`, the shortest text that parses
//! back to the same `f64`, so reading gives exactly what was written; in
//! the CSV files a non-finite value is `NaN`, `inf` or `-inf` (as pandas
//! reads them). JSON has no NaN or infinity: `history.jsonl` writes them as
//! the strings `"NaN"`, `"Infinity"` and `"-Infinity"` and reads those (and
//! the `null` of older files) back ([`crate::json_float`]), so a diverged
//! run's history reads back like any other. Every file is rewritten whole
//! through [`write_atomic`].

use std::path::Path;

use crate::csv_table::{csv_text, read_rows};
use crate::error::{Result, TrainError};
use crate::history::{EpochRecord, History, SplitMetrics, StepRecord, StepScaling};
use crate::io::write_atomic;
use crate::run_dir::{HISTORY_JSONL, METRICS_CSV, STEPS_CSV};

/// Header of `steps.csv`.
pub const STEPS_HEADER: &str = "step,epoch,loss,lr";
/// Header of `steps.csv` with loss scaling on.
pub const SCALED_STEPS_HEADER: &str = "step,epoch,loss,lr,loss_scale,skipped";
/// Header of `metrics.csv`.
pub const METRICS_HEADER: &str = "epoch,train_loss,train_accuracy,train_precision_macro,train_recall_macro,train_f1_macro,\
val_loss,val_accuracy,val_precision_macro,val_recall_macro,val_f1_macro,lr,seconds,images_per_sec";

/// Write `steps.csv`, `metrics.csv` and `history.jsonl` into `dir`.
pub fn write_history(dir: &Path, history: &History) -> Result<()> {
    write_steps_csv(&dir.join(STEPS_CSV), &history.steps)?;
    write_metrics_csv(&dir.join(METRICS_CSV), &history.epochs)?;
    write_history_jsonl(&dir.join(HISTORY_JSONL), &history.epochs)
}

/// Read `history.jsonl` and `steps.csv` of `dir` back.
pub fn read_history(dir: &Path) -> Result<History> {
    Ok(History {
        steps: read_steps_csv(&dir.join(STEPS_CSV))?,
        epochs: read_history_jsonl(&dir.join(HISTORY_JSONL))?,
    })
}

/// The text of `steps.csv`: with the loss-scaling columns when a step
/// has them (so a run without scaling writes the file it always did).
pub fn steps_csv(steps: &[StepRecord]) -> String {
    let scaled = steps.iter().any(|r| r.scaling.is_some());
    csv_text(
        if scaled {
            SCALED_STEPS_HEADER
        } else {
            STEPS_HEADER
        },
        steps.iter().map(|r| {
            let mut row = vec![
                r.step.to_string(),
                r.epoch.to_string(),
                r.loss.to_string(),
                r.lr.to_string(),
            ];
            if scaled {
                let s = r.scaling.unwrap_or(StepScaling {
                    loss_scale: 1.0,
                    skipped: false,
                });
                row.push(s.loss_scale.to_string());
                row.push(u8::from(s.skipped).to_string());
            }
            row
        }),
    )
}

/// Write `steps.csv` atomically.
pub fn write_steps_csv(path: &Path, steps: &[StepRecord]) -> Result<()> {
    write_atomic(path, steps_csv(steps).as_bytes())
}

/// Read `steps.csv`; errors name the file and the line.
pub fn read_steps_csv(path: &Path) -> Result<Vec<StepRecord>> {
    let text = read_text(path)?;
    parse_steps_csv(&text, path)
}

/// Parse the text of `steps.csv`; `origin` names it in errors.
pub fn parse_steps_csv(text: &str, origin: &Path) -> Result<Vec<StepRecord>> {
    let bad = |line: u64, m: String| TrainError::bad_file(origin, format!("line {line}: {m}"));
    let mut out = Vec::new();
    let scaled = text.lines().next().map(str::trim) == Some(SCALED_STEPS_HEADER);
    let (header, width) = if scaled {
        (SCALED_STEPS_HEADER, 6)
    } else {
        (STEPS_HEADER, 4)
    };
    for row in read_rows(text, header, origin)? {
        let n = row.line;
        if row.fields.len() != width {
            return Err(bad(
                n,
                format!("expected {width} fields, found {}", row.fields.len()),
            ));
        }
        let f = &row.fields;
        let scaling = if scaled {
            let skipped = match f[5].as_str() {
                "0" => false,
                "1" => true,
                other => return Err(bad(n, format!("skipped `{other}`: expected 0 or 1"))),
            };
            Some(StepScaling {
                loss_scale: parse_cell(&f[4], "loss_scale").map_err(|m| bad(n, m))?,
                skipped,
            })
        } else {
            None
        };
        out.push(StepRecord {
            step: parse_cell(&f[0], "step").map_err(|m| bad(n, m))?,
            epoch: parse_cell(&f[1], "epoch").map_err(|m| bad(n, m))?,
            loss: parse_cell(&f[2], "loss").map_err(|m| bad(n, m))?,
            lr: parse_cell(&f[3], "lr").map_err(|m| bad(n, m))?,
            scaling,
        });
    }
    Ok(out)
}

fn parse_cell<T: std::str::FromStr>(cell: &str, what: &str) -> std::result::Result<T, String>
where
    T::Err: std::fmt::Display,
{
    cell.parse().map_err(|e| format!("{what} `{cell}`: {e}"))
}

/// The text of `metrics.csv`; validation cells are empty for epochs without
/// validation.
pub fn metrics_csv(epochs: &[EpochRecord]) -> String {
    fn split(row: &mut Vec<String>, m: Option<&SplitMetrics>) {
        match m {
            Some(m) => row.extend(
                [
                    m.loss,
                    m.accuracy,
                    m.precision_macro,
                    m.recall_macro,
                    m.f1_macro,
                ]
                .map(|v| v.to_string()),
            ),
            None => row.extend(std::iter::repeat_n(String::new(), 5)),
        }
    }
    // The weight averages' columns only in runs that have them (so a run
    // without `--ema` or `--swa-start` writes the file it always did).
    let ema = epochs.iter().any(|e| e.ema_val.is_some());
    let swa = epochs.iter().any(|e| e.swa_val.is_some());
    let mut header = METRICS_HEADER.to_string();
    for (on, prefix) in [(ema, "ema_val"), (swa, "swa_val")] {
        if on {
            for m in [
                "loss",
                "accuracy",
                "precision_macro",
                "recall_macro",
                "f1_macro",
            ] {
                header.push_str(&format!(",{prefix}_{m}"));
            }
        }
    }
    csv_text(
        &header,
        epochs.iter().map(|e| {
            let mut row = vec![e.epoch.to_string()];
            split(&mut row, Some(&e.train));
            split(&mut row, e.val.as_ref());
            row.extend([e.lr, e.seconds, e.images_per_sec].map(|v| v.to_string()));
            for (on, m) in [(ema, &e.ema_val), (swa, &e.swa_val)] {
                if on {
                    split(&mut row, m.as_ref());
                }
            }
            row
        }),
    )
}

/// Write `metrics.csv` atomically.
pub fn write_metrics_csv(path: &Path, epochs: &[EpochRecord]) -> Result<()> {
    write_atomic(path, metrics_csv(epochs).as_bytes())
}

/// The text of `history.jsonl`.
pub fn history_jsonl(epochs: &[EpochRecord], origin: &Path) -> Result<String> {
    let mut s = String::new();
    for e in epochs {
        let line = serde_json::to_string(e).map_err(|err| {
            TrainError::bad_file(origin, format!("epoch {}: cannot encode: {err}", e.epoch))
        })?;
        s.push_str(&line);
        s.push('\n');
    }
    Ok(s)
}

/// Write `history.jsonl` atomically.
pub fn write_history_jsonl(path: &Path, epochs: &[EpochRecord]) -> Result<()> {
    write_atomic(path, history_jsonl(epochs, path)?.as_bytes())
}

/// Read `history.jsonl`; errors name the file and the line.
pub fn read_history_jsonl(path: &Path) -> Result<Vec<EpochRecord>> {
    let text = read_text(path)?;
    parse_history_jsonl(&text, path)
}

/// Parse the text of `history.jsonl`; `origin` names it in errors. Blank
/// lines are skipped.
pub fn parse_history_jsonl(text: &str, origin: &Path) -> Result<Vec<EpochRecord>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let rec: EpochRecord = serde_json::from_str(line)
            .map_err(|e| TrainError::bad_file(origin, format!("line {}: {e}", i + 1)))?;
        out.push(rec);
    }
    Ok(out)
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| TrainError::bad_file(path, format!("not UTF-8 text: {e}")))
}
