// im2col / col2im for 2-D convolution (cross-correlation, as Conv2d), and
// the sum of per-image weight gradients.
//
// For a chunk of nb images, x is (nb, c_in, h, w) and col is
// (nb, c_in * kh * kw, h_out * w_out): row r = (c * kh + ki) * kw + kj of
// image n holds, at column l = oh * w_out + ow, the input element that
// weight tap (ki, kj) of channel c meets at output (oh, ow), or 0 in the
// padding. The rows of group g are the contiguous block
// [g * (c_in/groups) * kh * kw, (g+1) * ...), so the GEMMs of a group read
// one sub-matrix per image.
//
// Each kernel is written once over an index type I: the `_u32` entry points
// (chosen by conv.rs when every index fits in 31 bits, as in any layer that
// fits a GPU's memory a few times over) avoid 64-bit division, which the
// GPU emulates in dozens of instructions.

// One thread per (image, channel, output position): the kh * kw taps of
// that position, written down the rows of col (adjacent threads write
// adjacent columns, so the stores coalesce).
template <typename I>
__device__ __forceinline__ void im2col(const float* x, float* col, I nb, I c_in, I h, I w, I kh,
                                       I kw, I sh, I sw, I ph, I pw, I dh, I dw, I h_out,
                                       I w_out) {
    const I L = h_out * w_out;
    const I total = nb * c_in * L;
    const I taps = kh * kw;
    for (I idx = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; idx < total;
         idx += (I)gridDim.x * (I)blockDim.x) {
        const I nc = idx / L;  // n * c_in + c
        const I l = idx - nc * L;
        const I oh = l / w_out;
        const I ow = l - oh * w_out;
        const float* xp = x + nc * h * w;
        float* cp = col + nc * taps * L + l;
        const i64 ih0 = (i64)(oh * sh) - (i64)ph;
        const i64 iw0 = (i64)(ow * sw) - (i64)pw;
        for (I ki = 0; ki < kh; ++ki) {
            const i64 ih = ih0 + (i64)(ki * dh);
            const bool row_in = ih >= 0 && ih < (i64)h;
            for (I kj = 0; kj < kw; ++kj) {
                const i64 iw = iw0 + (i64)(kj * dw);
                float v = 0.0f;
                if (row_in && iw >= 0 && iw < (i64)w) v = xp[(I)ih * w + (I)iw];
                cp[(ki * kw + kj) * L] = v;
            }
        }
    }
}

// The adjoint of im2col, as a gather: dx (nb, c_in, h, w) is overwritten
// with, for each input element, the sum of the col entries that im2col
// copied it to (taps in (ki, kj) order).
template <typename I>
__device__ __forceinline__ void col2im(const float* col, float* dx, I nb, I c_in, I h, I w, I kh,
                                       I kw, I sh, I sw, I ph, I pw, I dh, I dw, I h_out,
                                       I w_out) {
    const I L = h_out * w_out;
    const I taps = kh * kw;
    const I total = nb * c_in * h * w;
    for (I idx = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; idx < total;
         idx += (I)gridDim.x * (I)blockDim.x) {
        const I nc = idx / (h * w);  // n * c_in + c
        const I pos = idx - nc * (h * w);
        const I ih = pos / w;
        const I iw = pos - ih * w;
        const float* cp = col + nc * taps * L;
        float s = 0.0f;
        for (I ki = 0; ki < kh; ++ki) {
            const i64 th = (i64)(ih + ph) - (i64)(ki * dh);
            if (th < 0) continue;
            const I oh = (I)th / sh;
            if (oh * sh != (I)th || oh >= h_out) continue;
            for (I kj = 0; kj < kw; ++kj) {
                const i64 tw = (i64)(iw + pw) - (i64)(kj * dw);
                if (tw < 0) continue;
                const I ow = (I)tw / sw;
                if (ow * sw != (I)tw || ow >= w_out) continue;
                s += cp[(ki * kw + kj) * L + oh * w_out + ow];
            }
        }
        dx[idx] = s;
    }
}

#define COL_KERNEL(name, body, T, src, dst)                                                   \
    extern "C" __global__ void name(const float* src, float* dst, T nb, T c_in, T h, T w, T kh, \
                                    T kw, T sh, T sw, T ph, T pw, T dh, T dw, T h_out,          \
                                    T w_out) {                                                  \
        body<T>(src, dst, nb, c_in, h, w, kh, kw, sh, sw, ph, pw, dh, dw, h_out, w_out);        \
    }

COL_KERNEL(im2col_f32, im2col, u64, x, col)
COL_KERNEL(im2col_f32_u32, im2col, u32, x, col)
COL_KERNEL(col2im_f32, col2im, u64, col, dx)
COL_KERNEL(col2im_f32_u32, col2im, u32, col, dx)

// dw (len) += the sum over i < count of part[i * len + j], added from 0 in
// image order: the per-image weight gradients of one strided batched GEMM.
extern "C" __global__ void sum_images_into_f32(const float* part, float* dw, u64 count, u64 len) {
    GRID_STRIDE(j, len) {
        float s = 0.0f;
        // Unrolled so that the loads issue together; the adds stay in order.
#pragma unroll 16
        for (u64 i = 0; i < count; ++i) s += part[i * len + j];
        dw[j] += s;
    }
}
