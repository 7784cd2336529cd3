// Memory helpers. x is (n).

extern "C" __global__ void fill_f32(float* x, u64 n, float value) {
    GRID_STRIDE(i, n) { x[i] = value; }
}

// ---- Resident training sets (launched by resident.rs) ----------------------
// One training batch gathered from a set in device memory, as
// cnn_core::backend::resident::gather_reference defines it (slot_draw,
// element_source): integer arithmetic for the draws, then
// pixel * mul + offset with each operation rounded on its own (__fmul_rn,
// __fadd_rn: never contracted), as the host loader computes it.

#define STREAM_AUGMENT 0x4155474dull
#define STREAM_CUTOUT 0x4355544full

// cnn_data::shuffle::hash4: SplitMix64's finaliser chained over four words.
__device__ __forceinline__ u64 splitmix_finalise(u64 z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

__device__ __forceinline__ u64 hash4(u64 seed, u64 stream, u64 a, u64 b) {
    u64 h = 0x9e3779b97f4a7c15ull;
    h = splitmix_finalise(h ^ seed);
    h = splitmix_finalise(h ^ stream);
    h = splitmix_finalise(h ^ a);
    h = splitmix_finalise(h ^ b);
    return h;
}

// pixels: u8 packed four to a word (kind 0) or f32 bits (kind 1), sample s
// at s * numel; labels (samples); order (samples); channels [mul, offset,
// fill] per channel; images (n, c, h, w); batch_labels (n). A block per
// slot: thread 0 draws, every thread writes part of the slot's values.
extern "C" __global__ void gather_batch(
    const u32* pixels, const u32* labels, const u32* order, const float* channels,
    float* images, u32* batch_labels, u64 first, u64 n, u64 c_n, u64 h, u64 w,
    u64 pad, int flip, u64 cutout, u64 seed, u64 epoch, int kind) {
    __shared__ i64 s_dy, s_dx;
    __shared__ int s_flip;
    __shared__ u64 s_sample, s_y0, s_y1, s_x0, s_x1;
    const u64 plane = h * w;
    const u64 numel = c_n * plane;
    const unsigned char* bytes = (const unsigned char*)pixels;
    for (u64 slot = blockIdx.x; slot < n; slot += gridDim.x) {
        if (threadIdx.x == 0) {
            const u64 sample = (u64)order[first + slot];
            const u64 r = hash4(seed, STREAM_AUGMENT, epoch, sample);
            const u64 span = 2 * pad + 1;
            s_dy = (i64)((r & 0xffffffffull) % span) - (i64)pad;
            s_dx = (i64)(((r >> 32) & 0x7fffffffull) % span) - (i64)pad;
            s_flip = (flip != 0 && (r >> 63) == 1ull) ? 1 : 0;
            u64 y0 = 0, y1 = 0, x0 = 0, x1 = 0;
            if (cutout > 0) {
                const u64 q = hash4(seed, STREAM_CUTOUT, epoch, sample);
                const u64 cy = (q & 0xffffffffull) % h;
                const u64 cx = (q >> 32) % w;
                const u64 half = cutout / 2;
                y0 = cy >= half ? cy - half : 0;
                y1 = cy + half < h ? cy + half : h;
                x0 = cx >= half ? cx - half : 0;
                x1 = cx + half < w ? cx + half : w;
            }
            s_y0 = y0;
            s_y1 = y1;
            s_x0 = x0;
            s_x1 = x1;
            s_sample = sample;
            batch_labels[slot] = labels[sample];
        }
        __syncthreads();
        for (u64 e = threadIdx.x; e < numel; e += blockDim.x) {
            const u64 c = e / plane;
            const u64 rem = e - c * plane;
            const u64 y = rem / w;
            const u64 x = rem - y * w;
            float v;
            if (y >= s_y0 && y < s_y1 && x >= s_x0 && x < s_x1) {
                v = 0.0f;
            } else {
                const i64 sy = (i64)y + s_dy;
                const i64 xx = s_flip ? (i64)(w - 1 - x) : (i64)x;
                const i64 sx = xx + s_dx;
                if (sy < 0 || sy >= (i64)h || sx < 0 || sx >= (i64)w) {
                    v = channels[3 * c + 2];
                } else {
                    const u64 src = s_sample * numel + c * plane + (u64)sy * w + (u64)sx;
                    const float p = kind == 0 ? (float)bytes[src] : __uint_as_float(pixels[src]);
                    v = __fadd_rn(__fmul_rn(p, channels[3 * c]), channels[3 * c + 1]);
                }
            }
            images[slot * numel + e] = v;
        }
        __syncthreads();  // the shared draws are rewritten for the next slot
    }
}
