//! Choosing among the compiled backends by name at run time.

use cnn_core::{Backend, CnnError};

/// Something to run on whichever backend is chosen.
pub trait WithBackend {
    type Output;
    /// Run on `backend`.
    fn run<B: Backend>(self, backend: B) -> Self::Output;
}

/// The backends this build includes, by name.
pub fn compiled() -> Vec<&'static str> {
    let mut names = Vec::new();
    if cfg!(feature = "cpu") {
        names.push("cpu");
    }
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    names
}

/// Create backend `name` with `threads` worker threads (0 = all cores)
/// and run `job` on it. An unknown or not-compiled backend is an error.
pub fn with_backend<J: WithBackend>(
    name: &str,
    threads: usize,
    job: J,
) -> Result<J::Output, CnnError> {
    match name {
        #[cfg(feature = "cpu")]
        "cpu" => {
            let backend = if threads == 0 {
                cnn_cpu::CpuBackend::new()
            } else {
                cnn_cpu::CpuBackend::with_threads(threads)?
            };
            Ok(job.run(backend))
        }
        #[cfg(feature = "cuda")]
        "cuda" => {
            // `threads` is a CPU setting; the GPU backend ignores it.
            let _ = threads;
            Ok(job.run(cnn_cuda::CudaBackend::new()?))
        }
        #[cfg(not(feature = "cuda"))]
        "cuda" => Err(CnnError::Backend {
            backend: "cuda",
            message: "this build has no CUDA backend (build with `--features cuda`)".into(),
        }),
        other => Err(CnnError::value(
            "backend",
            format!(
                "unknown backend `{other}` (compiled: {})",
                compiled().join(", ")
            ),
        )),
    }
}
