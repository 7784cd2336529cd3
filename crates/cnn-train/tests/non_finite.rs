//! A diverged run's NaN and infinite values read back from every file cnn
//! writes: `history.jsonl`, `steps.csv`, `summary.json`, and a comparison
//! built on them gives its summary and report.

use cnn_train::compare::{Manifest, SortMetric, Variant, write_outputs};
use cnn_train::records::{read_history, write_history};
use cnn_train::report::write_report;
use cnn_train::run::{RunStatus, RunSummary};
use cnn_train::{EpochRecord, History, SplitMetrics, StepRecord, TrainConfig};

fn split(loss: f64, accuracy: f64) -> SplitMetrics {
    SplitMetrics {
        loss,
        accuracy,
        precision_macro: accuracy,
        recall_macro: accuracy,
        f1_macro: accuracy,
        n: 10,
        top5_accuracy: Some(f64::INFINITY),
    }
}

fn epoch(epoch: usize, train: SplitMetrics, val: SplitMetrics) -> EpochRecord {
    EpochRecord {
        epoch,
        train,
        val: Some(val),
        lr: 1e6,
        seconds: 0.5,
        images_per_sec: f64::INFINITY,
        val_per_class: Vec::new(),
        ema_val: None,
        swa_val: None,
    }
}

/// A run that went to NaN and infinity in its second epoch.
fn diverged() -> History {
    History {
        steps: vec![
            StepRecord {
                step: 1,
                epoch: 1,
                loss: 2.3,
                lr: 1e6,
                scaling: None,
            },
            StepRecord {
                step: 2,
                epoch: 2,
                loss: f64::INFINITY,
                lr: 1e6,
                scaling: None,
            },
            StepRecord {
                step: 3,
                epoch: 2,
                loss: f64::NAN,
                lr: f64::NEG_INFINITY,
                scaling: None,
            },
        ],
        epochs: vec![
            epoch(1, split(9.4e30, 0.1), split(f64::NAN, 0.12)),
            epoch(2, split(f64::INFINITY, 0.1), split(f64::NEG_INFINITY, 0.1)),
        ],
    }
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn non_finite_values_read_back_from_the_history_files() {
    let tmp = tempfile::tempdir().unwrap();
    let h = diverged();
    write_history(tmp.path(), &h).unwrap();
    let back = read_history(tmp.path()).expect("a diverged run's history reads back");
    assert_eq!(back.steps.len(), 3);
    assert_eq!(back.epochs.len(), 2);
    for (a, b) in h.steps.iter().zip(&back.steps) {
        assert!(same(a.loss, b.loss) && same(a.lr, b.lr), "{a:?} vs {b:?}");
    }
    for (a, b) in h.epochs.iter().zip(&back.epochs) {
        let (va, vb) = (a.val.as_ref().unwrap(), b.val.as_ref().unwrap());
        assert!(same(a.train.loss, b.train.loss), "{a:?} vs {b:?}");
        assert!(same(va.loss, vb.loss), "{a:?} vs {b:?}");
        assert!(same(a.images_per_sec, b.images_per_sec));
        assert_eq!(vb.top5_accuracy, Some(f64::INFINITY));
    }
    let jsonl = std::fs::read_to_string(tmp.path().join("history.jsonl")).unwrap();
    assert!(
        jsonl.contains("\"loss\":\"NaN\"") && jsonl.contains("\"loss\":\"-Infinity\""),
        "{jsonl}"
    );
    let metrics = std::fs::read_to_string(tmp.path().join("metrics.csv")).unwrap();
    assert!(
        metrics.lines().nth(1).unwrap().contains(",NaN,"),
        "{metrics}"
    );
}

#[test]
fn a_comparison_with_a_diverged_run_has_its_summary_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let base = TrainConfig::default();
    let variants: Vec<Variant> = ["lr=0.05", "lr=1e6"]
        .iter()
        .map(|label| Variant {
            label: label.to_string(),
            slug: label.replace('=', "-"),
            overrides: vec![("lr".into(), label[3..].into())],
            config: base.clone(),
        })
        .collect();
    let mut runs = cnn_train::compare::plan(&variants, 1);
    let healthy = History {
        steps: vec![StepRecord {
            step: 1,
            epoch: 1,
            loss: 2.0,
            lr: 0.05,
            scaling: None,
        }],
        epochs: vec![epoch(1, split(2.0, 0.3), split(2.1, 0.25))],
    };
    let statuses = [
        RunStatus::Completed,
        RunStatus::Diverged(cnn_train::diagnose::Divergence {
            step: 3,
            epoch: 2,
            loss: "NaN".into(),
            location: None,
        }),
    ];
    for ((run, history), status) in runs.iter_mut().zip([healthy, diverged()]).zip(statuses) {
        let dir = root.join(&run.dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.toml"), base.to_toml()).unwrap();
        write_history(&dir, &history).unwrap();
        run.status = status.name().into();
        let summary = RunSummary {
            model: base.model.clone(),
            data: base.data.clone(),
            status,
            epochs: history.epochs.len(),
            steps: history.steps.len() as u64,
            params: 1,
            train_images: 10,
            val_images: 10,
            seconds: 1.0,
            test: Some(split(f64::NAN, 0.1)),
            train_eval: None,
            skipped_steps: None,
            findings: Vec::new(),
            history: History::default(),
        };
        std::fs::write(
            dir.join("summary.json"),
            serde_json::to_vec_pretty(&summary).unwrap(),
        )
        .unwrap();
        let back = RunSummary::load(&dir).expect("summary.json reads back");
        assert!(back.test.unwrap().loss.is_nan());
        write_report(&dir).expect("the run's report");
    }
    let manifest = Manifest {
        base,
        repeats: 1,
        metric: SortMetric::BestValAccuracy,
        variants,
        runs,
        search: None,
        prune: None,
    };
    manifest.save(root).unwrap();
    let rows = write_outputs(root).expect("outputs of a comparison with a diverged run");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].label, "lr=0.05");
    assert_eq!((rows[1].label.as_str(), rows[1].diverged), ("lr=1e6", 1));
    assert!(root.join("summary.csv").is_file() && root.join("overlay.png").is_file());
    let report = write_report(root).expect("the comparison's report");
    let html = std::fs::read_to_string(report).unwrap();
    assert!(
        html.contains("lr=1e6"),
        "the diverged variant is in the report"
    );
}
