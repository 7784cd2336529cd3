// Pointwise activations and their derivatives, PyTorch's formulas (the
// same as cnn-cpu's activation.rs). `kind` numbers the activation:
// 0 relu, 1 leaky_relu(p0 = slope), 2 sigmoid, 3 tanh, 4 gelu (exact, f64),
// 5 gelu_tanh, 6 elu(p0 = alpha), 7 silu, 8 softplus(p0 = beta, p1 = threshold).

#define SQRT_2_OVER_PI 0.7978846f
#define GELU_KAPPA 0.044715f
#define INV_SQRT_2PI 0.3989422804014327
#define FRAC_1_SQRT_2 0.7071067811865476

__device__ __forceinline__ float sigmoid_f(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ double normal_cdf(float x) {
    return 0.5 * (1.0 + erf((double)x * FRAC_1_SQRT_2));
}

__device__ __forceinline__ float act_forward(int kind, float p0, float p1, float x) {
    switch (kind) {
        case 0: return x < 0.0f ? 0.0f : x;
        case 1: return x > 0.0f ? x : x * p0;
        case 2: return sigmoid_f(x);
        case 3: return tanhf(x);
        case 4: return (float)((double)x * normal_cdf(x));
        case 5: {
            const float inner = SQRT_2_OVER_PI * (x + GELU_KAPPA * x * x * x);
            return 0.5f * x * (1.0f + tanhf(inner));
        }
        case 6: return x > 0.0f ? x : p0 * expm1f(x);
        case 7: return x * sigmoid_f(x);
        default: {
            const float bx = x * p0;
            return bx > p1 ? x : log1pf(expf(bx)) / p0;
        }
    }
}

// f'(x) * dy, from x (and y where PyTorch uses the output).
__device__ __forceinline__ float act_backward(int kind, float p0, float p1, float x, float y,
                                              float dy) {
    switch (kind) {
        case 0: return y > 0.0f ? dy : 0.0f;
        case 1: return x > 0.0f ? dy : dy * p0;
        case 2: return dy * (1.0f - y) * y;
        case 3: return dy * (1.0f - y * y);
        case 4: {
            const double xd = (double)x;
            const double pdf = exp(-0.5 * xd * xd) * INV_SQRT_2PI;
            return (float)((double)dy * (normal_cdf(x) + xd * pdf));
        }
        case 5: {
            const float x_sq = x * x;
            const float inner = SQRT_2_OVER_PI * (x + GELU_KAPPA * x_sq * x);
            const float t = tanhf(inner);
            const float left = 0.5f * x;
            const float right = 1.0f + t;
            const float left_derivative = 0.5f * right;
            const float right_derivative =
                (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_KAPPA * x_sq);
            return dy * (left_derivative + left * right_derivative);
        }
        case 6: return x > 0.0f ? dy : dy * p0 * expf(x);
        case 7: {
            const float s = sigmoid_f(x);
            return dy * s * (1.0f + x * (1.0f - s));
        }
        default: {
            const float bx = x * p0;
            if (bx > p1) return dy;
            const float z = expf(bx);
            return dy * z / (z + 1.0f);
        }
    }
}

// x, y are (n); y overwritten.
extern "C" __global__ void activation_forward_f32(int kind, float p0, float p1, const float* x,
                                                  float* y, u64 n) {
    GRID_STRIDE(i, n) { y[i] = act_forward(kind, p0, p1, x[i]); }
}

// x, y, dy, dx are (n); dx overwritten.
extern "C" __global__ void activation_backward_f32(int kind, float p0, float p1, const float* x,
                                                   const float* y, const float* dy, float* dx,
                                                   u64 n) {
    GRID_STRIDE(i, n) { dx[i] = act_backward(kind, p0, p1, x[i], y[i], dy[i]); }
}
