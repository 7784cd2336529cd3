//! Run files: write, read back exactly, and report malformed lines.

use std::path::Path;

use cnn_train::records::{
    METRICS_HEADER, metrics_csv, read_history, read_history_jsonl, read_steps_csv, write_history,
};
use cnn_train::run_dir::{HISTORY_JSONL, METRICS_CSV, STEPS_CSV};
use cnn_train::{ClassMetrics, EpochRecord, History, SplitMetrics, StepRecord, TrainError};

fn split(loss: f64, acc: f64, n: usize) -> SplitMetrics {
    SplitMetrics {
        loss,
        accuracy: acc,
        precision_macro: acc * 0.99,
        recall_macro: acc / 1.01,
        f1_macro: 1.0 / 3.0,
        n,
        top5_accuracy: None,
    }
}

fn history() -> History {
    let mut steps = Vec::new();
    for step in 1..=7u64 {
        steps.push(StepRecord {
            step,
            epoch: if step <= 4 { 1 } else { 2 },
            // Values that need all 17 digits to round-trip.
            loss: std::f64::consts::LN_10 / step as f64 + 0.1 + 0.2,
            lr: 0.1 * 0.9f64.powi(step as i32) + 1e-300,
            scaling: None,
        });
    }
    History {
        steps,
        epochs: vec![
            EpochRecord {
                epoch: 1,
                train: split(0.7000000000000001, 0.8123456789, 48000),
                val: None,
                lr: 0.09,
                seconds: 12.345678901234567,
                images_per_sec: 3888.1234567,
                val_per_class: vec![],
                ema_val: None,
                swa_val: None,
            },
            EpochRecord {
                epoch: 2,
                train: split(0.3, 0.9, 48000),
                val: Some(split(0.35, 0.88, 12000)),
                lr: 0.081,
                seconds: 11.0,
                images_per_sec: 4363.636363636364,
                val_per_class: vec![
                    ClassMetrics {
                        class: 0,
                        precision: 0.9,
                        recall: 0.0,
                        f1: 0.0,
                        support: 5,
                    },
                    ClassMetrics {
                        class: 1,
                        precision: 1.0 / 7.0,
                        recall: 0.5,
                        f1: 2.0 / 9.0,
                        support: 0,
                    },
                ],
                ema_val: None,
                swa_val: None,
            },
        ],
    }
}

#[test]
fn round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let h = history();
    write_history(dir.path(), &h).unwrap();
    let back = read_history(dir.path()).unwrap();
    assert_eq!(back, h);
    // Bit-exact floats.
    for (a, b) in back.steps.iter().zip(&h.steps) {
        assert_eq!(a.loss.to_bits(), b.loss.to_bits());
        assert_eq!(a.lr.to_bits(), b.lr.to_bits());
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec![HISTORY_JSONL, METRICS_CSV, STEPS_CSV]);

    // Rewriting with a longer history replaces the files.
    let mut longer = h.clone();
    longer.steps.push(StepRecord {
        step: 8,
        epoch: 3,
        loss: 0.1,
        lr: 0.01,
        scaling: None,
    });
    write_history(dir.path(), &longer).unwrap();
    assert_eq!(read_history(dir.path()).unwrap(), longer);

    let empty = History::default();
    write_history(dir.path(), &empty).unwrap();
    assert_eq!(read_history(dir.path()).unwrap(), empty);
}

#[test]
fn steps_csv_format() {
    let dir = tempfile::tempdir().unwrap();
    write_history(dir.path(), &history()).unwrap();
    let text = std::fs::read_to_string(dir.path().join(STEPS_CSV)).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step,epoch,loss,lr"));
    assert_eq!(lines.count(), 7);
}

#[test]
fn metrics_csv_columns_and_empty_val_cells() {
    let text = metrics_csv(&history().epochs);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    let header = &rows[0];
    assert_eq!(
        header,
        &[
            "epoch",
            "train_loss",
            "train_accuracy",
            "train_precision_macro",
            "train_recall_macro",
            "train_f1_macro",
            "val_loss",
            "val_accuracy",
            "val_precision_macro",
            "val_recall_macro",
            "val_f1_macro",
            "lr",
            "seconds",
            "images_per_sec"
        ]
    );
    assert_eq!(METRICS_HEADER.split(',').count(), 14);
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.len() == 14));
    assert_eq!(rows[1][0], "1");
    assert_eq!(rows[1][1], "0.7000000000000001");
    assert!(rows[1][6..11].iter().all(|c| c.is_empty()));
    assert_eq!(rows[2][6], "0.35");
    assert_eq!(rows[2][11], "0.081");
}

fn assert_line_error(err: TrainError, file: &str, line: usize) {
    let msg = err.to_string();
    assert!(matches!(err, TrainError::BadFile { .. }), "{msg}");
    assert!(
        msg.contains(file) && msg.contains(&format!("line {line}:")),
        "{msg}"
    );
}

#[test]
fn malformed_steps_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(STEPS_CSV);
    std::fs::write(&p, "step,epoch,loss,lr\n1,1,0.5,0.1\n2,1,abc,0.1\n").unwrap();
    assert_line_error(read_steps_csv(&p).unwrap_err(), "steps.csv", 3);
    std::fs::write(&p, "step,epoch,loss,lr\n1,1,0.5\n").unwrap();
    assert_line_error(read_steps_csv(&p).unwrap_err(), "steps.csv", 2);
    std::fs::write(&p, "epoch,step\n").unwrap();
    assert_line_error(read_steps_csv(&p).unwrap_err(), "steps.csv", 1);
    std::fs::write(&p, "").unwrap();
    assert!(
        read_steps_csv(&p)
            .unwrap_err()
            .to_string()
            .contains("steps.csv")
    );
    // CRLF line ends and a trailing blank line are fine.
    std::fs::write(&p, "step,epoch,loss,lr\r\n1,1,0.5,0.1\r\n\r\n").unwrap();
    assert_eq!(read_steps_csv(&p).unwrap().len(), 1);
}

#[test]
fn malformed_history_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write_history(dir.path(), &history()).unwrap();
    let p = dir.path().join(HISTORY_JSONL);
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.push_str("{\"epoch\": 3, \"train\": \n");
    std::fs::write(&p, text).unwrap();
    assert_line_error(read_history_jsonl(&p).unwrap_err(), "history.jsonl", 3);
    assert_line_error(read_history(dir.path()).unwrap_err(), "history.jsonl", 3);
}

#[test]
fn missing_files_are_io_errors() {
    let err = read_history(Path::new("/nonexistent-run-dir")).unwrap_err();
    assert!(matches!(err, TrainError::Io { .. }), "{err}");
}
