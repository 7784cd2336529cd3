//! # cnn-core
//!
//! The backend-agnostic heart of the `cnn` framework for training
//! convolutional networks and studying their learning curves.
//!
//! Where things live:
//! - [`shape`], [`tensor`]: `Shape` and `Tensor<B>` (a shape plus a buffer in
//!   backend `B`'s memory; NCHW, f32, contiguous).
//! - [`backend`]: the `Backend` trait, split into op families (memory, GEMM,
//!   convolution, pooling, activations, normalisation and dropout, losses,
//!   elementwise and reductions, optimizer updates), one file each, with each
//!   op's parameter struct and shape maths beside its trait.
//! - [`param`]: `Param<B>`, a named trainable tensor with its gradient.
//! - [`layers`]: `LayerSpec` (backend-free config with shape inference) and
//!   the `Layer` implementations, forward and backward side by side.
//! - [`graph`]: `GraphSpec`/`GraphBuilder` (a model as data, validated at
//!   build time), `Graph<B>` (forward, backward, params, state_dict) and
//!   `DataParallel` (a training step split across the backend's workers,
//!   equal to the unsplit one).
//! - [`losses`]: softmax cross-entropy (label smoothing) and MSE.
//! - [`init`]: PyTorch's default initialisation.
//! - [`models`]: the built-in architectures (LeNet-5, the article's
//!   classifier, a small VGG, ResNet-20).
//! - [`rng`]: the counter-based Philox generator behind dropout masks and
//!   initialisation, reproducible on any backend.
//! - [`error`]: `CnnError`, the typed error everything returns.
//!
//! Parameter gradients accumulate and activation gradients overwrite; see
//! [`backend`] for the conventions every backend follows.
//!
//! cnn-core depends on no backend library: backends live in `cnn-cpu` and
//! `cnn-cuda`. The reference kernels, conformance suite and golden harness
//! the backends are tested against live in the `cnn-testing` crate.

pub mod backend;
pub mod error;
pub mod graph;
pub mod init;
pub mod layers;
pub mod losses;
pub mod models;
pub mod param;
mod per_size;
pub mod rng;
pub mod shape;
pub mod tensor;

pub use backend::*;
pub use error::{CnnError, Result};
pub use graph::{ArrayData, DataParallel, Graph, GraphBuilder, GraphSpec, NamedArray, StateKind};
pub use layers::{LayerSpec, Mode};
pub use losses::{MeanSquaredError, MixedTargets, SoftmaxCrossEntropy};
pub use param::{Param, ParamKind};
pub use shape::Shape;
pub use tensor::Tensor;
