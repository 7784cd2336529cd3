//! # cnn-testing
//!
//! The test support of the `cnn` workspace: what every backend's and
//! crate's tests check against. A dev-dependency only; no library crate
//! depends on it, and it depends on no backend (a backend's test file
//! passes its backend to these generic functions).
//!
//! Where things live:
//! - [`reference`](mod@reference): naive f64 reference kernels for every op of the
//!   [`Backend`](cnn_core::Backend) trait, one file per op family, the
//!   oracle of all the checks. `cargo test -p cnn-testing` runs their own
//!   tests (hand-computed cases) and checks them against PyTorch's golden
//!   values.
//! - [`assert`](mod@assert): [`assert_close`] / [`check_close`], closeness with an
//!   absolute plus a relative tolerance and a report of the worst elements.
//! - [`strategies`]: proptest strategies for op shapes and a seeded value
//!   generator.
//! - [`conformance`]: `check_conv2d::<B>(&backend)`-style functions, one per
//!   op family, that run a backend's ops on random shapes and values and
//!   compare them with the reference; each backend's `tests/conformance.rs`
//!   has one `#[test]` per family.
//! - [`golden`]: runs the PyTorch golden cases of `testdata/golden/layers.json`
//!   through a backend ([`golden::run_golden_layers`]) or through the
//!   reference kernels; one table lists the ops, each described once.
//! - [`gradcheck64`]: gradient checks in f64 with a tight tolerance: every
//!   reference backward against central differences of its forward, and
//!   whole graph specs run by the reference kernels
//!   ([`gradcheck64::graph`]).
//! - [`gradcheck`]: finite-difference gradient checks of a backend's own
//!   (f32) graph, with the looser tolerance f32 needs.
//! - [`skip`](mod@skip): skips that print past the harness's capture, are
//!   logged for CI (`CNN_SKIP_LOG`) and fail under `CNN_REQUIRE_*=1`; the
//!   real MNIST directory ([`mnist_dir`]).
//! - [`mixed`]: CPU emulation of the `tf32`, `bf16` and `f16` precision
//!   modes (operands rounded as PyTorch casts them, sums in f64) and the
//!   per-element bound a device's mixed-precision GEMMs and convolutions
//!   must meet against it.
//! - `host` (private): moving test data to and from a backend, with errors
//!   as strings naming the op.
//!
//! Everything here is plain generic functions (no macros), so a backend's
//! test file is one `#[test]` per check calling it with its backend.

pub mod assert;
pub mod conformance;
pub mod golden;
pub mod gradcheck;
pub mod gradcheck64;
mod host;
pub mod mixed;
pub mod reference;
pub mod skip;
pub mod strategies;

pub use assert::{assert_close, check_close, check_close_scalar};
pub use golden::{golden_dir, golden_floats, run_golden_layers};
pub use skip::{mnist_dir, skip};
