//! Shared by the GPU tests: the backend, or a printed skip.

#![allow(dead_code)]

use cnn_cuda::CudaBackend;

/// Whether `CNN_REQUIRE_CUDA=1` turns a missing GPU into a failure.
pub fn cuda_required() -> bool {
    std::env::var("CNN_REQUIRE_CUDA").is_ok_and(|v| v == "1")
}

/// The CUDA backend on device 0, or `None` after printing why `test`
/// skips (a panic instead when `CNN_REQUIRE_CUDA=1`).
pub fn cuda(test: &str) -> Option<CudaBackend> {
    match CudaBackend::new() {
        Ok(be) => Some(be),
        Err(e) if cuda_required() => panic!("CNN_REQUIRE_CUDA=1 but {test} has no GPU: {e}"),
        Err(e) => {
            println!("SKIPPED {test}: no usable CUDA device ({e})");
            None
        }
    }
}
