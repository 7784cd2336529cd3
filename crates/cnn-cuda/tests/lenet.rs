//! End to end: 50 LeNet-5 training steps (SGD with momentum, batches of
//! 64 of the built-in synthetic set, no shuffling) on CUDA and on the CPU
//! from the same initial weights give the same loss curve within 1e-3
//! relative at every step. Skips without a GPU unless `CNN_REQUIRE_CUDA=1`.

mod common;

use cnn_core::{Backend, Graph};
use cnn_cpu::CpuBackend;
use cnn_train::{TrainConfig, Trainer, setup};

const STEPS: usize = 50;
const LOSS_REL: f64 = 1e-3;

fn config() -> TrainConfig {
    TrainConfig {
        model: "lenet5".into(),
        data: "synthetic".into(),
        epochs: 1,
        max_steps: STEPS as u64,
        batch_size: 64,
        optimizer: "sgd".into(),
        lr: Some(0.05),
        momentum: Some(0.9),
        shuffle: false,
        val_fraction: 0.0,
        limit_train: 64 * STEPS,
        ..TrainConfig::default()
    }
}

/// The per-step losses of `STEPS` steps on `backend`, starting from `init`.
fn curve<B: Backend>(backend: B, init: &[cnn_core::NamedArray]) -> Vec<f64> {
    let config = config();
    let data = setup::load_data(&config).unwrap();
    let spec = setup::model_spec(&config, &data.shape, data.num_classes()).unwrap();
    let mut graph = Graph::new(&backend, spec, config.seed).unwrap();
    graph.load_state_dict(init).unwrap();
    let mut trainer = Trainer::new(backend, config, graph, data).unwrap();
    trainer.fit().unwrap();
    trainer.history().steps.iter().map(|s| s.loss).collect()
}

#[test]
fn lenet5_loss_curve_matches_cpu() {
    let Some(cuda) = common::cuda("lenet5_loss_curve_matches_cpu") else {
        return;
    };
    let cpu = CpuBackend::with_threads(2).unwrap();
    let config = config();
    let data = setup::load_data(&config).unwrap();
    let spec = setup::model_spec(&config, &data.shape, data.num_classes()).unwrap();
    let init = Graph::new(&cpu, spec, config.seed)
        .unwrap()
        .state_dict()
        .unwrap();
    let want = curve(cpu, &init);
    let got = curve(cuda, &init);
    assert_eq!(want.len(), STEPS);
    assert_eq!(got.len(), STEPS);
    let mut worst = 0.0f64;
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        let rel = (g - w).abs() / w.abs().max(1e-12);
        worst = worst.max(rel);
        assert!(
            rel <= LOSS_REL,
            "step {k}: cuda loss {g} vs cpu {w} (relative {rel:.2e} > {LOSS_REL})"
        );
    }
    println!("lenet5 cuda vs cpu: worst relative loss difference {worst:.2e} over {STEPS} steps");
    assert!(want[STEPS - 1] < want[0], "the loss must descend");
}
