// Elementwise arithmetic, bias broadcast and f64 reductions.
// Binary ops: all buffers have n elements.

extern "C" __global__ void add_f32(const float* a, const float* b, float* out, u64 n) {
    GRID_STRIDE(i, n) { out[i] = a[i] + b[i]; }
}

// y += alpha * x
extern "C" __global__ void axpy_f32(float alpha, const float* x, float* y, u64 n) {
    GRID_STRIDE(i, n) { y[i] += alpha * x[i]; }
}

// x *= alpha
extern "C" __global__ void scale_f32(float alpha, float* x, u64 n) {
    GRID_STRIDE(i, n) { x[i] *= alpha; }
}

// x = clamp(x, lo, hi); NaN passes through (torch.clamp).
extern "C" __global__ void clamp_f32(float lo, float hi, float* x, u64 n) {
    GRID_STRIDE(i, n) {
        const float v = x[i];
        x[i] = v < lo ? lo : (v > hi ? hi : v);
    }
}

// g += lambda * sign(w); sign(+-0) = 0, sign(NaN) = NaN (torch.sign).
extern "C" __global__ void add_sign_f32(float lambda, const float* w, float* g, u64 n) {
    GRID_STRIDE(i, n) {
        const float v = w[i];
        const float s = v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : v * 0.0f);
        g[i] += lambda * s;
    }
}

// y (outer, channels, inner): y[o, c, i] += b[c]
extern "C" __global__ void bias_add_f32(const float* b, float* y, u64 n, u64 channels, u64 inner) {
    GRID_STRIDE(i, n) { y[i] += b[(i / inner) % channels]; }
}

// db[c] += sum over (o, i) of dy[o, c, i], in f64. One block per channel
// (blocks loop over channels when there are more channels than blocks).
// Bias gradient, rows of channels (inner == 1, linear layers): one thread
// per channel adds its column in row order in f64, as cnn-cpu does, then
// db[c] = (float)(db[c] + sum).
extern "C" __global__ void bias_backward_rows_f32(const float* dy, float* db, u64 outer,
                                                  u64 channels) {
    GRID_STRIDE(c, channels) {
        double s = 0.0;
        // Unrolled so that the loads issue together; the adds stay in order.
#pragma unroll 16
        for (u64 o = 0; o < outer; ++o) s += (double)dy[o * channels + c];
        db[c] = (float)((double)db[c] + s);
    }
}

// Bias gradient, planes (inner > 1, convolutions), step 1: one block per
// (o, c) plane writes the plane's f64 sum to plane_sums[o * channels + c].
// A block per plane (not per channel) keeps every multiprocessor busy when
// there are few channels.
extern "C" __global__ void bias_plane_sums_f32(const float* dy, double* plane_sums, u64 planes,
                                               u64 inner) {
    for (u64 plane = blockIdx.x; plane < planes; plane += gridDim.x) {
        const float* p = dy + plane * inner;
        double s = 0.0;
        for (u64 j = threadIdx.x; j < inner; j += blockDim.x) s += (double)p[j];
        s = block_sum(s);
        if (threadIdx.x == 0) plane_sums[plane] = s;
    }
}

// Step 2: db[c] = (float)(db[c] + the sum of its planes in image order),
// cnn-cpu's order over the images.
extern "C" __global__ void bias_sum_planes_f32(const double* plane_sums, float* db, u64 outer,
                                               u64 channels) {
    GRID_STRIDE(c, channels) {
        double s = 0.0;
#pragma unroll 16
        for (u64 o = 0; o < outer; ++o) s += plane_sums[o * channels + c];
        db[c] = (float)((double)db[c] + s);
    }
}

// Per-block partial reductions of x (n) into partials (gridDim.x), in f64.
// mode 0: sum, 1: sum of squares, 2: sum of |x|, 3: count of non-finite.
extern "C" __global__ void reduce_partials_f32(const float* x, u64 n, int mode, double* partials) {
    double s = 0.0;
    GRID_STRIDE(i, n) {
        const double v = (double)x[i];
        if (mode == 0) s += v;
        else if (mode == 1) s += v * v;
        else if (mode == 2) s += fabs(v);
        else s += (isfinite(x[i]) ? 0.0 : 1.0);
    }
    s = block_sum(s);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}
