//! Shared helpers of the cnn-train integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The real MNIST directory, or `None` after a printed, logged skip
/// (`cnn_testing::mnist_dir`; a failure under `CNN_REQUIRE_MNIST=1`).
pub fn mnist_dir(test: &str) -> Option<PathBuf> {
    cnn_testing::mnist_dir(test)
}

/// The repository's golden directory (or `CNN_GOLDEN_DIR`).
pub fn golden_dir() -> PathBuf {
    std::env::var_os("CNN_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../testdata/golden"
            ))
        })
}

/// A built-in synthetic data set of `train` and `test` images from `seed`,
/// split as `cnn train` would with validation fraction `val_fraction`.
pub fn synthetic_splits(
    seed: u64,
    train: usize,
    test: usize,
    val_fraction: f64,
) -> cnn_train::setup::DataSplits {
    let options = cnn_data::LoadOptions {
        synthetic: cnn_data::SyntheticConfig {
            seed,
            train,
            test,
            ..cnn_data::SyntheticConfig::default()
        },
        ..cnn_data::LoadOptions::default()
    };
    let dataset = cnn_data::load(cnn_data::DatasetKind::Synthetic, None, &options).unwrap();
    cnn_train::setup::splits(dataset, val_fraction, 0).unwrap()
}

/// A 2-thread CPU trainer of `c` on 320 synthetic training images, with
/// its run directory `dir`: created (with `config.toml`) when `fresh`,
/// else opened to resume.
pub fn run_dir_trainer(
    c: &cnn_train::TrainConfig,
    dir: &std::path::Path,
    fresh: bool,
) -> cnn_train::Trainer<cnn_cpu::CpuBackend> {
    let data = synthetic_splits(c.seed, 320, 64, c.val_fraction);
    let backend = cnn_cpu::CpuBackend::with_threads(2).unwrap();
    let spec = cnn_train::setup::model_spec(c, &data.shape, data.num_classes()).unwrap();
    let graph = cnn_core::Graph::new(&backend, spec, c.seed).unwrap();
    let run = if fresh {
        cnn_train::RunDir::create(dir, false).unwrap()
    } else {
        cnn_train::RunDir::open(dir).unwrap()
    };
    if fresh {
        cnn_train::io::write_atomic(&run.config(), c.to_toml().as_bytes()).unwrap();
    }
    cnn_train::Trainer::new(backend, c.clone(), graph, data)
        .unwrap()
        .with_run_dir(run)
}
