//! The conformance suite every backend runs: plain generic functions, one
//! per op family, each comparing the backend's ops with the
//! [`reference`](crate::reference) kernels on random shapes and values.
//!
//! ```text
//! #[test]
//! fn conv2d() {
//!     cnn_testing::conformance::check_conv2d(&MyBackend::new());
//! }
//! ```
//!
//! Each check runs a proptest
//! [`TestRunner`](proptest::test_runner::TestRunner) with a fixed configuration
//! and a deterministic RNG (the same cases on every run and machine), and
//! panics with the smallest failing case it finds. Outputs that an op
//! overwrites are pre-filled with NaN, so an element the op forgets to
//! write shows up; accumulated gradients are pre-filled with random values
//! and checked after two calls (the second must add the same again).
//!
//! Tolerances are named constants beside each check, with the reason for
//! their size.
//!
//! The `check_*` functions re-exported below are the list of op families;
//! each backend's `tests/conformance.rs` gives every one its own `#[test]`
//! (so a failure names its family), and `runner` holds what they share.

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
mod runner;

pub use activation::check_activations;
pub use conv::{check_conv2d, check_conv2d_case};
pub use elementwise::check_elementwise;
pub use errors::check_errors;
pub use gemm::{check_gemm, check_gemm_case};
pub use loss::check_losses;
pub use memory::check_memory;
pub use norm::{check_batch_norm, check_batch_norm_relu, check_dropout};
pub use optim::check_optim_updates;
pub use pool::{check_max_pool_case, check_pooling};
pub use runner::{CASES, HEAVY_CASES};
