//! The real MNIST files, when present: found through `CNN_MNIST_DIR` or
//! `../../../shared/data/mnist` from the crate directory
//! (`cnn_testing::mnist_dir`). Skips through `cnn_testing::skip` when
//! absent; `CNN_REQUIRE_MNIST=1` (set by `.ci/run`) makes a skip a failure.

use cnn_data::{DatasetKind, LoadOptions, Subset, load, split};

#[test]
fn real_mnist_loads_and_normalises() {
    let Some(dir) = cnn_testing::mnist_dir("real_mnist_loads_and_normalises") else {
        return;
    };
    let ds = load(DatasetKind::Mnist, Some(&dir), &LoadOptions::default()).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (60000, 10000));
    assert_eq!(ds.shape.dims(), &[1, 28, 28]);
    assert!(
        ds.train
            .labels()
            .iter()
            .chain(ds.test.labels())
            .all(|&l| l < 10)
    );

    let train = Subset::full(ds.train.clone());
    let mut img = vec![0.0f32; 784];
    let (mut sum, mut sum_sq) = (0f64, 0f64);
    for i in 0..train.len() {
        train.write_image(i, &ds.normalization, &mut img);
        for &v in &img {
            sum += f64::from(v);
            sum_sq += f64::from(v) * f64::from(v);
        }
    }
    let n = (train.len() * 784) as f64;
    let mean = sum / n;
    let std = (sum_sq / n - mean * mean).sqrt();
    println!("normalised MNIST train: mean {mean:.5}, std {std:.5}");
    assert!(mean.abs() < 0.01, "mean {mean}");
    assert!((std - 1.0).abs() < 0.01, "std {std}");

    let s = split(&ds, 0.1).unwrap();
    assert_eq!(
        (s.train.len(), s.val.len(), s.test.len()),
        (54000, 6000, 10000)
    );
}
