//! The mixed-precision GEMMs: how a `tf32`, `bf16` or `f16` handle
//! ([`Precision`], `Backend::with_precision`) runs the products of
//! convolutions (forward and both gradients) and linear layers.
//!
//! Semantics of `torch.autocast`: only these products change. Their
//! operands are rounded, the products are summed in f32 (`CUBLAS_COMPUTE_32F`)
//! into the f32 output, and `alpha`/`beta` are f32; im2col, col2im, the
//! bias, the sum of the weight gradient's per-image parts and every other
//! op (batch norm, softmax and the loss, reductions, the optimizer update
//! on the f32 master weights) run exactly as in f32 mode.
//! - `bf16` / `f16`: the `f32_to_bf16` / `f32_to_f16` kernels
//!   (`gemm.cu`, round to nearest even as PyTorch's casts) convert A
//!   and B into this backend's two scratch buffers, then one
//!   `cublasGemmEx` (or `cublasGemmStridedBatchedEx` for a batch) reads
//!   them as `CUDA_R_16BF` / `CUDA_R_16F` and writes C as `CUDA_R_32F`.
//! - `tf32`: the same f32 buffers through `cublasGemm[StridedBatched]Ex`
//!   with `CUBLAS_COMPUTE_32F_FAST_TF32`: cuBLAS may round the operands to
//!   TF32 on tensor cores (on devices before Ampere it computes in f32, as
//!   PyTorch's `allow_tf32` does there).
//! - `f32`: never reaches this module (`gemm.rs` keeps `cublasSgemm`).
//!
//! The scratch buffers ([`Scratch`]) belong to the backend (its clones and
//! other-precision handles share them, behind a mutex held from the
//! conversion to the GEMM's launch). They only grow, to the largest operand
//! seen, so a training step in steady state allocates nothing; since
//! everything runs on one stream, the next conversion into a buffer is
//! ordered after the GEMM that read it. A batch of matrices that share one
//! operand (a convolution's weight, stride 0) converts that matrix once;
//! otherwise each matrix of the batch is converted, packed (the gaps
//! between the matrices, other groups' rows, are not).
//!
//! Activations kept for backward stay f32 (the layers' buffers); each
//! product converts its operands again, so the backward GEMMs round the
//! same f32 activations the forward did.

use std::ffi::c_void;

use cnn_core::{CnnError, Precision, Result};
use cudarc::cublas::GemmConfig;
use cudarc::cublas::result as blas;
use cudarc::cublas::sys::{cublasComputeType_t, cudaDataType};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut, sys::CUdeviceptr};

use crate::kernels::KernelSource;
use crate::launch::grid;
use crate::{CudaBackend, cublas_err, driver_err};

/// A 16-bit operand format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Half {
    Bf16,
    F16,
}

impl Half {
    /// The conversion kernel in `gemm.cu`.
    pub(crate) fn kernel(self) -> &'static str {
        match self {
            Half::Bf16 => "f32_to_bf16",
            Half::F16 => "f32_to_f16",
        }
    }

    fn data_type(self) -> cudaDataType {
        match self {
            Half::Bf16 => cudaDataType::CUDA_R_16BF,
            Half::F16 => cudaDataType::CUDA_R_16F,
        }
    }
}

/// How the GEMMs of a precision mode call cuBLAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExPlan {
    /// The operands' format, `None` for f32 operands (TF32).
    pub operands: Option<Half>,
    pub compute: cublasComputeType_t,
}

impl ExPlan {
    /// The plan of `precision`, `None` for f32 (plain `cublasSgemm`).
    pub(crate) fn of(precision: Precision) -> Option<ExPlan> {
        let (operands, compute) = match precision {
            Precision::F32 => return None,
            Precision::Tf32 => (None, cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32),
            Precision::Bf16 => (Some(Half::Bf16), cublasComputeType_t::CUBLAS_COMPUTE_32F),
            Precision::F16 => (Some(Half::F16), cublasComputeType_t::CUBLAS_COMPUTE_32F),
        };
        Some(ExPlan { operands, compute })
    }

    fn operand_type(self) -> cudaDataType {
        self.operands
            .map_or(cudaDataType::CUDA_R_32F, Half::data_type)
    }
}

/// Whether a device of compute capability `major.x` runs `precision`:
/// bf16 GEMMs need Ampere (8.0) or later, as PyTorch's bf16 autocast does;
/// f16 and TF32 run everywhere (TF32 as f32 before Ampere).
pub(crate) fn supported(precision: Precision, major: i32) -> bool {
    precision != Precision::Bf16 || major >= 8
}

/// How one operand of a (batched) GEMM is converted: `batch` matrices of
/// `len` elements, `src_stride` apart in the f32 buffer, packed into the
/// scratch; the GEMM then reads them `gemm_stride` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Packing {
    pub batch: usize,
    pub len: usize,
    pub src_stride: usize,
    pub gemm_stride: usize,
}

impl Packing {
    /// One operand of `batch` matrices of `len` elements `stride` apart
    /// (0: one matrix shared by the whole batch).
    pub(crate) fn new(len: usize, batch: usize, stride: usize) -> Packing {
        if batch <= 1 || stride == 0 {
            Packing {
                batch: 1,
                len,
                src_stride: len,
                gemm_stride: 0,
            }
        } else {
            Packing {
                batch,
                len,
                src_stride: stride,
                gemm_stride: len,
            }
        }
    }

    /// Elements of scratch the converted operand takes.
    pub(crate) fn elements(&self) -> usize {
        self.batch * self.len
    }
}

/// A (batched) row-major product as `gemm.rs` hands it over: cuBLAS's
/// column-major `cfg` (our B in its first slot), and per matrix of the
/// batch the elements of A and B and the strides of A, B and C (in our
/// slots, as `RowMajorGemm` has them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExGemm {
    pub cfg: GemmConfig<f32>,
    pub batch: usize,
    /// `batch` for cuBLAS (checked by the caller).
    pub batch_i32: i32,
    pub len_a: usize,
    pub len_b: usize,
    pub stride_a: usize,
    pub stride_b: usize,
    pub stride_c: usize,
}

/// The new length of a scratch buffer of `current` elements that must hold
/// `needed`: `None` when it already does (buffers never shrink).
pub(crate) fn grown_len(current: usize, needed: usize) -> Option<usize> {
    (needed > current).then_some(needed)
}

/// The two conversion buffers of a backend (A's and B's operands).
#[derive(Default)]
pub(crate) struct Scratch {
    a: Option<CudaSlice<u16>>,
    b: Option<CudaSlice<u16>>,
}

impl Scratch {
    /// The elements each buffer holds now (A's, B's).
    pub(crate) fn lens(&self) -> (usize, usize) {
        let len = |s: &Option<CudaSlice<u16>>| s.as_ref().map_or(0, CudaSlice::len);
        (len(&self.a), len(&self.b))
    }
}

/// `slot` grown to at least `needed` elements (see [`grown_len`]).
fn ensure<'a>(
    stream: &std::sync::Arc<CudaStream>,
    slot: &'a mut Option<CudaSlice<u16>>,
    needed: usize,
) -> Result<&'a mut CudaSlice<u16>> {
    let current = slot.as_ref().map_or(0, CudaSlice::len);
    if let Some(len) = grown_len(current, needed.max(1)) {
        // Free the old buffer first (stream-ordered, after the GEMMs that
        // read it), then take the larger one.
        *slot = None;
        // SAFETY: the conversion kernel writes every element a GEMM reads.
        *slot = Some(unsafe { stream.alloc::<u16>(len) }.map_err(driver_err)?);
    }
    Ok(slot.as_mut().expect("allocated above"))
}

impl CudaBackend {
    /// Convert one operand (`src`, f32) into `dst` (16-bit) as `pack` says.
    fn convert(
        &self,
        half: Half,
        src: CUdeviceptr,
        dst: CUdeviceptr,
        pack: &Packing,
    ) -> Result<()> {
        launch!(
            self,
            self.function(KernelSource::Gemm, half.kernel())?,
            grid(pack.elements()),
            [
                &src,
                &dst,
                &(pack.batch as u64),
                &(pack.len as u64),
                &(pack.src_stride as u64)
            ]
        )
    }

    /// `g` in a mixed-precision mode. The caller guarantees, as for
    /// `row_major_gemm` in `gemm.rs`, that every matrix lies inside its
    /// buffer and that no size is zero.
    pub(crate) fn mixed_gemm<A, B, C>(
        &self,
        plan: ExPlan,
        g: &ExGemm,
        a: &A,
        b: &B,
        c: &mut C,
    ) -> Result<()>
    where
        A: DevicePtr<f32>,
        B: DevicePtr<f32>,
        C: DevicePtrMut<f32>,
    {
        let cfg = g.cfg;
        let stream = self.stream();
        self.inner.ctx.bind_to_thread().map_err(driver_err)?;
        let (a_ptr, _a_guard) = a.device_ptr(stream);
        let (b_ptr, _b_guard) = b.device_ptr(stream);
        let (c_ptr, _c_guard) = c.device_ptr_mut(stream);
        let pack_a = Packing::new(g.len_a, g.batch, g.stride_a);
        let pack_b = Packing::new(g.len_b, g.batch, g.stride_b);
        // Held until the GEMM is enqueued: no other call converts into the
        // buffers in between.
        let mut scratch = self.inner.scratch.lock().unwrap_or_else(|p| p.into_inner());
        let Scratch { a: sa, b: sb } = &mut *scratch;
        let (a_in, b_in, stride_a, stride_b, _guards) = match plan.operands {
            None => (a_ptr, b_ptr, g.stride_a, g.stride_b, None),
            Some(half) => {
                let sa = ensure(stream, sa, pack_a.elements())?;
                let sb = ensure(stream, sb, pack_b.elements())?;
                let (sa_ptr, sa_guard) = sa.device_ptr_mut(stream);
                let (sb_ptr, sb_guard) = sb.device_ptr_mut(stream);
                self.convert(half, a_ptr, sa_ptr, &pack_a)?;
                self.convert(half, b_ptr, sb_ptr, &pack_b)?;
                (
                    sa_ptr,
                    sb_ptr,
                    pack_a.gemm_stride,
                    pack_b.gemm_stride,
                    Some((sa_guard, sb_guard)),
                )
            }
        };
        let ty = plan.operand_type();
        let c32 = cudaDataType::CUDA_R_32F;
        let alpha = (&cfg.alpha as *const f32).cast::<c_void>();
        let beta = (&cfg.beta as *const f32).cast::<c_void>();
        let handle = *self.inner.blas.handle();
        // cuBLAS's first operand is our B, its second our A (gemm.rs).
        let (first, second) = (b_in as *const c_void, a_in as *const c_void);
        let out = c_ptr as *mut c_void;
        let algo = cudarc::cublas::sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT;
        // SAFETY: the pointers are live device buffers of this context
        // (the guards above keep them borrowed until the launch); the
        // dimensions, leading dimensions and strides describe matrices
        // inside them (the caller's guarantee for A, B and C; the scratch
        // holds `pack.elements()` converted elements); alpha and beta are
        // host f32 values (the handle's default pointer mode) that outlive
        // the call.
        unsafe {
            if g.batch == 1 {
                blas::gemm_ex(
                    handle,
                    cfg.transa,
                    cfg.transb,
                    cfg.m,
                    cfg.n,
                    cfg.k,
                    alpha,
                    first,
                    ty,
                    cfg.lda,
                    second,
                    ty,
                    cfg.ldb,
                    beta,
                    out,
                    c32,
                    cfg.ldc,
                    plan.compute,
                    algo,
                )
            } else {
                blas::gemm_strided_batched_ex(
                    handle,
                    cfg.transa,
                    cfg.transb,
                    cfg.m,
                    cfg.n,
                    cfg.k,
                    alpha,
                    first,
                    ty,
                    cfg.lda,
                    stride_b as i64,
                    second,
                    ty,
                    cfg.ldb,
                    stride_a as i64,
                    beta,
                    out,
                    c32,
                    cfg.ldc,
                    g.stride_c as i64,
                    g.batch_i32,
                    plan.compute,
                    algo,
                )
            }
        }
        .map_err(cublas_err)
    }

    /// The elements of the two conversion buffers (A's, B's): a testing
    /// aid (they only grow; see the module docs).
    #[doc(hidden)]
    pub fn mixed_scratch_lens(&self) -> (usize, usize) {
        self.inner
            .scratch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lens()
    }
}

/// The typed error of a mode a device of compute capability `major.x`
/// cannot run (bf16 before 8.0).
pub(crate) fn unsupported(precision: Precision, major: i32) -> CnnError {
    CnnError::UnsupportedPrecision {
        backend: "cuda",
        precision,
        reason: format!(
            "needs compute capability 8.0 or later for {precision}; this device has {major}.x"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_has_its_operand_type_and_compute_type() {
        assert_eq!(ExPlan::of(Precision::F32), None);
        let tf32 = ExPlan::of(Precision::Tf32).unwrap();
        assert_eq!(tf32.operands, None);
        assert_eq!(tf32.operand_type(), cudaDataType::CUDA_R_32F);
        assert_eq!(
            tf32.compute,
            cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32
        );
        let bf16 = ExPlan::of(Precision::Bf16).unwrap();
        assert_eq!(bf16.operand_type(), cudaDataType::CUDA_R_16BF);
        assert_eq!(bf16.compute, cublasComputeType_t::CUBLAS_COMPUTE_32F);
        assert_eq!(bf16.operands.unwrap().kernel(), "f32_to_bf16");
        let f16 = ExPlan::of(Precision::F16).unwrap();
        assert_eq!(f16.operand_type(), cudaDataType::CUDA_R_16F);
        assert_eq!(f16.compute, cublasComputeType_t::CUBLAS_COMPUTE_32F);
        assert_eq!(f16.operands.unwrap().kernel(), "f32_to_f16");
        // Both kernels exist in gemm.cu.
        for half in [Half::Bf16, Half::F16] {
            let needle = format!("void {}(", half.kernel());
            assert!(KernelSource::Gemm.body().contains(&needle), "{needle}");
        }
    }

    #[test]
    fn bf16_needs_ampere() {
        assert!(!supported(Precision::Bf16, 7));
        assert!(supported(Precision::Bf16, 8));
        assert!(supported(Precision::Bf16, 9));
        for p in [Precision::F32, Precision::Tf32, Precision::F16] {
            assert!(supported(p, 6), "{p}");
        }
        let e = unsupported(Precision::Bf16, 7).to_string();
        assert!(
            e.contains("bf16") && e.contains("cuda") && e.contains("7.x"),
            "{e}"
        );
    }

    #[test]
    fn a_shared_operand_is_converted_once_a_batch_packed() {
        // A convolution's weight: stride 0 over 8 images.
        assert_eq!(
            Packing::new(12, 8, 0),
            Packing {
                batch: 1,
                len: 12,
                src_stride: 12,
                gemm_stride: 0
            }
        );
        // One product: no stride at all.
        assert_eq!(Packing::new(12, 1, 99).elements(), 12);
        assert_eq!(Packing::new(12, 1, 99).gemm_stride, 0);
        // Per-image columns of one group among several (stride > len):
        // only the group's rows are converted, packed.
        let p = Packing::new(6, 3, 20);
        assert_eq!((p.batch, p.len, p.src_stride, p.gemm_stride), (3, 6, 20, 6));
        assert_eq!(p.elements(), 18);
    }

    #[test]
    fn scratch_grows_to_the_largest_operand_and_never_shrinks() {
        assert_eq!(grown_len(0, 10), Some(10));
        assert_eq!(grown_len(10, 10), None);
        assert_eq!(grown_len(10, 4), None);
        assert_eq!(grown_len(10, 11), Some(11));
        // A steady sequence of calls stops growing after its largest.
        let mut len = 0;
        let mut allocations = 0;
        for step in 0..3 {
            for needed in [300, 5000, 1200, 4999] {
                if let Some(n) = grown_len(len, needed) {
                    len = n;
                    allocations += 1;
                    assert_eq!(step, 0, "allocated in a later step");
                }
            }
        }
        assert_eq!((len, allocations), (5000, 2));
    }
}
