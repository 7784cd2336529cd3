//! Launch configurations and the `launch!` macro.
//!
//! Elementwise kernels use grid-stride loops (`GRID_STRIDE` in
//! `prelude.cuh`), so the grid is capped and any length is covered;
//! reduction kernels use blocks of exactly [`BLOCK`] threads (the size
//! `block_sum` in `prelude.cuh` is written for).

use cudarc::driver::LaunchConfig;

/// Threads per block of every kernel (`BLOCK` in `prelude.cuh`).
pub(crate) const BLOCK: u32 = 256;
/// Most blocks of a grid-stride launch (enough to fill any current GPU).
pub(crate) const MAX_BLOCKS: usize = 8192;

/// A 1-D launch covering `n` items with grid-stride loops.
pub(crate) fn grid(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, MAX_BLOCKS);
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `blocks` blocks of [`BLOCK`] threads (a block per channel, row, plane;
/// the kernels loop when there are more items than blocks).
pub(crate) fn blocks(items: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (items.clamp(1, 65_535) as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Launch `func` on the backend's stream with `cfg` and the arguments in
/// order: buffers as `&buf` / `&mut buf`, scalars as `&value` (temporaries
/// such as `&(n as u64)` live until the launch). Evaluates to
/// `cnn_core::Result<()>`.
///
/// Every kernel argument must match the `.cu` signature exactly: sizes are
/// `u64`, flags `i32`, reals `f32`, pointers buffers.
macro_rules! launch {
    ($be:expr, $func:expr, $cfg:expr, [$($arg:expr),* $(,)?]) => {{
        use cudarc::driver::PushKernelArg as _;
        let func = $func;
        let mut builder = $be.stream().launch_builder(&func);
        $(
            let a = $arg;
            builder.arg(a);
        )*
        // SAFETY: the caller validated every buffer length against the
        // geometry the kernel indexes with, and the argument list matches
        // the kernel's signature.
        unsafe { builder.launch($cfg) }
            .map(|_| ())
            .map_err(crate::driver_err)
    }};
}
