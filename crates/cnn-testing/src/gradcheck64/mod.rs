//! Gradient checks in f64: the reference kernels' backwards against central
//! differences of their forwards, op by op and chained through whole
//! graphs ([`graph`]).
//!
//! Everything here runs in f64: the reference kernels read `f64` slices
//! ([`crate::reference::Real`]), so a perturbed input `x + h` is exactly
//! what the kernel sees and nothing is rounded to f32 between two chained
//! ops. That is what makes a tight tolerance possible; the f32 checker of
//! the backends' own graphs ([`crate::gradcheck`]) needs tolerances
//! thousands of times looser (5e-3 relative, 1e-3 of the largest gradient
//! absolute) because its forward rounds every intermediate to f32.
//!
//! ## Step and tolerance
//!
//! A central difference `(L(x + h) - L(x - h)) / 2h` of a smooth `L` differs
//! from `L'(x)` by the truncation error `h^2 / 6 |L'''|` plus the rounding
//! error `2 delta / 2h`, where `delta` is the absolute rounding error of one
//! evaluation of `L`. With [`STEP`] `h = 1e-6`:
//! - truncation: the ops' third derivatives are of order one for unit-scale
//!   inputs (the activations' `|f'''|` are at most 2: tanh at 0; softmax
//!   cross-entropy at most 1/4; convolution, GEMM, pooling, dropout, the add
//!   and the bias are linear in each input, so zero), giving `~3e-13`;
//!   batch norm's `L'''` grows like `1 / sigma^3` and the checks draw
//!   channels of variance `~0.3`, below 20, so `~3e-12`;
//! - rounding: `delta` is a few units of f64's `u = 2^-53 ~ 1.1e-16`
//!   times the magnitude of the terms summed into `L` (at most ~30 in the
//!   checks here: `L = <r, y>` over at most a few hundred unit-scale
//!   products, or a cross-entropy of order 1), so `delta ~ 3e-15` and
//!   `delta / h ~ 3e-9`.
//!
//! Hence [`TOLERANCE`]: `|numeric - analytic| <= 1e-8 + 1e-6 |analytic|`,
//! about three times the rounding estimate; the relative part covers the
//! truncation error with a wide margin. Measured (the tests print it), the
//! worst error is 1.7e-9 over the op checks and 7e-10 over the graphs.
//! A backward that is wrong by a factor, a transposed index or a dropped
//! term is off by orders of magnitude more; so is one that is off by 1e-4
//! relative on a gradient above 1e-4.
//!
//! ## Kinks
//!
//! ReLU, leaky ReLU and ELU (at 0), max pooling (at ties) and softplus (at
//! its switch to the identity) are not differentiable everywhere. A
//! central difference across a kink averages two slopes and would fail a
//! correct backward. No element is skipped for it: the evaluation `L`
//! returns, besides its value, a fingerprint of every kink-side decision
//! it took (the signs of the ReLU inputs, the max-pool argmaxes, ...), and
//! [`check_tensor`] fails with [`Failure::KinkCrossed`] when a perturbed
//! evaluation took another side than the unperturbed one. The op checks
//! draw their inputs away from kinks by construction (activation inputs
//! at least [`KINK_MARGIN`] from the kink, max-pool windows of distinct
//! values at least that far apart), so a crossing there is a failure; the
//! whole-graph checks, whose pre-activations are not drawn directly,
//! reject a draw whose perturbations cross a kink and take the next seed
//! of a fixed list (see [`graph::check_graph`]): the outcome is
//! deterministic.

pub mod graph;

use std::fmt;

use cnn_core::rng::CounterRng;

/// The perturbation `h` of the central differences (see the module docs).
pub const STEP: f64 = 1e-6;

/// How far the op checks keep inputs from a kink: activation inputs have
/// `|x| >= KINK_MARGIN`, max-pool window values differ by at least it.
/// Ten thousand times [`STEP`], so no perturbation reaches a kink.
pub const KINK_MARGIN: f64 = 1e-2;

/// An absolute plus a relative tolerance: `|numeric - analytic| <= abs +
/// rel |analytic|`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub abs: f64,
    pub rel: f64,
}

impl Tolerance {
    /// The allowed difference at an analytic value.
    pub fn at(&self, analytic: f64) -> f64 {
        self.abs + self.rel * analytic.abs()
    }
}

/// The tolerance of every f64 check (derived in the module docs).
pub const TOLERANCE: Tolerance = Tolerance {
    abs: 1e-8,
    rel: 1e-6,
};

/// One evaluation of the checked function: its value and a fingerprint of
/// the kink sides it took (0 for a function without kinks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Eval {
    pub value: f64,
    pub kinks: u64,
}

impl Eval {
    /// A value of a function without kinks.
    pub fn smooth(value: f64) -> Self {
        Eval { value, kinks: 0 }
    }
}

/// Folds kink-side decisions into a fingerprint (FNV-1a over the words):
/// two evaluations that took the same sides everywhere have the same
/// fingerprint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KinkPrint(u64);

impl Default for KinkPrint {
    fn default() -> Self {
        KinkPrint(0xcbf2_9ce4_8422_2325)
    }
}

impl KinkPrint {
    /// Adds one decision (a side as 0/1, or an argmax index).
    pub fn push(&mut self, word: u32) {
        for byte in word.to_le_bytes() {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

/// Why a check did not pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// A perturbation of `tensor[index]` by `STEP` took another side of a
    /// kink: the point is too close to a kink for a central difference.
    KinkCrossed { tensor: String, index: usize },
    /// The gradient disagrees with the central differences.
    Mismatch(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::KinkCrossed { tensor, index } => write!(
                f,
                "perturbing {tensor}[{index}] by {STEP:e} crosses a kink (ReLU sign, max-pool argmax or softplus switch)"
            ),
            Failure::Mismatch(s) => f.write_str(s),
        }
    }
}

/// What a check of one tensor's gradient found.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorReport {
    pub name: String,
    /// Elements compared.
    pub checked: usize,
    /// Largest |analytic| among them.
    pub max_abs_grad: f64,
    /// Largest |numeric - analytic|.
    pub worst_abs: f64,
    /// Largest |numeric - analytic| / tolerance at that element (passes
    /// below 1).
    pub worst_ratio: f64,
}

impl fmt::Display for TensorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<24} {:>5} checked, max |grad| {:.3e}, worst |err| {:.3e} ({:.2e} of the tolerance)",
            self.name, self.checked, self.max_abs_grad, self.worst_abs, self.worst_ratio
        )
    }
}

/// How many failing elements a mismatch lists.
const SHOWN: usize = 6;

/// Compares `analytic`, the gradient of `f` at `x`, with central
/// differences of `f` at the elements `indices` of `x`, `f` seeing a copy
/// of `x` with one element moved by `+-STEP`. Fails on the first
/// perturbation that crosses a kink, or (after all elements) when any
/// element is off by more than `tol`.
pub fn check_tensor(
    name: &str,
    x: &[f64],
    analytic: &[f64],
    indices: &[usize],
    tol: Tolerance,
    f: &mut dyn FnMut(&[f64]) -> Eval,
) -> Result<TensorReport, Failure> {
    if x.len() != analytic.len() {
        return Err(Failure::Mismatch(format!(
            "{name}: {} elements but a gradient of {}",
            x.len(),
            analytic.len()
        )));
    }
    let base = f(x);
    let mut probe = x.to_vec();
    let mut report = TensorReport {
        name: name.to_string(),
        checked: 0,
        max_abs_grad: 0.0,
        worst_abs: 0.0,
        worst_ratio: 0.0,
    };
    let mut bad = Vec::new();
    for &i in indices {
        probe[i] = x[i] + STEP;
        let up = f(&probe);
        probe[i] = x[i] - STEP;
        let down = f(&probe);
        probe[i] = x[i];
        if up.kinks != base.kinks || down.kinks != base.kinks {
            return Err(Failure::KinkCrossed {
                tensor: name.to_string(),
                index: i,
            });
        }
        // The step actually taken, as represented in f64.
        let numeric = (up.value - down.value) / ((x[i] + STEP) - (x[i] - STEP));
        let err = (numeric - analytic[i]).abs();
        let ratio = err / tol.at(analytic[i]);
        report.checked += 1;
        report.max_abs_grad = report.max_abs_grad.max(analytic[i].abs());
        report.worst_abs = report.worst_abs.max(err);
        // A NaN difference fails too.
        if ratio.is_nan() || ratio > 1.0 {
            bad.push(format!(
                "{name}[{i}]: analytic {:.12e}, numeric {numeric:.12e}, |diff| {err:.3e} > {:.3e}",
                analytic[i],
                tol.at(analytic[i])
            ));
            report.worst_ratio = f64::INFINITY;
        } else {
            report.worst_ratio = report.worst_ratio.max(ratio);
        }
    }
    if bad.is_empty() {
        Ok(report)
    } else {
        let total = bad.len();
        bad.truncate(SHOWN);
        Err(Failure::Mismatch(format!(
            "{total} of {} elements of {name} disagree with central differences (h = {STEP:e}, tolerance {:e} + {:e} |g|):\n  {}",
            report.checked,
            tol.abs,
            tol.rel,
            bad.join("\n  ")
        )))
    }
}

/// [`check_tensor`] at every element.
pub fn check_all(
    name: &str,
    x: &[f64],
    analytic: &[f64],
    f: &mut dyn FnMut(&[f64]) -> Eval,
) -> Result<TensorReport, Failure> {
    let all: Vec<usize> = (0..x.len()).collect();
    check_tensor(name, x, analytic, &all, TOLERANCE, f)
}

/// `len` values uniform in `[lo, hi)`, drawn in f64 from `(seed, stream)`.
pub fn uniform(seed: u64, stream: u64, len: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut rng = CounterRng::new(seed, stream);
    (0..len).map(|_| rng.uniform(lo, hi)).collect()
}

/// `len` values uniform in `[lo, hi)` but at least `margin` from `kink`
/// (a draw inside the margin is redrawn), for the inputs of an op with a
/// kink at `kink`.
pub fn uniform_away_from(
    seed: u64,
    stream: u64,
    len: usize,
    (lo, hi): (f64, f64),
    kink: f64,
    margin: f64,
) -> Vec<f64> {
    let mut rng = CounterRng::new(seed, stream);
    (0..len)
        .map(|_| {
            loop {
                let v = rng.uniform(lo, hi);
                if (v - kink).abs() >= margin {
                    break v;
                }
            }
        })
        .collect()
}

/// `len` distinct values `lo + KINK_MARGIN * k` (`k` a shuffled `0..len`),
/// so that any two differ by at least [`KINK_MARGIN`]: inputs of max
/// pooling with no near-ties in any window.
pub fn distinct_values(seed: u64, stream: u64, len: usize, lo: f64) -> Vec<f64> {
    let mut rng = CounterRng::new(seed, stream);
    let mut order: Vec<usize> = (0..len).collect();
    // Fisher-Yates.
    for i in (1..len).rev() {
        let j = (rng.next_u32() as usize) % (i + 1);
        order.swap(i, j);
    }
    order
        .into_iter()
        .map(|k| lo + KINK_MARGIN * k as f64)
        .collect()
}

/// `k` distinct indices of `grad` (all of them when it has at most `k`),
/// always including the element with the largest |gradient|, the rest
/// drawn from `(seed, stream)`; sorted.
pub fn sample_indices(grad: &[f64], k: usize, seed: u64, stream: u64) -> Vec<usize> {
    if grad.len() <= k {
        return (0..grad.len()).collect();
    }
    let largest = (0..grad.len())
        .max_by(|&a, &b| grad[a].abs().total_cmp(&grad[b].abs()))
        .unwrap_or(0);
    let mut chosen = std::collections::BTreeSet::from([largest]);
    let mut rng = CounterRng::new(seed, stream);
    while chosen.len() < k {
        chosen.insert((rng.next_u32() as usize) % grad.len());
    }
    chosen.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_correct_gradient_passes_and_a_scaled_one_fails() {
        // L = sum sin(x_i) x_{i+1}: dL/dx_i = cos(x_i) x_{i+1} + sin(x_{i-1}).
        let x = uniform(1, 0, 6, -1.0, 1.0);
        let grad: Vec<f64> = (0..6)
            .map(|i| {
                let next = if i + 1 < 6 { x[i + 1] } else { 0.0 };
                let prev = if i > 0 { x[i - 1].sin() } else { 0.0 };
                x[i].cos() * next + prev
            })
            .collect();
        let mut f = |x: &[f64]| Eval::smooth((0..5).map(|i| x[i].sin() * x[i + 1]).sum::<f64>());
        let r = check_all("x", &x, &grad, &mut f).unwrap();
        assert_eq!(r.checked, 6);
        assert!(r.worst_ratio < 0.1, "{r}");
        let mut wrong = grad.clone();
        wrong[3] *= 1.0 + 1e-5;
        match check_all("x", &x, &wrong, &mut f) {
            Err(Failure::Mismatch(m)) => assert!(m.contains("1 of 6 elements of x"), "{m}"),
            other => panic!("a gradient off by 1e-5 relative passed: {other:?}"),
        }
    }

    #[test]
    fn a_perturbation_across_a_kink_is_reported_not_compared() {
        // relu(x) at x = 5e-7: the step 1e-6 crosses 0.
        let mut f = |x: &[f64]| {
            let mut k = KinkPrint::default();
            k.push(u32::from(x[0] > 0.0));
            Eval {
                value: x[0].max(0.0),
                kinks: k.finish(),
            }
        };
        assert_eq!(
            check_all("x", &[5e-7], &[1.0], &mut f),
            Err(Failure::KinkCrossed {
                tensor: "x".into(),
                index: 0
            })
        );
        assert!(check_all("x", &[2e-6], &[1.0], &mut f).is_ok());
    }

    #[test]
    fn draws_keep_their_margins() {
        let v = uniform_away_from(3, 1, 500, (-1.0, 1.0), 0.0, 0.1);
        assert!(v.iter().all(|x| x.abs() >= 0.1 && x.abs() < 1.0));
        let d = distinct_values(3, 2, 40, -0.2);
        let mut sorted = d.clone();
        sorted.sort_by(f64::total_cmp);
        assert!(
            sorted
                .windows(2)
                .all(|w| w[1] - w[0] >= KINK_MARGIN * 0.999)
        );
        assert_ne!(d, sorted, "the values are shuffled");
        let g = [0.1, -3.0, 0.2, 0.0, 1.0];
        let s = sample_indices(&g, 3, 0, 0);
        assert_eq!(s.len(), 3);
        assert!(s.contains(&1));
        assert_eq!(sample_indices(&g, 9, 0, 0), vec![0, 1, 2, 3, 4]);
    }
}
