//! Shared by the GPU tests: the backend, or a printed skip.

#![allow(dead_code)]

use cnn_cuda::CudaBackend;

/// The CUDA backend on device 0, or `None` after printing why `test`
/// skips (a panic instead when `CNN_REQUIRE_CUDA=1`).
pub fn cuda(test: &str) -> Option<CudaBackend> {
    match CudaBackend::new() {
        Ok(be) => Some(be),
        Err(e) => {
            cnn_testing::skip(
                test,
                "CNN_REQUIRE_CUDA",
                &format!("no usable CUDA device ({e})"),
            );
            None
        }
    }
}
