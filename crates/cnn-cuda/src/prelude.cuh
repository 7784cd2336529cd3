// Shared by every kernel source (prepended by kernels.rs before NVRTC).
// Conventions: sizes and indices are 64-bit (`u64`); every elementwise
// kernel walks its range with a grid-stride loop, so any grid size covers
// any length; reductions use blocks of exactly BLOCK threads.

typedef unsigned long long u64;
typedef long long i64;
typedef unsigned int u32;

#define BLOCK 256

#define GRID_STRIDE(i, n)                                                   \
    for (u64 i = (u64)blockIdx.x * (u64)blockDim.x + (u64)threadIdx.x;      \
         i < (u64)(n); i += (u64)gridDim.x * (u64)blockDim.x)

// Sum of `v` over the block, valid in thread 0. Every thread of the block
// must call it (it synchronises); blockDim.x must be a multiple of 32.
__device__ __forceinline__ double block_sum(double v) {
    __shared__ double warp_sums[32];
    const unsigned lane = threadIdx.x & 31u;
    const unsigned warp = threadIdx.x >> 5;
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    const unsigned nwarps = (blockDim.x + 31u) >> 5;
    v = (threadIdx.x < nwarps) ? warp_sums[threadIdx.x] : 0.0;
    if (warp == 0) {
        for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    }
    __syncthreads();  // warp_sums may be reused by the next call
    return v;
}

// block_sum, with the result broadcast to every thread of the block.
__device__ __forceinline__ double block_sum_all(double v) {
    __shared__ double total;
    v = block_sum(v);
    if (threadIdx.x == 0) total = v;
    __syncthreads();
    v = total;
    __syncthreads();
    return v;
}

__device__ __forceinline__ bool is_nan_f(float v) { return v != v; }

// -infinity (NVRTC has no <math.h> macros).
#define NEG_INF __int_as_float(0xff800000)
