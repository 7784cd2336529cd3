//! A safetensors file loaded into a LeNet-5 on the CPU backend: wrong
//! names, shapes and dtypes, truncated headers and huge declared sizes
//! must all be typed errors, and a failed load changes nothing.
#![no_main]

use std::path::Path;

use cnn_core::Graph;
use cnn_core::models::{ModelOptions, lenet5};
use cnn_cpu::CpuBackend;
use cnn_fuzz::limited_allocator;
use libfuzzer_sys::fuzz_target;

limited_allocator!();

fuzz_target!(|data: &[u8]| {
    cnn_fuzz::input(data.len(), cnn_fuzz::DEFAULT_FLOOR);
    let Ok((arrays, _metadata)) = cnn_train::checkpoint::parse_safetensors(data, Path::new("fuzz"))
    else {
        return;
    };
    let backend = CpuBackend::with_threads(1).expect("one thread");
    let spec = lenet5(&ModelOptions::new([1, 28, 28], 10)).expect("LeNet-5 is valid");
    let mut graph = Graph::new(&backend, spec, 0).expect("LeNet-5 builds");
    let before = graph.state_dict().expect("state_dict");
    if graph.load_state_dict(&arrays).is_err() {
        assert_eq!(graph.state_dict().expect("state_dict"), before);
    }
});
