//! Max, average and global-average pooling, one `(n, c)` plane per task.
//!
//! The window arithmetic follows PyTorch's CPU kernels
//! (`aten/src/ATen/native/cpu/MaxPoolKernel.cpp`, `AvgPoolKernel.cpp`).

mod max2x2;

use cnn_core::error::check_len;
use cnn_core::{CnnError, Pool2dParams, PoolOps, Result};
use rayon::prelude::*;

use crate::CpuBackend;
use crate::par::{PAR_MIN_ELEMS, sum_f64};
use max2x2::{is_2x2, max_pool_backward_plane_2x2, max_pool_plane_2x2};

/// Run `f(plane_in, plane_out, plane_idx)` over matching planes.
fn planes<A: Send, B: Sync>(
    be: &CpuBackend,
    parallel: bool,
    out: &mut [A],
    out_plane: usize,
    inp: &[B],
    in_plane: usize,
    f: impl Fn(&[B], &mut [A]) + Sync + Send,
) {
    if out_plane == 0 || in_plane == 0 {
        return;
    }
    if parallel && be.threads > 1 {
        be.install(|| {
            out.par_chunks_mut(out_plane)
                .zip(inp.par_chunks(in_plane))
                .for_each(|(o, i)| f(i, o))
        });
    } else {
        out.chunks_mut(out_plane)
            .zip(inp.chunks(in_plane))
            .for_each(|(o, i)| f(i, o));
    }
}

/// The input rows (or columns) `[start, end)` of output position `o` on one
/// axis, clipped to the input (window of `k`, stride `s`, padding `pad`).
#[inline]
fn clipped(o: usize, k: usize, s: usize, pad: usize, len: usize) -> (usize, usize) {
    let start = (o * s) as isize - pad as isize;
    let end = (start + k as isize).min(len as isize);
    (start.max(0) as usize, end.max(0) as usize)
}

/// The average-pooling window of output position `o` on one axis: the
/// clipped input range and the window size clipped to the padded input
/// (PyTorch's `pool_size` factor).
#[inline]
fn avg_window(o: usize, k: usize, s: usize, pad: usize, len: usize) -> (usize, usize, usize) {
    let start = (o * s) as isize - pad as isize;
    let end_padded = (start + k as isize).min((len + pad) as isize);
    let padded_size = (end_padded - start) as usize;
    let (a, b) = (
        start.max(0) as usize,
        end_padded.min(len as isize).max(0) as usize,
    );
    (a, b.max(a), padded_size)
}

fn max_pool_plane(p: &Pool2dParams, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    if is_2x2(p) {
        return max_pool_plane_2x2(p, x, y, argmax);
    }
    let w = p.w;
    for oh in 0..p.h_out {
        let (h0, h1) = clipped(oh, p.kh, p.stride_h, p.pad_h, p.h);
        for ow in 0..p.w_out {
            let (w0, w1) = clipped(ow, p.kw, p.stride_w, p.pad_w, p.w);
            let mut best = f32::NEG_INFINITY;
            let mut best_i = h0 * w + w0;
            for ih in h0..h1 {
                for iw in w0..w1 {
                    let v = x[ih * w + iw];
                    if v > best || v.is_nan() {
                        best = v;
                        best_i = ih * w + iw;
                    }
                }
            }
            y[oh * p.w_out + ow] = best;
            argmax[oh * p.w_out + ow] = best_i as u32;
        }
    }
}

fn avg_pool_plane(p: &Pool2dParams, x: &[f32], y: &mut [f32]) {
    for oh in 0..p.h_out {
        let (h0, h1, ph) = avg_window(oh, p.kh, p.stride_h, p.pad_h, p.h);
        for ow in 0..p.w_out {
            let (w0, w1, pw) = avg_window(ow, p.kw, p.stride_w, p.pad_w, p.w);
            let out = &mut y[oh * p.w_out + ow];
            if h0 >= h1 || w0 >= w1 {
                *out = 0.0;
                continue;
            }
            let divisor = if p.count_include_pad {
                ph * pw
            } else {
                (h1 - h0) * (w1 - w0)
            };
            let mut sum = 0.0f32;
            for ih in h0..h1 {
                sum += x[ih * p.w + w0..ih * p.w + w1].iter().sum::<f32>();
            }
            *out = sum / divisor as f32;
        }
    }
}

fn avg_pool_backward_plane(p: &Pool2dParams, dy: &[f32], dx: &mut [f32]) {
    dx.fill(0.0);
    for oh in 0..p.h_out {
        let (h0, h1, ph) = avg_window(oh, p.kh, p.stride_h, p.pad_h, p.h);
        for ow in 0..p.w_out {
            let (w0, w1, pw) = avg_window(ow, p.kw, p.stride_w, p.pad_w, p.w);
            if h0 >= h1 || w0 >= w1 {
                continue;
            }
            let divisor = if p.count_include_pad {
                ph * pw
            } else {
                (h1 - h0) * (w1 - w0)
            };
            let g = dy[oh * p.w_out + ow] / divisor as f32;
            for ih in h0..h1 {
                for v in &mut dx[ih * p.w + w0..ih * p.w + w1] {
                    *v += g;
                }
            }
        }
    }
}

impl PoolOps for CpuBackend {
    fn max_pool2d_forward(
        &self,
        p: &Pool2dParams,
        x: &Vec<f32>,
        y: &mut Vec<f32>,
        argmax: &mut Vec<u32>,
    ) -> Result<()> {
        p.check("max_pool2d_forward", x.len(), y.len(), Some(argmax.len()))?;
        let (in_plane, out_plane) = (p.h * p.w, p.h_out * p.w_out);
        if in_plane == 0 || out_plane == 0 || y.is_empty() {
            return Ok(());
        }
        let run = |((y, a), x): ((&mut [f32], &mut [u32]), &[f32])| max_pool_plane(p, x, y, a);
        if self.threads > 1 && x.len() >= PAR_MIN_ELEMS {
            self.install(|| {
                y.par_chunks_mut(out_plane)
                    .zip(argmax.par_chunks_mut(out_plane))
                    .zip(x.par_chunks(in_plane))
                    .for_each(run)
            });
        } else {
            y.chunks_mut(out_plane)
                .zip(argmax.chunks_mut(out_plane))
                .zip(x.chunks(in_plane))
                .for_each(run);
        }
        Ok(())
    }

    fn max_pool2d_backward(
        &self,
        p: &Pool2dParams,
        dy: &Vec<f32>,
        argmax: &Vec<u32>,
        dx: &mut Vec<f32>,
    ) -> Result<()> {
        p.check(
            "max_pool2d_backward",
            dx.len(),
            dy.len(),
            Some(argmax.len()),
        )?;
        let (in_plane, out_plane) = (p.h * p.w, p.h_out * p.w_out);
        // A max (not a search) so that the check vectorises.
        if let Some(bad) = argmax
            .iter()
            .copied()
            .max()
            .filter(|&a| a as usize >= in_plane)
        {
            return Err(CnnError::value(
                "max_pool2d_backward argmax",
                format!("index {bad} is outside the {}x{} input plane", p.h, p.w),
            ));
        }
        if in_plane == 0 || out_plane == 0 {
            dx.fill(0.0);
            return Ok(());
        }
        let fast = is_2x2(p);
        let run = |((dx, a), dy): ((&mut [f32], &[u32]), &[f32])| {
            if fast && max_pool_backward_plane_2x2(p, dy, a, dx) {
                return;
            }
            dx.fill(0.0);
            for (&i, &g) in a.iter().zip(dy) {
                dx[i as usize] += g;
            }
        };
        if self.threads > 1 && dx.len() >= PAR_MIN_ELEMS {
            self.install(|| {
                dx.par_chunks_mut(in_plane)
                    .zip(argmax.par_chunks(out_plane))
                    .zip(dy.par_chunks(out_plane))
                    .for_each(run)
            });
        } else {
            dx.chunks_mut(in_plane)
                .zip(argmax.chunks(out_plane))
                .zip(dy.chunks(out_plane))
                .for_each(run);
        }
        Ok(())
    }

    fn avg_pool2d_forward(&self, p: &Pool2dParams, x: &Vec<f32>, y: &mut Vec<f32>) -> Result<()> {
        p.check("avg_pool2d_forward", x.len(), y.len(), None)?;
        let par = x.len() >= PAR_MIN_ELEMS;
        planes(self, par, y, p.h_out * p.w_out, x, p.h * p.w, |x, y| {
            avg_pool_plane(p, x, y)
        });
        Ok(())
    }

    fn avg_pool2d_backward(
        &self,
        p: &Pool2dParams,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
    ) -> Result<()> {
        p.check("avg_pool2d_backward", dx.len(), dy.len(), None)?;
        let par = dx.len() >= PAR_MIN_ELEMS;
        planes(self, par, dx, p.h * p.w, dy, p.h_out * p.w_out, |dy, dx| {
            avg_pool_backward_plane(p, dy, dx)
        });
        Ok(())
    }

    fn global_avg_pool_forward(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        x: &Vec<f32>,
        y: &mut Vec<f32>,
    ) -> Result<()> {
        if hw == 0 {
            return Err(CnnError::geometry(
                "global average pooling needs a non-empty plane",
            ));
        }
        check_len("global_avg_pool_forward", "x", x.len(), n * c * hw)?;
        check_len("global_avg_pool_forward", "y", y.len(), n * c)?;
        let par = x.len() >= PAR_MIN_ELEMS;
        planes(self, par, y, 1, x, hw, |x, y| {
            y[0] = (sum_f64(x) / hw as f64) as f32;
        });
        Ok(())
    }

    fn global_avg_pool_backward(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
    ) -> Result<()> {
        if hw == 0 {
            return Err(CnnError::geometry(
                "global average pooling needs a non-empty plane",
            ));
        }
        check_len("global_avg_pool_backward", "dy", dy.len(), n * c)?;
        check_len("global_avg_pool_backward", "dx", dx.len(), n * c * hw)?;
        let par = dx.len() >= PAR_MIN_ELEMS;
        planes(self, par, dx, hw, dy, 1, |dy, dx| {
            dx.fill(dy[0] / hw as f32)
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnn_core::Pool2dGeometry;

    #[test]
    fn max_pool_hand_example_with_argmax_and_nan() {
        let be = CpuBackend::with_threads(1).unwrap();
        // 1x1x4x4, 2x2 stride 2.
        #[rustfmt::skip]
        let x = vec![
            1.0, 3.0, 2.0, 2.0,
            4.0, 0.0, 2.0, 1.0,
            f32::NAN, 1.0, -1.0, -2.0,
            0.0, 9.0, -3.0, -1.0,
        ];
        let p = Pool2dParams::new(1, 1, 4, 4, &Pool2dGeometry::new(2)).unwrap();
        let (mut y, mut a) = (vec![0.0; 4], vec![0u32; 4]);
        be.max_pool2d_forward(&p, &x, &mut y, &mut a).unwrap();
        assert_eq!(&y[..2], &[4.0, 2.0]);
        assert!(y[2].is_nan());
        assert_eq!(y[3], -1.0);
        assert_eq!(a, vec![4, 2, 8, 10]); // ties: first in row-major order (2 at index 2)
        let mut dx = vec![9.0; 16];
        be.max_pool2d_backward(&p, &vec![1.0, 2.0, 3.0, 4.0], &a, &mut dx)
            .unwrap();
        let mut want = vec![0.0; 16];
        want[4] = 1.0;
        want[2] = 2.0;
        want[8] = 3.0;
        want[10] = 4.0;
        assert_eq!(dx, want);
        assert!(
            be.max_pool2d_backward(&p, &vec![0.0; 4], &vec![0, 0, 0, 16], &mut dx)
                .is_err()
        );
        assert!(
            be.max_pool2d_forward(&p, &x, &mut vec![0.0; 3], &mut a)
                .is_err()
        );
    }

    #[test]
    fn max_pool_padding_ceil_mode_overlapping() {
        let be = CpuBackend::with_threads(1).unwrap();
        // 1x1x1x5 row [1, 5, 2, 7, 3], k 3 stride 2 pad 1, ceil -> out len 3.
        let x = vec![1.0, 5.0, 2.0, 7.0, 3.0];
        let g = Pool2dGeometry {
            kernel: [1, 3],
            stride: [1, 2],
            padding: [0, 1],
            ceil_mode: true,
            count_include_pad: true,
        };
        let p = Pool2dParams::new(1, 1, 1, 5, &g).unwrap();
        assert_eq!(p.w_out, 3);
        let (mut y, mut a) = (vec![0.0; 3], vec![0u32; 3]);
        be.max_pool2d_forward(&p, &x, &mut y, &mut a).unwrap();
        // windows: [-1,2) -> {1,5}; [1,4) -> {5,2,7}; [3,6) -> {7,3}
        assert_eq!(y, vec![5.0, 7.0, 7.0]);
        assert_eq!(a, vec![1, 3, 3]);
        let mut dx = vec![0.0; 5];
        be.max_pool2d_backward(&p, &vec![1.0, 1.0, 1.0], &a, &mut dx)
            .unwrap();
        assert_eq!(dx, vec![0.0, 1.0, 0.0, 2.0, 0.0]); // overlapping windows add
    }

    #[test]
    fn avg_pool_ceil_mode_and_padding_divisors() {
        let be = CpuBackend::with_threads(1).unwrap();
        // 1x1x3x3 of 1..9, k 2 stride 2 pad 1, ceil_mode: h_out = 2 + 1? (3+2-2)/2 = 1 r1 -> 2, ceil 3?
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        for include in [true, false] {
            let g = Pool2dGeometry::new(2)
                .padding(1)
                .ceil_mode(true)
                .count_include_pad(include);
            let p = Pool2dParams::new(1, 1, 3, 3, &g).unwrap();
            // padded len 5, span 2: (5-2)/2 = 1 rem 1 -> 2 + 1 = 3; last start 4 >= 3 + 1 -> back to 2.
            assert_eq!((p.h_out, p.w_out), (2, 2));
            let mut y = vec![0.0; 4];
            be.avg_pool2d_forward(&p, &x, &mut y).unwrap();
            // windows rows: [-1,1) -> {0}; [1,3) -> {1,2}. Divisors (include): window clipped to padded [-1,4):
            // row windows sizes 2 and 2; so every window divides by 4 when including padding.
            let want = if include {
                vec![
                    1.0 / 4.0,
                    (2.0 + 3.0) / 4.0,
                    (4.0 + 7.0) / 4.0,
                    (5.0 + 6.0 + 8.0 + 9.0) / 4.0,
                ]
            } else {
                vec![1.0, 2.5, 5.5, 7.0]
            };
            assert_eq!(y, want);
        }
        // ceil_mode window hanging past the padded input: 1x1x1x4, k 3 s 2 pad 0, ceil -> 2 windows:
        // [0,3) and [2,5) clipped to [2,4): pytorch divides by 2 (clipped to h + pad = 4) in both modes.
        let x = vec![1.0, 2.0, 3.0, 4.0];
        for include in [true, false] {
            let g = Pool2dGeometry {
                kernel: [1, 3],
                stride: [1, 2],
                padding: [0, 0],
                ceil_mode: true,
                count_include_pad: include,
            };
            let p = Pool2dParams::new(1, 1, 1, 4, &g).unwrap();
            assert_eq!(p.w_out, 2);
            let mut y = vec![0.0; 2];
            be.avg_pool2d_forward(&p, &x, &mut y).unwrap();
            assert_eq!(y, vec![2.0, 3.5]);
            let mut dx = vec![0.0; 4];
            be.avg_pool2d_backward(&p, &vec![3.0, 2.0], &mut dx)
                .unwrap();
            assert_eq!(dx, vec![1.0, 1.0, 2.0, 1.0]);
        }
    }

    #[test]
    fn global_avg_pool() {
        let be = CpuBackend::with_threads(2).unwrap();
        let x = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut y = vec![0.0; 2];
        be.global_avg_pool_forward(1, 2, 3, &x, &mut y).unwrap();
        assert_eq!(y, vec![2.0, 5.0]);
        let mut dx = vec![0.0; 6];
        be.global_avg_pool_backward(1, 2, 3, &vec![3.0, 6.0], &mut dx)
            .unwrap();
        assert_eq!(dx, vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
        assert!(
            be.global_avg_pool_forward(1, 2, 3, &x, &mut vec![0.0; 3])
                .is_err()
        );
        assert!(
            be.global_avg_pool_forward(1, 2, 0, &vec![], &mut y)
                .is_err()
        );
    }
}
