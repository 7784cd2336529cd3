//! The validation curve of a comparison (`cnn compare` with one numeric
//! `--vary` key): the values it plots are the runs' summaries (the same
//! numbers `summary.csv` reports, and the rest from the runs' histories),
//! pruned and failed runs are left out, the axis is logarithmic past 10x,
//! and a comparison that does not vary one numeric key has none.

use cnn_train::compare::{
    Manifest, RunResult, VarySpec, expand, finished, numeric_key, plan, summary_rows,
    validation_curve,
};
use cnn_train::prune::Pruning;
use cnn_train::{EpochRecord, History, RunStatus, RunSummary, SplitMetrics, TrainConfig};

fn metrics(loss: f64, accuracy: f64) -> SplitMetrics {
    SplitMetrics {
        loss,
        accuracy,
        ..Default::default()
    }
}

/// A run's history from (train loss, train acc, val loss, val acc) per
/// epoch.
fn summary(epochs: &[(f64, f64, f64, f64)], status: RunStatus) -> RunSummary {
    RunSummary {
        model: "lenet5".into(),
        data: "synthetic".into(),
        status,
        epochs: epochs.len(),
        steps: 0,
        params: 0,
        train_images: 0,
        val_images: 0,
        seconds: 1.0,
        test: None,
        train_eval: None,
        skipped_steps: None,
        findings: Vec::new(),
        history: History {
            steps: Vec::new(),
            epochs: epochs
                .iter()
                .enumerate()
                .map(|(i, &(tl, ta, vl, va))| EpochRecord {
                    epoch: i + 1,
                    train: metrics(tl, ta),
                    val: Some(metrics(vl, va)),
                    lr: 0.1,
                    seconds: 1.0,
                    images_per_sec: 1.0,
                    val_per_class: Vec::new(),
                    ema_val: None,
                    swa_val: None,
                })
                .collect(),
        },
    }
}

fn manifest(vary: &[&str], repeats: usize) -> Manifest {
    let base = TrainConfig::default();
    let vary: Vec<VarySpec> = vary.iter().map(|s| s.parse().unwrap()).collect();
    let variants = expand(&base, None, &vary).unwrap();
    Manifest {
        base,
        repeats,
        metric: Default::default(),
        runs: plan(&variants, repeats),
        variants,
        search: None,
        prune: None,
    }
}

fn results(m: &Manifest, mut f: impl FnMut(usize) -> Option<RunSummary>) -> Vec<RunResult> {
    m.runs
        .iter()
        .enumerate()
        .map(|(i, p)| RunResult {
            planned: p.clone(),
            summary: f(i),
            unreadable: None,
        })
        .collect()
}

#[test]
fn the_plotted_values_are_the_runs_summaries() {
    // lr given out of order: the curve sorts by value.
    let m = manifest(&["lr=0.1,0.001,0.01"], 2);
    let res = results(&m, |i| {
        let k = i as f64;
        Some(summary(
            &[
                (
                    2.0 - 0.1 * k,
                    0.3 + 0.01 * k,
                    2.1 - 0.1 * k,
                    0.25 + 0.02 * k,
                ),
                (
                    1.0 - 0.05 * k,
                    0.6 + 0.02 * k,
                    1.5 - 0.05 * k,
                    0.5 + 0.01 * k,
                ),
                (0.5, 0.9 - 0.01 * k, 1.6, 0.45),
            ],
            RunStatus::Completed,
        ))
    });
    let c = validation_curve(&m, finished(&res)).expect("one numeric key");
    assert_eq!(c.key, "lr");
    assert_eq!(c.values, vec![0.001, 0.01, 0.1]);
    assert_eq!(c.runs, vec![2, 2, 2]);
    assert!(c.log_x, "0.001 to 0.1 spans 100x");
    let rows = summary_rows(&m, &res);
    for (j, &x) in c.values.iter().enumerate() {
        let v = m
            .variants
            .iter()
            .position(|v| v.config.lr == Some(x))
            .unwrap();
        let row = &rows[v];
        let close =
            |a: f64, b: f64| assert!((a - b).abs() <= 1e-12 + 1e-12 * b.abs(), "{a} vs {b}");
        // What summary.csv says of the variant of that value.
        close(c.best_val_accuracy.mean[j], row.best_val_accuracy);
        close(c.best_val_accuracy.std[j], row.best_val_accuracy_std);
        close(c.final_val_accuracy.mean[j], row.final_val_accuracy);
        close(c.final_val_accuracy.std[j], row.final_val_accuracy_std);
        close(c.final_train_accuracy.mean[j], row.final_train_accuracy);
        close(c.best_val_loss.mean[j], row.best_val_loss);
        close(c.final_val_loss.mean[j], row.final_val_loss);
        // And the rest from the runs' histories directly (runs 2v, 2v+1).
        let runs: Vec<&RunSummary> = res
            .iter()
            .filter(|r| r.planned.variant == v)
            .map(|r| r.summary.as_ref().unwrap())
            .collect();
        let (k0, k1) = ((2 * v) as f64, (2 * v + 1) as f64);
        assert_eq!(runs.len(), 2);
        close(
            c.best_train_accuracy.mean[j],
            ((0.9 - 0.01 * k0) + (0.9 - 0.01 * k1)) / 2.0,
        );
        close(c.best_train_accuracy.std[j], 0.005);
        close(c.best_train_loss.mean[j], 0.5);
        close(c.final_train_loss.mean[j], 0.5);
        close(c.final_train_loss.std[j], 0.0);
        close(
            c.best_val_loss.mean[j],
            ((1.5 - 0.05 * k0) + (1.5 - 0.05 * k1)) / 2.0,
        );
    }
}

#[test]
fn pruned_and_failed_runs_are_left_out() {
    let m = manifest(&["dropout=0.1,0.3"], 2);
    let pruned = RunStatus::Pruned(Pruning {
        epoch: 1,
        value: 9.0,
        median: 1.0,
        completed: 1,
        at_epoch: 1,
    });
    let res = results(&m, |i| match i {
        0 => Some(summary(&[(1.0, 0.5, 1.0, 0.4)], RunStatus::Completed)),
        1 => Some(summary(&[(9.0, 0.1, 9.0, 0.1)], pruned.clone())),
        2 => None,
        _ => Some(summary(&[(1.0, 0.6, 1.0, 0.7)], RunStatus::Completed)),
    });
    let c = validation_curve(&m, finished(&res)).unwrap();
    assert_eq!(c.values, vec![0.1, 0.3]);
    assert_eq!(c.runs, vec![1, 1]);
    assert_eq!(c.final_val_accuracy.mean, vec![0.4, 0.7]);
    assert_eq!(c.final_val_accuracy.std, vec![0.0, 0.0]);
    assert!(!c.log_x, "0.1 to 0.3 spans 3x");
    let rows = summary_rows(&m, &res);
    assert_eq!(
        (rows[0].pruned, rows[0].diagnosis.as_str()),
        (1, "pruned (1/2)")
    );
}

#[test]
fn a_non_numeric_or_multi_key_comparison_draws_none() {
    let all = |m: &Manifest| {
        results(m, |_| {
            Some(summary(&[(1.0, 0.5, 1.0, 0.5)], RunStatus::Completed))
        })
    };
    for vary in [
        vec!["optimizer=sgd,adam"],
        vec!["batch_norm=off,on"],
        vec!["activation=relu,tanh"],
        vec!["lr=0.1,0.01", "dropout=0,0.5"],
    ] {
        let m = manifest(&vary, 1);
        assert_eq!(numeric_key(&m), None, "{vary:?}");
        assert_eq!(validation_curve(&m, finished(&all(&m))), None, "{vary:?}");
    }
    // Integer settings are numbers: batch size.
    let m = manifest(&["batch_size=16,64,256"], 1);
    let c = validation_curve(&m, finished(&all(&m))).unwrap();
    assert_eq!(
        (c.key.as_str(), c.values.clone(), c.log_x),
        ("batch_size", vec![16.0, 64.0, 256.0], true)
    );
}
