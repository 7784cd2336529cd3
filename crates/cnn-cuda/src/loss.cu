// Losses fused with their gradients, and row argmax.

// What both cross-entropies need of a row x of `classes` logits, in f64:
// its maximum (NaN if any element is NaN, as torch's max), sum exp(x - max)
// and sum x (for the label smoothing's uniform part), in index order.
__device__ __forceinline__ void row_stats(const float* x, u64 classes, double* max, double* sum_exp,
                          double* sum_x) {
    float mx = NEG_INF;
    for (u64 j = 0; j < classes; ++j) {
        const float v = x[j];
        if (v > mx || is_nan_f(v)) mx = v;
    }
    *max = (double)mx;
    double se = 0.0, sx = 0.0;
    for (u64 j = 0; j < classes; ++j) {
        se += exp((double)x[j] - *max);
        sx += (double)x[j];
    }
    *sum_exp = se;
    *sum_x = sx;
}

// Softmax cross-entropy, one thread per row (f64 throughout, as the CPU):
// lse = max + ln sum exp(x - max);
// loss = lse - (1 - s) x[t] - s/C sum x; dx = (softmax - q) / n with
// q = (1 - s) one_hot(t) + s / C. logits and dlogits are (n, classes);
// targets (n); row_loss (n) in f64. A row whose target is out of range is
// skipped and lowers *bad_row to its index (initialised to n).
extern "C" __global__ void softmax_cross_entropy_f32(const float* logits, const u32* targets,
                                                     float* dlogits, double* row_loss, u64 n,
                                                     u64 classes, float label_smoothing,
                                                     unsigned long long* bad_row) {
    GRID_STRIDE(row, n) {
        const u64 t = (u64)targets[row];
        if (t >= classes) {
            atomicMin(bad_row, (unsigned long long)row);
            row_loss[row] = 0.0;
            continue;
        }
        const float* x = logits + row * classes;
        float* dx = dlogits + row * classes;
        double max, sum_exp, sum_x;
        row_stats(x, classes, &max, &sum_exp, &sum_x);
        const double s = (double)label_smoothing;
        const double uniform = s / (double)classes;
        const double inv_n = 1.0 / (double)n;
        const double lse = max + log(sum_exp);
        row_loss[row] = lse - (1.0 - s) * (double)x[t] - uniform * sum_x;
        for (u64 j = 0; j < classes; ++j) {
            const double softmax = exp((double)x[j] - max) / sum_exp;
            const double q = j == t ? 1.0 - s + uniform : uniform;
            dx[j] = (float)((softmax - q) * inv_n);
        }
    }
}

// Softmax cross-entropy against the mixed target lam q(t_a) + (1 - lam)
// q(t_b) (mixup and CutMix), one thread per row (f64, as the CPU):
// loss = lse - (1 - s)(lam x[t_a] + (1 - lam) x[t_b]) - s/C sum x;
// dx = (softmax - q) / n. targets and partners are (n); a row whose target
// or partner is out of range is skipped and lowers *bad_row to its index.
extern "C" __global__ void softmax_cross_entropy_mixed_f32(
    const float* logits, const u32* targets, const u32* partners, float* dlogits,
    double* row_loss, u64 n, u64 classes, float label_smoothing, double lam,
    unsigned long long* bad_row) {
    GRID_STRIDE(row, n) {
        const u64 ta = (u64)targets[row];
        const u64 tb = (u64)partners[row];
        if (ta >= classes || tb >= classes) {
            atomicMin(bad_row, (unsigned long long)row);
            row_loss[row] = 0.0;
            continue;
        }
        const float* x = logits + row * classes;
        float* dx = dlogits + row * classes;
        double max, sum_exp, sum_x;
        row_stats(x, classes, &max, &sum_exp, &sum_x);
        const double s = (double)label_smoothing;
        const double uniform = s / (double)classes;
        const double on_a = (1.0 - s) * lam;
        const double on_b = (1.0 - s) * (1.0 - lam);
        const double inv_n = 1.0 / (double)n;
        const double lse = max + log(sum_exp);
        row_loss[row] = lse - on_a * (double)x[ta] - on_b * (double)x[tb] - uniform * sum_x;
        for (u64 j = 0; j < classes; ++j) {
            const double softmax = exp((double)x[j] - max) / sum_exp;
            double q = uniform;
            if (j == ta) q += on_a;
            if (j == tb) q += on_b;
            dx[j] = (float)((softmax - q) * inv_n);
        }
    }
}

// Mean squared error: dx = 2 (x - target) / n; partials[block] = the
// block's sum of (x - target)^2 in f64.
extern "C" __global__ void mse_loss_f32(const float* x, const float* target, float* dx, u64 n,
                                        double* partials) {
    const double scale = 2.0 / (double)n;
    double s = 0.0;
    GRID_STRIDE(i, n) {
        const double diff = (double)x[i] - (double)target[i];
        s += diff * diff;
        dx[i] = (float)(scale * diff);
    }
    s = block_sum(s);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// out[row] = index of the first maximum of row of x (n, classes); NaN
// counts as the largest (torch.argmax).
extern "C" __global__ void argmax_rows_f32(const float* x, u32* out, u64 n, u64 classes) {
    GRID_STRIDE(row, n) {
        const float* r = x + row * classes;
        u64 best = 0;
        for (u64 j = 1; j < classes; ++j) {
            const float b = r[best];
            const float v = r[j];
            if (!is_nan_f(b) && (v > b || is_nan_f(v))) best = j;
        }
        out[row] = (u32)best;
    }
}
