//! Without a GPU (or without the CUDA libraries) the backend reports a
//! typed error instead of panicking.

use cnn_cuda::{CudaBackend, CudaError};

#[test]
fn new_never_panics() {
    match CudaBackend::new() {
        Ok(be) => println!("CUDA device found: {be:?}"),
        Err(e) => {
            println!("no CUDA backend here: {e}");
            assert!(matches!(
                e,
                CudaError::LibraryNotFound { .. }
                    | CudaError::NoDevice
                    | CudaError::Driver(_)
                    | CudaError::Cublas(_)
            ));
            let as_cnn: cnn_core::CnnError = e.into();
            assert!(as_cnn.to_string().starts_with("backend `cuda`"));
        }
    }
}

#[test]
fn compile_errors_are_reported_not_panics() {
    // Without libnvrtc this is the typed "library not found" error; with it,
    // every source compiles (nvrtc.rs checks the output).
    if cnn_cuda::nvrtc_version().is_none() {
        assert!(matches!(
            cnn_cuda::compile_all_kernels("sm_90"),
            Err(CudaError::LibraryNotFound { .. })
        ));
    }
}
