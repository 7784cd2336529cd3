//! A TOML model spec (`--model net.toml`): parsed and shape-checked, or a
//! typed error. A parsed spec's parameter count and activation size (used
//! by the memory estimate) must be computable without panicking.
#![no_main]

use std::path::Path;

use cnn_core::Shape;
use cnn_fuzz::limited_allocator;
use libfuzzer_sys::fuzz_target;

limited_allocator!();

fuzz_target!(|data: &[u8]| {
    cnn_fuzz::input(data.len(), cnn_fuzz::DEFAULT_FLOOR);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for shape in [Shape::from([1, 28, 28]), Shape::from([3, 32, 32])] {
        if let Ok(spec) = cnn_train::setup::parse_model_spec(text, Path::new("fuzz.toml"), &shape) {
            let _ = spec.num_params();
            let _ = spec.activation_elements_per_sample();
            let _ = spec.output_shape();
        }
    }
});
