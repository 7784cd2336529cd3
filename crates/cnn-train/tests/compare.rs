//! Comparing runs by their curves, end to end on small synthetic data: the
//! diagnosis finds overfitting and divergence where they happen, a
//! comparison survives a diverging variant, a learning curve uses random
//! subsets, and every directory gets a self-contained report.

use std::path::Path;

use cnn_cpu::CpuBackend;
use cnn_data::{LoadOptions, SyntheticConfig};
use cnn_train::compare::{self, Manifest, VarySpec};
use cnn_train::learning_curve;
use cnn_train::run_dir::curve;
use cnn_train::setup::{self, DataSplits};
use cnn_train::{
    FindingKind, RunOptions, RunStatus, RunSummary, RunTarget, TrainConfig, TrainError,
    run_training,
};

/// The synthetic set with `total` training images, the last `val` of them
/// validating and the first `train` of the rest training.
fn data(seed: u64, total: usize, val_fraction: f64, train: usize) -> DataSplits {
    let options = LoadOptions {
        synthetic: SyntheticConfig {
            seed,
            train: total,
            test: 64,
            ..SyntheticConfig::default()
        },
        ..LoadOptions::default()
    };
    let dataset = cnn_data::load(cnn_data::DatasetKind::Synthetic, None, &options).unwrap();
    setup::splits(dataset, val_fraction, train).unwrap()
}

/// A run and, as `cnn train` ends one, its report.
fn run(config: &TrainConfig, data: DataSplits, out: &Path) -> cnn_train::Result<RunSummary> {
    let summary = run_training(
        CpuBackend::with_threads(2).unwrap(),
        config,
        RunTarget::Fresh {
            out: out.to_path_buf(),
            overwrite: false,
        },
        RunOptions {
            data: Some(data),
            ..RunOptions::default()
        },
    )?;
    cnn_train::report::write_report(out)?;
    Ok(summary)
}

fn assert_self_contained_report(dir: &Path, needles: &[&str]) {
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains("src=\"data:image/png;base64,"),
        "no embedded image"
    );
    // The one URL is the banner comment of the embedded chart library.
    let html_without_banner =
        html.replacen("/*! https://github.com/leeoniya/uPlot (v1.6.32) */", "", 1);
    for bad in ["http://", "https://", "src=\"/", "href=", "@import"] {
        assert!(
            !html_without_banner.contains(bad),
            "external reference `{bad}` in the report"
        );
    }
    for n in needles {
        assert!(
            html.contains(n),
            "`{n}` not in the report of {}",
            dir.display()
        );
    }
}

#[test]
fn a_small_unregularised_training_set_is_diagnosed_as_overfitting() {
    let tmp = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        epochs: 25,
        batch_size: 32,
        optimizer: "adam".into(),
        lr: Some(2e-3),
        val_fraction: 0.2,
        seed: 1,
        ..TrainConfig::default()
    };
    let s = run(&config, data(1, 1000, 0.2, 200), &tmp.path().join("run")).unwrap();
    assert_eq!(s.status, RunStatus::Completed);
    assert_eq!((s.train_images, s.val_images, s.epochs), (200, 200, 25));
    let over = s
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::Overfitting)
        .unwrap_or_else(|| panic!("no overfitting in {:#?}", s.findings));
    let e = over.epoch.expect("the epoch overfitting starts");
    assert!((1..25).contains(&e), "{over:?}");
    assert!(
        over.message.contains(&format!("after epoch {e}")),
        "{over:?}"
    );
    // The figures: the validation minimum is lower than the last value.
    let val: Vec<f64> = s
        .history
        .epochs
        .iter()
        .map(|r| r.val.as_ref().unwrap().loss)
        .collect();
    assert!(val[24] > 1.1 * val[e - 1], "{val:?}");
    // summary.json and the report carry it.
    let back = RunSummary::load(&tmp.path().join("run")).unwrap();
    assert_eq!(back.findings, s.findings);
    assert_self_contained_report(
        &tmp.path().join("run"),
        &["overfitting", "Confusion matrix", "<table"],
    );
}

#[test]
fn a_rate_that_blows_the_loss_up_is_diagnosed_as_divergence() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, lr) in [50.0, 1e30].into_iter().enumerate() {
        let config = TrainConfig {
            epochs: 2,
            batch_size: 32,
            lr: Some(lr),
            seed: 2,
            ..TrainConfig::default()
        };
        let out = tmp.path().join(format!("run{i}"));
        let s = run(&config, data(2, 400, 0.2, 0), &out).unwrap();
        assert_eq!(
            s.findings.iter().map(|f| f.kind).collect::<Vec<_>>(),
            vec![FindingKind::Divergence],
            "lr {lr}: {:#?}",
            s.findings
        );
        assert!(
            s.findings[0].message.contains("diverged"),
            "{:?}",
            s.findings
        );
        if let RunStatus::Diverged(d) = &s.status {
            // Stopped by the trainer: reported, not an error, files written.
            assert!(s.findings[0].message.contains(&format!("step {}", d.step)));
            assert!(out.join("steps.csv").is_file());
        }
        assert_self_contained_report(&out, &["divergence"]);
    }
}

#[test]
fn a_comparison_runs_every_variant_even_when_one_diverges() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cmp");
    std::fs::create_dir(&root).unwrap();
    let base = TrainConfig {
        epochs: 2,
        batch_size: 32,
        seed: 3,
        ..TrainConfig::default()
    };
    let vary: Vec<VarySpec> = vec!["lr=0.02,1e30".parse().unwrap()];
    let variants = compare::expand(&base, None, &vary).unwrap();
    let mut manifest = Manifest {
        base: base.clone(),
        repeats: 2,
        metric: Default::default(),
        runs: compare::plan(&variants, 2),
        variants,
        search: None,
        prune: None,
    };
    manifest.save(&root).unwrap();
    let results = compare::run_all(
        &manifest.runs,
        2,
        |p| {
            let config = p.config(&manifest.variants);
            run_training(
                CpuBackend::with_threads(1).unwrap(),
                &config,
                RunTarget::Fresh {
                    out: root.join(&p.dir),
                    overwrite: false,
                },
                RunOptions {
                    data: Some(data(config.seed, 300, 0.2, 0)),
                    ..RunOptions::default()
                },
            )
        },
        |_, _, _| {},
    );
    assert_eq!(results.len(), 4);
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r.as_ref().unwrap().status.name())
        .collect();
    assert_eq!(statuses, ["completed", "completed", "diverged", "diverged"]);
    for (p, r) in manifest.runs.iter_mut().zip(&results) {
        p.status = r.as_ref().unwrap().status.name().into();
    }
    manifest.save(&root).unwrap();
    let rows = compare::write_outputs(&root).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].label, "lr=0.02", "the diverged variant sorts last");
    assert_eq!((rows[1].runs, rows[1].diverged), (2, 2));
    assert!(rows[1].diagnosis.contains("divergence (2/2)"), "{rows:?}");
    assert!(rows[0].best_val_accuracy.is_finite() && rows[0].best_val_accuracy_std.is_finite());
    for f in [
        "overlay.png",
        "overlay.svg",
        "summary.csv",
        "summary.md",
        "diagnosis.md",
    ] {
        assert!(root.join(f).is_file(), "missing {f}");
    }
    let csv = std::fs::read_to_string(root.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3);
    assert!(
        csv.lines().nth(2).unwrap().starts_with("2,lr=1e30,2,2,0,"),
        "{csv}"
    );
    let diagnosis = std::fs::read_to_string(root.join("diagnosis.md")).unwrap();
    assert_eq!(diagnosis.matches("\n## ").count(), 4, "{diagnosis}");
    assert!(diagnosis.contains("**divergence**: diverged: the training loss became"));
    cnn_train::report::write_report(&root).unwrap();
    assert_self_contained_report(
        &root,
        &[
            "lr=1e30",
            "divergence",
            "Base configuration",
            "class=\"summary\"",
        ],
    );
}

#[test]
fn a_learning_curve_trains_on_random_nested_subsets() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("curve");
    std::fs::create_dir(&root).unwrap();
    let config = TrainConfig {
        epochs: 1,
        batch_size: 32,
        seed: 4,
        ..TrainConfig::default()
    };
    let full = data(4, 300, 0.2, 0);
    let n = full.train.len();
    let seen = std::sync::Mutex::new(Vec::new());
    let manifest = learning_curve::run_curve(
        &root,
        &config,
        &full,
        &[0.25, 1.0],
        2,
        |c, d, dir| {
            seen.lock()
                .unwrap()
                .push((c.seed, d.train.labels().to_vec()));
            run_training(
                CpuBackend::with_threads(2).unwrap(),
                c,
                RunTarget::Fresh {
                    out: root.join(dir),
                    overwrite: false,
                },
                RunOptions {
                    data: Some(d),
                    eval_train: true,
                    ..RunOptions::default()
                },
            )
        },
        |_| {},
    )
    .unwrap();
    let sizes: Vec<usize> = manifest.points.iter().map(|p| p.train_size).collect();
    assert_eq!(sizes, [n / 4, n, n / 4, n]);
    assert!(manifest.points.iter().all(|p| p.status == "completed"));
    assert!(
        manifest
            .points
            .iter()
            .all(|p| (0.0..=1.0).contains(&p.train_score) && (0.0..=1.0).contains(&p.val_score))
    );
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen[0].0, 4);
    assert_eq!(seen[2].0, 5, "repeat r trains with seed + r");
    // Random subsets, not prefixes, and different per repeat.
    assert_ne!(seen[0].1, full.train.labels()[..n / 4].to_vec());
    assert_ne!(seen[0].1, seen[2].1);
    for f in [
        curve::POINTS_CSV,
        curve::SUMMARY_CSV,
        curve::CURVE_PNG,
        curve::CURVE_SVG,
    ] {
        assert!(root.join(f).is_file(), "missing {f}");
    }
    let summary = std::fs::read_to_string(root.join(curve::SUMMARY_CSV)).unwrap();
    assert_eq!(summary.lines().count(), 3, "{summary}");
    cnn_train::report::write_report(&root).unwrap();
    assert_self_contained_report(&root, &["Learning curve", "training images"]);
}

#[test]
fn a_missing_run_directory_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let err = cnn_train::report::write_report(&tmp.path().join("nope")).unwrap_err();
    assert!(matches!(err, TrainError::BadFile { .. }), "{err:?}");
}
