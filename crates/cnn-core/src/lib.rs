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
//! - [`rng`]: the counter-based Philox generator behind dropout masks and
//!   initialisation, reproducible on any backend.
//! - [`error`]: `CnnError`, the typed error everything returns.
//!
//! Parameter gradients accumulate and activation gradients overwrite; see
//! [`backend`] for the conventions every backend follows.
//!
//! cnn-core depends on no backend library: backends live in `cnn-cpu` and
//! `cnn-cuda`.

pub mod backend;
pub mod error;
pub mod param;
pub mod rng;
pub mod shape;
pub mod tensor;
#[cfg(feature = "testing")]
pub mod testing;

pub use backend::*;
pub use error::{CnnError, Result};
pub use param::{Param, ParamKind};
pub use shape::Shape;
pub use tensor::Tensor;
