//! # cnn
//!
//! Train convolutional networks and study their learning curves. This
//! facade re-exports the workspace's crates and picks backends by cargo
//! feature:
//!
//! - [`core`] (`cnn-core`): shapes, tensors, the `Backend` trait, layers,
//!   the layer graph, losses, built-in models.
//! - [`cpu`] (`cnn-cpu`, feature `cpu`, on by default): `CpuBackend`.
//! - `cuda` (`cnn-cuda`, feature `cuda`): `CudaBackend`, chosen at run
//!   time with `--backend cuda`.
//! - [`optim`] (`cnn-optim`): optimizers, schedules, regularizers.
//! - [`data`] (`cnn-data`): datasets and loaders.
//! - [`train`] (`cnn-train`): the trainer, metrics, history, plots.
//! - [`backends`]: choosing a compiled backend by name at run time.
//!
//! ```
//! use cnn::core::models::{lenet5, ModelOptions};
//! use cnn::core::{Graph, Mode};
//!
//! let backend = cnn::DefaultBackend::new();
//! let spec = lenet5(&ModelOptions::new([1, 28, 28], 10)).unwrap();
//! let mut net = Graph::new(&backend, spec, 0).unwrap();
//! let logits = net.forward_host(&vec![0.0; 2 * 28 * 28], 2, Mode::Eval).unwrap();
//! assert_eq!(logits.shape().dims(), &[2, 10]);
//! ```

pub mod backends;

pub use cnn_core as core;
#[cfg(feature = "cpu")]
pub use cnn_cpu as cpu;
#[cfg(feature = "cuda")]
pub use cnn_cuda as cuda;
pub use cnn_data as data;
pub use cnn_optim as optim;
pub use cnn_train as train;

/// The backend used when none is named: the CPU.
#[cfg(feature = "cpu")]
pub type DefaultBackend = cnn_cpu::CpuBackend;

/// The README's code examples, compiled and run as doc tests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
