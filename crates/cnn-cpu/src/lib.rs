//! # cnn-cpu
//!
//! `CpuBackend`: every op of the `cnn-core` Backend trait on the CPU.
//!
//! Where things live (one module per op family, matching
//! `cnn_core::backend`):
//! - `memory`: buffers are plain `Vec<f32>` / `Vec<u32>`.
//! - `gemm`: the only GEMM entry point: a packed AVX-512/AVX2 GEMM chosen
//!   at run time, `matrixmultiply::sgemm` elsewhere.
//! - `conv`: im2col + GEMM, parallel over the batch (`conv::columns`:
//!   the column matrix packed straight from the input, and col2im);
//!   `conv::direct`: direct convolution kernels for small layers (LeNet),
//!   portable code and dispatch, with the `avx2` and `avx512` kernels in
//!   files of their own; `conv::winograd`: Winograd F(4x4,3x3) and
//!   F(2x2,3x3) for stride-1 3x3 layers; `conv::choice`: which path a
//!   layer takes ([`ConvAlgorithm`] forces one).
//! - `pool`: max, average and global-average pooling; `pool::max2x2`: the
//!   2x2 stride-2 max-pooling fast path (scalar, with `avx2` and `avx512`
//!   versions in files of their own).
//! - `cpu_features`: which SIMD instruction sets the CPU has (asked once).
//! - `par`: chunked parallel loops and the shared scratch-buffer pools.
//! - `team`: the pool's workers kept awake for the length of one
//!   `Backend::run` call, so that data-parallel phases start and end
//!   without futex wake-ups.
//! - `activation`, `norm`, `loss`, `elementwise`, `optim`: plain
//!   loops the compiler vectorises, parallelised with rayon where large.
//!
//! Parallelism uses the backend's own rayon pool (`CpuBackend::with_threads`);
//! a rayon task never calls a threaded GEMM (no nested parallelism). For a
//! data-parallel step (`cnn_core::DataParallel`) each worker runs whole ops
//! on a one-thread handle of the same pool (`Backend::shard_handle`), and
//! the convolution weight gradient is summed per contiguous part of
//! `ceil(n / threads)` images in every case, so that split and unsplit
//! steps agree bit for bit. That partition is why results depend on the
//! thread count (to rounding); every other sum runs in an order fixed by
//! the shapes. A pool has at most `CpuBackend::max_threads()` workers.

mod activation;
mod conv;
mod cpu_features;
mod elementwise;
mod gemm;
mod loss;
mod memory;
mod norm;
mod optim;
mod par;
mod pool;
mod team;

use std::sync::Arc;

use cnn_core::{Backend, CnnError, Result};

pub use conv::ConvAlgorithm;

/// Thread counts up to this are always granted, whatever the core count: a
/// few threads more than cores cost little (on two cores, 4 threads train
/// the default model about 10% slower than 2), and the 2- to 4-thread
/// paths (teams, data-parallel splits) then run, and give the same bits,
/// on every machine.
pub const MIN_THREAD_CAP: usize = 4;

/// The CPU backend. Cloning is cheap (the thread pool is shared).
#[derive(Clone)]
pub struct CpuBackend {
    pool: Arc<rayon::ThreadPool>,
    threads: usize,
    /// The convolution algorithm forced on this backend, if any.
    conv: Option<ConvAlgorithm>,
}

impl std::fmt::Debug for CpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuBackend")
            .field("threads", &self.threads)
            .finish()
    }
}

impl CpuBackend {
    /// A backend using every available core.
    pub fn new() -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self::with_threads(threads).unwrap_or_else(|_| CpuBackend::single_threaded())
    }

    /// A backend with its own pool of `threads` worker threads: at least 1,
    /// at most [`CpuBackend::max_threads`] (a larger count is accepted and
    /// gives that many).
    pub fn with_threads(threads: usize) -> Result<Self> {
        let threads = threads.clamp(1, Self::max_threads());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("cnn-cpu-{i}"))
            .build()
            .map_err(|e| CnnError::Backend {
                backend: "cpu",
                message: format!("cannot start {threads} worker threads: {e}"),
            })?;
        Ok(CpuBackend {
            pool: Arc::new(pool),
            threads,
            conv: None,
        })
    }

    fn single_threaded() -> Self {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .use_current_thread()
            .build()
            .expect("a one-thread pool on the current thread needs no new thread");
        CpuBackend {
            pool: Arc::new(pool),
            threads: 1,
            conv: None,
        }
    }

    /// The most worker threads a backend starts: one per core, but at least
    /// [`MIN_THREAD_CAP`].
    ///
    /// Why a cap: threads beyond the cores cannot run at once, yet each one
    /// would join the polling team of `run` and add a data-parallel replica
    /// (up to 64), a scratch buffer in each `par::BufPool` and a piece to
    /// every rayon split; at 1000 threads on two cores a step made no
    /// progress. The cap leaves the results of the counts below it as they
    /// were, and a larger count gives the cap's results.
    pub fn max_threads() -> usize {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .max(MIN_THREAD_CAP)
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// This backend with `algorithm` forced on every convolution it can
    /// take (the others keep the default choice), over `CNN_CPU_CONV`:
    /// for measurements and tests that compare algorithms in one process.
    pub fn with_conv_algorithm(mut self, algorithm: ConvAlgorithm) -> Self {
        self.conv = Some(algorithm);
        self
    }

    /// The convolution algorithm forced by [`CpuBackend::with_conv_algorithm`].
    pub fn conv_algorithm(&self) -> Option<ConvAlgorithm> {
        self.conv
    }

    /// Run `f` inside this backend's thread pool (every parallel op forks
    /// in here), waking the helpers of a `run` team that sleep.
    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        team::nudge(&self.pool);
        self.pool.install(f)
    }
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    /// Runs `f` on a worker with the pool's other workers as its team
    /// (see `team`): they poll for `for_each_shard` work and steal the
    /// rayon jobs of `f`'s ops until `f` returns.
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let helpers = self.threads - 1;
        self.pool
            .install(|| team::run_as_team(&self.pool, helpers, f))
    }

    fn shards(&self) -> usize {
        self.threads
    }

    /// The same pool with a thread count of 1: every op then runs on the
    /// thread that calls it (each op checks `threads > 1` before using the
    /// pool).
    fn shard_handle(&self) -> Self {
        CpuBackend {
            pool: Arc::clone(&self.pool),
            threads: 1,
            conv: self.conv,
        }
    }

    fn for_each_shard<T: Send>(&self, items: &mut [T], f: impl Fn(usize, &mut T) + Sync + Send) {
        use rayon::prelude::*;
        if self.threads <= 1 || items.len() <= 1 {
            for (i, item) in items.iter_mut().enumerate() {
                f(i, item);
            }
            return;
        }
        if team::for_each_shard(&self.pool, items, &f) {
            return;
        }
        // Outside a `run` call: one task per item (no adaptive splitting: each item is a whole
        // step's worth of work).
        self.pool.install(|| {
            items
                .par_iter_mut()
                .with_max_len(1)
                .enumerate()
                .for_each(|(i, item)| f(i, item))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread count far above the cores starts no more workers than the
    /// cap, and the team and the data-parallel shards follow the pool.
    #[test]
    fn thread_counts_above_the_cores_are_capped() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cap = cores.clamp(MIN_THREAD_CAP, 1000);
        assert_eq!(CpuBackend::max_threads().min(1000), cap);
        let be = CpuBackend::with_threads(1000).unwrap();
        assert_eq!(be.threads(), cap);
        assert_eq!(be.shards(), cap);
        assert_eq!(be.pool.current_num_threads(), cap);
        // Up to the cap, the count asked for is kept.
        assert_eq!(CpuBackend::with_threads(3).unwrap().threads(), 3);
    }
}
