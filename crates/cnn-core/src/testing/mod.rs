//! Test support (the `testing` feature), shared by every backend's tests.
//!
//! - [`assert`]: [`assert_close`] / [`check_close`], closeness with an
//!   absolute plus a relative tolerance and a report of the worst elements.
//! - [`reference`]: naive f64 reference kernels for every op of the
//!   [`Backend`](crate::Backend) trait, the oracle of all the checks.
//! - [`strategies`]: proptest strategies for op shapes and a seeded value
//!   generator.
//! - [`conformance`]: `check_conv2d::<B>(&backend)`-style functions that run
//!   a backend's ops on random shapes and values and compare them with the
//!   reference; [`conformance::run_all`] runs every check.
//! - [`golden`]: runs the PyTorch golden cases of `testdata/golden/layers.json`
//!   through a backend ([`golden::run_golden_layers`]).
//!
//! Everything here is plain generic functions (no macros), so a backend's
//! test file is one `#[test]` per check calling it with its backend.

pub mod assert;
pub mod conformance;
pub mod golden;
pub mod gradcheck;
mod host;
pub mod reference;
pub mod strategies;

pub use assert::{assert_close, check_close, check_close_scalar};
pub use golden::{golden_dir, run_golden_layers};
