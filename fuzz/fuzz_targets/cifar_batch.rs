//! CIFAR-10 binary batches: a parsed value or a typed error.
#![no_main]

use cnn_fuzz::limited_allocator;
use libfuzzer_sys::fuzz_target;

limited_allocator!();

fuzz_target!(|data: &[u8]| {
    cnn_fuzz::input(data.len(), cnn_fuzz::DEFAULT_FLOOR);
    if let Ok(batch) = cnn_data::parse_cifar_batch(data) {
        assert_eq!(batch.pixels.len(), batch.labels.len() * 3072);
        assert!(batch.labels.iter().all(|&l| l < 10));
    }
});
