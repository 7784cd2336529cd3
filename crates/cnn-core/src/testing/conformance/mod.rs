//! The conformance suite every backend runs: plain generic functions, one
//! per op family, each comparing the backend's ops with the
//! [`reference`](super::reference) kernels on random shapes and values.
//!
//! ```text
//! #[test]
//! fn conv2d() {
//!     cnn_core::testing::conformance::check_conv2d(&MyBackend::new());
//! }
//! ```
//!
//! Each check runs a proptest [`TestRunner`] with a fixed configuration
//! and a deterministic RNG (the same cases on every run and machine), and
//! panics with the smallest failing case it finds. Outputs that an op
//! overwrites are pre-filled with NaN, so an element the op forgets to
//! write shows up; accumulated gradients are pre-filled with random values
//! and checked after two calls (the second must add the same again).
//!
//! Tolerances are named constants beside each check, with the reason for
//! their size.

mod activation;
mod conv;
mod elementwise;
mod errors;
mod gemm;
mod loss;
mod memory;
mod norm;
mod optim;
mod pool;

pub use activation::check_activations;
pub use conv::check_conv2d;
pub use elementwise::check_elementwise;
pub use errors::check_errors;
pub use gemm::check_gemm;
pub use loss::check_losses;
pub use memory::check_memory;
pub use norm::{check_batch_norm, check_dropout};
pub use optim::check_optim_updates;
pub use pool::check_pooling;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use crate::backend::Backend;

/// Cases per op for the cheap ops.
pub const CASES: u32 = 64;
/// Cases per op for convolution and GEMM (each case runs several ops on
/// tensors of up to a few thousand elements, and the reference is naive).
pub const HEAVY_CASES: u32 = 40;

/// Run every check of the suite.
pub fn run_all<B: Backend>(backend: &B) {
    check_memory(backend);
    check_gemm(backend);
    check_conv2d(backend);
    check_pooling(backend);
    check_activations(backend);
    check_batch_norm(backend);
    check_dropout(backend);
    check_losses(backend);
    check_elementwise(backend);
    check_optim_updates(backend);
    check_errors(backend);
}

/// Run `test` on `cases` values of `strategy` with a fixed, deterministic
/// runner; panic with the (shrunk) failing case and its report.
fn run_cases<S: Strategy>(
    what: &str,
    backend_name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), String>,
) where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    if let Err(e) = runner.run(&strategy, |case| test(case).map_err(TestCaseError::fail)) {
        panic!("conformance check `{what}` failed on backend `{backend_name}`:\n{e}");
    }
}

/// Collect the results of several comparisons into one.
fn all_ok(results: impl IntoIterator<Item = Result<(), String>>) -> Result<(), String> {
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

/// `a + k * b`, for expected accumulated gradients.
fn plus_times(a: &[f32], k: f64, b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) + k * y)
        .collect()
}
