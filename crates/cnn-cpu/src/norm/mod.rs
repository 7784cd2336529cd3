//! Batch normalisation (statistics in f64) and counter-based dropout;
//! batch norm's backward, alone or fused with ReLU's, is in `backward.rs`,
//! the per-channel loops all passes share in `channels.rs`.
//!
//! Batch norm works in two parallel passes: per-channel statistics (a task
//! per channel, reading its `n` strided planes), then a pass over the
//! `(n, c)` planes of the output that applies the per-channel affine map.
//! The per-channel values live in a buffer kept by the calling thread, so a
//! warmed-up step allocates nothing.

mod backward;
mod channels;

use cnn_core::rng::philox4x32_10;
use cnn_core::{BatchNormParams, DropoutParams, NormOps, Result};

use crate::CpuBackend;
use crate::par::{sum_f64, sum_map_f64, zip_chunks};
use channels::{channel_planes, per_channel, per_plane, with_channels};

/// Batch norm in training mode: batch statistics, running averages and
/// saves, then the affine map and `epilogue` in one pass.
#[allow(clippy::too_many_arguments)]
fn forward_train(
    be: &CpuBackend,
    op: &'static str,
    p: &BatchNormParams,
    x: &[f32],
    epilogue: Epilogue<'_>,
    [gamma, beta]: [&[f32]; 2],
    [running_mean, running_var]: [&mut [f32]; 2],
    y: &mut [f32],
    [save_mean, save_invstd]: [&mut [f32]; 2],
) -> Result<()> {
    p.check(
        op,
        &[("x", x.len()), ("y", y.len())],
        &[
            ("gamma", gamma.len()),
            ("beta", beta.len()),
            ("running_mean", running_mean.len()),
            ("running_var", running_var.len()),
            ("save_mean", save_mean.len()),
            ("save_invstd", save_invstd.len()),
        ],
    )?;
    epilogue.check(op, x.len())?;
    let count = (p.n * p.hw) as f64;
    with_channels(p.c, |chan| {
        // Two-pass mean and biased variance per channel, in f64.
        per_channel(be, p, chan, |ch| {
            let mean = channel_planes(x, p, ch).map(sum_f64).sum::<f64>() / count;
            let var = channel_planes(x, p, ch)
                .map(|s| sum_map_f64(s, |v| (v - mean) * (v - mean)))
                .sum::<f64>()
                / count;
            [mean, var, 0.0, 0.0]
        });
        let momentum = f64::from(p.momentum);
        for (ch, slot) in chan.iter_mut().enumerate() {
            let [mean, var, ..] = *slot;
            let invstd = 1.0 / (var + f64::from(p.eps)).sqrt();
            save_mean[ch] = mean as f32;
            save_invstd[ch] = invstd as f32;
            // PyTorch: the running variance uses the unbiased estimate
            // (for a single value per channel there is none; keep the biased).
            let unbiased = if count > 1.0 {
                var * count / (count - 1.0)
            } else {
                var
            };
            running_mean[ch] =
                ((1.0 - momentum) * f64::from(running_mean[ch]) + momentum * mean) as f32;
            running_var[ch] =
                ((1.0 - momentum) * f64::from(running_var[ch]) + momentum * unbiased) as f32;
            // y = (x - mean) * (invstd * gamma) + beta, in f32 (held
            // exactly in the f64 slots).
            *slot = [
                f64::from(mean as f32),
                f64::from((invstd * f64::from(gamma[ch])) as f32),
                f64::from(beta[ch]),
                0.0,
            ];
        }
        apply(be, p, chan, x, epilogue, y);
    });
    Ok(())
}

/// What follows batch norm's affine map in the same pass.
#[derive(Clone, Copy)]
enum Epilogue<'a> {
    /// Nothing: `y = bn(x)`.
    None,
    /// `y = relu(bn(x))`.
    Relu,
    /// `y = relu(bn(x) + residual)`, the residual `(n, c, hw)` like x.
    AddRelu(&'a [f32]),
}

impl<'a> Epilogue<'a> {
    fn fused(residual: Option<&'a Vec<f32>>) -> Self {
        residual.map_or(Epilogue::Relu, |r| Epilogue::AddRelu(r))
    }

    fn check(&self, op: &'static str, len: usize) -> Result<()> {
        match self {
            Epilogue::AddRelu(r) => cnn_core::error::check_len(op, "residual", r.len(), len),
            _ => Ok(()),
        }
    }
}

/// ReLU as `activation_forward` computes it (NaN and -0 pass through).
#[inline(always)]
fn relu(v: f32) -> f32 {
    if v < 0.0 { 0.0 } else { v }
}

/// `y = epilogue((x - mean) * scale + shift)` plane by plane, with each
/// channel's `[mean, scale, shift, _]` from `chan` (f32 values held in
/// f64). The operations are those of batch norm's output, the residual
/// add (`bn + residual`) and ReLU run one after the other, so the bits
/// are theirs.
fn apply(
    be: &CpuBackend,
    p: &BatchNormParams,
    chan: &[[f64; 4]],
    x: &[f32],
    epilogue: Epilogue<'_>,
    y: &mut [f32],
) {
    let hw = p.hw;
    per_plane(be, p, y, |ch, i, plane| {
        let [mean, scale, shift, _] = chan[ch].map(|v| v as f32);
        let xs = &x[i * hw..(i + 1) * hw];
        match epilogue {
            Epilogue::None => {
                for (y, &x) in plane.iter_mut().zip(xs) {
                    *y = (x - mean) * scale + shift;
                }
            }
            Epilogue::Relu => {
                for (y, &x) in plane.iter_mut().zip(xs) {
                    *y = relu((x - mean) * scale + shift);
                }
            }
            Epilogue::AddRelu(r) => {
                let rs = &r[i * hw..(i + 1) * hw];
                for ((y, &x), &r) in plane.iter_mut().zip(xs).zip(rs) {
                    *y = relu((x - mean) * scale + shift + r);
                }
            }
        }
    });
}

/// Eval-mode batch norm with the running statistics, then `epilogue`,
/// in one pass (`op` names the caller in errors); x is read from `y`
/// where it is `None`.
fn eval(
    be: &CpuBackend,
    op: &'static str,
    p: &BatchNormParams,
    x: Option<&[f32]>,
    epilogue: Epilogue<'_>,
    [gamma, beta, running_mean, running_var]: [&[f32]; 4],
    y: &mut [f32],
) -> Result<()> {
    p.check(
        op,
        &[("x", x.map_or(y.len(), <[f32]>::len)), ("y", y.len())],
        &[
            ("gamma", gamma.len()),
            ("beta", beta.len()),
            ("running_mean", running_mean.len()),
            ("running_var", running_var.len()),
        ],
    )?;
    epilogue.check(op, y.len())?;
    with_channels(p.c, |chan| {
        for (ch, slot) in chan.iter_mut().enumerate() {
            let invstd = 1.0 / (f64::from(running_var[ch]) + f64::from(p.eps)).sqrt();
            *slot = [
                f64::from(running_mean[ch]),
                f64::from((invstd * f64::from(gamma[ch])) as f32),
                f64::from(beta[ch]),
                0.0,
            ];
        }
        match x {
            Some(x) => apply(be, p, chan, x, epilogue, y),
            None => apply_in_place(be, p, chan, epilogue, y),
        }
    });
    Ok(())
}

/// [`apply`] with x in `y`: `y = epilogue((y - mean) * scale + shift)`.
fn apply_in_place(
    be: &CpuBackend,
    p: &BatchNormParams,
    chan: &[[f64; 4]],
    epilogue: Epilogue<'_>,
    y: &mut [f32],
) {
    let hw = p.hw;
    per_plane(be, p, y, |ch, i, plane| {
        let [mean, scale, shift, _] = chan[ch].map(|v| v as f32);
        match epilogue {
            Epilogue::None => {
                for y in plane.iter_mut() {
                    *y = (*y - mean) * scale + shift;
                }
            }
            Epilogue::Relu => {
                for y in plane.iter_mut() {
                    *y = relu((*y - mean) * scale + shift);
                }
            }
            Epilogue::AddRelu(r) => {
                let rs = &r[i * hw..(i + 1) * hw];
                for (y, &r) in plane.iter_mut().zip(rs) {
                    *y = relu((*y - mean) * scale + shift + r);
                }
            }
        }
    });
}

impl NormOps for CpuBackend {
    fn batch_norm2d_forward_train(
        &self,
        p: &BatchNormParams,
        x: &Vec<f32>,
        gamma: &Vec<f32>,
        beta: &Vec<f32>,
        running_mean: &mut Vec<f32>,
        running_var: &mut Vec<f32>,
        y: &mut Vec<f32>,
        save_mean: &mut Vec<f32>,
        save_invstd: &mut Vec<f32>,
    ) -> Result<()> {
        forward_train(
            self,
            "batch_norm2d_forward_train",
            p,
            x,
            Epilogue::None,
            [gamma.as_slice(), beta.as_slice()],
            [running_mean.as_mut_slice(), running_var.as_mut_slice()],
            y,
            [save_mean.as_mut_slice(), save_invstd.as_mut_slice()],
        )
    }

    fn batch_norm2d_relu_forward_train(
        &self,
        p: &BatchNormParams,
        x: &Vec<f32>,
        residual: Option<&Vec<f32>>,
        gamma: &Vec<f32>,
        beta: &Vec<f32>,
        running_mean: &mut Vec<f32>,
        running_var: &mut Vec<f32>,
        y: &mut Vec<f32>,
        save_mean: &mut Vec<f32>,
        save_invstd: &mut Vec<f32>,
    ) -> Result<()> {
        forward_train(
            self,
            "batch_norm2d_relu_forward_train",
            p,
            x,
            Epilogue::fused(residual),
            [gamma.as_slice(), beta.as_slice()],
            [running_mean.as_mut_slice(), running_var.as_mut_slice()],
            y,
            [save_mean.as_mut_slice(), save_invstd.as_mut_slice()],
        )
    }

    fn batch_norm2d_forward_eval(
        &self,
        p: &BatchNormParams,
        x: &Vec<f32>,
        gamma: &Vec<f32>,
        beta: &Vec<f32>,
        running_mean: &Vec<f32>,
        running_var: &Vec<f32>,
        y: &mut Vec<f32>,
    ) -> Result<()> {
        eval(
            self,
            "batch_norm2d_forward_eval",
            p,
            Some(x),
            Epilogue::None,
            [gamma, beta, running_mean, running_var],
            y,
        )
    }

    fn batch_norm2d_relu_forward_eval(
        &self,
        p: &BatchNormParams,
        x: &Vec<f32>,
        residual: Option<&Vec<f32>>,
        gamma: &Vec<f32>,
        beta: &Vec<f32>,
        running_mean: &Vec<f32>,
        running_var: &Vec<f32>,
        y: &mut Vec<f32>,
    ) -> Result<()> {
        eval(
            self,
            "batch_norm2d_relu_forward_eval",
            p,
            Some(x),
            Epilogue::fused(residual),
            [gamma, beta, running_mean, running_var],
            y,
        )
    }

    fn batch_norm2d_relu_forward_eval_in_place(
        &self,
        p: &BatchNormParams,
        residual: Option<&Vec<f32>>,
        gamma: &Vec<f32>,
        beta: &Vec<f32>,
        running_mean: &Vec<f32>,
        running_var: &Vec<f32>,
        y: &mut Vec<f32>,
    ) -> Result<()> {
        eval(
            self,
            "batch_norm2d_relu_forward_eval_in_place",
            p,
            None,
            Epilogue::fused(residual),
            [gamma, beta, running_mean, running_var],
            y,
        )
    }

    /// With `xhat = (x - mean) invstd`, `N = n hw`:
    /// `dbeta += sum dy`, `dgamma += sum dy xhat`,
    /// `dx = gamma invstd / N (N dy - sum dy - xhat sum(dy xhat))`
    /// (`backward.rs`).
    fn batch_norm2d_backward(
        &self,
        p: &BatchNormParams,
        x: &Vec<f32>,
        gamma: &Vec<f32>,
        save_mean: &Vec<f32>,
        save_invstd: &Vec<f32>,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
        dgamma: &mut Vec<f32>,
        dbeta: &mut Vec<f32>,
    ) -> Result<()> {
        backward::backward(
            self,
            p,
            x,
            backward::Dy::Plain(dy),
            [gamma, save_mean, save_invstd],
            dx,
            [dgamma.as_mut_slice(), dbeta.as_mut_slice()],
        )
    }

    /// Two passes: the sums with ReLU's mask applied to dy as it is read,
    /// then dx (and, with a residual, the masked dy written over dy).
    fn batch_norm2d_relu_backward(
        &self,
        p: &BatchNormParams,
        x: &Vec<f32>,
        y: &Vec<f32>,
        gamma: &Vec<f32>,
        save_mean: &Vec<f32>,
        save_invstd: &Vec<f32>,
        dy: &mut Vec<f32>,
        residual: bool,
        dx: &mut Vec<f32>,
        dgamma: &mut Vec<f32>,
        dbeta: &mut Vec<f32>,
    ) -> Result<()> {
        backward::backward(
            self,
            p,
            x,
            backward::Dy::Relu { y, dy, residual },
            [gamma, save_mean, save_invstd],
            dx,
            [dgamma.as_mut_slice(), dbeta.as_mut_slice()],
        )
    }

    fn dropout_forward(&self, p: &DropoutParams, x: &Vec<f32>, y: &mut Vec<f32>) -> Result<()> {
        dropout(self, "dropout_forward", p, x, y)
    }

    fn dropout_backward(&self, p: &DropoutParams, dy: &Vec<f32>, dx: &mut Vec<f32>) -> Result<()> {
        dropout(self, "dropout_backward", p, dy, dx)
    }
}

/// `out = input * keep(i) * scale`; one Philox block serves four elements.
fn dropout(
    be: &CpuBackend,
    op: &'static str,
    p: &DropoutParams,
    input: &[f32],
    out: &mut [f32],
) -> Result<()> {
    p.validate()?;
    cnn_core::error::check_len(op, "output", out.len(), input.len())?;
    let key = p.key();
    let threshold = p.threshold();
    let scale = p.scale();
    let step = p.step;
    // Chunks start at multiples of 4 (PAR_CHUNK is), so blocks align.
    zip_chunks(be, input.len(), [out], [input], |offset, [out], [input]| {
        for (j, (o4, x4)) in out.chunks_mut(4).zip(input.chunks(4)).enumerate() {
            let block = (offset / 4 + j) as u64;
            let counter = [
                block as u32,
                (block >> 32) as u32,
                step as u32,
                (step >> 32) as u32,
            ];
            let bits = philox4x32_10(counter, key);
            for ((o, &x), &b) in o4.iter_mut().zip(x4).zip(&bits) {
                *o = if (b >> 8) >= threshold {
                    x * scale
                } else {
                    0.0
                };
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0 + 3.0)
            .collect()
    }

    /// Plain f64 batch norm reference: (y, mean, invstd, unbiased var).
    fn reference(
        p: &BatchNormParams,
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let cnt = (p.n * p.hw) as f64;
        let mut y = vec![0.0; x.len()];
        let (mut means, mut invs, mut unb) = (vec![], vec![], vec![]);
        for ch in 0..p.c {
            let idx: Vec<usize> = (0..p.n)
                .flat_map(|i| (0..p.hw).map(move |k| (i * p.c + ch) * p.hw + k))
                .collect();
            let mean = idx.iter().map(|&i| f64::from(x[i])).sum::<f64>() / cnt;
            let var = idx
                .iter()
                .map(|&i| (f64::from(x[i]) - mean).powi(2))
                .sum::<f64>()
                / cnt;
            let inv = 1.0 / (var + f64::from(p.eps)).sqrt();
            for &i in &idx {
                y[i] = (f64::from(x[i]) - mean) * inv * f64::from(gamma[ch]) + f64::from(beta[ch]);
            }
            means.push(mean);
            invs.push(inv);
            unb.push(var * cnt / (cnt - 1.0));
        }
        (y, means, invs, unb)
    }

    #[test]
    fn batch_norm_train_eval_and_backward() {
        for threads in [1, 2] {
            let be = CpuBackend::with_threads(threads).unwrap();
            for (n, c, hw) in [(2, 3, 5), (4, 3, 4000)] {
                let p = BatchNormParams {
                    n,
                    c,
                    hw,
                    eps: 1e-5,
                    momentum: 0.1,
                };
                let x = data(n * c * hw);
                let gamma: Vec<f32> = (0..c).map(|i| 0.5 + i as f32).collect();
                let beta: Vec<f32> = (0..c).map(|i| i as f32 - 1.0).collect();
                let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
                let mut y = vec![0.0; x.len()];
                let (mut sm, mut si) = (vec![0.0; c], vec![0.0; c]);
                be.batch_norm2d_forward_train(
                    &p, &x, &gamma, &beta, &mut rm, &mut rv, &mut y, &mut sm, &mut si,
                )
                .unwrap();
                let (yr, means, invs, unb) = reference(&p, &x, &gamma, &beta);
                for (a, b) in y.iter().zip(&yr) {
                    assert!(
                        (f64::from(*a) - b).abs() < 1e-5 + 1e-4 * b.abs(),
                        "{a} vs {b}"
                    );
                }
                for ch in 0..c {
                    assert!((f64::from(rm[ch]) - 0.1 * means[ch]).abs() < 1e-6);
                    assert!((f64::from(rv[ch]) - (0.9 + 0.1 * unb[ch])).abs() < 1e-5);
                    assert!((f64::from(si[ch]) - invs[ch]).abs() < 1e-5 * invs[ch]);
                }

                // Eval with the running stats = these batch stats reproduces y.
                let rmean: Vec<f32> = means.iter().map(|&m| m as f32).collect();
                let rvar: Vec<f32> = invs
                    .iter()
                    .map(|&i| (1.0 / (i * i) - 1e-5) as f32)
                    .collect();
                let mut ye = vec![0.0; x.len()];
                be.batch_norm2d_forward_eval(&p, &x, &gamma, &beta, &rmean, &rvar, &mut ye)
                    .unwrap();
                for (a, b) in ye.iter().zip(&yr) {
                    assert!(
                        (f64::from(*a) - b).abs() < 1e-4 + 1e-4 * b.abs(),
                        "{a} vs {b}"
                    );
                }

                // Backward against the closed form in f64.
                let dy = data(x.len())
                    .iter()
                    .map(|v| v * 0.3 - 0.5)
                    .collect::<Vec<f32>>();
                let mut dx = vec![0.0; x.len()];
                let (mut dg, mut db) = (vec![1.0; c], vec![2.0; c]);
                be.batch_norm2d_backward(&p, &x, &gamma, &sm, &si, &dy, &mut dx, &mut dg, &mut db)
                    .unwrap();
                let cnt = (n * hw) as f64;
                for ch in 0..c {
                    let idx: Vec<usize> = (0..n)
                        .flat_map(|i| (0..hw).map(move |k| (i * c + ch) * hw + k))
                        .collect();
                    let xhat = |i: usize| (f64::from(x[i]) - means[ch]) * invs[ch];
                    let sdy: f64 = idx.iter().map(|&i| f64::from(dy[i])).sum();
                    let sdyx: f64 = idx.iter().map(|&i| f64::from(dy[i]) * xhat(i)).sum();
                    assert!((f64::from(db[ch]) - (2.0 + sdy)).abs() < 1e-4 * (1.0 + sdy.abs()));
                    assert!((f64::from(dg[ch]) - (1.0 + sdyx)).abs() < 1e-4 * (1.0 + sdyx.abs()));
                    for &i in &idx {
                        let want = f64::from(gamma[ch]) * invs[ch] / cnt
                            * (cnt * f64::from(dy[i]) - sdy - xhat(i) * sdyx);
                        assert!(
                            (f64::from(dx[i]) - want).abs() < 1e-5 + 1e-4 * want.abs(),
                            "{} vs {want}",
                            dx[i]
                        );
                    }
                }
            }
        }
    }

    /// Every output of the batch-norm ops, as bits, on `threads` threads.
    fn batch_norm_bits(threads: usize, p: &BatchNormParams) -> Vec<Vec<u32>> {
        let be = CpuBackend::with_threads(threads).unwrap();
        let (c, len) = (p.c, p.n * p.c * p.hw);
        // Values over eight orders of magnitude: their sums are not exact
        // in f64, so a change of order could show.
        let spread = |len: usize, seed: usize| -> Vec<f32> {
            (0..len)
                .map(|i| {
                    let t = ((i + seed) as f32 * 0.618_034).fract();
                    (t - 0.4) * 10f32.powi(((i * 7 + seed) % 9) as i32 - 4)
                })
                .collect()
        };
        let x = spread(len, 0);
        let gamma: Vec<f32> = (0..c).map(|i| 0.5 + i as f32).collect();
        let beta: Vec<f32> = (0..c).map(|i| i as f32 - 1.0).collect();
        let (mut rm, mut rv) = (vec![0.25; c], vec![1.5; c]);
        let (mut y, mut sm, mut si) = (vec![0.0; len], vec![0.0; c], vec![0.0; c]);
        be.batch_norm2d_forward_train(
            p, &x, &gamma, &beta, &mut rm, &mut rv, &mut y, &mut sm, &mut si,
        )
        .unwrap();
        let mut ye = vec![0.0; len];
        be.batch_norm2d_forward_eval(p, &x, &gamma, &beta, &rm, &rv, &mut ye)
            .unwrap();
        let dy = spread(len, 5);
        let (mut dx, mut dg, mut db) = (vec![0.0; len], vec![1.0; c], vec![2.0; c]);
        be.batch_norm2d_backward(p, &x, &gamma, &sm, &si, &dy, &mut dx, &mut dg, &mut db)
            .unwrap();
        [y, sm, si, rm, rv, ye, dx, dg, db]
            .iter()
            .map(|v| v.iter().map(|f| f.to_bits()).collect())
            .collect()
    }

    /// The statistics, the output and the gradients of batch norm do not
    /// depend on the thread count: each channel sums its planes in one
    /// order, whichever thread runs it. (The larger shape takes the
    /// parallel paths.)
    #[test]
    fn batch_norm_gives_the_same_bits_on_any_thread_count() {
        for (n, c, hw) in [(3, 4, 7), (8, 5, 1031)] {
            let p = BatchNormParams {
                n,
                c,
                hw,
                eps: 1e-5,
                momentum: 0.1,
            };
            let want = batch_norm_bits(1, &p);
            for threads in [2, 3] {
                assert!(
                    batch_norm_bits(threads, &p) == want,
                    "({n}, {c}, {hw}) on {threads} threads differs from 1 thread"
                );
            }
        }
    }

    #[test]
    fn batch_norm_bad_lengths() {
        let be = CpuBackend::with_threads(1).unwrap();
        let p = BatchNormParams {
            n: 2,
            c: 3,
            hw: 4,
            eps: 1e-5,
            momentum: 0.1,
        };
        let x = vec![0.0; 24];
        let (g, b) = (vec![1.0; 3], vec![0.0; 3]);
        let (mut rm, mut rv, mut sm, mut si) =
            (vec![0.0; 3], vec![1.0; 3], vec![0.0; 3], vec![0.0; 3]);
        assert!(
            be.batch_norm2d_forward_train(
                &p,
                &x,
                &g,
                &vec![0.0; 2],
                &mut rm,
                &mut rv,
                &mut vec![0.0; 24],
                &mut sm,
                &mut si
            )
            .is_err()
        );
        assert!(
            be.batch_norm2d_forward_eval(&p, &x, &g, &b, &rm, &rv, &mut vec![0.0; 23])
                .is_err()
        );
    }

    #[test]
    fn dropout_matches_reference_mask() {
        let be = CpuBackend::with_threads(2).unwrap();
        for len in [7usize, 100_003] {
            let p = DropoutParams {
                prob: 0.3,
                seed: 42,
                stream: 3,
                step: 9,
            };
            let x: Vec<f32> = (0..len).map(|i| 1.0 + (i % 13) as f32).collect();
            let mut y = vec![0.0; len];
            be.dropout_forward(&p, &x, &mut y).unwrap();
            let mut kept = 0usize;
            for i in 0..len {
                let want = if p.keep(i as u64) {
                    x[i] * p.scale()
                } else {
                    0.0
                };
                assert_eq!(y[i], want, "element {i}");
                kept += usize::from(p.keep(i as u64));
            }
            if len > 1000 {
                let frac = kept as f64 / len as f64;
                assert!((frac - 0.7).abs() < 0.01, "kept {frac}");
            }
            let mut dx = vec![0.0; len];
            be.dropout_backward(&p, &x, &mut dx).unwrap();
            assert_eq!(dx, y);
        }
        let p = DropoutParams {
            prob: 1.0,
            seed: 0,
            stream: 0,
            step: 0,
        };
        assert!(
            be.dropout_forward(&p, &vec![0.0; 4], &mut vec![0.0; 4])
                .is_err()
        );
        let p = DropoutParams { prob: 0.5, ..p };
        assert!(
            be.dropout_forward(&p, &vec![0.0; 4], &mut vec![0.0; 3])
                .is_err()
        );
    }
}
