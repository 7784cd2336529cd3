//! `cnn lr-find`, `cnn train --lr find` and `--accumulate` from the
//! command line.

mod common;

use common::{assert_one_line_error, cnn, stderr};

const SMALL: &[&str] = &[
    "--limit-train",
    "640",
    "--batch-size",
    "32",
    "--threads",
    "2",
    "--seed",
    "11",
    "--quiet",
];

fn with(args: &[&str]) -> Vec<String> {
    args.iter().chain(SMALL).map(|s| s.to_string()).collect()
}

fn run(args: &[String], cwd: &std::path::Path) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cnn(&args, cwd)
}

#[test]
fn lr_find_writes_its_curve_and_prints_its_suggestions() {
    let tmp = tempfile::tempdir().unwrap();
    let args = with(&[
        "lr-find",
        "--optimizer",
        "adam",
        "--start-lr",
        "1e-6",
        "--end-lr",
        "1",
        "--steps",
        "40",
        "--json",
        "--out",
        "lf",
    ]);
    let o = run(&args, tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let points = json["points"].as_array().unwrap();
    assert!(!points.is_empty() && points.len() <= 40);
    let suggestion = json["suggestion"].as_f64().expect("a suggestion");
    assert_eq!(json["steepest"]["lr"].as_f64(), Some(suggestion));
    let minimum = json["minimum"]["lr"].as_f64().unwrap();
    // serde_json reads floats back to within an ulp.
    let over_10 = json["min_over_10"].as_f64().unwrap();
    assert!(
        (over_10 / (minimum / 10.0) - 1.0).abs() < 1e-15,
        "{over_10}"
    );
    assert_eq!(points[0]["lr"].as_f64(), Some(1e-6));
    let dir = tmp.path().join("lf");
    let csv = std::fs::read_to_string(dir.join("lr_find.csv")).unwrap();
    assert_eq!(csv.lines().count(), points.len() + 1);
    assert!(csv.starts_with("step,lr,loss,smoothed_loss\n"));
    let png = image::open(dir.join("lr_find.png")).unwrap();
    assert_eq!((png.width(), png.height()), (900, 600));
    assert!(dir.join("lr_find.svg").is_file());
    // Without --json: the suggestions in words; the directory is taken now.
    let args = with(&["lr-find", "--steps", "20", "--out", "lf2"]);
    let o = run(&args, tmp.path());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("steepest descent:") && text.contains("minimum / 10:"),
        "{text}"
    );
    let o = run(
        &with(&["lr-find", "--steps", "20", "--out", "lf"]),
        tmp.path(),
    );
    assert_one_line_error(&o, "already exists");
}

#[test]
fn train_with_lr_find_records_the_suggestion_and_trains_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let args = with(&[
        "train",
        "--lr",
        "find",
        "--max-steps",
        "2",
        "--accumulate",
        "2",
        "--out",
        "run",
    ]);
    let o = run(&args, tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("steepest descent: lr"),
        "{}",
        stderr(&o)
    );
    let dir = tmp.path().join("run");
    let config: toml::Table = std::fs::read_to_string(dir.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let lr = config["lr"].as_float().unwrap();
    let found = config["lr_find"].as_table().expect("an [lr_find] table");
    assert_eq!(found["suggestion"].as_float(), Some(lr));
    assert_eq!(found["start_lr"].as_float(), Some(1e-7));
    assert_eq!(found["end_lr"].as_float(), Some(10.0));
    assert_eq!(found["steps"].as_integer(), Some(100));
    assert_eq!(config["accumulate"].as_integer(), Some(2));
    assert!(dir.join("lr_find.csv").is_file() && dir.join("lr_find.png").is_file());
    // Two optimizer steps of two batches each, at the suggested rate.
    let steps = std::fs::read_to_string(dir.join("steps.csv")).unwrap();
    let rows: Vec<&str> = steps.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{steps}");
    for row in rows {
        let rate: f64 = row.rsplit(',').next().unwrap().parse().unwrap();
        assert_eq!(rate, lr);
    }
}

#[test]
fn bad_settings_are_one_line_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["lr-find", "--steps", "1"], "at least 2 steps"),
        (vec!["lr-find", "--end-lr", "1e-8"], "above start_lr"),
        (vec!["lr-find", "--start-lr", "0"], "positive"),
        (vec!["lr-find", "--lr", "0.1"], "--lr does not apply"),
        (vec!["train", "--accumulate", "0"], "at least 1"),
        (vec!["train", "--lr", "fnd"], "a learning rate or `find`"),
    ] {
        let o = cnn(&args, tmp.path());
        assert_one_line_error(&o, needle);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
}
