//! Reference elementwise ops, bias broadcast and reductions.

use cnn_core::backend::BiasParams;

use super::Real;

/// `a + b`.
pub fn add<T: Real>(a: &[T], b: &[T]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| x.as_f64() + y.as_f64())
        .collect()
}

/// `y + alpha * x`.
pub fn axpy(alpha: f32, x: &[f32], y: &[f32]) -> Vec<f64> {
    x.iter()
        .zip(y)
        .map(|(&xv, &yv)| f64::from(yv) + f64::from(alpha) * f64::from(xv))
        .collect()
}

/// `alpha * x`.
pub fn scale(alpha: f32, x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(alpha) * f64::from(v)).collect()
}

/// `clamp(x, lo, hi)` (exact: it only selects values).
pub fn clamp(lo: f32, hi: f32, x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&v| {
            if v < lo {
                lo
            } else if v > hi {
                hi
            } else {
                v
            }
        })
        .collect()
}

/// `g + lambda * sign(w)` with `sign(0) = 0`.
pub fn add_sign(lambda: f32, w: &[f32], g: &[f32]) -> Vec<f64> {
    w.iter()
        .zip(g)
        .map(|(&wv, &gv)| {
            let sign = if wv > 0.0 {
                1.0
            } else if wv < 0.0 {
                -1.0
            } else {
                0.0
            };
            f64::from(gv) + f64::from(lambda) * sign
        })
        .collect()
}

/// `y[o, c, i] + b[c]` for y viewed as (outer, channels, inner).
pub fn bias_add<T: Real>(p: &BiasParams, b: &[T], y: &[T]) -> Vec<f64> {
    let mut out = Vec::with_capacity(y.len());
    for o in 0..p.outer {
        for c in 0..p.channels {
            for i in 0..p.inner {
                out.push(y[(o * p.channels + c) * p.inner + i].as_f64() + b[c].as_f64());
            }
        }
    }
    out
}

/// `db[c] = sum over (o, i) of dy[o, c, i]` (one pass; a backend adds it).
pub fn bias_backward<T: Real>(p: &BiasParams, dy: &[T]) -> Vec<f64> {
    let mut db = vec![0.0f64; p.channels];
    for o in 0..p.outer {
        for (c, acc) in db.iter_mut().enumerate() {
            for i in 0..p.inner {
                *acc += dy[(o * p.channels + c) * p.inner + i].as_f64();
            }
        }
    }
    db
}

/// Sum of all elements.
pub fn sum(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v)).sum()
}

/// Sum of squares.
pub fn sum_squares(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

/// Sum of absolute values.
pub fn sum_abs(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v).abs()).sum()
}

/// Number of NaN or infinite elements.
pub fn count_non_finite(x: &[f32]) -> usize {
    x.iter().filter(|v| !v.is_finite()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_examples() {
        assert_eq!(add(&[1.0, 2.0], &[3.0, -2.0]), vec![4.0, 0.0]);
        assert_eq!(axpy(2.0, &[1.0, -1.0], &[1.0, 1.0]), vec![3.0, -1.0]);
        assert_eq!(scale(-0.5, &[4.0]), vec![-2.0]);
        assert_eq!(clamp(-1.0, 1.0, &[-3.0, 0.5, 2.0]), vec![-1.0, 0.5, 1.0]);
        assert_eq!(
            add_sign(0.5, &[-2.0, 0.0, 3.0], &[1.0, 1.0, 1.0]),
            vec![0.5, 1.0, 1.5]
        );
        let p = BiasParams {
            outer: 2,
            channels: 2,
            inner: 2,
        };
        let y = [0.0f32; 8];
        assert_eq!(
            bias_add(&p, &[1.0, 2.0], &y),
            vec![1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]
        );
        let dy = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        assert_eq!(
            bias_backward(&p, &dy),
            vec![1.0 + 2.0 + 5.0 + 6.0, 3.0 + 4.0 + 7.0 + 8.0]
        );
        assert_eq!(sum(&[1.0, -3.0]), -2.0);
        assert_eq!(sum_squares(&[1.0, -3.0]), 10.0);
        assert_eq!(sum_abs(&[1.0, -3.0]), 4.0);
        assert_eq!(count_non_finite(&[1.0, f32::NAN, f32::NEG_INFINITY]), 2);
    }
}
