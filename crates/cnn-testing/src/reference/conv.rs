//! Reference 2-D convolution (cross-correlation, as PyTorch's `Conv2d`).
//!
//! x is (N, C_in, H, W), w is (C_out, C_in / groups, kh, kw), y is
//! (N, C_out, H_out, W_out). Output channel `co` belongs to group
//! `co / (C_out / groups)` and reads input channels
//! `group * (C_in / groups) ..` of that group.
//!
//! Output pixel (oh, ow) with kernel tap (i, j) reads input row
//! `oh * stride_h + i * dil_h - pad_h` and column
//! `ow * stride_w + j * dil_w - pad_w`; taps outside the input read zero.

use cnn_core::backend::Conv2dParams;

use super::Real;

/// The input position a kernel tap reads, or `None` in the zero padding.
fn input_pos(
    out: usize,
    tap: usize,
    stride: usize,
    dil: usize,
    pad: usize,
    size: usize,
) -> Option<usize> {
    let pos = (out * stride + tap * dil) as isize - pad as isize;
    if pos >= 0 && (pos as usize) < size {
        Some(pos as usize)
    } else {
        None
    }
}

/// Calls `visit(x_index, w_index, y_index)` for every multiply-add of the
/// convolution: `y[y_index] += x[x_index] * w[w_index]`. The three
/// reference kernels below are this one loop nest read three ways.
fn for_each_tap(p: &Conv2dParams, mut visit: impl FnMut(usize, usize, usize)) {
    let cin_g = p.c_in / p.groups;
    let cout_g = p.c_out / p.groups;
    for n in 0..p.n {
        for co in 0..p.c_out {
            let group = co / cout_g;
            for oh in 0..p.h_out {
                for ow in 0..p.w_out {
                    let y_index = ((n * p.c_out + co) * p.h_out + oh) * p.w_out + ow;
                    for ci_local in 0..cin_g {
                        let ci = group * cin_g + ci_local;
                        for i in 0..p.kh {
                            let Some(ih) = input_pos(oh, i, p.stride_h, p.dil_h, p.pad_h, p.h)
                            else {
                                continue;
                            };
                            for j in 0..p.kw {
                                let Some(iw) = input_pos(ow, j, p.stride_w, p.dil_w, p.pad_w, p.w)
                                else {
                                    continue;
                                };
                                let x_index = ((n * p.c_in + ci) * p.h + ih) * p.w + iw;
                                let w_index = ((co * cin_g + ci_local) * p.kh + i) * p.kw + j;
                                visit(x_index, w_index, y_index);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `y = conv(x, w) + b`; y is (N, C_out, H_out, W_out).
pub fn conv2d_forward<T: Real>(p: &Conv2dParams, x: &[T], w: &[T], b: Option<&[T]>) -> Vec<f64> {
    let mut y = vec![0.0f64; p.y_len()];
    for_each_tap(p, |xi, wi, yi| y[yi] += x[xi].as_f64() * w[wi].as_f64());
    if let Some(b) = b {
        let plane = p.h_out * p.w_out;
        for (yi, v) in y.iter_mut().enumerate() {
            *v += b[(yi / plane) % p.c_out].as_f64();
        }
    }
    y
}

/// `dx[x_index] = sum of dy[y_index] * w[w_index]` over the taps reading
/// `x_index`; dx is (N, C_in, H, W).
pub fn conv2d_backward_input<T: Real>(p: &Conv2dParams, dy: &[T], w: &[T]) -> Vec<f64> {
    let mut dx = vec![0.0f64; p.x_len()];
    for_each_tap(p, |xi, wi, yi| dx[xi] += dy[yi].as_f64() * w[wi].as_f64());
    dx
}

/// The weight gradient of one backward pass (a backend adds it to `dw`);
/// dw is (C_out, C_in / groups, kh, kw).
pub fn conv2d_backward_weight<T: Real>(p: &Conv2dParams, x: &[T], dy: &[T]) -> Vec<f64> {
    let mut dw = vec![0.0f64; p.w_len()];
    for_each_tap(p, |xi, wi, yi| dw[wi] += x[xi].as_f64() * dy[yi].as_f64());
    dw
}

/// The bias gradient of one backward pass: dy summed over (N, H_out, W_out).
pub fn conv2d_backward_bias<T: Real>(p: &Conv2dParams, dy: &[T]) -> Vec<f64> {
    let mut db = vec![0.0f64; p.c_out];
    let plane = p.h_out * p.w_out;
    for (yi, &g) in dy.iter().enumerate() {
        db[(yi / plane) % p.c_out] += g.as_f64();
    }
    db
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnn_core::backend::Conv2dGeometry;

    #[test]
    fn hand_example_3x3_input_2x2_kernel() {
        // x = [[1 2 3] [4 5 6] [7 8 9]], w = [[1 0] [0 -1]], b = 10.
        let p = Conv2dParams::new(1, 1, 3, 3, &Conv2dGeometry::new(1, 2)).unwrap();
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let w = [1.0, 0.0, 0.0, -1.0];
        let y = conv2d_forward(&p, &x, &w, Some(&[10.0]));
        assert_eq!(y, vec![6.0, 6.0, 6.0, 6.0]);
        // dy all ones: dx counts how often each pixel meets each tap.
        let dx = conv2d_backward_input(&p, &[1.0; 4], &w);
        assert_eq!(dx, vec![1.0, 1.0, 0.0, 1.0, 0.0, -1.0, 0.0, -1.0, -1.0]);
        let dw = conv2d_backward_weight(&p, &x, &[1.0; 4]);
        assert_eq!(dw, vec![12.0, 16.0, 24.0, 28.0]);
        assert_eq!(conv2d_backward_bias(&p, &[1.0, 2.0, 3.0, 4.0]), vec![10.0]);
    }

    #[test]
    fn padding_stride_dilation_and_groups() {
        // 1 input pixel per group, 3x3 kernel, padding 1: only the centre tap sees it.
        let geom = Conv2dGeometry::new(2, 3).padding(1).groups(2);
        let p = Conv2dParams::new(1, 2, 1, 1, &geom).unwrap();
        let x = [2.0, 3.0];
        let mut w = vec![0.0f32; 18];
        w[4] = 5.0; // group 0 centre
        w[9 + 4] = 7.0; // group 1 centre
        w[9] = 100.0; // group 1 corner: reads padding only
        assert_eq!(conv2d_forward(&p, &x, &w, None), vec![10.0, 21.0]);

        // Stride 2, dilation 2 on a 5x5 ramp: taps at rows/cols 0, 2, 4.
        let geom = Conv2dGeometry::new(1, 2).stride(2).dilation(2);
        let p = Conv2dParams::new(1, 1, 5, 5, &geom).unwrap();
        assert_eq!((p.h_out, p.w_out), (2, 2));
        let x: Vec<f32> = (0..25).map(|v| v as f32).collect();
        let y = conv2d_forward(&p, &x, &[1.0, 0.0, 0.0, 0.0], None);
        assert_eq!(y, vec![0.0, 2.0, 10.0, 12.0]);
    }

    #[test]
    fn backward_input_is_the_adjoint_of_forward() {
        // <conv(x), dy> == <x, conv_backward_input(dy)> for any x, dy.
        let geom = Conv2dGeometry {
            out_channels: 4,
            kernel: [3, 2],
            stride: [2, 1],
            padding: [1, 0],
            dilation: [1, 2],
            groups: 2,
        };
        let p = Conv2dParams::new(2, 2, 5, 6, &geom).unwrap();
        let x: Vec<f32> = (0..p.x_len())
            .map(|i| ((i * 7) % 11) as f32 - 5.0)
            .collect();
        let w: Vec<f32> = (0..p.w_len()).map(|i| ((i * 3) % 5) as f32 - 2.0).collect();
        let dy: Vec<f32> = (0..p.y_len()).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
        let y = conv2d_forward(&p, &x, &w, None);
        let dx = conv2d_backward_input(&p, &dy, &w);
        let dw = conv2d_backward_weight(&p, &x, &dy);
        let lhs: f64 = y.iter().zip(&dy).map(|(a, b)| a * f64::from(*b)).sum();
        let rhs_x: f64 = dx.iter().zip(&x).map(|(a, b)| a * f64::from(*b)).sum();
        let rhs_w: f64 = dw.iter().zip(&w).map(|(a, b)| a * f64::from(*b)).sum();
        assert_eq!(lhs, rhs_x);
        assert_eq!(lhs, rhs_w);
    }
}
