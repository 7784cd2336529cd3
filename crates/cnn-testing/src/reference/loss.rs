//! Reference losses with their gradients.

use cnn_core::backend::CrossEntropyParams;

use super::Real;

/// Mean softmax cross-entropy over the rows of `logits` (N, classes) and
/// its gradient `(softmax - q) / N`, where the target distribution is
/// `q = (1 - s) one_hot(target) + s / classes` (PyTorch's label smoothing).
/// Log-softmax is formed as `z - max - ln(sum exp(z - max))`.
pub fn softmax_cross_entropy<T: Real>(
    p: &CrossEntropyParams,
    logits: &[T],
    targets: &[u32],
) -> (f64, Vec<f64>) {
    let c = p.classes;
    let s = f64::from(p.label_smoothing);
    let mut loss = 0.0f64;
    let mut dlogits = vec![0.0f64; p.n * c];
    for row in 0..p.n {
        let z: Vec<f64> = logits[row * c..(row + 1) * c]
            .iter()
            .map(|&v| v.as_f64())
            .collect();
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log_sum = z.iter().map(|&v| (v - max).exp()).sum::<f64>().ln();
        for (k, &zk) in z.iter().enumerate() {
            let log_p = zk - max - log_sum;
            let q = if k == targets[row] as usize {
                1.0 - s + s / c as f64
            } else {
                s / c as f64
            };
            loss -= q * log_p;
            dlogits[row * c + k] = (log_p.exp() - q) / p.n as f64;
        }
    }
    (loss / p.n as f64, dlogits)
}

/// Mean softmax cross-entropy against the mixed target of mixup and
/// CutMix, `q = lam q(targets) + (1 - lam) q(partners)` with each `q(t)`
/// label-smoothed as above (timm's `mixup_target`), and its gradient
/// `(softmax - q) / N`: the two targets' one-hot rows mixed first, as timm
/// does, not the two losses.
pub fn softmax_cross_entropy_mixed(
    p: &CrossEntropyParams,
    lam: f64,
    logits: &[f32],
    targets: &[u32],
    partners: &[u32],
) -> (f64, Vec<f64>) {
    let c = p.classes;
    let s = f64::from(p.label_smoothing);
    let (off, on) = (s / c as f64, 1.0 - s + s / c as f64);
    let one_hot = |t: u32, k: usize| if k == t as usize { on } else { off };
    let mut loss = 0.0f64;
    let mut dlogits = vec![0.0f64; p.n * c];
    for row in 0..p.n {
        let z: Vec<f64> = logits[row * c..(row + 1) * c]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log_sum = z.iter().map(|&v| (v - max).exp()).sum::<f64>().ln();
        for (k, &zk) in z.iter().enumerate() {
            let log_p = zk - max - log_sum;
            let q = lam * one_hot(targets[row], k) + (1.0 - lam) * one_hot(partners[row], k);
            loss -= q * log_p;
            dlogits[row * c + k] = (log_p.exp() - q) / p.n as f64;
        }
    }
    (loss / p.n as f64, dlogits)
}

/// `mean((x - target)^2)` and its gradient `2 (x - target) / len`.
pub fn mse_loss<T: Real>(x: &[T], target: &[T]) -> (f64, Vec<f64>) {
    let len = x.len() as f64;
    let diff: Vec<f64> = x
        .iter()
        .zip(target)
        .map(|(&a, &t)| a.as_f64() - t.as_f64())
        .collect();
    let loss = diff.iter().map(|d| d * d).sum::<f64>() / len;
    (loss, diff.iter().map(|d| 2.0 * d / len).collect())
}

/// The index of the largest value in each row of x (N, classes); the first
/// one on ties.
pub fn argmax_rows(n: usize, classes: usize, x: &[f32]) -> Vec<u32> {
    (0..n)
        .map(|row| {
            let r = &x[row * classes..(row + 1) * classes];
            let mut best = 0;
            for (k, &v) in r.iter().enumerate() {
                if v > r[best] {
                    best = k;
                }
            }
            best as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_cross_entropy_by_hand() {
        // Two equal logits: softmax (1/2, 1/2), loss ln 2 for any target;
        // targets 0 and 1 mixed 1/4 : 3/4 give the gradient (1/4, -1/4).
        let p = CrossEntropyParams {
            n: 1,
            classes: 2,
            label_smoothing: 0.0,
        };
        let (loss, d) = softmax_cross_entropy_mixed(&p, 0.25, &[0.0, 0.0], &[0], &[1]);
        assert!((loss - 2f64.ln()).abs() < 1e-12);
        assert!((d[0] - 0.25).abs() < 1e-12 && (d[1] + 0.25).abs() < 1e-12);
        // Smoothing 0.5 over 2 classes: q(0) = (3/4, 1/4), q(1) = (1/4, 3/4);
        // mixed 1/2 : 1/2 is uniform, so the gradient is 0.
        let p = CrossEntropyParams {
            label_smoothing: 0.5,
            ..p
        };
        let (_, d) = softmax_cross_entropy_mixed(&p, 0.5, &[0.0, 0.0], &[0], &[1]);
        assert!(d.iter().all(|v| v.abs() < 1e-12), "{d:?}");
    }

    #[test]
    fn cross_entropy_by_hand() {
        // Uniform logits over 4 classes: loss ln 4 whatever the smoothing.
        let p = CrossEntropyParams {
            n: 1,
            classes: 4,
            label_smoothing: 0.0,
        };
        let (loss, d) = softmax_cross_entropy(&p, &[0.5; 4], &[2]);
        assert!((loss - 4f64.ln()).abs() < 1e-15);
        assert_eq!(d, vec![0.25, 0.25, -0.75, 0.25]);
        let p = CrossEntropyParams {
            label_smoothing: 0.4,
            ..p
        };
        let (loss, d) = softmax_cross_entropy(&p, &[0.5; 4], &[2]);
        assert!((loss - 4f64.ln()).abs() < 1e-15);
        // q = 0.7 for the target and 0.1 elsewhere (0.4 is not exact in f32).
        assert!(
            (d[2] + 0.45).abs() < 1e-7 && (d[0] - 0.15).abs() < 1e-7,
            "{d:?}"
        );
        // Huge logits stay finite.
        let (loss, _) = softmax_cross_entropy(
            &CrossEntropyParams {
                n: 1,
                classes: 2,
                label_smoothing: 0.0,
            },
            &[1000.0, 0.0],
            &[1],
        );
        assert_eq!(loss, 1000.0);
    }

    #[test]
    fn mse_and_argmax() {
        let (loss, d) = mse_loss(&[1.0, 3.0], &[0.0, 1.0]);
        assert_eq!(loss, 2.5);
        assert_eq!(d, vec![1.0, 2.0]);
        assert_eq!(
            argmax_rows(2, 3, &[1.0, 3.0, 3.0, -1.0, -2.0, -1.0]),
            vec![1, 0]
        );
    }
}
