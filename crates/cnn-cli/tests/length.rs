//! How long a run trains: epochs, a step budget, or whichever ends first;
//! and a run stopped early stays stopped when it is resumed.

use std::path::Path;

mod common;
use common::cnn;

fn ok(args: &[&str], cwd: &Path) -> String {
    let out = cnn(args, cwd);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {err}");
    err
}

/// Rows of a run's steps.csv (without the header).
fn steps(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("steps.csv"))
        .unwrap()
        .lines()
        .count()
        - 1
}

#[test]
fn a_step_budget_alone_decides_the_length() {
    let tmp = tempfile::tempdir().unwrap();
    // 256 images in batches of 64: 4 steps per epoch.
    let small = ["--limit-train", "256", "--quiet"];
    let err = ok(
        &[&["train", "--max-steps", "30", "--out", "a"][..], &small].concat(),
        tmp.path(),
    );
    assert!(err.contains("30 steps (8 epochs)"), "{err}");
    assert_eq!(steps(&tmp.path().join("a")), 30);

    let err = ok(
        &[
            &["train", "--epochs", "0", "--max-steps", "6", "--out", "b"][..],
            &small,
        ]
        .concat(),
        tmp.path(),
    );
    assert!(err.contains("6 steps (2 epochs)"), "{err}");
    assert_eq!(steps(&tmp.path().join("b")), 6);

    let err = ok(
        &[
            &["train", "--epochs", "2", "--max-steps", "100", "--out", "c"][..],
            &small,
        ]
        .concat(),
        tmp.path(),
    );
    assert!(
        err.contains("2 epochs or 100 steps, whichever ends first (8 steps)"),
        "{err}"
    );
    assert_eq!(steps(&tmp.path().join("c")), 8);
}

#[test]
fn an_early_stopped_run_resumed_before_its_results_stays_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "train",
        "--limit-train",
        "128",
        "--epochs",
        "30",
        "--early-stopping",
        "1",
        "--out",
        "es",
        "--quiet",
    ];
    let err = ok(&args, tmp.path());
    assert!(err.contains("early stopping after epoch"), "{err}");
    let stopped = std::fs::read_to_string(tmp.path().join("es/metrics.csv")).unwrap();

    // Killed after the stopping epoch's checkpoint, before summary.json.
    std::fs::remove_file(tmp.path().join("es/summary.json")).unwrap();
    let err = ok(&["train", "--resume", "es", "--quiet"], tmp.path());
    assert!(err.contains("early stopping after epoch"), "{err}");
    let resumed = std::fs::read_to_string(tmp.path().join("es/metrics.csv")).unwrap();
    assert_eq!(
        resumed.lines().count(),
        stopped.lines().count(),
        "the resumed run trained past its stop"
    );
    let summary = std::fs::read_to_string(tmp.path().join("es/summary.json")).unwrap();
    assert!(
        summary.contains("\"status\": \"early_stopped\""),
        "{summary}"
    );
}

/// Column `name` of a run's CSV file, as numbers.
fn column(file: &Path, name: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines = text.lines();
    let index = lines
        .next()
        .unwrap()
        .split(',')
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name} in {}", file.display()));
    lines
        .map(|l| l.split(',').nth(index).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn schedule_parameters_and_early_stopping_flags_reach_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    // Validation loss first fails to improve at epoch 5 of this run; with
    // patience 0 the rate halves for epoch 6 (torch's default patience of
    // 10 would keep it).
    ok(
        &[
            "train",
            "--optimizer",
            "adam",
            "--lr",
            "3e-3",
            "--schedule",
            "plateau",
            "--schedule-param",
            "patience=0",
            "--schedule-param",
            "factor=0.5",
            "--epochs",
            "6",
            "--limit-train",
            "300",
            "--min-delta",
            "0.001",
            "--restore-best",
            "off",
            "--out",
            "plateau",
            "--quiet",
        ],
        tmp.path(),
    );
    let dir = tmp.path().join("plateau");
    let lr = column(&dir.join("metrics.csv"), "lr");
    assert!(lr.iter().any(|&r| (r - 0.0015).abs() < 1e-12), "{lr:?}");
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    for line in [
        "patience = 0",
        "factor = 0.5",
        "min_delta = 0.001",
        "restore_best = false",
    ] {
        assert!(config.contains(line), "`{line}` not in:\n{config}");
    }
    let out = cnn(
        &[
            "train",
            "--schedule",
            "plateau",
            "--schedule-param",
            "patiense=1",
        ],
        tmp.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown field `patiense`"),
        "{err}"
    );
}

#[test]
fn an_epochs_rate_is_the_one_its_last_step_used() {
    let tmp = tempfile::tempdir().unwrap();
    ok(
        &[
            "train",
            "--schedule",
            "cosine",
            "--epochs",
            "2",
            "--limit-train",
            "256",
            "--out",
            "cos",
            "--quiet",
        ],
        tmp.path(),
    );
    let dir = tmp.path().join("cos");
    let per_step = column(&dir.join("steps.csv"), "lr");
    let per_epoch = column(&dir.join("metrics.csv"), "lr");
    assert_eq!(per_step.len(), 8);
    assert_eq!(per_epoch, vec![per_step[3], per_step[7]]);
    assert!(per_epoch[1] > 0.0, "cosine's final rate 0 is never used");
}
