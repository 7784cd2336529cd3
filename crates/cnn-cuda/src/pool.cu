// Max, average and global-average pooling. x is (planes, h, w) with
// planes = n * c; y is (planes, h_out, w_out). The window arithmetic is
// cnn-cpu's pool.rs (PyTorch's CPU kernels).

// Window [start, end) of output o on one axis, clipped to the input.
__device__ __forceinline__ void clipped(u64 o, u64 k, u64 s, u64 pad, u64 len, i64* a, i64* b) {
    const i64 start = (i64)(o * s) - (i64)pad;
    i64 end = start + (i64)k;
    if (end > (i64)len) end = (i64)len;
    *a = start > 0 ? start : 0;
    *b = end > 0 ? end : 0;
}

// The average window of output o: clipped range [a, b) and the window size
// clipped to the padded input (PyTorch's divisor with count_include_pad).
__device__ __forceinline__ void avg_window(u64 o, u64 k, u64 s, u64 pad, u64 len, i64* a, i64* b,
                                           i64* padded) {
    const i64 start = (i64)(o * s) - (i64)pad;
    i64 end_padded = start + (i64)k;
    if (end_padded > (i64)(len + pad)) end_padded = (i64)(len + pad);
    *padded = end_padded - start;
    const i64 lo = start > 0 ? start : 0;
    i64 hi = end_padded < (i64)len ? end_padded : (i64)len;
    if (hi < 0) hi = 0;
    *a = lo;
    *b = hi > lo ? hi : lo;
}

// argmax gets the flat index ih * w + iw within the plane of the first
// maximum in row-major window order; NaN wins (a later NaN replaces it).
extern "C" __global__ void max_pool_forward_f32(const float* x, float* y, u32* argmax, u64 planes,
                                                u64 h, u64 w, u64 kh, u64 kw, u64 sh, u64 sw,
                                                u64 ph, u64 pw, u64 h_out, u64 w_out) {
    const u64 total = planes * h_out * w_out;
    GRID_STRIDE(idx, total) {
        const u64 ow = idx % w_out;
        const u64 oh = (idx / w_out) % h_out;
        const u64 plane = idx / (h_out * w_out);
        i64 h0, h1, w0, w1;
        clipped(oh, kh, sh, ph, h, &h0, &h1);
        clipped(ow, kw, sw, pw, w, &w0, &w1);
        const float* xp = x + plane * h * w;
        float best = NEG_INF;
        i64 best_i = h0 * (i64)w + w0;
        for (i64 ih = h0; ih < h1; ++ih) {
            for (i64 iw = w0; iw < w1; ++iw) {
                const float v = xp[ih * (i64)w + iw];
                if (v > best || is_nan_f(v)) {
                    best = v;
                    best_i = ih * (i64)w + iw;
                }
            }
        }
        y[idx] = best;
        argmax[idx] = (u32)best_i;
    }
}

// dx[i] = the sum of dy over the outputs whose window holds input i and
// whose argmax is i, added in row-major output order from +0: the order of
// cnn-cpu's scatter, so overlapping windows give the same bits as the CPU
// and as each other run to run (no atomics). Every dx element is written.
// Threads below planes * out_plane also check argmax: an index outside the
// plane raises *bad. (An index inside the plane but outside its own window,
// which max_pool_forward never writes, gets no gradient here.)
extern "C" __global__ void max_pool_backward_f32(const float* dy, const u32* argmax, float* dx,
                                                 u64 planes, u64 h, u64 w, u64 kh, u64 kw, u64 sh,
                                                 u64 sw, u64 ph, u64 pw, u64 h_out, u64 w_out,
                                                 u32* bad) {
    const u64 in_plane = h * w;
    const u64 out_plane = h_out * w_out;
    const u64 total_in = planes * in_plane;
    const u64 total_out = planes * out_plane;
    const u64 total = total_in > total_out ? total_in : total_out;
    GRID_STRIDE(idx, total) {
        if (idx < total_out && (u64)argmax[idx] >= in_plane) *bad = 1u;
        if (idx >= total_in) continue;
        const u64 i = idx % in_plane;
        const u64 plane = idx / in_plane;
        const i64 ih = (i64)(i / w);
        const i64 iw = (i64)(i % w);
        // Outputs o whose window [o * s - pad, o * s - pad + k) holds the input.
        const i64 h_lo = ih + (i64)ph - (i64)kh + 1;
        const i64 w_lo = iw + (i64)pw - (i64)kw + 1;
        const i64 oh0 = h_lo > 0 ? (h_lo + (i64)sh - 1) / (i64)sh : 0;
        const i64 ow0 = w_lo > 0 ? (w_lo + (i64)sw - 1) / (i64)sw : 0;
        i64 oh1 = (ih + (i64)ph) / (i64)sh;
        i64 ow1 = (iw + (i64)pw) / (i64)sw;
        if (oh1 > (i64)h_out - 1) oh1 = (i64)h_out - 1;
        if (ow1 > (i64)w_out - 1) ow1 = (i64)w_out - 1;
        const u64 base = plane * out_plane;
        float acc = 0.0f;
        for (i64 oh = oh0; oh <= oh1; ++oh) {
            for (i64 ow = ow0; ow <= ow1; ++ow) {
                const u64 o = base + (u64)oh * w_out + (u64)ow;
                if ((u64)argmax[o] == i) acc += dy[o];
            }
        }
        dx[idx] = acc;
    }
}

extern "C" __global__ void avg_pool_forward_f32(const float* x, float* y, u64 planes, u64 h, u64 w,
                                                u64 kh, u64 kw, u64 sh, u64 sw, u64 ph, u64 pw,
                                                u64 h_out, u64 w_out, int count_include_pad) {
    const u64 total = planes * h_out * w_out;
    GRID_STRIDE(idx, total) {
        const u64 ow = idx % w_out;
        const u64 oh = (idx / w_out) % h_out;
        const u64 plane = idx / (h_out * w_out);
        i64 h0, h1, hp, w0, w1, wp;
        avg_window(oh, kh, sh, ph, h, &h0, &h1, &hp);
        avg_window(ow, kw, sw, pw, w, &w0, &w1, &wp);
        if (h0 >= h1 || w0 >= w1) {
            y[idx] = 0.0f;
            continue;
        }
        const i64 divisor = count_include_pad ? hp * wp : (h1 - h0) * (w1 - w0);
        const float* xp = x + plane * h * w;
        float sum = 0.0f;
        for (i64 ih = h0; ih < h1; ++ih) {
            float row = 0.0f;
            for (i64 iw = w0; iw < w1; ++iw) row += xp[ih * (i64)w + iw];
            sum += row;
        }
        y[idx] = sum / (float)divisor;
    }
}

// dx (overwritten) = sum over the windows containing each input element of
// dy / divisor, in output order (a gather: no atomics).
extern "C" __global__ void avg_pool_backward_f32(const float* dy, float* dx, u64 planes, u64 h,
                                                 u64 w, u64 kh, u64 kw, u64 sh, u64 sw, u64 ph,
                                                 u64 pw, u64 h_out, u64 w_out,
                                                 int count_include_pad) {
    const u64 total = planes * h * w;
    GRID_STRIDE(idx, total) {
        const i64 iw = (i64)(idx % w);
        const i64 ih = (i64)((idx / w) % h);
        const u64 plane = idx / (h * w);
        // Outputs whose window can contain ih: o s - ph <= ih < o s - ph + kh.
        const i64 oh_hi_raw = (ih + (i64)ph) / (i64)sh;
        const i64 oh_hi = oh_hi_raw < (i64)h_out - 1 ? oh_hi_raw : (i64)h_out - 1;
        const i64 oh_lo_num = ih + (i64)ph - (i64)kh + 1;
        const i64 oh_lo = oh_lo_num > 0 ? (oh_lo_num + (i64)sh - 1) / (i64)sh : 0;
        const i64 ow_hi_raw = (iw + (i64)pw) / (i64)sw;
        const i64 ow_hi = ow_hi_raw < (i64)w_out - 1 ? ow_hi_raw : (i64)w_out - 1;
        const i64 ow_lo_num = iw + (i64)pw - (i64)kw + 1;
        const i64 ow_lo = ow_lo_num > 0 ? (ow_lo_num + (i64)sw - 1) / (i64)sw : 0;
        const float* dyp = dy + plane * h_out * w_out;
        float s = 0.0f;
        for (i64 oh = oh_lo; oh <= oh_hi; ++oh) {
            i64 h0, h1, hp;
            avg_window((u64)oh, kh, sh, ph, h, &h0, &h1, &hp);
            if (ih < h0 || ih >= h1) continue;
            for (i64 ow = ow_lo; ow <= ow_hi; ++ow) {
                i64 w0, w1, wp;
                avg_window((u64)ow, kw, sw, pw, w, &w0, &w1, &wp);
                if (iw < w0 || iw >= w1) continue;
                const i64 divisor = count_include_pad ? hp * wp : (h1 - h0) * (w1 - w0);
                s += dyp[oh * (i64)w_out + ow] / (float)divisor;
            }
        }
        dx[idx] = s;
    }
}

// y[p] = mean of plane p of x (planes, hw), summed in f64; a block per plane.
extern "C" __global__ void global_avg_pool_forward_f32(const float* x, float* y, u64 planes,
                                                       u64 hw) {
    for (u64 p = blockIdx.x; p < planes; p += gridDim.x) {
        double s = 0.0;
        for (u64 j = threadIdx.x; j < hw; j += blockDim.x) s += (double)x[p * hw + j];
        s = block_sum(s);
        if (threadIdx.x == 0) y[p] = (float)(s / (double)hw);
    }
}

// dx (planes, hw) = dy[p] / hw.
extern "C" __global__ void global_avg_pool_backward_f32(const float* dy, float* dx, u64 planes,
                                                        u64 hw) {
    GRID_STRIDE(i, planes * hw) { dx[i] = dy[i / hw] / (float)hw; }
}
