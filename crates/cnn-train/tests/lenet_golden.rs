//! Whole-pipeline check against PyTorch: from the same initial LeNet-5
//! weights and the same batches (the first 6400 MNIST training images in
//! file order, batches of 64, SGD lr 0.05 momentum 0.9), the per-step loss
//! curve equals PyTorch's to roundings until the first step where a
//! discrete choice (a max-pool winner, a ReLU sign) comes out the other way
//! (at step 60 or later), and after that step stays within a bound that
//! grows as two parted float32 trajectories do.

mod common;

use cnn_core::Graph;
use cnn_core::models::{ModelOptions, lenet5};
use cnn_cpu::CpuBackend;
use cnn_data::{DatasetKind, LoadOptions};
use cnn_train::checkpoint::load_safetensors;
use cnn_train::{TrainConfig, Trainer, setup};

/// The earliest step at which the curves may part. The two f32
/// trajectories stay together to rounding until a max-pool choice or ReLU
/// sign comes out the other way in one of them (measured: step 83 here;
/// PyTorch's own float32 and float64 runs first part at steps 48-66, with
/// losses apart by 6.6e-4 at step 66); see docs/validation.md.
const EXACT_STEPS: usize = 60;
/// Bound on every step before the curves part (measured: 2.4e-6); the first
/// step over it is where they part.
const EARLY_REL: f64 = 1e-4;
/// After the curves part at step `f`, step `k` is bounded by
/// `LATE_START * 2^((k - f) / LATE_DOUBLING)`, at most `LATE_CAP`. Once the
/// gradients jump apart the weights drift apart like any chaotic system:
/// here the difference goes from 7.8e-4 at step 83 to 3.2e-2 at step 98,
/// doubling about every 3 steps. The bound starts 5x above the first
/// parted step and keeps at least 2.7x over the measured curve at every
/// step; the cap, 25%, is twice the worst PyTorch's own float32 run shows
/// against the golden curve (1.2e-1), and still fails a loss that is wrong
/// by a quarter or more.
const LATE_START: f64 = 4e-3;
const LATE_DOUBLING: f64 = 3.0;
const LATE_CAP: f64 = 0.25;

/// The bound on a step `since` steps after the curves parted.
fn late_bound(since: usize) -> f64 {
    (LATE_START * (since as f64 / LATE_DOUBLING).exp2()).min(LATE_CAP)
}

#[test]
fn lenet5_sgd_loss_curve_matches_pytorch_golden() {
    let Some(dir) = common::mnist_dir("lenet5_sgd_loss_curve_matches_pytorch_golden") else {
        return;
    };
    let golden_path = common::golden_dir().join("lenet5_sgd_steps.json");
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&golden_path).unwrap()).unwrap();
    let expected: Vec<f64> = golden["loss_per_step"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(expected.len(), 100);

    let dataset = cnn_data::load(DatasetKind::Mnist, Some(&dir), &LoadOptions::default()).unwrap();
    let data = setup::splits(dataset, 0.0, 6400).unwrap();
    assert_eq!(data.train.len(), 6400);
    let config = TrainConfig {
        model: "lenet5".into(),
        data: "mnist".into(),
        epochs: 1,
        max_steps: 100,
        batch_size: 64,
        optimizer: "sgd".into(),
        lr: Some(0.05),
        momentum: Some(0.9),
        shuffle: false,
        val_fraction: 0.0,
        ..TrainConfig::default()
    };
    let backend = CpuBackend::with_threads(2).unwrap();
    let spec = lenet5(&ModelOptions::new([1, 28, 28], 10)).unwrap();
    let mut graph = Graph::new(&backend, spec, 0).unwrap();
    let (weights, _) =
        load_safetensors(&common::golden_dir().join("lenet5_init_seed0.safetensors")).unwrap();
    graph.load_state_dict(&weights).unwrap();
    let mut trainer = Trainer::new(backend, config, graph, data).unwrap();
    trainer.fit().unwrap();

    let got: Vec<f64> = trainer.history().steps.iter().map(|s| s.loss).collect();
    assert_eq!(got.len(), 100);
    let rel: Vec<f64> = got
        .iter()
        .zip(&expected)
        .map(|(g, e)| (g - e).abs() / e.abs())
        .collect();
    for (k, r) in rel.iter().enumerate() {
        if std::env::var_os("CNN_SHOW_CURVE").is_some() {
            eprintln!(
                "step {k:>3}: {:.6} vs PyTorch {:.6} (relative {r:.2e})",
                got[k], expected[k]
            );
        }
    }
    let parted = rel.iter().position(|&r| r > EARLY_REL).unwrap_or(rel.len());
    let early_worst = rel[..parted].iter().copied().fold(0.0, f64::max);
    eprintln!(
        "lenet5 golden curve: worst relative difference {early_worst:.2e} over the first {parted} steps, {:.2e} at worst after",
        rel[parted..].iter().copied().fold(0.0, f64::max)
    );
    assert!(
        parted >= EXACT_STEPS,
        "the curves part at step {parted} (relative {:.3e}), before step {EXACT_STEPS}",
        rel[parted]
    );
    for (k, &r) in rel.iter().enumerate().skip(parted) {
        let bound = late_bound(k - parted);
        assert!(
            r <= bound,
            "step {k}, {} after the curves parted at step {parted}: relative difference {r:.3e} > {bound:.3e}",
            k - parted
        );
    }
    // The curve must actually descend (guards against comparing constants).
    assert!(got[99] < 0.5 * got[0], "{} -> {}", got[0], got[99]);
}
