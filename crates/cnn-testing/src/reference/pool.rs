//! Reference max, average and global-average pooling (PyTorch semantics).
//!
//! x is (N, C, H, W), y is (N, C, H_out, W_out). Output (oh, ow) covers
//! padded rows `oh * stride_h - pad_h ..` (kh of them) and likewise for
//! columns; max pooling only looks at real input elements.

use cnn_core::backend::Pool2dParams;

use super::Real;

/// The window of one output position along one axis, in padded
/// coordinates: `(start, end)` with `end` clipped to the padded input
/// (`size + pad`), as PyTorch does for ceil-mode windows.
fn padded_window(
    out: usize,
    stride: usize,
    pad: usize,
    kernel: usize,
    size: usize,
) -> (isize, isize) {
    let start = (out * stride) as isize - pad as isize;
    let end = (start + kernel as isize).min((size + pad) as isize);
    (start, end)
}

/// The real input rows/columns of a window: `(start, end)` clipped to `0..size`.
fn real_window(
    out: usize,
    stride: usize,
    pad: usize,
    kernel: usize,
    size: usize,
) -> (usize, usize) {
    let (start, end) = padded_window(out, stride, pad, kernel, size);
    (start.max(0) as usize, end.clamp(0, size as isize) as usize)
}

/// Whether a value is NaN (widening keeps NaN a NaN).
fn is_nan<T: Real>(v: T) -> bool {
    v.as_f64().is_nan()
}

/// Max pooling: the values and, for each output, the index `h * W + w`
/// within its (n, c) plane of the first maximum in row-major window order
/// (a NaN beats every number; the first NaN wins).
pub fn max_pool2d_forward<T: Real>(p: &Pool2dParams, x: &[T]) -> (Vec<T>, Vec<u32>) {
    let mut y = Vec::with_capacity(p.y_len());
    let mut argmax = vec![0u32; p.y_len()];
    for plane in 0..p.n * p.c {
        let xp = &x[plane * p.h * p.w..(plane + 1) * p.h * p.w];
        for oh in 0..p.h_out {
            let (h0, h1) = real_window(oh, p.stride_h, p.pad_h, p.kh, p.h);
            for ow in 0..p.w_out {
                let (w0, w1) = real_window(ow, p.stride_w, p.pad_w, p.kw, p.w);
                let mut best: Option<(T, usize)> = None;
                for ih in h0..h1 {
                    for iw in w0..w1 {
                        let v = xp[ih * p.w + iw];
                        let better = match best {
                            None => true,
                            Some((b, _)) => !is_nan(b) && (v > b || is_nan(v)),
                        };
                        if better {
                            best = Some((v, ih * p.w + iw));
                        }
                    }
                }
                let (v, idx) = best.expect("a pooling window always holds a real element");
                let yi = (plane * p.h_out + oh) * p.w_out + ow;
                y.push(v);
                argmax[yi] = idx as u32;
            }
        }
    }
    (y, argmax)
}

/// `dx` of max pooling: each `dy` added at its argmax position.
pub fn max_pool2d_backward<T: Real>(p: &Pool2dParams, dy: &[T], argmax: &[u32]) -> Vec<f64> {
    let mut dx = vec![0.0f64; p.x_len()];
    let out_plane = p.h_out * p.w_out;
    for (yi, (&g, &idx)) in dy.iter().zip(argmax).enumerate() {
        let plane = yi / out_plane;
        dx[plane * p.h * p.w + idx as usize] += g.as_f64();
    }
    dx
}

/// The divisor of average-pooling output (oh, ow): the window clipped to
/// the padded input when `count_include_pad`, clipped to the real input
/// otherwise.
pub fn avg_pool_divisor(p: &Pool2dParams, oh: usize, ow: usize) -> usize {
    if p.count_include_pad {
        let (h0, h1) = padded_window(oh, p.stride_h, p.pad_h, p.kh, p.h);
        let (w0, w1) = padded_window(ow, p.stride_w, p.pad_w, p.kw, p.w);
        ((h1 - h0) * (w1 - w0)) as usize
    } else {
        let (h0, h1) = real_window(oh, p.stride_h, p.pad_h, p.kh, p.h);
        let (w0, w1) = real_window(ow, p.stride_w, p.pad_w, p.kw, p.w);
        (h1 - h0) * (w1 - w0)
    }
}

/// Average pooling: the sum of the real elements of each window over
/// [`avg_pool_divisor`].
pub fn avg_pool2d_forward<T: Real>(p: &Pool2dParams, x: &[T]) -> Vec<f64> {
    let mut y = vec![0.0f64; p.y_len()];
    for plane in 0..p.n * p.c {
        for oh in 0..p.h_out {
            let (h0, h1) = real_window(oh, p.stride_h, p.pad_h, p.kh, p.h);
            for ow in 0..p.w_out {
                let (w0, w1) = real_window(ow, p.stride_w, p.pad_w, p.kw, p.w);
                let mut s = 0.0f64;
                for ih in h0..h1 {
                    for iw in w0..w1 {
                        s += x[(plane * p.h + ih) * p.w + iw].as_f64();
                    }
                }
                y[(plane * p.h_out + oh) * p.w_out + ow] = s / avg_pool_divisor(p, oh, ow) as f64;
            }
        }
    }
    y
}

/// `dx` of average pooling: each `dy / divisor` added to every real
/// element of its window.
pub fn avg_pool2d_backward<T: Real>(p: &Pool2dParams, dy: &[T]) -> Vec<f64> {
    let mut dx = vec![0.0f64; p.x_len()];
    for plane in 0..p.n * p.c {
        for oh in 0..p.h_out {
            let (h0, h1) = real_window(oh, p.stride_h, p.pad_h, p.kh, p.h);
            for ow in 0..p.w_out {
                let (w0, w1) = real_window(ow, p.stride_w, p.pad_w, p.kw, p.w);
                let g = dy[(plane * p.h_out + oh) * p.w_out + ow].as_f64()
                    / avg_pool_divisor(p, oh, ow) as f64;
                for ih in h0..h1 {
                    for iw in w0..w1 {
                        dx[(plane * p.h + ih) * p.w + iw] += g;
                    }
                }
            }
        }
    }
    dx
}

/// Mean of each (n, c) plane: x is (N, C, HW), y is (N, C).
pub fn global_avg_pool_forward<T: Real>(n: usize, c: usize, hw: usize, x: &[T]) -> Vec<f64> {
    (0..n * c)
        .map(|plane| {
            x[plane * hw..(plane + 1) * hw]
                .iter()
                .map(|&v| v.as_f64())
                .sum::<f64>()
                / hw as f64
        })
        .collect()
}

/// `dx[plane, i] = dy[plane] / HW`.
pub fn global_avg_pool_backward<T: Real>(n: usize, c: usize, hw: usize, dy: &[T]) -> Vec<f64> {
    let mut dx = vec![0.0f64; n * c * hw];
    for plane in 0..n * c {
        for i in 0..hw {
            dx[plane * hw + i] = dy[plane].as_f64() / hw as f64;
        }
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnn_core::backend::Pool2dGeometry;

    #[test]
    fn max_pool_picks_first_maximum() {
        let p = Pool2dParams::new(1, 1, 2, 4, &Pool2dGeometry::new(2)).unwrap();
        let x = [1.0, 3.0, 5.0, 5.0, 3.0, 2.0, 5.0, 4.0];
        let (y, idx) = max_pool2d_forward(&p, &x);
        assert_eq!(y, vec![3.0, 5.0]);
        assert_eq!(idx, vec![1, 2]);
        assert_eq!(
            max_pool2d_backward(&p, &[1.0, 2.0], &idx),
            vec![0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
        let (y, idx) = max_pool2d_forward(&p, &[1.0, f32::NAN, 0.0, 0.0, 9.0, 1.0, 0.0, 0.0]);
        assert!(y[0].is_nan());
        assert_eq!(idx[0], 1);
    }

    #[test]
    fn avg_pool_divisors_follow_pytorch() {
        // 3x3 window, stride 2, padding 1 on a 3x3 input: 2x2 outputs.
        let geom = Pool2dGeometry::new(3).stride(2).padding(1);
        let incl = Pool2dParams::new(1, 1, 3, 3, &geom).unwrap();
        let excl = Pool2dParams::new(1, 1, 3, 3, &geom.count_include_pad(false)).unwrap();
        assert_eq!((incl.h_out, incl.w_out), (2, 2));
        assert_eq!(avg_pool_divisor(&incl, 0, 0), 9);
        assert_eq!(avg_pool_divisor(&excl, 0, 0), 4);
        assert_eq!(avg_pool_divisor(&excl, 1, 0), 4);
        // Ceil mode: 4 wide, kernel 3, stride 2, no padding: the second
        // window hangs over the edge and is clipped to the input (divisor 2 per row).
        let ceil = Pool2dParams::new(
            1,
            1,
            1,
            4,
            &Pool2dGeometry {
                kernel: [1, 3],
                stride: [1, 2],
                ..Pool2dGeometry::new(1).ceil_mode(true)
            },
        )
        .unwrap();
        assert_eq!(ceil.w_out, 2);
        assert_eq!(avg_pool_divisor(&ceil, 0, 1), 2);
        let y = avg_pool2d_forward(&ceil, &[1.0, 2.0, 3.0, 5.0]);
        assert_eq!(y, vec![2.0, 4.0]);
        let dx = avg_pool2d_backward(&ceil, &[3.0, 2.0]);
        assert_eq!(dx, vec![1.0, 1.0, 2.0, 1.0]);
    }

    #[test]
    fn global_average() {
        assert_eq!(
            global_avg_pool_forward(1, 2, 2, &[1.0, 3.0, -2.0, 4.0]),
            vec![2.0, 1.0]
        );
        assert_eq!(
            global_avg_pool_backward(1, 2, 2, &[2.0, -4.0]),
            vec![1.0, 1.0, -2.0, -2.0]
        );
    }
}
