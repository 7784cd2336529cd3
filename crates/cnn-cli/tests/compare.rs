//! `cnn compare`, `cnn curve` and `cnn report` end to end on tiny
//! synthetic runs: the files they write, and one-line errors on bad input.

use std::process::Output;

mod common;
use common::{cnn, stderr};

fn assert_one_line_error(o: &Output, needle: &str) {
    assert!(!o.status.success(), "expected failure: {}", stderr(o));
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert!(lines[0].contains(needle), "`{needle}` not in: {}", lines[0]);
}

const SMALL: &[&str] = &[
    "--epochs",
    "2",
    "--limit-train",
    "192",
    "--batch-size",
    "32",
    "--quiet",
];

#[test]
fn compare_writes_runs_curves_table_diagnosis_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec![
        "compare",
        "--out",
        "cmp",
        "--vary",
        "optimizer=sgd,adam",
        "--vary",
        "dropout=0,0.5",
        "--jobs",
        "2",
    ];
    args.extend_from_slice(SMALL);
    let out = cnn(&args, tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let root = tmp.path().join("cmp");
    for dir in [
        "optimizer-sgd_dropout-0",
        "optimizer-sgd_dropout-0.5",
        "optimizer-adam_dropout-0",
        "optimizer-adam_dropout-0.5",
    ] {
        for f in [
            "config.toml",
            "history.jsonl",
            "curves.png",
            "summary.json",
            "report.html",
        ] {
            assert!(root.join(dir).join(f).is_file(), "missing {dir}/{f}");
        }
    }
    let config =
        std::fs::read_to_string(root.join("optimizer-adam_dropout-0.5/config.toml")).unwrap();
    assert!(
        config.contains("optimizer = \"adam\"") && config.contains("dropout = 0.5"),
        "{config}"
    );
    assert!(
        config.contains("threads = 1"),
        "two jobs share the threads: {config}"
    );
    for f in [
        "compare.json",
        "overlay.png",
        "overlay.svg",
        "summary.csv",
        "summary.md",
        "diagnosis.md",
        "report.html",
    ] {
        assert!(root.join(f).is_file(), "missing {f}");
    }
    let csv = std::fs::read_to_string(root.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    // Sorted by best validation accuracy, best first.
    let best: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(5).unwrap().parse().unwrap())
        .collect();
    assert!(best.windows(2).all(|w| w[0] >= w[1]), "{csv}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("| # | variant |") && stdout.contains("report: "),
        "{stdout}"
    );
    assert!(stderr(&out).contains("[4/4]"), "{}", stderr(&out));

    // The report can be rewritten from the files alone.
    std::fs::remove_file(root.join("report.html")).unwrap();
    let again = cnn(&["report", "cmp"], tmp.path());
    assert!(again.status.success(), "{}", stderr(&again));
    let html = std::fs::read_to_string(root.join("report.html")).unwrap();
    assert!(
        html.contains("optimizer=adam, dropout=0.5") && html.contains("data:image/png;base64,")
    );
}

#[test]
fn curve_writes_score_against_size() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec![
        "curve",
        "--out",
        "lc",
        "--fractions",
        "0.5,1",
        "--repeats",
        "2",
    ];
    args.extend_from_slice(SMALL);
    let out = cnn(&args, tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let root = tmp.path().join("lc");
    for f in [
        "curve.json",
        "learning_curve.csv",
        "learning_curve_summary.csv",
        "learning_curve.png",
        "learning_curve.svg",
        "report.html",
        "n96-seed0/history.jsonl",
        "n192-seed1/summary.json",
    ] {
        assert!(root.join(f).is_file(), "missing {f}");
    }
    let points = std::fs::read_to_string(root.join("learning_curve.csv")).unwrap();
    assert_eq!(points.lines().count(), 5, "{points}");
    assert!(
        points.starts_with("train_size,fraction,repeat,seed,train_accuracy,val_accuracy,status")
    );
}

#[test]
fn bad_compare_and_report_input_is_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    assert_one_line_error(&cnn(&["compare"], tmp.path()), "nothing to compare");
    assert_one_line_error(
        &cnn(&["compare", "--vary", "optimizer"], tmp.path()),
        "KEY=VALUE",
    );
    assert_one_line_error(
        &cnn(&["compare", "--vary", "optimizer=sgd,lbfgs"], tmp.path()),
        "lbfgs",
    );
    assert_one_line_error(
        &cnn(&["compare", "--vary", "learning_rate=1"], tmp.path()),
        "learning_rate",
    );
    assert_one_line_error(
        &cnn(
            &["compare", "--vary", "lr=0.1", "--sort", "fastest"],
            tmp.path(),
        ),
        "fastest",
    );
    assert_one_line_error(
        &cnn(&["compare", "--runs", "none.toml"], tmp.path()),
        "none.toml",
    );
    std::fs::write(
        tmp.path().join("runs.toml"),
        "[[run]]\noptimiser = \"adam\"\n",
    )
    .unwrap();
    assert_one_line_error(
        &cnn(&["compare", "--runs", "runs.toml"], tmp.path()),
        "optimiser",
    );
    assert_one_line_error(
        &cnn(&["curve", "--fractions", "0,1"], tmp.path()),
        "fraction 0",
    );
    assert_one_line_error(&cnn(&["report", "nowhere"], tmp.path()), "nowhere");
    assert!(
        !tmp.path().join("runs").exists(),
        "failed starts leave nothing behind"
    );
}
