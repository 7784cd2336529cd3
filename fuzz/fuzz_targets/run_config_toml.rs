//! A run configuration (`--config run.toml`, a run's `config.toml`):
//! parsed and validated, or a typed error; a valid one also yields its
//! optimizer and schedule or a typed error, and prints back to TOML.
#![no_main]

use std::path::Path;

use cnn_fuzz::limited_allocator;
use cnn_train::TrainConfig;
use libfuzzer_sys::fuzz_target;

limited_allocator!();

fuzz_target!(|data: &[u8]| {
    cnn_fuzz::input(data.len(), cnn_fuzz::DEFAULT_FLOOR);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = TrainConfig::from_toml(text, Path::new("fuzz.toml")) else {
        return;
    };
    let _ = config.optimizer_config();
    let _ = config.schedule_config(1000);
    let _ = config.to_toml();
});
