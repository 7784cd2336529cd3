//! Batch norm's training backward, alone or fused with the backward of the
//! ReLU after it (and of a residual add between them): two passes over
//! memory. The first, a task per channel, reads x and dy (and the ReLU's
//! output y, whose mask it applies to dy as it reads) for `sum dy` and
//! `sum dy (x - mean)` in f64; the second, over the `(n, c)` planes, reads
//! them again and writes dx (and, after a residual add, the masked dy over
//! dy: the residual's gradient). Both passes have AVX kernels, chosen at
//! run time, that do the portable loops' operations in the same order
//! (the sums in eight f64 lanes per channel, as the portable loop's eight
//! accumulators; no fused multiply-adds), so the bits do not depend on
//! the CPU, the thread count or the fusion.

use cnn_core::{BatchNormParams, Result};

use crate::CpuBackend;
use crate::cpu_features;

use super::channels::{channel_planes, per_channel, per_plane, per_plane_pair, with_channels};

/// The gradient batch norm's backward starts from.
pub(super) enum Dy<'a> {
    /// Batch norm's own output gradient.
    Plain(&'a [f32]),
    /// The gradient of `y = relu(bn(x) [+ residual])`: batch norm's is
    /// `y > 0 ? dy : 0`, written over dy when `residual`.
    Relu {
        y: &'a [f32],
        dy: &'a mut [f32],
        residual: bool,
    },
}

/// Batch norm's backward from `dy`, on the AVX kernels where the CPU has
/// AVX2.
pub(super) fn backward(
    be: &CpuBackend,
    p: &BatchNormParams,
    x: &[f32],
    dy: Dy<'_>,
    saved: [&[f32]; 3],
    dx: &mut [f32],
    grads: [&mut [f32]; 2],
) -> Result<()> {
    backward_with(be, p, x, dy, saved, dx, grads, cpu_features::avx2())
}

/// [`backward`] with the kernels chosen by `simd` (AVX where true).
/// `saved` is `[gamma, save_mean, save_invstd]`, `grads` `[dgamma,
/// dbeta]` (accumulated).
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_with(
    be: &CpuBackend,
    p: &BatchNormParams,
    x: &[f32],
    dy: Dy<'_>,
    [gamma, save_mean, save_invstd]: [&[f32]; 3],
    dx: &mut [f32],
    [dgamma, dbeta]: [&mut [f32]; 2],
    simd: bool,
) -> Result<()> {
    let per_channel_lens = [
        ("gamma", gamma.len()),
        ("save_mean", save_mean.len()),
        ("save_invstd", save_invstd.len()),
        ("dgamma", dgamma.len()),
        ("dbeta", dbeta.len()),
    ];
    let xy = [("x", x.len()), ("dx", dx.len())];
    match &dy {
        Dy::Plain(ds) => p.check(
            "batch_norm2d_backward",
            &[xy[0], xy[1], ("dy", ds.len())],
            &per_channel_lens,
        )?,
        Dy::Relu { y, dy, .. } => p.check(
            "batch_norm2d_relu_backward",
            &[xy[0], xy[1], ("y", y.len()), ("dy", dy.len())],
            &per_channel_lens,
        )?,
    }
    let count = (p.n * p.hw) as f64;
    with_channels(p.c, |chan| {
        let (ds, ys): (&[f32], &[f32]) = match &dy {
            Dy::Plain(ds) => (ds, &[]),
            Dy::Relu { y, dy, .. } => (dy, y),
        };
        let masked = !ys.is_empty();
        per_channel(be, p, chan, |ch| {
            let mean = f64::from(save_mean[ch]);
            // Eight accumulators per sum, element i of each plane in i % 8.
            let mut acc = [[0.0f64; 8]; 2];
            let mut ys_planes = channel_planes(ys, p, ch);
            for (xs, ds) in channel_planes(x, p, ch).zip(channel_planes(ds, p, ch)) {
                let ys = if masked {
                    ys_planes.next().unwrap_or(&[])
                } else {
                    &[]
                };
                sums(xs, ds, ys, mean, &mut acc, simd);
            }
            let [sum_dy, sum_dy_xmu] = acc.map(|a| a.iter().sum::<f64>());
            [sum_dy, sum_dy_xmu, 0.0, 0.0]
        });
        for (ch, slot) in chan.iter_mut().enumerate() {
            let [sum_dy, sum_dy_xmu, ..] = *slot;
            let invstd = f64::from(save_invstd[ch]);
            let mean = f64::from(save_mean[ch]);
            dbeta[ch] = (f64::from(dbeta[ch]) + sum_dy) as f32;
            dgamma[ch] = (f64::from(dgamma[ch]) + sum_dy_xmu * invstd) as f32;
            // dx = k (dy - mean_dy) - k proj (x - mean), with
            // k = gamma invstd, proj = invstd^2 sum(dy (x - mean)) / N;
            // the coefficients in f32, held exactly in the f64 slots.
            let k = f64::from(gamma[ch]) * invstd;
            let proj = sum_dy_xmu * invstd * invstd / count;
            let mean_dy = sum_dy / count;
            *slot = [k, k * proj, mean_dy, mean].map(|v| f64::from(v as f32));
        }
        let chan: &[[f64; 4]] = chan;
        let hw = p.hw;
        let coef = |ch: usize| chan[ch].map(|v| v as f32);
        fn plane(s: &[f32], hw: usize, i: usize) -> &[f32] {
            &s[i * hw..(i + 1) * hw]
        }
        match dy {
            Dy::Plain(ds) => per_plane(be, p, dx, |ch, i, d| {
                input_grad(d, plane(x, hw, i), plane(ds, hw, i), &[], coef(ch), simd);
            }),
            Dy::Relu {
                y,
                dy,
                residual: false,
            } => {
                let ds: &[f32] = dy;
                per_plane(be, p, dx, |ch, i, d| {
                    input_grad(
                        d,
                        plane(x, hw, i),
                        plane(ds, hw, i),
                        plane(y, hw, i),
                        coef(ch),
                        simd,
                    );
                });
            }
            Dy::Relu {
                y,
                dy,
                residual: true,
            } => per_plane_pair(be, p, dx, dy, |ch, i, d, ds| {
                // The masked gradient over dy first (the plane stays in
                // the L1 cache for the next loop).
                for (dv, &yv) in ds.iter_mut().zip(plane(y, hw, i)) {
                    *dv = relu_grad(yv, *dv);
                }
                input_grad(d, plane(x, hw, i), ds, &[], coef(ch), simd);
            }),
        }
    });
    Ok(())
}

/// ReLU's backward as `activation_backward` computes it from the output.
#[inline(always)]
fn relu_grad(y: f32, dy: f32) -> f32 {
    if y > 0.0 { dy } else { 0.0 }
}

/// One plane's `sum dy` into `acc[0]` and `sum dy (x - mean)` into
/// `acc[1]`, element `i` in lane `i % 8`; dy masked by `ys > 0` unless
/// `ys` is empty.
fn sums(xs: &[f32], ds: &[f32], ys: &[f32], mean: f64, acc: &mut [[f64; 8]; 2], simd: bool) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is set only where the CPU has AVX2 (so AVX).
        unsafe {
            if ys.is_empty() {
                avx::sums::<false>(xs, ds, ys, mean, acc);
            } else {
                avx::sums::<true>(xs, ds, ys, mean, acc);
            }
        }
        return;
    }
    let _ = simd;
    sums_portable(xs, ds, ys, mean, acc);
}

/// The portable [`sums`], which defines the bits.
fn sums_portable(xs: &[f32], ds: &[f32], ys: &[f32], mean: f64, acc: &mut [[f64; 8]; 2]) {
    let [sum_dy, sum_dy_xmu] = acc;
    for (i, (&xv, &dv)) in xs.iter().zip(ds).enumerate() {
        let dv = ys.get(i).map_or(dv, |&yv| relu_grad(yv, dv));
        sum_dy[i % 8] += f64::from(dv);
        sum_dy_xmu[i % 8] += f64::from(dv) * (f64::from(xv) - mean);
    }
}

/// One plane of `dx = k (dy - mean_dy) - k proj (x - mean)` in f32, with
/// `coef = [k, k proj, mean_dy, mean]`; dy masked by `ys > 0` unless `ys`
/// is empty.
fn input_grad(dx: &mut [f32], xs: &[f32], ds: &[f32], ys: &[f32], coef: [f32; 4], simd: bool) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is set only where the CPU has AVX2 (so AVX).
        unsafe {
            if ys.is_empty() {
                avx::input_grad::<false>(dx, xs, ds, ys, coef);
            } else {
                avx::input_grad::<true>(dx, xs, ds, ys, coef);
            }
        }
        return;
    }
    let _ = simd;
    input_grad_portable(dx, xs, ds, ys, coef);
}

/// The portable [`input_grad`], which defines the bits.
fn input_grad_portable(dx: &mut [f32], xs: &[f32], ds: &[f32], ys: &[f32], coef: [f32; 4]) {
    let [k, k_proj, mean_dy, mean] = coef;
    if ys.is_empty() {
        for ((d, &xv), &dv) in dx.iter_mut().zip(xs).zip(ds) {
            *d = k * (dv - mean_dy) - k_proj * (xv - mean);
        }
    } else {
        for (((d, &xv), &dv), &yv) in dx.iter_mut().zip(xs).zip(ds).zip(ys) {
            *d = k * (relu_grad(yv, dv) - mean_dy) - k_proj * (xv - mean);
        }
    }
}

/// The AVX kernels: eight f32 lanes, the f64 sums in two vectors of four.
#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    /// dy's eight lanes, with ReLU's mask from y where `MASK`: `y > 0`
    /// (ordered, so NaN and -0 give 0) keeps dy's bits, else +0, as
    /// [`super::relu_grad`].
    #[inline]
    #[target_feature(enable = "avx")]
    unsafe fn load_dy<const MASK: bool>(ds: &[f32], ys: &[f32], j: usize) -> __m256 {
        // SAFETY: the callers keep j + 8 within ds (and ys where MASK).
        unsafe {
            let d = _mm256_loadu_ps(ds.as_ptr().add(j));
            if MASK {
                let y = _mm256_loadu_ps(ys.as_ptr().add(j));
                _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(y, _mm256_setzero_ps()), d)
            } else {
                d
            }
        }
    }

    /// [`super::sums_portable`]: lane `l` of the pair of f64 vectors is
    /// accumulator `l`, and each element is added in the portable order.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn sums<const MASK: bool>(
        xs: &[f32],
        ds: &[f32],
        ys: &[f32],
        mean: f64,
        acc: &mut [[f64; 8]; 2],
    ) {
        let len = xs.len().min(ds.len());
        let len = if MASK { len.min(ys.len()) } else { len };
        let body = len / 8 * 8;
        // SAFETY: every load is at j + 8 <= body <= the slices' lengths.
        unsafe {
            let m = _mm256_set1_pd(mean);
            let mut s0 = _mm256_loadu_pd(acc[0].as_ptr());
            let mut s1 = _mm256_loadu_pd(acc[0].as_ptr().add(4));
            let mut t0 = _mm256_loadu_pd(acc[1].as_ptr());
            let mut t1 = _mm256_loadu_pd(acc[1].as_ptr().add(4));
            let mut j = 0;
            while j < body {
                let d = load_dy::<MASK>(ds, ys, j);
                let x = _mm256_loadu_ps(xs.as_ptr().add(j));
                let d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(d));
                let d1 = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(d));
                let x0 = _mm256_cvtps_pd(_mm256_castps256_ps128(x));
                let x1 = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x));
                s0 = _mm256_add_pd(s0, d0);
                s1 = _mm256_add_pd(s1, d1);
                t0 = _mm256_add_pd(t0, _mm256_mul_pd(d0, _mm256_sub_pd(x0, m)));
                t1 = _mm256_add_pd(t1, _mm256_mul_pd(d1, _mm256_sub_pd(x1, m)));
                j += 8;
            }
            _mm256_storeu_pd(acc[0].as_mut_ptr(), s0);
            _mm256_storeu_pd(acc[0].as_mut_ptr().add(4), s1);
            _mm256_storeu_pd(acc[1].as_mut_ptr(), t0);
            _mm256_storeu_pd(acc[1].as_mut_ptr().add(4), t1);
        }
        // The tail's element body + i goes to lane i, as in the portable
        // loop (body is a multiple of 8).
        let ys = if MASK { &ys[body..] } else { ys };
        super::sums_portable(&xs[body..len], &ds[body..len], ys, mean, acc);
    }

    /// [`super::input_grad_portable`], eight lanes at a time.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn input_grad<const MASK: bool>(
        dx: &mut [f32],
        xs: &[f32],
        ds: &[f32],
        ys: &[f32],
        coef: [f32; 4],
    ) {
        let len = dx.len().min(xs.len()).min(ds.len());
        let len = if MASK { len.min(ys.len()) } else { len };
        let body = len / 8 * 8;
        // SAFETY: every load and store is at j + 8 <= body <= the slices'
        // lengths.
        unsafe {
            let [k, k_proj, mean_dy, mean] = coef.map(|v| _mm256_set1_ps(v));
            let mut j = 0;
            while j < body {
                let d = load_dy::<MASK>(ds, ys, j);
                let x = _mm256_loadu_ps(xs.as_ptr().add(j));
                let r = _mm256_sub_ps(
                    _mm256_mul_ps(k, _mm256_sub_ps(d, mean_dy)),
                    _mm256_mul_ps(k_proj, _mm256_sub_ps(x, mean)),
                );
                _mm256_storeu_ps(dx.as_mut_ptr().add(j), r);
                j += 8;
            }
        }
        let ys = if MASK { &ys[body..len] } else { ys };
        super::input_grad_portable(&mut dx[body..len], &xs[body..len], &ds[body..len], ys, coef);
    }
}

#[cfg(test)]
mod tests;
