// Fused optimizer updates (torch.optim single-tensor formulas, as
// cnn-cpu's optim.rs). Every buffer has n elements; w and the state are
// updated in place, g is read only. Optional state buffers come with a
// flag and may be null when the flag is 0. Per-step scalars computed on
// the host arrive as arguments.

// g + wd * w, the coupled L2 decay.
__device__ __forceinline__ float decayed(float g, float w, float wd) {
    return wd != 0.0f ? g + wd * w : g;
}

// momentum == 0: w -= lr * g; else b = first ? g : momentum b + (1 - dampening) g,
// d = nesterov ? g + momentum b : b, w -= lr d.
extern "C" __global__ void sgd_f32(float* w, const float* g, float* buf, u64 n, float lr,
                                   float momentum, float dampening, float wd, int nesterov,
                                   int first_step, int has_momentum) {
    GRID_STRIDE(i, n) {
        const float gi = decayed(g[i], w[i], wd);
        if (!has_momentum) {
            w[i] -= lr * gi;
            continue;
        }
        const float b = first_step ? gi : momentum * buf[i] + (1.0f - dampening) * gi;
        buf[i] = b;
        const float d = nesterov ? gi + momentum * b : b;
        w[i] -= lr * d;
    }
}

// decay = 1 - lr wd for AdamW (1 otherwise); coupled_wd = wd for Adam (0 for AdamW).
extern "C" __global__ void adam_f32(float* w, const float* g, float* m, float* v, float* vmax,
                                    u64 n, float beta1, float beta2, float eps, float step_size,
                                    float bc2_sqrt, float decay, float coupled_wd, int amsgrad) {
    GRID_STRIDE(i, n) {
        float wi = w[i];
        if (decay != 1.0f) wi *= decay;
        const float gi = decayed(g[i], wi, coupled_wd);
        const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float second = vi;
        if (amsgrad) {
            second = fmaxf(vmax[i], vi);
            vmax[i] = second;
        }
        const float denom = sqrtf(second) / bc2_sqrt + eps;
        w[i] = wi - step_size * mi / denom;
    }
}

extern "C" __global__ void rmsprop_f32(float* w, const float* g, float* sq, float* buf,
                                       float* gavg, u64 n, float lr, float alpha, float eps,
                                       float wd, float momentum, int has_momentum, int centered) {
    GRID_STRIDE(i, n) {
        const float gi = decayed(g[i], w[i], wd);
        const float s = alpha * sq[i] + (1.0f - alpha) * gi * gi;
        sq[i] = s;
        float avg;
        if (centered) {
            const float a = alpha * gavg[i] + (1.0f - alpha) * gi;
            gavg[i] = a;
            avg = sqrtf(s - a * a) + eps;
        } else {
            avg = sqrtf(s) + eps;
        }
        if (has_momentum) {
            const float b = momentum * buf[i] + gi / avg;
            buf[i] = b;
            w[i] -= lr * b;
        } else {
            w[i] -= lr * gi / avg;
        }
    }
}

extern "C" __global__ void adagrad_f32(float* w, const float* g, float* sum, u64 n, float clr,
                                       float eps, float wd) {
    GRID_STRIDE(i, n) {
        const float gi = decayed(g[i], w[i], wd);
        const float s = sum[i] + gi * gi;
        sum[i] = s;
        w[i] -= clr * gi / (sqrtf(s) + eps);
    }
}

extern "C" __global__ void adadelta_f32(float* w, const float* g, float* sq, float* acc, u64 n,
                                        float lr, float rho, float eps, float wd) {
    GRID_STRIDE(i, n) {
        const float gi = decayed(g[i], w[i], wd);
        const float s = rho * sq[i] + (1.0f - rho) * gi * gi;
        sq[i] = s;
        const float d = sqrtf(acc[i] + eps) / sqrtf(s + eps) * gi;
        acc[i] = rho * acc[i] + (1.0f - rho) * d * d;
        w[i] -= lr * d;
    }
}

extern "C" __global__ void nadam_f32(float* w, const float* g, float* m, float* v, u64 n,
                                     float beta1, float beta2, float eps, float wd,
                                     float bias_correction2, float c_grad, float c_avg) {
    GRID_STRIDE(i, n) {
        const float gi = decayed(g[i], w[i], wd);
        const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const float denom = sqrtf(vi / bias_correction2) + eps;
        float wi = w[i];
        wi -= c_grad * gi / denom;
        wi -= c_avg * mi / denom;
        w[i] = wi;
    }
}

extern "C" __global__ void radam_f32(float* w, const float* g, float* m, float* v, u64 n,
                                     float lr, float beta1, float beta2, float eps, float wd,
                                     float bias_correction1, float bc2_sqrt, int rectify,
                                     float rect) {
    GRID_STRIDE(i, n) {
        const float gi = decayed(g[i], w[i], wd);
        const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const float m_hat = mi / bias_correction1;
        if (rectify) {
            const float adaptive = bc2_sqrt / (sqrtf(vi) + eps);
            w[i] -= m_hat * lr * adaptive * rect;
        } else {
            w[i] -= m_hat * lr;
        }
    }
}

extern "C" __global__ void adamax_f32(float* w, const float* g, float* m, float* u, u64 n,
                                      float beta1, float beta2, float eps, float wd, float clr) {
    GRID_STRIDE(i, n) {
        const float gi = decayed(g[i], w[i], wd);
        const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        m[i] = mi;
        const float ui = fmaxf(beta2 * u[i], fabsf(gi) + eps);
        u[i] = ui;
        w[i] -= clr * mi / ui;
    }
}

// torch.sign: -1, 0 or 1 (a zero keeps its sign bit, NaN stays NaN).
__device__ __forceinline__ float sign_of(float x) {
    return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x);
}

// Lion: w *= 1 - lr wd; w -= lr sign(b1 m + (1 - b1) g); m = b2 m + (1 - b2) g.
extern "C" __global__ void lion_f32(float* w, const float* g, float* m, u64 n, float lr,
                                    float beta1, float beta2, float decay) {
    GRID_STRIDE(i, n) {
        const float gi = g[i];
        const float mi = m[i];
        float wi = w[i] * decay;
        const float c = beta1 * mi + (1.0f - beta1) * gi;
        wi -= lr * sign_of(c);
        w[i] = wi;
        m[i] = beta2 * mi + (1.0f - beta2) * gi;
    }
}

// ASGD: w = w decay - eta g; ax = mu == 1 ? w : ax + (w - ax) mu.
extern "C" __global__ void asgd_f32(float* w, const float* g, float* ax, u64 n, float eta,
                                    float decay, float mu, float wd) {
    GRID_STRIDE(i, n) {
        const float gi = decayed(g[i], w[i], wd);
        float wi = w[i] * decay;
        wi -= eta * gi;
        w[i] = wi;
        ax[i] = mu == 1.0f ? wi : ax[i] + (wi - ax[i]) * mu;
    }
}

// Rprop: factor etaplus / etaminus / 1 by the sign of g prev; step_size =
// clamp(step_size factor); g = 0 where the factor is etaminus;
// w -= sign(g) step_size; prev = g.
extern "C" __global__ void rprop_f32(float* w, const float* g, float* prev, float* step_size,
                                     u64 n, float etaminus, float etaplus, float step_min,
                                     float step_max) {
    GRID_STRIDE(i, n) {
        const float product = g[i] * prev[i];
        const float factor = product > 0.0f ? etaplus : (product < 0.0f ? etaminus : 1.0f);
        const float ss = fminf(fmaxf(step_size[i] * factor, step_min), step_max);
        step_size[i] = ss;
        const float gi = factor == etaminus ? 0.0f : g[i];
        w[i] -= sign_of(gi) * ss;
        prev[i] = gi;
    }
}
