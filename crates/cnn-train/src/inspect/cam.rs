//! The maps of `cnn inspect`, as plain functions of activations and
//! gradients: Grad-CAM (Selvaraju et al. 2017), the vanilla gradient
//! saliency map (Simonyan et al. 2014), and bilinear upsampling as
//! PyTorch's `F.interpolate(mode="bilinear", align_corners=False)` does it
//! (the same as OpenCV's `cv2.resize`, which pytorch-grad-cam uses).

/// Grad-CAM at one layer for one image: `activation` and `gradient` are
/// the layer's output and the gradient of the class score (the logit,
/// before softmax) with respect to it, `[C, H, W]` row-major. Each channel
/// is weighted by the spatial mean of its gradient; the map is the ReLU of
/// the weighted sum over channels, `[H, W]` (not normalised). Sums in f64.
pub fn grad_cam(activation: &[f32], gradient: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
    let plane = h * w;
    debug_assert_eq!(activation.len(), c * plane);
    debug_assert_eq!(gradient.len(), c * plane);
    let weights: Vec<f64> = gradient
        .chunks_exact(plane.max(1))
        .map(|g| g.iter().map(|&v| f64::from(v)).sum::<f64>() / plane.max(1) as f64)
        .collect();
    let mut cam = vec![0.0f64; plane];
    for (a, &wk) in activation.chunks_exact(plane.max(1)).zip(&weights) {
        for (m, &v) in cam.iter_mut().zip(a) {
            *m += wk * f64::from(v);
        }
    }
    cam.into_iter().map(|v| v.max(0.0) as f32).collect()
}

/// The vanilla gradient saliency map of one image: the largest absolute
/// input gradient over the channels, `[H, W]` from `[C, H, W]`.
pub fn saliency(input_gradient: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
    let plane = h * w;
    debug_assert_eq!(input_gradient.len(), c * plane);
    (0..plane)
        .map(|p| {
            (0..c)
                .map(|k| input_gradient[k * plane + p].abs())
                .fold(0.0f32, f32::max)
        })
        .collect()
}

/// Bilinear resampling of `map` (`[h, w]`) to `[out_h, out_w]` with
/// half-pixel centres and edge clamping (`align_corners=False`).
pub fn upsample_bilinear(map: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    debug_assert_eq!(map.len(), h * w);
    // Source coordinate of an output index and its two neighbours with
    // weights, as PyTorch's `area_pixel_compute_source_index`.
    let axis = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f64)> {
        let scale = n_in as f64 / n_out as f64;
        (0..n_out)
            .map(|o| {
                let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (src.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, src - i0 as f64)
            })
            .collect()
    };
    if h == 0 || w == 0 {
        return vec![0.0; out_h * out_w];
    }
    let (ys, xs) = (axis(h, out_h), axis(w, out_w));
    let at = |y: usize, x: usize| f64::from(map[y * w + x]);
    let mut out = Vec::with_capacity(out_h * out_w);
    for &(y0, y1, ly) in &ys {
        for &(x0, x1, lx) in &xs {
            let top = at(y0, x0) * (1.0 - lx) + at(y0, x1) * lx;
            let bottom = at(y1, x0) * (1.0 - lx) + at(y1, x1) * lx;
            out.push((top * (1.0 - ly) + bottom * ly) as f32);
        }
    }
    out
}

/// `values` scaled to [0, 1] by their minimum and maximum (all zeros when
/// they are all equal), for display.
pub fn min_max_normalized(values: &[f32]) -> Vec<f32> {
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if hi <= lo {
        return vec![0.0; values.len()];
    }
    values
        .iter()
        .map(|&v| {
            if v.is_finite() {
                (v - lo) / (hi - lo)
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grad_cam_weights_channels_by_their_mean_gradient_and_clips_below_zero() {
        // Two channels of 1x2: weights 1.5 and -1 (the gradients' means).
        let act = [1.0, 2.0, 3.0, -1.0];
        let grad = [1.0, 2.0, -1.0, -1.0];
        // 1.5 * [1, 2] - [3, -1] = [-1.5, 4] -> ReLU [0, 4].
        assert_eq!(grad_cam(&act, &grad, 2, 1, 2), vec![0.0, 4.0]);
    }

    #[test]
    fn saliency_is_the_largest_absolute_gradient_over_channels() {
        let g = [0.5, -2.0, -0.75, 1.0];
        assert_eq!(saliency(&g, 2, 1, 2), vec![0.75, 2.0]);
    }

    #[test]
    fn upsampling_matches_pytorchs_half_pixel_bilinear() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]),
        //     size=(4, 4), mode="bilinear", align_corners=False)
        let up = upsample_bilinear(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4, 4);
        let expected = [
            0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0,
        ];
        for (a, b) in up.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{up:?}");
        }
        // The same size is the identity.
        assert_eq!(upsample_bilinear(&[1.0, 2.0], 1, 2, 1, 2), vec![1.0, 2.0]);
    }

    #[test]
    fn normalisation_spans_zero_to_one_and_flat_maps_are_zero() {
        assert_eq!(min_max_normalized(&[2.0, 4.0, 3.0]), vec![0.0, 1.0, 0.5]);
        assert_eq!(min_max_normalized(&[1.0, 1.0]), vec![0.0, 0.0]);
    }
}
