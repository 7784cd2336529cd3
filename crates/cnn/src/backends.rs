//! Choosing among the compiled backends by name at run time, in a
//! precision mode (`--precision`, [`Precision`]).

use cnn_core::{Backend, CnnError, Precision};

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
/// and run `job` on it, in f32. An unknown or not-compiled backend is an
/// error.
pub fn with_backend<J: WithBackend>(
    name: &str,
    threads: usize,
    job: J,
) -> Result<J::Output, CnnError> {
    with_backend_in(name, threads, Precision::F32, job)
}

/// [`with_backend`] with the backend handle in `precision`
/// ([`Backend::with_precision`]): a mode the backend does not compute in
/// is [`CnnError::UnsupportedPrecision`], before `job` runs.
pub fn with_backend_in<J: WithBackend>(
    name: &str,
    threads: usize,
    precision: Precision,
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
            Ok(job.run(backend.with_precision(precision)?))
        }
        #[cfg(feature = "cuda")]
        "cuda" => {
            // `threads` is a CPU setting; the GPU backend ignores it.
            let _ = threads;
            let backend = cnn_cuda::CudaBackend::new()?.with_precision(precision)?;
            Ok(job.run(backend))
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

/// Whether backend `name` computes in `precision`, asked before anything
/// is written (a command's first check): f32 always (the backend itself
/// is made later, with its own errors); another mode by making a handle
/// of the backend in it, so the answer is the backend's own.
pub fn check_precision(name: &str, precision: Precision) -> Result<(), CnnError> {
    struct Nothing;
    impl WithBackend for Nothing {
        type Output = ();
        fn run<B: Backend>(self, _: B) {}
    }
    if precision == Precision::F32 {
        return Ok(());
    }
    with_backend_in(name, 1, precision, Nothing)
}

#[cfg(all(test, feature = "cpu"))]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_backend_runs_in_f32_only() {
        assert!(check_precision("cpu", Precision::F32).is_ok());
        for p in [Precision::Tf32, Precision::Bf16, Precision::F16] {
            let err = check_precision("cpu", p).unwrap_err();
            assert!(
                matches!(err, CnnError::UnsupportedPrecision { precision, .. } if precision == p),
                "{err}"
            );
            let text = err.to_string();
            assert!(text.contains("cpu") && text.contains(p.name()), "{text}");
        }
        struct Mode;
        impl WithBackend for Mode {
            type Output = Precision;
            fn run<B: Backend>(self, b: B) -> Precision {
                b.precision()
            }
        }
        assert_eq!(
            with_backend_in("cpu", 1, Precision::F32, Mode).unwrap(),
            Precision::F32
        );
        assert!(with_backend_in("cpu", 1, Precision::Bf16, Mode).is_err());
    }
}
