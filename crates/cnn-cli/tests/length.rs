//! How long a run trains: epochs, a step budget, or whichever ends first;
//! and a run stopped early stays stopped when it is resumed.

use std::path::Path;
use std::process::{Command, Output};

fn cnn(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the cnn binary runs")
}

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
