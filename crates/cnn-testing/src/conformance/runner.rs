//! How every conformance check runs its cases: a deterministic proptest
//! runner, the case counts, and helpers to combine comparisons.

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// Cases per op for the cheap ops.
pub const CASES: u32 = 64;
/// Cases per op for convolution and GEMM (each case runs several ops on
/// tensors of up to a few thousand elements, and the reference is naive).
pub const HEAVY_CASES: u32 = 40;

/// Run `test` on `cases` values of `strategy` with a fixed, deterministic
/// runner; panic with the (shrunk) failing case and its report.
pub(crate) fn run_cases<S: Strategy>(
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
pub(crate) fn all_ok(results: impl IntoIterator<Item = Result<(), String>>) -> Result<(), String> {
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

/// `a + k * b`, for expected accumulated gradients.
pub(crate) fn plus_times(a: &[f32], k: f64, b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) + k * y)
        .collect()
}
