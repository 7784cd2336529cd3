//! The trainer's data-parallel step (each batch split across the threads)
//! trains exactly as the unsplit step: the same per-step losses, the same
//! epoch metrics and the same final weights, bit for bit. `--detect-anomaly`
//! keeps the unsplit step, so the two runs differ only in that.

mod common;

use cnn_core::{ArrayData, Graph};
use cnn_cpu::CpuBackend;
use cnn_train::{TrainConfig, Trainer, setup};

fn config(detect_anomaly: bool) -> TrainConfig {
    TrainConfig {
        model: "article".into(),
        data: "synthetic".into(),
        epochs: 2,
        // 180 training images: the last batch of each epoch has 20.
        batch_size: 32,
        optimizer: "sgd".into(),
        lr: Some(0.05),
        momentum: Some(0.9),
        l1: 1e-5,
        l2: 1e-4,
        clip_grad_norm: 5.0,
        seed: 11,
        detect_anomaly,
        ..TrainConfig::default()
    }
}

fn train(detect_anomaly: bool) -> Trainer<CpuBackend> {
    let c = config(detect_anomaly);
    let data = common::synthetic_splits(c.seed, 200, 40, c.val_fraction);
    let backend = CpuBackend::with_threads(2).unwrap();
    let spec = setup::model_spec(&c, &data.shape, data.num_classes()).unwrap();
    let graph = Graph::new(&backend, spec, c.seed).unwrap();
    let mut t = Trainer::new(backend, c, graph, data).unwrap();
    t.fit().unwrap();
    t
}

fn weights(t: &Trainer<CpuBackend>) -> Vec<(String, Vec<f32>)> {
    t.graph()
        .state_dict()
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.data {
            ArrayData::F32(v) => Some((e.name, v)),
            ArrayData::I64(_) => None,
        })
        .collect()
}

#[test]
fn split_steps_train_exactly_as_unsplit_steps() {
    let split = train(false);
    let unsplit = train(true);
    assert_eq!(split.data_parallel_parts(), Some(2));
    assert_eq!(unsplit.data_parallel_parts(), None);
    let losses = |t: &Trainer<CpuBackend>| -> Vec<u64> {
        t.history().steps.iter().map(|s| s.loss.to_bits()).collect()
    };
    assert_eq!(split.history().steps.len(), 12, "2 epochs of 6 batches");
    assert_eq!(losses(&split), losses(&unsplit), "per-step losses");
    for (a, b) in split.history().epochs.iter().zip(&unsplit.history().epochs) {
        assert_eq!(a.train, b.train, "training metrics of epoch {}", a.epoch);
        assert_eq!(a.val, b.val, "validation metrics of epoch {}", a.epoch);
    }
    assert_eq!(weights(&split), weights(&unsplit), "final weights");
    assert_eq!(split.state().graph_step, unsplit.state().graph_step);
    // The weights moved (guards against comparing two untouched models).
    let fresh = Graph::new(split.graph().backend(), split.graph().spec().clone(), 11).unwrap();
    let initial: Vec<Vec<f32>> = fresh
        .params_iter()
        .map(|p| p.value.to_vec(fresh.backend()).unwrap())
        .collect();
    let trained: Vec<Vec<f32>> = split
        .graph()
        .params_iter()
        .map(|p| p.value.to_vec(split.graph().backend()).unwrap())
        .collect();
    assert!(initial.iter().zip(&trained).all(|(a, b)| a != b));
}
