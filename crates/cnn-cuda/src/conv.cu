// im2col / col2im for 2-D convolution (cross-correlation, as Conv2d).
//
// For a chunk of nb images, x is (nb, c_in, h, w) and col is
// (nb, c_in * kh * kw, h_out * w_out): row r = (c * kh + ki) * kw + kj of
// image n holds, at column l = oh * w_out + ow, the input element that
// weight tap (ki, kj) of channel c meets at output (oh, ow), or 0 in the
// padding. The rows of group g are the contiguous block
// [g * (c_in/groups) * kh * kw, (g+1) * ...), so the GEMMs of a group read
// one sub-matrix per image.

extern "C" __global__ void im2col_f32(const float* x, float* col, u64 nb, u64 c_in, u64 h, u64 w,
                                      u64 kh, u64 kw, u64 sh, u64 sw, u64 ph, u64 pw, u64 dh,
                                      u64 dw, u64 h_out, u64 w_out) {
    const u64 L = h_out * w_out;
    const u64 ck = c_in * kh * kw;
    const u64 total = nb * ck * L;
    GRID_STRIDE(idx, total) {
        const u64 l = idx % L;
        const u64 r = (idx / L) % ck;
        const u64 n = idx / (L * ck);
        const u64 c = r / (kh * kw);
        const u64 ki = (r / kw) % kh;
        const u64 kj = r % kw;
        const u64 oh = l / w_out;
        const u64 ow = l % w_out;
        const i64 ih = (i64)(oh * sh + ki * dh) - (i64)ph;
        const i64 iw = (i64)(ow * sw + kj * dw) - (i64)pw;
        float v = 0.0f;
        if (ih >= 0 && ih < (i64)h && iw >= 0 && iw < (i64)w) {
            v = x[((n * c_in + c) * h + (u64)ih) * w + (u64)iw];
        }
        col[idx] = v;
    }
}

// The adjoint of im2col, as a gather: dx (nb, c_in, h, w) is overwritten
// with, for each input element, the sum of the col entries that im2col
// copied it to (taps in (ki, kj) order).
extern "C" __global__ void col2im_f32(const float* col, float* dx, u64 nb, u64 c_in, u64 h, u64 w,
                                      u64 kh, u64 kw, u64 sh, u64 sw, u64 ph, u64 pw, u64 dh,
                                      u64 dw, u64 h_out, u64 w_out) {
    const u64 L = h_out * w_out;
    const u64 ck = c_in * kh * kw;
    const u64 total = nb * c_in * h * w;
    GRID_STRIDE(idx, total) {
        const u64 iw = idx % w;
        const u64 ih = (idx / w) % h;
        const u64 c = (idx / (h * w)) % c_in;
        const u64 n = idx / (c_in * h * w);
        float s = 0.0f;
        for (u64 ki = 0; ki < kh; ++ki) {
            const i64 th = (i64)(ih + ph) - (i64)(ki * dh);
            if (th < 0 || th % (i64)sh != 0) continue;
            const u64 oh = (u64)th / sh;
            if (oh >= h_out) continue;
            for (u64 kj = 0; kj < kw; ++kj) {
                const i64 tw = (i64)(iw + pw) - (i64)(kj * dw);
                if (tw < 0 || tw % (i64)sw != 0) continue;
                const u64 ow = (u64)tw / sw;
                if (ow >= w_out) continue;
                const u64 r = (c * kh + ki) * kw + kj;
                s += col[(n * ck + r) * L + oh * w_out + ow];
            }
        }
        dx[idx] = s;
    }
}
