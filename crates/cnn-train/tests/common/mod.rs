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
