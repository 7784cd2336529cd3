//! Parameter initialisation following PyTorch's defaults.
//!
//! `Conv2d` and `Linear` weights use `kaiming_uniform_(a = sqrt(5))`, which
//! reduces to `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`; their biases use the
//! same bound. Batch-norm scale starts at 1 and shift at 0. Every draw comes
//! from the counter-based generator keyed by the graph seed and the
//! parameter's index, so one seed reproduces the whole model.

use crate::rng::CounterRng;

/// The bound of PyTorch's default uniform initialisation for `fan_in`.
pub fn default_bound(fan_in: usize) -> f64 {
    if fan_in == 0 {
        0.0
    } else {
        1.0 / (fan_in as f64).sqrt()
    }
}

/// `len` values from `U(-bound, bound)`.
pub fn uniform(rng: &mut CounterRng, len: usize, bound: f64) -> Vec<f32> {
    (0..len)
        .map(|_| rng.uniform(-bound, bound) as f32)
        .collect()
}

/// `len` values from `N(0, std^2)` (Kaiming-normal and similar schemes).
pub fn normal(rng: &mut CounterRng, len: usize, std: f64) -> Vec<f32> {
    (0..len).map(|_| (rng.normal() * std) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_respects_bound_and_spreads() {
        let mut rng = CounterRng::new(0, 0);
        let bound = default_bound(25);
        assert!((bound - 0.2).abs() < 1e-12);
        let v = uniform(&mut rng, 10_000, bound);
        assert!(v.iter().all(|x| x.abs() <= 0.2));
        let mean: f64 = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let var: f64 = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / v.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        // Variance of U(-b, b) is b^2 / 3.
        assert!((var - 0.04 / 3.0).abs() < 0.001, "var {var}");
    }
}
