//! `cnn compare`'s validation curve, random search (`--sample`,
//! `--trials`) and pruning (`--prune median`) end to end on tiny synthetic
//! runs, and their one-line errors.

mod common;
use common::{assert_one_line_error, cnn, stderr};

const SMALL: &[&str] = &[
    "--limit-train",
    "192",
    "--batch-size",
    "32",
    "--threads",
    "1",
    "--quiet",
];

fn compare(extra: &[&str], cwd: &std::path::Path) -> std::process::Output {
    let mut args = vec!["compare"];
    args.extend_from_slice(extra);
    args.extend_from_slice(SMALL);
    cnn(&args, cwd)
}

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_numeric_vary_key_draws_a_validation_curve_and_a_text_key_none() {
    let tmp = tempfile::tempdir().unwrap();
    let out = compare(
        &[
            "--out",
            "lr",
            "--epochs",
            "1",
            "--vary",
            "lr=0.001,0.01,0.1",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let root = tmp.path().join("lr");
    for f in ["validation_curve.png", "validation_curve.svg"] {
        assert!(root.join(f).is_file(), "missing {f}");
    }
    let svg = std::fs::read_to_string(root.join("validation_curve.svg")).unwrap();
    assert!(svg.contains("lr (log scale)"), "0.001 to 0.1 is a log axis");
    let report = std::fs::read_to_string(root.join("report.html")).unwrap();
    assert!(report.contains("Validation curve"), "the report shows it");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("validation curve: "), "{stdout}");

    let out = compare(
        &[
            "--out",
            "opt",
            "--epochs",
            "1",
            "--vary",
            "optimizer=sgd,adam",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let root = tmp.path().join("opt");
    assert!(root.join("overlay.png").is_file());
    assert!(!root.join("validation_curve.png").exists());
    assert!(!root.join("validation_curve.svg").exists());
    let report = std::fs::read_to_string(root.join("report.html")).unwrap();
    assert!(!report.contains("Validation curve"));
}

#[test]
fn a_random_search_is_reproducible_and_records_its_values() {
    let tmp = tempfile::tempdir().unwrap();
    let search = |out: &str, seed: &str| {
        compare(
            &[
                "--out",
                out,
                "--epochs",
                "1",
                "--sample",
                "lr=loguniform(1e-3,1e-1)",
                "--sample",
                "batch-size=int(16,48)",
                "--trials",
                "3",
                "--search-seed",
                seed,
            ],
            tmp.path(),
        )
    };
    for (dir, seed) in [("a", "5"), ("b", "5"), ("c", "6")] {
        let out = search(dir, seed);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let labels = |dir: &str| -> Vec<String> {
        json(&tmp.path().join(dir).join("compare.json"))["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["label"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(labels("a"), labels("b"), "same seed, same trials");
    assert_ne!(labels("a"), labels("c"));
    let manifest = json(&tmp.path().join("a/compare.json"));
    assert_eq!(manifest["search"]["trials"], 3);
    assert_eq!(manifest["search"]["seed"], 5);
    assert_eq!(manifest["search"]["samples"][0], "lr=loguniform(1e-3,1e-1)");
    let summary = std::fs::read_to_string(tmp.path().join("a/summary.csv")).unwrap();
    for (variant, run) in manifest["variants"]
        .as_array()
        .unwrap()
        .iter()
        .zip(manifest["runs"].as_array().unwrap())
    {
        let label = variant["label"].as_str().unwrap();
        assert!(label.starts_with("trial "), "{label}");
        assert!(summary.contains(label), "{label} in summary.csv");
        // The run trained with the values its label shows.
        let config = std::fs::read_to_string(
            tmp.path()
                .join("a")
                .join(run["dir"].as_str().unwrap())
                .join("config.toml"),
        )
        .unwrap();
        let lr = variant["config"]["lr"].as_f64().unwrap();
        let batch = variant["config"]["batch_size"].as_u64().unwrap();
        assert!((1e-3..=1e-1).contains(&lr) && (16..=48).contains(&batch));
        assert!(label.contains(&format!("lr={lr}")), "{label}");
        assert!(label.contains(&format!("batch_size={batch}")), "{label}");
        assert!(config.contains(&format!("lr = {lr}")), "{config}");
        assert!(
            config.contains(&format!("batch_size = {batch}")),
            "{config}"
        );
    }
    // Two sampled keys: no validation curve.
    assert!(!tmp.path().join("a/validation_curve.png").exists());
}

#[test]
fn pruned_trials_stop_keep_their_files_and_show_in_summary_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    // The first trial learns; the second barely moves (lr 1e-7) and is
    // worse than it after epoch 2, the first epoch after the warm-up.
    let out = compare(
        &[
            "--out",
            "p",
            "--epochs",
            "3",
            "--optimizer",
            "sgd",
            "--vary",
            "lr=0.05,1e-7",
            "--prune",
            "median",
            "--prune-warmup",
            "1",
            "--prune-startup",
            "1",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let root = tmp.path().join("p");
    let manifest = json(&root.join("compare.json"));
    assert_eq!(manifest["prune"]["warmup"], 1);
    let runs = manifest["runs"].as_array().unwrap();
    assert_eq!(runs[0]["status"], "completed");
    assert_eq!(runs[1]["status"], "pruned", "{}", stderr(&out));
    let dir = root.join(runs[1]["dir"].as_str().unwrap());
    let summary = json(&dir.join("summary.json"));
    assert_eq!(summary["status"], "pruned");
    assert_eq!(summary["epoch"], 2);
    assert_eq!(summary["epochs"], 2);
    assert!(summary["value"].as_f64().unwrap() > summary["median"].as_f64().unwrap());
    assert_eq!(summary["completed"], 1);
    // Its files up to the pruning epoch.
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "header and 2 epochs: {metrics}");
    for f in [
        "config.toml",
        "model.safetensors",
        "curves.png",
        "report.html",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    let table = std::fs::read_to_string(root.join("summary.md")).unwrap();
    assert!(table.contains("pruned after epoch 2"), "{table}");
    let report = std::fs::read_to_string(root.join("report.html")).unwrap();
    assert!(
        report.contains("pruned after epoch 2"),
        "the report's summary table"
    );
    assert!(
        report.contains("1 of 2 runs were pruned"),
        "the report's note"
    );
    let err = stderr(&out);
    assert!(err.contains("pruned after epoch 2 (best loss"), "{err}");
}

#[test]
fn bad_searches_are_one_line_errors_with_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (
            vec!["--sample", "lr=normal(0,1)", "--trials", "2"],
            "expected loguniform",
        ),
        (
            vec!["--sample", "lr=uniform(0.1", "--trials", "2"],
            "expected loguniform",
        ),
        (
            vec!["--sample", "lr=uniform(0.5,0.1)", "--trials", "2"],
            "above the upper bound",
        ),
        (
            vec!["--sample", "lr=loguniform(0,0.1)", "--trials", "2"],
            "positive lower bound",
        ),
        (
            vec!["--sample", "learning_rate=uniform(0,1)", "--trials", "2"],
            "learning_rate",
        ),
        (
            vec![
                "--sample",
                "lr=uniform(0,1)",
                "--trials",
                "2",
                "--vary",
                "lr=0.1,0.2",
            ],
            "lr is both varied (--vary) and sampled",
        ),
        (vec!["--sample", "lr=uniform(0,1)"], "needs --trials"),
        (vec!["--vary", "lr=0.1,0.2", "--trials", "3"], "--sample"),
        (
            vec!["--vary", "lr=0.1,0.2", "--prune", "mean"],
            "unknown rule",
        ),
        (
            vec!["--vary", "lr=0.1,0.2", "--prune-warmup", "2"],
            "--prune median",
        ),
    ] {
        let mut all = vec!["--out", "never"];
        all.extend_from_slice(&args);
        let out = compare(&all, tmp.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_one_line_error(&out, needle);
        assert!(!tmp.path().join("never").exists(), "{args:?} made nothing");
    }
}
