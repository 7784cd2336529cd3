//! Losses fused with their gradients, and row argmax.

use cnn_core::error::check_len;
use cnn_core::{CnnError, CrossEntropyParams, LossOps, Result};

use crate::CpuBackend;

/// What a softmax cross-entropy needs of one row of logits, in f64.
struct RowStats {
    /// The row's maximum (NaN if any element is NaN, as torch's max).
    max: f64,
    /// `sum exp(x - max)`.
    sum_exp: f64,
    /// `sum x`, for the label smoothing's uniform part.
    sum_x: f64,
}

/// The statistics of row `x` that the plain and the mixed cross-entropy
/// share (one pass for the maximum, one for the sums, in index order).
fn row_stats(x: &[f32]) -> RowStats {
    let max = x.iter().fold(
        f32::NEG_INFINITY,
        |m, &v| if v > m || v.is_nan() { v } else { m },
    );
    let max = f64::from(max);
    let mut sum_exp = 0.0f64;
    let mut sum_x = 0.0f64;
    for &v in x {
        sum_exp += (f64::from(v) - max).exp();
        sum_x += f64::from(v);
    }
    RowStats {
        max,
        sum_exp,
        sum_x,
    }
}

impl LossOps for CpuBackend {
    /// Per row (f64 throughout): `lse = max + ln sum exp(x - max)`;
    /// `loss = lse - (1 - s) x[t] - s/C sum x`; `dx = (softmax - q) / n` with
    /// `q = (1 - s) one_hot(t) + s / C`. Rows are tiny (classes), so this runs
    /// on the calling thread.
    fn softmax_cross_entropy(
        &self,
        p: &CrossEntropyParams,
        logits: &Vec<f32>,
        targets: &Vec<u32>,
        dlogits: &mut Vec<f32>,
    ) -> Result<f32> {
        p.check(logits.len(), targets.len(), dlogits.len())?;
        let (n, classes) = (p.n, p.classes);
        for (row, &t) in targets.iter().enumerate() {
            if t as usize >= classes {
                return Err(CnnError::TargetOutOfRange {
                    op: "softmax_cross_entropy",
                    row,
                    target: t,
                    classes,
                });
            }
        }
        let s = f64::from(p.label_smoothing);
        let uniform = s / classes as f64;
        let inv_n = 1.0 / n as f64;
        let mut total = 0.0f64;
        for ((x, dx), &t) in logits
            .chunks_exact(classes)
            .zip(dlogits.chunks_exact_mut(classes))
            .zip(targets)
        {
            let t = t as usize;
            let RowStats {
                max,
                sum_exp,
                sum_x,
            } = row_stats(x);
            let lse = max + sum_exp.ln();
            total += lse - (1.0 - s) * f64::from(x[t]) - uniform * sum_x;
            for (j, (d, &v)) in dx.iter_mut().zip(x).enumerate() {
                let softmax = (f64::from(v) - max).exp() / sum_exp;
                let q = if j == t { 1.0 - s + uniform } else { uniform };
                *d = ((softmax - q) * inv_n) as f32;
            }
        }
        Ok((total * inv_n) as f32)
    }

    /// As `softmax_cross_entropy` with the mixed target
    /// `q = lam q(t_a) + (1 - lam) q(t_b)`: per row (f64),
    /// `loss = lse - (1 - s) (lam x[t_a] + (1 - lam) x[t_b]) - s/C sum x`,
    /// `dx = (softmax - q) / n`.
    fn softmax_cross_entropy_mixed(
        &self,
        p: &CrossEntropyParams,
        lam: f64,
        logits: &Vec<f32>,
        targets: &Vec<u32>,
        partners: &Vec<u32>,
        dlogits: &mut Vec<f32>,
    ) -> Result<f32> {
        p.check_mixed(
            lam,
            logits.len(),
            targets.len(),
            partners.len(),
            dlogits.len(),
        )?;
        let (n, classes) = (p.n, p.classes);
        for (row, &t) in targets.iter().chain(partners.iter()).enumerate() {
            if t as usize >= classes {
                return Err(CnnError::TargetOutOfRange {
                    op: "softmax_cross_entropy_mixed",
                    row: row % n,
                    target: t,
                    classes,
                });
            }
        }
        let s = f64::from(p.label_smoothing);
        let uniform = s / classes as f64;
        let (on_a, on_b) = ((1.0 - s) * lam, (1.0 - s) * (1.0 - lam));
        let inv_n = 1.0 / n as f64;
        let mut total = 0.0f64;
        for (((x, dx), &ta), &tb) in logits
            .chunks_exact(classes)
            .zip(dlogits.chunks_exact_mut(classes))
            .zip(targets)
            .zip(partners)
        {
            let (ta, tb) = (ta as usize, tb as usize);
            let RowStats {
                max,
                sum_exp,
                sum_x,
            } = row_stats(x);
            let lse = max + sum_exp.ln();
            total += lse - on_a * f64::from(x[ta]) - on_b * f64::from(x[tb]) - uniform * sum_x;
            for (j, (d, &v)) in dx.iter_mut().zip(x).enumerate() {
                let softmax = (f64::from(v) - max).exp() / sum_exp;
                let mut q = uniform;
                if j == ta {
                    q += on_a;
                }
                if j == tb {
                    q += on_b;
                }
                *d = ((softmax - q) * inv_n) as f32;
            }
        }
        Ok((total * inv_n) as f32)
    }

    fn mse_loss(&self, x: &Vec<f32>, target: &Vec<f32>, dx: &mut Vec<f32>) -> Result<f32> {
        check_len("mse_loss", "target", target.len(), x.len())?;
        check_len("mse_loss", "dx", dx.len(), x.len())?;
        if x.is_empty() {
            return Err(CnnError::geometry("mse_loss needs at least one element"));
        }
        let scale = 2.0 / x.len() as f64;
        let mut total = 0.0f64;
        for ((d, &a), &b) in dx.iter_mut().zip(x).zip(target) {
            let diff = f64::from(a) - f64::from(b);
            total += diff * diff;
            *d = (scale * diff) as f32;
        }
        Ok((total / x.len() as f64) as f32)
    }

    fn argmax_rows(
        &self,
        n: usize,
        classes: usize,
        x: &Vec<f32>,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        if classes == 0 {
            return Err(CnnError::geometry("argmax_rows needs at least one class"));
        }
        check_len("argmax_rows", "x", x.len(), n * classes)?;
        check_len("argmax_rows", "out", out.len(), n)?;
        for (row, o) in x.chunks_exact(classes).zip(out.iter_mut()) {
            let mut best = 0usize;
            for (j, &v) in row.iter().enumerate().skip(1) {
                let b = row[best];
                // First maximum; NaN counts as the largest (torch.argmax).
                if !b.is_nan() && (v > b || v.is_nan()) {
                    best = j;
                }
            }
            *o = best as u32;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_hand_computed() {
        let be = CpuBackend::with_threads(1).unwrap();
        let logits = vec![1.0f32, 2.0, 3.0, 1000.0, 0.0, -1000.0];
        let targets = vec![0u32, 1];
        let mut d = vec![0.0; 6];
        let p = CrossEntropyParams {
            n: 2,
            classes: 3,
            label_smoothing: 0.0,
        };
        let loss = be
            .softmax_cross_entropy(&p, &logits, &targets, &mut d)
            .unwrap();
        let z: f64 = (1.0f64.exp() + 2.0f64.exp() + 3.0f64.exp()).ln();
        let row0 = z - 1.0;
        let row1 = 1000.0; // lse ~ 1000, minus x[1] = 0
        let want = (row0 + row1) / 2.0;
        assert!((f64::from(loss) - want).abs() < 1e-3, "{loss} vs {want}");
        let sm0 = 1.0f64.exp() / z.exp();
        assert!((f64::from(d[0]) - (sm0 - 1.0) / 2.0).abs() < 1e-7);
        assert!((f64::from(d[3]) - 0.5).abs() < 1e-7);
        assert!((f64::from(d[4]) + 0.5).abs() < 1e-7);
        assert!(d.iter().all(|v| v.is_finite()));

        // Label smoothing 0.1 on one row: loss = lse - 0.9 x_t - 0.1/3 sum x.
        let p = CrossEntropyParams {
            n: 1,
            classes: 3,
            label_smoothing: 0.1,
        };
        let mut d = vec![0.0; 3];
        let loss = be
            .softmax_cross_entropy(&p, &logits[..3].to_vec(), &vec![2], &mut d)
            .unwrap();
        let want = z - 0.9 * 3.0 - 0.1 / 3.0 * 6.0;
        assert!((f64::from(loss) - want).abs() < 1e-6, "{loss} vs {want}");
        let q2 = 0.9 + 0.1 / 3.0;
        assert!((f64::from(d[2]) - (3.0f64.exp() / z.exp() - q2)).abs() < 1e-7);
        assert!(d.iter().map(|&v| f64::from(v)).sum::<f64>().abs() < 1e-6);
    }

    #[test]
    fn cross_entropy_errors() {
        let be = CpuBackend::with_threads(1).unwrap();
        let p = CrossEntropyParams {
            n: 2,
            classes: 3,
            label_smoothing: 0.0,
        };
        let err = be
            .softmax_cross_entropy(&p, &vec![0.0; 6], &vec![0, 3], &mut vec![0.0; 6])
            .unwrap_err();
        assert!(matches!(
            err,
            CnnError::TargetOutOfRange {
                row: 1,
                target: 3,
                classes: 3,
                ..
            }
        ));
        assert!(
            be.softmax_cross_entropy(&p, &vec![0.0; 5], &vec![0, 1], &mut vec![0.0; 6])
                .is_err()
        );
        assert!(
            be.softmax_cross_entropy(&p, &vec![0.0; 6], &vec![0], &mut vec![0.0; 6])
                .is_err()
        );
    }

    #[test]
    fn mixed_cross_entropy_is_the_weighted_sum_of_the_two() {
        let be = CpuBackend::with_threads(1).unwrap();
        let logits = vec![1.0f32, 2.0, 3.0, -1.0, 0.5, 0.0];
        let (ta, tb) = (vec![0u32, 2], vec![2u32, 0]);
        let p = CrossEntropyParams {
            n: 2,
            classes: 3,
            label_smoothing: 0.1,
        };
        let (mut da, mut db, mut dm) = (vec![0.0; 6], vec![0.0; 6], vec![0.0; 6]);
        let la = be.softmax_cross_entropy(&p, &logits, &ta, &mut da).unwrap();
        let lb = be.softmax_cross_entropy(&p, &logits, &tb, &mut db).unwrap();
        let lam = 0.3;
        let lm = be
            .softmax_cross_entropy_mixed(&p, lam, &logits, &ta, &tb, &mut dm)
            .unwrap();
        let want = lam * f64::from(la) + (1.0 - lam) * f64::from(lb);
        assert!((f64::from(lm) - want).abs() < 1e-6, "{lm} vs {want}");
        for ((&m, &a), &b) in dm.iter().zip(&da).zip(&db) {
            let want = lam * f64::from(a) + (1.0 - lam) * f64::from(b);
            assert!((f64::from(m) - want).abs() < 1e-7, "{m} vs {want}");
        }
        // lam = 1 is the plain loss of the first targets.
        be.softmax_cross_entropy_mixed(&p, 1.0, &logits, &ta, &tb, &mut dm)
            .unwrap();
        assert!(dm.iter().zip(&da).all(|(m, a)| (m - a).abs() < 1e-7));
        // Bad weights and partners are typed errors.
        assert!(
            be.softmax_cross_entropy_mixed(&p, 1.5, &logits, &ta, &tb, &mut dm)
                .is_err()
        );
        let err = be
            .softmax_cross_entropy_mixed(&p, 0.5, &logits, &ta, &vec![0, 3], &mut dm)
            .unwrap_err();
        assert!(matches!(
            err,
            CnnError::TargetOutOfRange {
                row: 1,
                target: 3,
                ..
            }
        ));
        assert!(
            be.softmax_cross_entropy_mixed(&p, 0.5, &logits, &ta, &vec![0], &mut dm)
                .is_err()
        );
    }

    #[test]
    fn mixed_cross_entropy_gradient_matches_finite_differences() {
        // Central differences of the mean loss in each logit, eps 1e-2:
        // the truncation error is O(eps^2) ~ 1e-5 of a loss that curves by
        // at most 1/4 per unit, the f32 loss's rounding 1e-7 / eps.
        let be = CpuBackend::with_threads(1).unwrap();
        let logits: Vec<f32> = (0..12).map(|i| ((i * 7) % 5) as f32 * 0.6 - 1.1).collect();
        let p = CrossEntropyParams {
            n: 3,
            classes: 4,
            label_smoothing: 0.2,
        };
        let (ta, tb) = (vec![1u32, 3, 0], vec![0u32, 3, 1]);
        let lam = 0.35;
        let mut d = vec![0.0; 12];
        be.softmax_cross_entropy_mixed(&p, lam, &logits, &ta, &tb, &mut d)
            .unwrap();
        let eps = 1e-2f32;
        let mut scratch = vec![0.0; 12];
        for i in 0..12 {
            let mut at = |delta: f32| {
                let mut x = logits.clone();
                x[i] += delta;
                f64::from(
                    be.softmax_cross_entropy_mixed(&p, lam, &x, &ta, &tb, &mut scratch)
                        .unwrap(),
                )
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * f64::from(eps));
            assert!(
                (fd - f64::from(d[i])).abs() < 1e-4,
                "logit {i}: finite difference {fd}, gradient {}",
                d[i]
            );
        }
    }

    #[test]
    fn mse_and_argmax() {
        let be = CpuBackend::with_threads(1).unwrap();
        let mut dx = vec![0.0; 2];
        let l = be
            .mse_loss(&vec![1.0, 3.0], &vec![0.0, 1.0], &mut dx)
            .unwrap();
        assert_eq!(l, 2.5);
        assert_eq!(dx, vec![1.0, 2.0]);
        assert!(be.mse_loss(&vec![1.0], &vec![0.0, 1.0], &mut dx).is_err());
        let mut out = vec![0u32; 3];
        be.argmax_rows(
            3,
            3,
            &vec![1.0, 5.0, 5.0, 2.0, 1.0, 0.0, 0.0, f32::NAN, 9.0],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, vec![1, 0, 1]);
        assert!(be.argmax_rows(3, 3, &vec![0.0; 8], &mut out).is_err());
    }
}
