//! The `Backend` trait, split by op family (one file each).
//!
//! Conventions every implementation follows:
//! - f32 throughout; tensors are NCHW and contiguous; arrays are row-major.
//! - Every op validates its geometry and the length of every buffer it is
//!   given (with the `check_*` helpers beside each params struct) and returns
//!   [`CnnError`](crate::CnnError) instead of panicking or writing out of
//!   bounds.
//! - **Activation gradients overwrite** their output buffer (`dx`);
//!   **parameter gradients accumulate** (`dw += ...`, `db += ...`), so
//!   gradients of several backward passes add up until the optimizer zeroes
//!   them.
//! - Ops that produce a host scalar (loss, norms) return it; everything else
//!   stays in device memory.

mod activation;
mod conv;
mod elementwise;
mod gemm;
mod loss;
mod memory;
mod norm;
mod optim;
mod pool;

pub use activation::{Activation, ActivationOps};
pub use conv::{Conv2dGeometry, Conv2dParams, ConvOps};
pub use elementwise::{BiasParams, ElementwiseOps};
pub use gemm::{GemmOps, GemmParams};
pub use loss::{CrossEntropyParams, LossOps};
pub use memory::MemoryOps;
pub use norm::{BatchNormParams, DropoutParams, NormOps};
pub use optim::{
    AdadeltaStep, AdagradStep, AdamStep, AdamaxStep, NadamStep, OptimOps, RadamStep, RmspropStep,
    SgdStep, check_optim_state, missing_optim_state,
};
pub use pool::{Pool2dGeometry, Pool2dParams, PoolOps};

/// A compute backend: device memory plus every op the layers need.
///
/// A backend value is a cheap handle (clone it freely); it owns whatever
/// device context, thread pool and workspaces it needs.
pub trait Backend:
    MemoryOps
    + GemmOps
    + ConvOps
    + PoolOps
    + ActivationOps
    + NormOps
    + LossOps
    + ElementwiseOps
    + OptimOps
    + Clone
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    /// Short name for logs and reports ("cpu", "cuda").
    fn name(&self) -> &'static str;
}
