//! Reference batch normalisation (PyTorch's `BatchNorm2d`) and dropout.
//!
//! x and y are (N, C, HW); statistics are per channel over the `M = N * HW`
//! values of that channel.

use cnn_core::backend::{BatchNormParams, DropoutParams};

use super::Real;

/// Element `(n, c, i)` of an (N, C, HW) tensor.
fn at<T: Real>(p: &BatchNormParams, x: &[T], n: usize, c: usize, i: usize) -> f64 {
    x[(n * p.c + c) * p.hw + i].as_f64()
}

/// Per-channel batch mean and biased variance.
fn batch_stats<T: Real>(p: &BatchNormParams, x: &[T]) -> (Vec<f64>, Vec<f64>) {
    let m = (p.n * p.hw) as f64;
    let mut mean = vec![0.0f64; p.c];
    let mut var = vec![0.0f64; p.c];
    for c in 0..p.c {
        for n in 0..p.n {
            for i in 0..p.hw {
                mean[c] += at(p, x, n, c, i);
            }
        }
        mean[c] /= m;
        for n in 0..p.n {
            for i in 0..p.hw {
                let d = at(p, x, n, c, i) - mean[c];
                var[c] += d * d;
            }
        }
        var[c] /= m;
    }
    (mean, var)
}

/// Everything training-mode batch norm produces.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormTrain {
    /// `(x - mean) * invstd * gamma + beta`, (N, C, HW).
    pub y: Vec<f64>,
    /// The batch mean per channel.
    pub mean: Vec<f64>,
    /// `1 / sqrt(biased batch variance + eps)` per channel.
    pub invstd: Vec<f64>,
    /// `(1 - momentum) running_mean + momentum mean`.
    pub running_mean: Vec<f64>,
    /// `(1 - momentum) running_var + momentum unbiased_var`, where
    /// `unbiased_var = var * M / (M - 1)` (for `M = 1`, where PyTorch
    /// refuses to train, the reference uses the biased variance).
    pub running_var: Vec<f64>,
}

/// Training-mode batch norm with the running-statistics update.
pub fn batch_norm2d_forward_train<T: Real>(
    p: &BatchNormParams,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    running_mean: &[T],
    running_var: &[T],
) -> BatchNormTrain {
    let (mean, var) = batch_stats(p, x);
    let m = (p.n * p.hw) as f64;
    let eps = f64::from(p.eps);
    let momentum = f64::from(p.momentum);
    let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let mut y = vec![0.0f64; x.len()];
    for n in 0..p.n {
        for c in 0..p.c {
            for i in 0..p.hw {
                let xhat = (at(p, x, n, c, i) - mean[c]) * invstd[c];
                y[(n * p.c + c) * p.hw + i] = xhat * gamma[c].as_f64() + beta[c].as_f64();
            }
        }
    }
    let unbiased = |v: f64| if m > 1.0 { v * m / (m - 1.0) } else { v };
    let new_running_mean = (0..p.c)
        .map(|c| (1.0 - momentum) * running_mean[c].as_f64() + momentum * mean[c])
        .collect();
    let new_running_var = (0..p.c)
        .map(|c| (1.0 - momentum) * running_var[c].as_f64() + momentum * unbiased(var[c]))
        .collect();
    BatchNormTrain {
        y,
        mean,
        invstd,
        running_mean: new_running_mean,
        running_var: new_running_var,
    }
}

/// Eval-mode batch norm: `(x - running_mean) / sqrt(running_var + eps) * gamma + beta`.
pub fn batch_norm2d_forward_eval<T: Real>(
    p: &BatchNormParams,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    running_mean: &[T],
    running_var: &[T],
) -> Vec<f64> {
    let mut y = vec![0.0f64; x.len()];
    for n in 0..p.n {
        for c in 0..p.c {
            let invstd = 1.0 / (running_var[c].as_f64() + f64::from(p.eps)).sqrt();
            for i in 0..p.hw {
                let xhat = (at(p, x, n, c, i) - running_mean[c].as_f64()) * invstd;
                y[(n * p.c + c) * p.hw + i] = xhat * gamma[c].as_f64() + beta[c].as_f64();
            }
        }
    }
    y
}

/// The gradients of training-mode batch norm.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormGrads {
    /// `gamma invstd / M (M dy - sum dy - xhat sum(dy xhat))`, (N, C, HW).
    pub dx: Vec<f64>,
    /// `sum(dy xhat)` per channel (one pass; a backend adds it).
    pub dgamma: Vec<f64>,
    /// `sum(dy)` per channel (one pass; a backend adds it).
    pub dbeta: Vec<f64>,
}

/// Backward of training-mode batch norm; the batch statistics are
/// recomputed from x in f64.
pub fn batch_norm2d_backward<T: Real>(
    p: &BatchNormParams,
    x: &[T],
    gamma: &[T],
    dy: &[T],
) -> BatchNormGrads {
    let (mean, var) = batch_stats(p, x);
    let m = (p.n * p.hw) as f64;
    let invstd: Vec<f64> = var
        .iter()
        .map(|v| 1.0 / (v + f64::from(p.eps)).sqrt())
        .collect();
    let xhat = |n: usize, c: usize, i: usize| (at(p, x, n, c, i) - mean[c]) * invstd[c];
    let mut dgamma = vec![0.0f64; p.c];
    let mut dbeta = vec![0.0f64; p.c];
    for c in 0..p.c {
        for n in 0..p.n {
            for i in 0..p.hw {
                let g = at(p, dy, n, c, i);
                dbeta[c] += g;
                dgamma[c] += g * xhat(n, c, i);
            }
        }
    }
    let mut dx = vec![0.0f64; x.len()];
    for n in 0..p.n {
        for c in 0..p.c {
            let k = gamma[c].as_f64() * invstd[c] / m;
            for i in 0..p.hw {
                let g = at(p, dy, n, c, i);
                dx[(n * p.c + c) * p.hw + i] = k * (m * g - dbeta[c] - xhat(n, c, i) * dgamma[c]);
            }
        }
    }
    BatchNormGrads { dx, dgamma, dbeta }
}

/// Which of `len` elements dropout keeps ([`DropoutParams::keep`]).
pub fn dropout_mask(p: &DropoutParams, len: usize) -> Vec<bool> {
    (0..len as u64).map(|i| p.keep(i)).collect()
}

/// `y = x * scale` where kept, 0 where dropped (`scale` is the f32
/// [`DropoutParams::scale`] the backends use).
pub fn dropout_forward<T: Real>(p: &DropoutParams, x: &[T]) -> Vec<f64> {
    let scale = f64::from(p.scale());
    x.iter()
        .zip(dropout_mask(p, x.len()))
        .map(|(&v, keep)| if keep { v.as_f64() * scale } else { 0.0 })
        .collect()
}

/// `dx = dy * scale` where kept, 0 where dropped (the same mask).
pub fn dropout_backward<T: Real>(p: &DropoutParams, dy: &[T]) -> Vec<f64> {
    dropout_forward(p, dy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_norm_by_hand() {
        // One channel, values 1 2 3 4: mean 2.5, biased var 1.25, unbiased 5/3.
        let p = BatchNormParams {
            n: 2,
            c: 1,
            hw: 2,
            eps: 1e-5,
            momentum: 0.1,
        };
        let x = [1.0, 2.0, 3.0, 4.0];
        let t = batch_norm2d_forward_train(&p, &x, &[2.0], &[1.0], &[0.0], &[1.0]);
        assert!((t.mean[0] - 2.5).abs() < 1e-15);
        let invstd = 1.0 / (1.25f64 + f64::from(1e-5f32)).sqrt();
        assert!((t.invstd[0] - invstd).abs() < 1e-15);
        assert!((t.y[0] - (1.0 - 2.0 * 1.5 * invstd)).abs() < 1e-14);
        // momentum 0.1 is not exact in f32.
        assert!((t.running_mean[0] - 0.25).abs() < 1e-7);
        assert!((t.running_var[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-7);
        // dy = 1 everywhere: dbeta = 4, dgamma = sum xhat = 0, dx = 0.
        let g = batch_norm2d_backward(&p, &x, &[2.0], &[1.0; 4]);
        assert_eq!(g.dbeta, vec![4.0]);
        assert!(g.dgamma[0].abs() < 1e-14 && g.dx.iter().all(|d| d.abs() < 1e-14));
        let y = batch_norm2d_forward_eval(&p, &x, &[1.0], &[0.0], &[1.0], &[3.0]);
        assert!((y[3] - 3.0 / (3.0f64 + f64::from(1e-5f32)).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn dropout_keeps_about_one_minus_p() {
        let p = DropoutParams {
            prob: 0.25,
            seed: 3,
            stream: 1,
            step: 7,
        };
        let mask = dropout_mask(&p, 20_000);
        let kept = mask.iter().filter(|&&k| k).count() as f64 / 20_000.0;
        assert!((kept - 0.75).abs() < 0.02, "kept fraction {kept}");
        let y = dropout_forward(&p, &[2.0; 8]);
        for (v, k) in y.iter().zip(&mask) {
            assert_eq!(*v, if *k { 2.0 * f64::from(p.scale()) } else { 0.0 });
        }
        // Backward drops the same elements and scales the rest the same way.
        assert_eq!(dropout_backward(&p, &[2.0; 8]), y);
        let p0 = DropoutParams { prob: 0.0, ..p };
        assert!(dropout_mask(&p0, 1000).iter().all(|&k| k));
    }
}
