//! # cnn-benches
//!
//! Benchmarks of the `cnn` workspace, in three places:
//! - `benches/ops.rs`, `benches/train_step.rs`: criterion benches (sgemm,
//!   the W3 convolution layer, one LeNet-5 training step), run by
//!   `cargo bench -p cnn-benches`.
//! - `src/bin/cnn-workloads.rs`: the end-to-end workloads W1-W8 of
//!   `docs/benchmarks.md`, one workload per process so that each reports its
//!   own peak memory; `cargo xtask bench` runs it and writes
//!   `target/bench/report.{md,json}`.
//! - `tests/workloads_cli.rs`, `tests/torch_twin.rs`: `cnn-workloads`'s
//!   GPU workloads and precision refusals on the CPU; the PyTorch twin's
//!   networks against the built-ins (skips without torch).
//! - `tests/steady_state_allocations.rs`: a counting global allocator
//!   showing that a warmed-up training step allocates nothing (LeNet-5,
//!   the article's classifier, ResNet-20, VGG).
//!
//! This library holds what they share:
//! - [`trainer`]: [`Trainer`], one classifier training step (forward,
//!   softmax cross-entropy, backward, optimizer step) with every buffer
//!   allocated up front, and test-set accuracy.
//! - [`workloads`]: the workloads themselves (W1 LeNet-5 on MNIST, W2 the
//!   article's classifier on synthetic images, W3 one convolution layer, W4
//!   sgemm, W5/W6 ResNet-20 and VGG training steps at batch 128, W7
//!   ResNet-20 evaluation at batch 256, and the GPU workloads W5-GPU,
//!   ResNet-20 at batch 512, and W8, airbench94 at batch 1024), each
//!   returning a [`workloads::Measurement`].
//! - [`sys`]: thread count from the environment, peak resident memory,
//!   medians.

pub mod sys;
pub mod trainer;
pub mod workloads;

pub use trainer::Trainer;

/// Errors of the bench code: any library error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Result with a [`BoxError`].
pub type Result<T> = std::result::Result<T, BoxError>;
