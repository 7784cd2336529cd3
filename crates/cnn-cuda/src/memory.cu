// Memory helpers. x is (n).

extern "C" __global__ void fill_f32(float* x, u64 n, float value) {
    GRID_STRIDE(i, n) { x[i] = value; }
}
