// f32 -> bf16 / f16 conversion of GEMM operands (the tf32/bf16/f16
// precision modes, mixed.rs). Round to nearest, ties to even, as
// PyTorch's casts: bf16 with the bit formula of PyTorch's
// c10::BFloat16 (NaN stays a NaN, quietened; overflow goes to infinity), f16 with the hardware conversion
// `cvt.rn.f16.f32` (overflow to infinity, subnormal halves kept). Written
// without cuda_bf16.h / cuda_fp16.h so that NVRTC needs no headers, and
// without sm_80-only instructions so the file compiles for any target.
//
// Each kernel converts `batch` matrices of `len` contiguous elements that
// lie `src_stride` elements apart in `src` into `dst`, packed (`len`
// apart): one thread per destination element, grid-stride. The halves are
// stored as u16.

__device__ __forceinline__ unsigned short f32_to_bf16_rn(float x) {
    unsigned int u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (unsigned short)((u >> 16) | 0x0040u);  // NaN: keep sign, quiet
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

__device__ __forceinline__ unsigned short f32_to_f16_rn(float x) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
    return h;
}

template <bool BF16>
__device__ __forceinline__ unsigned short to_half(float x) {
    if constexpr (BF16) {
        return f32_to_bf16_rn(x);
    } else {
        return f32_to_f16_rn(x);
    }
}

template <bool BF16>
__device__ __forceinline__ void convert_batched(const float* src, unsigned short* dst, u64 batch,
                                                u64 len, u64 src_stride) {
    if (batch == 1 || src_stride == len) {
        // One contiguous run: no division per element.
        GRID_STRIDE(i, batch * len) { dst[i] = to_half<BF16>(src[i]); }
        return;
    }
    GRID_STRIDE(i, batch * len) {
        const u64 b = i / len;
        const u64 j = i - b * len;
        dst[i] = to_half<BF16>(src[b * src_stride + j]);
    }
}

extern "C" __global__ void f32_to_bf16(const float* src, unsigned short* dst, u64 batch, u64 len,
                                       u64 src_stride) {
    convert_batched<true>(src, dst, batch, len, src_stride);
}

extern "C" __global__ void f32_to_f16(const float* src, unsigned short* dst, u64 batch, u64 len,
                                      u64 src_stride) {
    convert_batched<false>(src, dst, batch, len, src_stride);
}
