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
mod precision;
mod resident;

pub use activation::{Activation, ActivationOps};
pub use conv::{Conv2dGeometry, Conv2dParams, ConvOps};
pub use elementwise::{BiasParams, ElementwiseOps};
pub use gemm::{GemmOps, GemmParams};
pub use loss::{CrossEntropyParams, LossOps};
pub use memory::MemoryOps;
pub use norm::{BatchNormParams, DropoutParams, NormOps};
pub use optim::{
    AdadeltaStep, AdagradStep, AdamStep, AdamaxStep, AsgdStep, LionStep, NadamStep, OptimOps,
    RadamStep, RmspropStep, RpropStep, SgdStep, check_optim_state, missing_optim_state,
};
pub use pool::{Pool2dGeometry, Pool2dParams, PoolOps};
pub use precision::Precision;
pub use resident::{
    GatherParams, GatherSource, HostPixels, PixelKind, ResidentOps, ResidentSet, SlotDraw,
    channel_constants, element_source, gather_reference, slot_draw,
};

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
    + ResidentOps
    + Clone
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    /// Short name for logs and reports ("cpu", "cuda").
    fn name(&self) -> &'static str;

    /// Run `f` in the backend's execution context and return its result.
    ///
    /// A training step wrapped in this runs its ops without handing each
    /// one to the backend's workers and waiting for them to finish: the CPU
    /// backend runs `f` on one of its own worker threads, so every op's
    /// parallel section starts from inside the pool, and keeps its other
    /// workers polling for work until `f` returns (they sleep after 1 ms
    /// with none), so that forks and joins inside `f` wake nobody. A
    /// training loop should therefore run a whole epoch's steps inside one
    /// call; calls nest. The default runs `f` where it is called.
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        f()
    }

    /// How many parts of a batch the backend can work on at once, each part
    /// running every op of a step by itself (see
    /// [`DataParallel`](crate::graph::DataParallel)). The CPU backend: its
    /// thread count. The default, 1, means "do not split".
    fn shards(&self) -> usize {
        1
    }

    /// The precision this handle computes convolutions and linear layers
    /// in (see [`Precision`]). The default: f32.
    fn precision(&self) -> Precision {
        Precision::F32
    }

    /// A handle on the same device computing convolutions and linear
    /// layers in `precision`, or [`CnnError::UnsupportedPrecision`](crate::CnnError::UnsupportedPrecision) where
    /// the backend has no such mode. The default supports f32 only.
    fn with_precision(self, precision: Precision) -> crate::Result<Self> {
        if precision == Precision::F32 {
            Ok(self)
        } else {
            Err(crate::CnnError::UnsupportedPrecision {
                backend: self.name(),
                precision,
                reason: "computes in f32 only (the cuda backend has every mode)".into(),
            })
        }
    }

    /// A handle on the same device whose ops run entirely on the calling
    /// thread: what one part of a split batch runs on. The default is a
    /// clone.
    fn shard_handle(&self) -> Self {
        self.clone()
    }

    /// Call `f(i, &mut items[i])` for every item, at the same time where
    /// the backend can (the CPU backend: one item per worker thread). The
    /// default runs them one after another.
    fn for_each_shard<T: Send>(&self, items: &mut [T], f: impl Fn(usize, &mut T) + Sync + Send) {
        for (i, item) in items.iter_mut().enumerate() {
            f(i, item);
        }
    }
}
