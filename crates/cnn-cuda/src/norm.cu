// Batch normalisation (statistics in f64) and counter-based dropout.
// Batch norm tensors are (n, c, hw); per-channel buffers are (c).

// Training statistics, one block per channel: two-pass mean and biased
// variance in f64; writes save_mean, save_invstd, the affine scale
// invstd * gamma, and updates the running statistics (unbiased variance).
extern "C" __global__ void bn_stats_f32(const float* x, const float* gamma, float* running_mean,
                                        float* running_var, float* save_mean, float* save_invstd,
                                        float* scale, u64 n, u64 c, u64 hw, float eps,
                                        float momentum) {
    const double count = (double)(n * hw);
    for (u64 ch = blockIdx.x; ch < c; ch += gridDim.x) {
        double s = 0.0;
        for (u64 i = 0; i < n; ++i) {
            const float* plane = x + (i * c + ch) * hw;
            for (u64 j = threadIdx.x; j < hw; j += blockDim.x) s += (double)plane[j];
        }
        const double mean = block_sum_all(s) / count;
        double q = 0.0;
        for (u64 i = 0; i < n; ++i) {
            const float* plane = x + (i * c + ch) * hw;
            for (u64 j = threadIdx.x; j < hw; j += blockDim.x) {
                const double d = (double)plane[j] - mean;
                q += d * d;
            }
        }
        q = block_sum(q);
        if (threadIdx.x == 0) {
            const double var = q / count;
            const double invstd = 1.0 / sqrt(var + (double)eps);
            save_mean[ch] = (float)mean;
            save_invstd[ch] = (float)invstd;
            const double unbiased = count > 1.0 ? var * count / (count - 1.0) : var;
            const double m = (double)momentum;
            running_mean[ch] = (float)((1.0 - m) * (double)running_mean[ch] + m * mean);
            running_var[ch] = (float)((1.0 - m) * (double)running_var[ch] + m * unbiased);
            scale[ch] = (float)(invstd * (double)gamma[ch]);
        }
    }
}

// Eval-mode scale: invstd * gamma from the running variance, in f64.
extern "C" __global__ void bn_eval_scale_f32(const float* gamma, const float* running_var,
                                             float* scale, u64 c, float eps) {
    GRID_STRIDE(ch, c) {
        const double invstd = 1.0 / sqrt((double)running_var[ch] + (double)eps);
        scale[ch] = (float)(invstd * (double)gamma[ch]);
    }
}

// y = (x - mean[ch]) * scale[ch] + shift[ch]
extern "C" __global__ void bn_apply_f32(const float* x, float* y, const float* mean,
                                        const float* scale, const float* shift, u64 total, u64 c,
                                        u64 hw) {
    GRID_STRIDE(i, total) {
        const u64 ch = (i / hw) % c;
        y[i] = (x[i] - mean[ch]) * scale[ch] + shift[ch];
    }
}

// Backward sums, one block per channel (f64): dbeta += sum dy,
// dgamma += invstd sum dy (x - mean); coef (3, c) receives
// k = gamma invstd, k * proj and mean_dy for bn_backward_apply.
extern "C" __global__ void bn_backward_reduce_f32(const float* x, const float* dy,
                                                  const float* gamma, const float* save_mean,
                                                  const float* save_invstd, float* dgamma,
                                                  float* dbeta, float* coef, u64 n, u64 c,
                                                  u64 hw) {
    const double count = (double)(n * hw);
    for (u64 ch = blockIdx.x; ch < c; ch += gridDim.x) {
        const double mean = (double)save_mean[ch];
        double sum_dy = 0.0, sum_dy_xmu = 0.0;
        for (u64 i = 0; i < n; ++i) {
            const u64 base = (i * c + ch) * hw;
            for (u64 j = threadIdx.x; j < hw; j += blockDim.x) {
                const double d = (double)dy[base + j];
                sum_dy += d;
                sum_dy_xmu += d * ((double)x[base + j] - mean);
            }
        }
        sum_dy = block_sum(sum_dy);
        sum_dy_xmu = block_sum(sum_dy_xmu);
        if (threadIdx.x == 0) {
            const double invstd = (double)save_invstd[ch];
            dbeta[ch] = (float)((double)dbeta[ch] + sum_dy);
            dgamma[ch] = (float)((double)dgamma[ch] + sum_dy_xmu * invstd);
            const double k = (double)gamma[ch] * invstd;
            const double proj = sum_dy_xmu * invstd * invstd / count;
            coef[ch] = (float)k;
            coef[c + ch] = (float)(k * proj);
            coef[2 * c + ch] = (float)(sum_dy / count);
        }
    }
}

// dx = k (dy - mean_dy) - k_proj (x - mean)
extern "C" __global__ void bn_backward_apply_f32(const float* x, const float* dy, float* dx,
                                                 const float* save_mean, const float* coef,
                                                 u64 total, u64 c, u64 hw) {
    GRID_STRIDE(i, total) {
        const u64 ch = (i / hw) % c;
        const float k = coef[ch], k_proj = coef[c + ch], mean_dy = coef[2 * c + ch];
        dx[i] = k * (dy[i] - mean_dy) - k_proj * (x[i] - save_mean[ch]);
    }
}

// Philox4x32-10 (cnn_core::rng::philox4x32_10, bit for bit).
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

__device__ __forceinline__ uint4 philox4x32_10(uint4 c, u32 k0, u32 k1) {
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        const u32 hi0 = __umulhi(PHILOX_M0, c.x), lo0 = PHILOX_M0 * c.x;
        const u32 hi1 = __umulhi(PHILOX_M1, c.z), lo1 = PHILOX_M1 * c.z;
        c = make_uint4(hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0);
    }
    return c;
}

// out = in * keep * scale; element i is kept when
// (word i % 4 of philox((i / 4, step), key)) >> 8 >= threshold.
// One thread per Philox block of four elements. in and out are (n).
extern "C" __global__ void dropout_f32(const float* in, float* out, u64 n, u32 key0, u32 key1,
                                       u64 step, u32 threshold, float scale) {
    const u64 nblocks = (n + 3) / 4;
    GRID_STRIDE(b, nblocks) {
        const uint4 bits = philox4x32_10(
            make_uint4((u32)b, (u32)(b >> 32), (u32)step, (u32)(step >> 32)), key0, key1);
        const u32 words[4] = {bits.x, bits.y, bits.z, bits.w};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const u64 i = 4 * b + (u64)j;
            if (i < n) out[i] = (words[j] >> 8) >= threshold ? in[i] * scale : 0.0f;
        }
    }
}
