//! Elementwise arithmetic, bias broadcast and f64 reductions.

use cnn_core::error::check_len;
use cnn_core::{BiasParams, CnnError, ElementwiseOps, Result};
use rayon::prelude::*;

use crate::CpuBackend;
use crate::par::{PAR_MIN_ELEMS, reduce_f64, sum_f64, sum_map_f64, zip_chunks};

impl ElementwiseOps for CpuBackend {
    fn add(&self, a: &Vec<f32>, b: &Vec<f32>, out: &mut Vec<f32>) -> Result<()> {
        check_len("add", "b", b.len(), a.len())?;
        check_len("add", "out", out.len(), a.len())?;
        zip_chunks(self, a.len(), [out], [a, b], |_, [out], [a, b]| {
            for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                *o = a + b;
            }
        });
        Ok(())
    }

    fn axpy(&self, alpha: f32, x: &Vec<f32>, y: &mut Vec<f32>) -> Result<()> {
        check_len("axpy", "y", y.len(), x.len())?;
        zip_chunks(self, x.len(), [y], [x], |_, [y], [x]| {
            for (y, &x) in y.iter_mut().zip(x) {
                *y += alpha * x;
            }
        });
        Ok(())
    }

    fn scale(&self, alpha: f32, x: &mut Vec<f32>) -> Result<()> {
        let len = x.len();
        zip_chunks(self, len, [x], [], |_, [x], []| {
            for v in x.iter_mut() {
                *v *= alpha;
            }
        });
        Ok(())
    }

    fn clamp(&self, lo: f32, hi: f32, x: &mut Vec<f32>) -> Result<()> {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(CnnError::value(
                "clamp bounds",
                format!("need lo <= hi, got lo {lo}, hi {hi}"),
            ));
        }
        let len = x.len();
        zip_chunks(self, len, [x], [], |_, [x], []| {
            for v in x.iter_mut() {
                // NaN passes through, as torch.clamp. Two selects rather
                // than an if/else chain (the same values: `lo <= hi`), so
                // the loop vectorises; the chain compiled to scalar
                // branches, which the in-place ReLU (`clamp(0, inf)`)
                // mispredicted on every other element.
                let up = if *v < lo { lo } else { *v };
                *v = if up > hi { hi } else { up };
            }
        });
        Ok(())
    }

    fn add_sign(&self, lambda: f32, w: &Vec<f32>, g: &mut Vec<f32>) -> Result<()> {
        check_len("add_sign", "g", g.len(), w.len())?;
        zip_chunks(self, w.len(), [g], [w], |_, [g], [w]| {
            for (g, &w) in g.iter_mut().zip(w) {
                let sign = if w > 0.0 {
                    1.0
                } else if w < 0.0 {
                    -1.0
                } else {
                    w * 0.0 // 0 for +-0, NaN for NaN (torch.sign)
                };
                *g += lambda * sign;
            }
        });
        Ok(())
    }

    fn bias_add(&self, p: &BiasParams, b: &Vec<f32>, y: &mut Vec<f32>) -> Result<()> {
        p.check("bias_add", y.len(), b.len())?;
        if y.is_empty() {
            return Ok(());
        }
        let (c, inner) = (p.channels, p.inner);
        if inner == 1 {
            // (outer, channels) rows, e.g. a linear layer's output.
            let rows = |y: &mut [f32]| {
                for row in y.chunks_exact_mut(c) {
                    for (v, &bv) in row.iter_mut().zip(b) {
                        *v += bv;
                    }
                }
            };
            if self.threads > 1 && y.len() >= PAR_MIN_ELEMS {
                let rows_per = (PAR_MIN_ELEMS / 2).div_ceil(c).max(1);
                self.install(|| y.par_chunks_mut(rows_per * c).for_each(rows));
            } else {
                rows(y);
            }
        } else {
            let planes = |(i, plane): (usize, &mut [f32])| {
                let bv = b[i % c];
                for v in plane.iter_mut() {
                    *v += bv;
                }
            };
            if self.threads > 1 && y.len() >= PAR_MIN_ELEMS {
                self.install(|| y.par_chunks_mut(inner).enumerate().for_each(planes));
            } else {
                y.chunks_mut(inner).enumerate().for_each(planes);
            }
        }
        Ok(())
    }

    fn bias_backward(&self, p: &BiasParams, dy: &Vec<f32>, db: &mut Vec<f32>) -> Result<()> {
        p.check("bias_backward", dy.len(), db.len())?;
        let (outer, c, inner) = (p.outer, p.channels, p.inner);
        if c == 0 {
            return Ok(());
        }
        let channel_sum = |ch: usize| -> f64 {
            let mut s = 0.0f64;
            for o in 0..outer {
                let start = (o * c + ch) * inner;
                s += sum_f64(&dy[start..start + inner]);
            }
            s
        };
        if inner == 1 {
            // Rows of `c` values: sum each column in row order, a block of
            // columns at a time with f64 accumulators on the stack.
            const BLOCK: usize = 64;
            for c0 in (0..c).step_by(BLOCK) {
                let width = BLOCK.min(c - c0);
                let mut acc = [0.0f64; BLOCK];
                for row in dy.chunks_exact(c) {
                    for (a, &v) in acc.iter_mut().zip(&row[c0..c0 + width]) {
                        *a += f64::from(v);
                    }
                }
                for (d, s) in db[c0..c0 + width].iter_mut().zip(acc) {
                    *d = (f64::from(*d) + s) as f32;
                }
            }
        } else if self.threads > 1 && dy.len() >= PAR_MIN_ELEMS {
            self.install(|| {
                db.par_iter_mut()
                    .enumerate()
                    .for_each(|(ch, d)| *d = (f64::from(*d) + channel_sum(ch)) as f32)
            });
        } else {
            for (ch, d) in db.iter_mut().enumerate() {
                *d = (f64::from(*d) + channel_sum(ch)) as f32;
            }
        }
        Ok(())
    }

    fn sum(&self, x: &Vec<f32>) -> Result<f64> {
        Ok(reduce_f64(self, x, sum_f64))
    }

    fn sum_squares(&self, x: &Vec<f32>) -> Result<f64> {
        Ok(reduce_f64(self, x, |c| sum_map_f64(c, |v| v * v)))
    }

    fn sum_abs(&self, x: &Vec<f32>) -> Result<f64> {
        Ok(reduce_f64(self, x, |c| sum_map_f64(c, f64::abs)))
    }

    fn count_non_finite(&self, x: &Vec<f32>) -> Result<usize> {
        let n = reduce_f64(self, x, |c| {
            c.iter().filter(|v| !v.is_finite()).count() as f64
        });
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-place ReLU of the graph is `clamp(0, inf)`: it must give
    /// ReLU's bits (`x < 0 ? 0 : x`: NaN and -0 pass through), and any
    /// clamp the chained `x < lo ? lo : x > hi ? hi : x`, over lengths
    /// that leave vector remainders.
    #[test]
    fn clamp_gives_the_chained_selects_bits_and_relus_at_zero_infinity() {
        use cnn_core::{Activation, ActivationOps};
        let be = CpuBackend::with_threads(2).unwrap();
        let special = [
            f32::NAN,
            -0.0,
            0.0,
            -1.5,
            2.5,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -1e-42,
            1e-42,
            -0.75,
            0.75,
        ];
        for len in [1, 7, 8, 9, 37, 1000] {
            let x: Vec<f32> = (0..len).map(|i| special[(i * 7) % special.len()]).collect();
            for (lo, hi) in [(0.0, f32::INFINITY), (-1.0, 1.0), (0.5, 0.5)] {
                let mut y = x.clone();
                be.clamp(lo, hi, &mut y).unwrap();
                for (&v, &got) in x.iter().zip(&y) {
                    let want = if v < lo {
                        lo
                    } else if v > hi {
                        hi
                    } else {
                        v
                    };
                    assert_eq!(got.to_bits(), want.to_bits(), "clamp({lo}, {hi}) of {v}");
                }
            }
            let mut relu = vec![0.0; len];
            be.activation_forward(Activation::Relu, &x, &mut relu)
                .unwrap();
            let mut y = x.clone();
            be.clamp(0.0, f32::INFINITY, &mut y).unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&relu), "length {len}");
        }
    }

    #[test]
    fn elementwise_basics() {
        let be = CpuBackend::with_threads(2).unwrap();
        let a = vec![1.0, -2.0, 0.0, f32::NAN];
        let b = vec![0.5, 0.5, 0.5, 0.5];
        let mut out = vec![0.0; 4];
        be.add(&a, &b, &mut out).unwrap();
        assert_eq!(&out[..3], &[1.5, -1.5, 0.5]);
        let mut y = b.clone();
        be.axpy(2.0, &a, &mut y).unwrap();
        assert_eq!(&y[..3], &[2.5, -3.5, 0.5]);
        let mut x = vec![3.0, -3.0, 0.5, f32::NAN];
        be.clamp(-1.0, 1.0, &mut x).unwrap();
        assert_eq!(&x[..3], &[1.0, -1.0, 0.5]);
        assert!(x[3].is_nan());
        assert!(be.clamp(1.0, -1.0, &mut x).is_err());
        let mut g = vec![0.0; 4];
        be.add_sign(0.1, &vec![2.0, -3.0, 0.0, -0.0], &mut g)
            .unwrap();
        assert_eq!(g, vec![0.1, -0.1, 0.0, 0.0]);
        assert!(be.add(&a, &b, &mut vec![0.0; 3]).is_err());
        assert!(be.axpy(1.0, &a, &mut vec![0.0; 5]).is_err());
        assert_eq!(
            be.count_non_finite(&vec![1.0, f32::INFINITY, f32::NAN])
                .unwrap(),
            2
        );
        assert_eq!(be.sum_abs(&vec![1.0, -2.0]).unwrap(), 3.0);
        assert_eq!(be.sum_squares(&vec![1.0, -2.0]).unwrap(), 5.0);
    }

    #[test]
    fn bias_add_and_backward_both_layouts() {
        let be = CpuBackend::with_threads(2).unwrap();
        for (outer, c, inner) in [(2, 3, 1), (2, 3, 4), (3, 5, 4000)] {
            let p = BiasParams {
                outer,
                channels: c,
                inner,
            };
            let b: Vec<f32> = (0..c).map(|i| i as f32 + 1.0).collect();
            let mut y = vec![0.5f32; outer * c * inner];
            be.bias_add(&p, &b, &mut y).unwrap();
            for (i, v) in y.iter().enumerate() {
                assert_eq!(*v, 0.5 + b[(i / inner) % c]);
            }
            let mut db = vec![1.0f32; c];
            be.bias_backward(&p, &y, &mut db).unwrap();
            for ch in 0..c {
                let want = 1.0 + (outer * inner) as f32 * (0.5 + b[ch]);
                assert!((db[ch] - want).abs() <= 1e-3, "{} vs {want}", db[ch]);
            }
            assert!(be.bias_add(&p, &vec![0.0; c + 1], &mut y).is_err());
        }
    }

    /// Long reductions add the partial sums of fixed chunks in a fixed
    /// tree: the same bits on any thread count and on every call (rayon's
    /// own `sum` groups the partials as the work happened to be split).
    #[test]
    fn long_reductions_do_not_depend_on_the_thread_count() {
        // Ten orders of magnitude, so that the grouping shows in the last bits.
        let x: Vec<f32> = (0..300_007usize)
            .map(|i| {
                let t = (i as f32 * 0.618_034).fract();
                (t - 0.4) * 10f32.powi((i % 11) as i32 - 5)
            })
            .collect();
        let run = |be: &CpuBackend| {
            [be.sum(&x), be.sum_squares(&x), be.sum_abs(&x)].map(|r| r.unwrap().to_bits())
        };
        let want = run(&CpuBackend::with_threads(1).unwrap());
        for threads in [2, 3, 4] {
            let be = CpuBackend::with_threads(threads).unwrap();
            for call in 0..5 {
                assert_eq!(run(&be), want, "{threads} threads, call {call}");
            }
        }
    }

    #[test]
    fn long_sums_are_exact_in_f64() {
        let be = CpuBackend::with_threads(2).unwrap();
        let x = vec![0.1f32; 1_000_000];
        let want = 1_000_000.0 * f64::from(0.1f32);
        assert!((be.sum(&x).unwrap() - want).abs() < 1e-6);
    }
}
