//! # cnn-cuda
//!
//! `CudaBackend`: every op of the `cnn-core` Backend trait on an NVIDIA GPU.
//!
//! Nothing here needs a CUDA toolkit to build: cudarc loads the driver
//! (`libcuda`), NVRTC (`libnvrtc`) and cuBLAS (`libcublas`) at run time, and
//! [`CudaBackend::new`] returns a [`CudaError`] (never panics) when one of
//! them or a device is missing.
//!
//! Where things live (one module per op family, matching
//! `cnn_core::backend`; each kernel source `foo.cu` sits beside the
//! `foo.rs` that launches it):
//! - `kernels`: the NVRTC compile cache. Every `.cu` is embedded with
//!   `include_str!` (after the shared `prelude.cuh`), compiled on first use
//!   to a CUBIN for the device's architecture and cached per process;
//!   modules and functions are cached per backend.
//! - `launch`: launch configurations (grid-stride loops) and the `launch!`
//!   macro.
//! - `memory`: buffers are `CudaSlice<f32>` / `CudaSlice<u32>`.
//! - `gemm`: the GEMM entry point (row-major through the column-major
//!   transpose identity `C^T = B^T A^T`), `cublasSgemm` in f32 mode.
//! - `mixed`: the same products in the `tf32`, `bf16` and `f16` modes
//!   (`Backend::with_precision`, `torch.autocast` semantics):
//!   `cublasGemmEx` on TF32, or on bf16/f16 operands converted by
//!   `gemm.cu` into scratch buffers that only grow; f32 accumulation
//!   and output. Every other op stays f32.
//! - `conv`: im2col + strided-batched cuBLAS GEMM, col2im for the input
//!   gradient, per-image GEMMs accumulating the weight gradient.
//! - `resident`: `ResidentOps`, training batches gathered on the device
//!   from a training set uploaded once (`memory.cu`'s `gather_batch`).
//! - `pool`, `activation`, `norm` (batch norm, Philox dropout), `loss`,
//!   `elementwise` (with the f64 reductions), `optim` (fused updates): NVRTC
//!   kernels.
//!
//! Status: checked on an NVIDIA H200 (driver 580, CUDA 13.0) with
//! `cargo xtask gpu-check`: the conformance suite, the golden layer cases,
//! the CPU comparison proptests and the LeNet-5 curve test pass there
//! (all but `conv2d_wide_indices_give_the_same_bits`, written after the
//! last GPU run, and the chunk bound for the weight gradient's parts), and
//! `nvrtc_compiles_all_kernels` runs in CI without a GPU. Timings against
//! PyTorch on that GPU are in `docs/benchmarks.md` ("On a GPU").
//!
//! Everything runs on one stream, so cudarc's per-buffer event tracking is
//! switched off. Host scalars (sums, losses) come from per-block f64
//! partial sums downloaded and added on the host.

#[macro_use]
mod launch;
mod activation;
mod conv;
mod elementwise;
mod gemm;
mod kernels;
mod loss;
mod memory;
mod mixed;
mod norm;
mod optim;
mod pool;
mod resident;

use std::sync::Arc;

use cnn_core::{Backend, CnnError, Precision};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaStream};

pub use kernels::{KernelSource, compile_all_kernels, kernel_image, nvrtc_version};

/// Why the CUDA backend could not start (or a CUDA call failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CudaError {
    /// A CUDA library could not be loaded (`libcuda`, `libnvrtc`, `libcublas`).
    #[error("cannot load the CUDA {library} library ({hint})")]
    LibraryNotFound {
        library: &'static str,
        hint: &'static str,
    },
    /// The driver loaded but reports no CUDA device.
    #[error("no CUDA device found")]
    NoDevice,
    /// The requested device ordinal does not exist.
    #[error("CUDA device {ordinal} does not exist ({count} found)")]
    BadOrdinal { ordinal: usize, count: usize },
    /// A driver call failed.
    #[error("CUDA driver: {0}")]
    Driver(String),
    /// A cuBLAS call failed.
    #[error("cuBLAS: {0}")]
    Cublas(String),
    /// NVRTC could not compile a kernel source.
    #[error("NVRTC: {0}")]
    Nvrtc(String),
}

impl From<CudaError> for CnnError {
    fn from(e: CudaError) -> Self {
        CnnError::Backend {
            backend: "cuda",
            message: e.to_string(),
        }
    }
}

pub(crate) fn driver_err(e: cudarc::driver::DriverError) -> CnnError {
    CudaError::Driver(format!("{e:?}")).into()
}

pub(crate) fn cublas_err(e: cudarc::cublas::result::CublasError) -> CnnError {
    CudaError::Cublas(format!("{e:?}")).into()
}

/// Which CUDA libraries can be loaded on this machine (driver, NVRTC,
/// cuBLAS), checked without panicking.
pub fn libraries_present() -> Result<(), CudaError> {
    // SAFETY: these only try to dlopen the libraries by name.
    let driver = unsafe { cudarc::driver::sys::is_culib_present() };
    if !driver {
        return Err(CudaError::LibraryNotFound {
            library: "driver",
            hint: "libcuda.so: is an NVIDIA driver installed?",
        });
    }
    if !kernels::nvrtc_present() {
        return Err(CudaError::LibraryNotFound {
            library: "NVRTC",
            hint: "libnvrtc.so: install the CUDA toolkit or the nvidia-cuda-nvrtc wheel and add its lib folder to LD_LIBRARY_PATH",
        });
    }
    // SAFETY: as above.
    let cublas = unsafe { cudarc::cublas::sys::is_culib_present() };
    if !cublas {
        return Err(CudaError::LibraryNotFound {
            library: "cuBLAS",
            hint: "libcublas.so: install the CUDA toolkit or the nvidia-cublas wheel and add its lib folder to LD_LIBRARY_PATH",
        });
    }
    Ok(())
}

/// Keep memory freed into the device's default pool there instead of
/// handing it back to the driver at every synchronisation (the pool's
/// release threshold is 0 by default). Per-call workspaces (im2col columns,
/// partial sums) are allocated on the stream from that pool; without this,
/// each call after a synchronisation paid for a fresh driver allocation.
fn keep_freed_memory(ctx: &CudaContext) -> Result<(), CudaError> {
    use cudarc::driver::sys;
    if !ctx.has_async_alloc() {
        return Ok(());
    }
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let mut threshold = u64::MAX;
    // SAFETY: `pool` receives the device's default pool handle, and the
    // release threshold attribute takes a pointer to a u64.
    unsafe {
        sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device())
            .result()
            .and_then(|()| {
                sys::cuMemPoolSetAttribute(
                    pool,
                    sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                    (&mut threshold as *mut u64).cast(),
                )
                .result()
            })
    }
    .map_err(|e| {
        CudaError::Driver(format!(
            "setting the memory pool's release threshold: {e:?}"
        ))
    })
}

/// The CUDA backend. Cloning is cheap (the context, stream, cuBLAS handle
/// and kernel cache are shared). A handle carries its [`Precision`]
/// (`Backend::with_precision`; f32 by default), the mode its convolutions
/// and linear layers compute in (see `mixed.rs`).
#[derive(Clone)]
pub struct CudaBackend {
    inner: Arc<Inner>,
    precision: Precision,
}

pub(crate) struct Inner {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) blas: CudaBlas,
    pub(crate) kernels: kernels::KernelCache,
    device_name: String,
    /// Testing aid: im2col/col2im with 64-bit indices even where 32-bit
    /// ones fit (see [`CudaBackend::set_wide_indices`]).
    pub(crate) wide_indices: std::sync::atomic::AtomicBool,
    /// The compute capability's major number (bf16 needs 8).
    major: i32,
    /// The conversion buffers of the bf16 and f16 GEMMs (`mixed.rs`),
    /// shared by every handle of this backend.
    pub(crate) scratch: std::sync::Mutex<mixed::Scratch>,
    /// Bytes copied from the host by `MemoryOps` uploads (see
    /// [`CudaBackend::uploaded_bytes`]).
    pub(crate) uploaded: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("device", &self.inner.device_name)
            .field("ordinal", &self.inner.ctx.ordinal())
            .field("arch", &self.inner.kernels.arch())
            .field("precision", &self.precision)
            .finish()
    }
}

impl CudaBackend {
    /// A backend on device 0, or an error when the CUDA libraries or a
    /// device are missing.
    pub fn new() -> Result<Self, CudaError> {
        Self::with_device(0)
    }

    /// A backend on device `ordinal`.
    pub fn with_device(ordinal: usize) -> Result<Self, CudaError> {
        libraries_present()?;
        cudarc::driver::result::init().map_err(|e| CudaError::Driver(format!("cuInit: {e:?}")))?;
        let count = cudarc::driver::result::device::get_count()
            .map_err(|e| CudaError::Driver(format!("cuDeviceGetCount: {e:?}")))?
            .max(0) as usize;
        if count == 0 {
            return Err(CudaError::NoDevice);
        }
        if ordinal >= count {
            return Err(CudaError::BadOrdinal { ordinal, count });
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| CudaError::Driver(format!("{e:?}")))?;
        // One stream only: no cross-stream hazards to track.
        // SAFETY: every buffer of this backend is used on `stream` alone.
        unsafe { ctx.disable_event_tracking() };
        keep_freed_memory(&ctx)?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| CudaError::Driver(format!("{e:?}")))?;
        let device_name = ctx.name().unwrap_or_else(|_| "unknown".into());
        let stream = ctx.default_stream();
        let blas =
            CudaBlas::new(stream.clone()).map_err(|e| CudaError::Cublas(format!("{e:?}")))?;
        Ok(CudaBackend {
            inner: Arc::new(Inner {
                ctx,
                stream,
                blas,
                kernels: kernels::KernelCache::new(format!("sm_{major}{minor}")),
                device_name,
                wide_indices: std::sync::atomic::AtomicBool::new(false),
                major,
                scratch: std::sync::Mutex::new(mixed::Scratch::default()),
                uploaded: std::sync::atomic::AtomicU64::new(0),
            }),
            precision: Precision::F32,
        })
    }

    /// The device's name as the driver reports it.
    pub fn device_name(&self) -> &str {
        &self.inner.device_name
    }

    /// The NVRTC target architecture of this device (`sm_90` for Hopper).
    pub fn arch(&self) -> &str {
        self.inner.kernels.arch()
    }

    /// Testing aid: when `on`, this backend (and its clones) run im2col and
    /// col2im with 64-bit indices, the variant that only layers of 2^31
    /// elements or more take otherwise, so tests can hold the two to the
    /// same bits.
    #[doc(hidden)]
    pub fn set_wide_indices(&self, on: bool) {
        self.inner
            .wide_indices
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes this backend (and its clones) has copied from the host
    /// through `MemoryOps` uploads since it was made: how a test sees that
    /// a training step with a resident training set uploads no batch.
    pub fn uploaded_bytes(&self) -> u64 {
        self.inner
            .uploaded
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Compile and load every kernel source now instead of on first use.
    pub fn warm_up(&self) -> cnn_core::Result<()> {
        for src in KernelSource::ALL {
            self.inner.kernels.module(&self.inner.ctx, src)?;
        }
        Ok(())
    }

    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.inner.stream
    }

    pub(crate) fn function(
        &self,
        src: KernelSource,
        name: &'static str,
    ) -> cnn_core::Result<cudarc::driver::CudaFunction> {
        self.inner.kernels.function(&self.inner.ctx, src, name)
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn precision(&self) -> Precision {
        self.precision
    }

    /// Every mode: `f32` (the default, `cublasSgemm`), `tf32`, `bf16`
    /// (compute capability 8.0 or later, else
    /// [`CnnError::UnsupportedPrecision`]) and `f16`; see `mixed.rs`.
    fn with_precision(self, precision: Precision) -> cnn_core::Result<Self> {
        if !mixed::supported(precision, self.inner.major) {
            return Err(mixed::unsupported(precision, self.inner.major));
        }
        Ok(CudaBackend { precision, ..self })
    }
}
