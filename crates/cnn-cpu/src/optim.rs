//! Fused optimizer updates, one pass over each parameter tensor (torch.optim
//! single-tensor formulas; see `cnn_core::backend::optim`).
//!
//! Every rule reads `g` (never writes it back) and replaces it per element by
//! `g + weight_decay * w` when weight decay is coupled. Long tensors are
//! split into chunks run in parallel.

use cnn_core::error::check_len;
use cnn_core::{
    AdadeltaStep, AdagradStep, AdamStep, AdamaxStep, AsgdStep, LionStep, NadamStep, OptimOps,
    RadamStep, Result, RmspropStep, RpropStep, SgdStep,
};

use crate::CpuBackend;
use crate::par::zip_chunks;
use cnn_core::backend::{check_optim_state as check_state, missing_optim_state as missing};

/// `g + wd * w`, the coupled L2 decay.
#[inline(always)]
fn decayed(g: f32, w: f32, wd: f32) -> f32 {
    if wd != 0.0 { g + wd * w } else { g }
}

/// `torch.sign`: -1, 0 or 1 (0 for both zeros; NaN stays NaN).
#[inline(always)]
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

/// SGD with momentum over one chunk, specialised on the step's flags so
/// the loop has no branches and vectorises (the hyperparameters are
/// locals, not loads through the closure's captures, for the same reason).
/// Same operations in the same order as the per-element form.
#[inline(always)]
fn sgd_momentum<const FIRST: bool, const NESTEROV: bool, const DECAY: bool>(
    s: SgdStep,
    w: &mut [f32],
    buf: &mut [f32],
    g: &[f32],
) {
    let SgdStep {
        lr,
        momentum,
        dampening,
        weight_decay,
        ..
    } = s;
    for ((w, b), &g) in w.iter_mut().zip(buf.iter_mut()).zip(g) {
        let g = if DECAY { g + weight_decay * *w } else { g };
        *b = if FIRST {
            g
        } else {
            momentum * *b + (1.0 - dampening) * g
        };
        let d = if NESTEROV { g + momentum * *b } else { *b };
        *w -= lr * d;
    }
}

impl OptimOps for CpuBackend {
    fn sgd_update(
        &self,
        s: &SgdStep,
        w: &mut Vec<f32>,
        g: &Vec<f32>,
        momentum_buf: Option<&mut Vec<f32>>,
    ) -> Result<()> {
        let len = w.len();
        check_len("sgd_update", "g", g.len(), len)?;
        let s = *s;
        if s.momentum == 0.0 {
            zip_chunks(self, len, [w], [g], |_, [w], [g]| {
                for (w, &g) in w.iter_mut().zip(g) {
                    *w -= s.lr * decayed(g, *w, s.weight_decay);
                }
            });
            return Ok(());
        }
        let buf = momentum_buf.ok_or_else(|| missing("sgd_update", "momentum"))?;
        check_len("sgd_update", "momentum_buf", buf.len(), len)?;
        let decay = s.weight_decay != 0.0;
        zip_chunks(self, len, [w, buf], [g], move |_, [w, buf], [g]| {
            match (s.first_step, s.nesterov, decay) {
                (false, false, false) => sgd_momentum::<false, false, false>(s, w, buf, g),
                (false, false, true) => sgd_momentum::<false, false, true>(s, w, buf, g),
                (false, true, false) => sgd_momentum::<false, true, false>(s, w, buf, g),
                (false, true, true) => sgd_momentum::<false, true, true>(s, w, buf, g),
                (true, false, false) => sgd_momentum::<true, false, false>(s, w, buf, g),
                (true, false, true) => sgd_momentum::<true, false, true>(s, w, buf, g),
                (true, true, false) => sgd_momentum::<true, true, false>(s, w, buf, g),
                (true, true, true) => sgd_momentum::<true, true, true>(s, w, buf, g),
            }
        });
        Ok(())
    }

    fn adam_update(
        &self,
        s: &AdamStep,
        w: &mut Vec<f32>,
        g: &Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
        v_max: Option<&mut Vec<f32>>,
    ) -> Result<()> {
        let len = w.len();
        check_state(
            "adam_update",
            len,
            &[("g", g.len()), ("m", m.len()), ("v", v.len())],
        )?;
        let vmax: &mut [f32] = match (s.amsgrad, v_max) {
            (true, Some(b)) => {
                check_len("adam_update", "v_max", b.len(), len)?;
                b
            }
            (true, None) => return Err(missing("adam_update", "amsgrad v_max")),
            (false, _) => &mut [],
        };
        let s = *s;
        let step_size = s.lr / s.bias_correction1;
        let bc2_sqrt = s.bias_correction2.sqrt();
        let decay = if s.decoupled {
            1.0 - s.lr * s.weight_decay
        } else {
            1.0
        };
        let coupled_wd = if s.decoupled { 0.0 } else { s.weight_decay };
        zip_chunks(
            self,
            len,
            [w, m, v, vmax],
            [g],
            |_, [w, m, v, vmax], [g]| {
                for i in 0..w.len() {
                    if decay != 1.0 {
                        w[i] *= decay;
                    }
                    let gi = decayed(g[i], w[i], coupled_wd);
                    m[i] = s.beta1 * m[i] + (1.0 - s.beta1) * gi;
                    v[i] = s.beta2 * v[i] + (1.0 - s.beta2) * gi * gi;
                    let second = if vmax.is_empty() {
                        v[i]
                    } else {
                        vmax[i] = vmax[i].max(v[i]);
                        vmax[i]
                    };
                    let denom = second.sqrt() / bc2_sqrt + s.eps;
                    w[i] -= step_size * m[i] / denom;
                }
            },
        );
        Ok(())
    }

    fn rmsprop_update(
        &self,
        s: &RmspropStep,
        w: &mut Vec<f32>,
        g: &Vec<f32>,
        square_avg: &mut Vec<f32>,
        momentum_buf: Option<&mut Vec<f32>>,
        grad_avg: Option<&mut Vec<f32>>,
    ) -> Result<()> {
        let len = w.len();
        check_state(
            "rmsprop_update",
            len,
            &[("g", g.len()), ("square_avg", square_avg.len())],
        )?;
        let buf: &mut [f32] = match (s.momentum > 0.0, momentum_buf) {
            (true, Some(b)) => {
                check_len("rmsprop_update", "momentum_buf", b.len(), len)?;
                b
            }
            (true, None) => return Err(missing("rmsprop_update", "momentum")),
            (false, _) => &mut [],
        };
        let gavg: &mut [f32] = match (s.centered, grad_avg) {
            (true, Some(b)) => {
                check_len("rmsprop_update", "grad_avg", b.len(), len)?;
                b
            }
            (true, None) => return Err(missing("rmsprop_update", "centered grad_avg")),
            (false, _) => &mut [],
        };
        let s = *s;
        zip_chunks(
            self,
            len,
            [w, square_avg, buf, gavg],
            [g],
            |_, [w, sq, buf, gavg], [g]| {
                for i in 0..w.len() {
                    let gi = decayed(g[i], w[i], s.weight_decay);
                    sq[i] = s.alpha * sq[i] + (1.0 - s.alpha) * gi * gi;
                    let avg = if gavg.is_empty() {
                        sq[i].sqrt()
                    } else {
                        gavg[i] = s.alpha * gavg[i] + (1.0 - s.alpha) * gi;
                        (sq[i] - gavg[i] * gavg[i]).sqrt()
                    } + s.eps;
                    if buf.is_empty() {
                        w[i] -= s.lr * gi / avg;
                    } else {
                        buf[i] = s.momentum * buf[i] + gi / avg;
                        w[i] -= s.lr * buf[i];
                    }
                }
            },
        );
        Ok(())
    }

    fn adagrad_update(
        &self,
        s: &AdagradStep,
        w: &mut Vec<f32>,
        g: &Vec<f32>,
        sum: &mut Vec<f32>,
    ) -> Result<()> {
        let len = w.len();
        check_state("adagrad_update", len, &[("g", g.len()), ("sum", sum.len())])?;
        let s = *s;
        zip_chunks(self, len, [w, sum], [g], |_, [w, sum], [g]| {
            for i in 0..w.len() {
                let gi = decayed(g[i], w[i], s.weight_decay);
                sum[i] += gi * gi;
                w[i] -= s.clr * gi / (sum[i].sqrt() + s.eps);
            }
        });
        Ok(())
    }

    fn adadelta_update(
        &self,
        s: &AdadeltaStep,
        w: &mut Vec<f32>,
        g: &Vec<f32>,
        square_avg: &mut Vec<f32>,
        acc_delta: &mut Vec<f32>,
    ) -> Result<()> {
        let len = w.len();
        check_state(
            "adadelta_update",
            len,
            &[
                ("g", g.len()),
                ("square_avg", square_avg.len()),
                ("acc_delta", acc_delta.len()),
            ],
        )?;
        let s = *s;
        zip_chunks(
            self,
            len,
            [w, square_avg, acc_delta],
            [g],
            |_, [w, sq, acc], [g]| {
                for i in 0..w.len() {
                    let gi = decayed(g[i], w[i], s.weight_decay);
                    sq[i] = s.rho * sq[i] + (1.0 - s.rho) * gi * gi;
                    let d = (acc[i] + s.eps).sqrt() / (sq[i] + s.eps).sqrt() * gi;
                    acc[i] = s.rho * acc[i] + (1.0 - s.rho) * d * d;
                    w[i] -= s.lr * d;
                }
            },
        );
        Ok(())
    }

    fn nadam_update(
        &self,
        s: &NadamStep,
        w: &mut Vec<f32>,
        g: &Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
    ) -> Result<()> {
        let len = w.len();
        check_state(
            "nadam_update",
            len,
            &[("g", g.len()), ("m", m.len()), ("v", v.len())],
        )?;
        let s = *s;
        // Host-side scalars in f64 like torch (Python floats), then f32.
        let c_grad =
            (f64::from(s.lr) * (1.0 - f64::from(s.mu_t)) / (1.0 - f64::from(s.mu_product))) as f32;
        let c_avg =
            (f64::from(s.lr) * f64::from(s.mu_next) / (1.0 - f64::from(s.mu_product_next))) as f32;
        zip_chunks(self, len, [w, m, v], [g], |_, [w, m, v], [g]| {
            for i in 0..w.len() {
                let gi = decayed(g[i], w[i], s.weight_decay);
                m[i] = s.beta1 * m[i] + (1.0 - s.beta1) * gi;
                v[i] = s.beta2 * v[i] + (1.0 - s.beta2) * gi * gi;
                let denom = (v[i] / s.bias_correction2).sqrt() + s.eps;
                w[i] -= c_grad * gi / denom;
                w[i] -= c_avg * m[i] / denom;
            }
        });
        Ok(())
    }

    fn radam_update(
        &self,
        s: &RadamStep,
        w: &mut Vec<f32>,
        g: &Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
    ) -> Result<()> {
        let len = w.len();
        check_state(
            "radam_update",
            len,
            &[("g", g.len()), ("m", m.len()), ("v", v.len())],
        )?;
        let s = *s;
        let bc2_sqrt = s.bias_correction2.sqrt();
        zip_chunks(self, len, [w, m, v], [g], |_, [w, m, v], [g]| {
            for i in 0..w.len() {
                let gi = decayed(g[i], w[i], s.weight_decay);
                m[i] = s.beta1 * m[i] + (1.0 - s.beta1) * gi;
                v[i] = s.beta2 * v[i] + (1.0 - s.beta2) * gi * gi;
                let m_hat = m[i] / s.bias_correction1;
                if s.rectify {
                    let adaptive = bc2_sqrt / (v[i].sqrt() + s.eps);
                    w[i] -= m_hat * s.lr * adaptive * s.rect;
                } else {
                    w[i] -= m_hat * s.lr;
                }
            }
        });
        Ok(())
    }

    fn adamax_update(
        &self,
        s: &AdamaxStep,
        w: &mut Vec<f32>,
        g: &Vec<f32>,
        m: &mut Vec<f32>,
        u: &mut Vec<f32>,
    ) -> Result<()> {
        let len = w.len();
        check_state(
            "adamax_update",
            len,
            &[("g", g.len()), ("m", m.len()), ("u", u.len())],
        )?;
        let s = *s;
        let clr = s.lr / s.bias_correction1;
        zip_chunks(self, len, [w, m, u], [g], |_, [w, m, u], [g]| {
            for i in 0..w.len() {
                let gi = decayed(g[i], w[i], s.weight_decay);
                m[i] = s.beta1 * m[i] + (1.0 - s.beta1) * gi;
                u[i] = (s.beta2 * u[i]).max(gi.abs() + s.eps);
                w[i] -= clr * m[i] / u[i];
            }
        });
        Ok(())
    }

    fn lion_update(
        &self,
        s: &LionStep,
        w: &mut Vec<f32>,
        g: &Vec<f32>,
        exp_avg: &mut Vec<f32>,
    ) -> Result<()> {
        let len = w.len();
        check_state(
            "lion_update",
            len,
            &[("g", g.len()), ("exp_avg", exp_avg.len())],
        )?;
        let s = *s;
        let decay = 1.0 - s.lr * s.weight_decay;
        zip_chunks(self, len, [w, exp_avg], [g], |_, [w, m], [g]| {
            for i in 0..w.len() {
                w[i] *= decay;
                let c = s.beta1 * m[i] + (1.0 - s.beta1) * g[i];
                w[i] -= s.lr * sign(c);
                m[i] = s.beta2 * m[i] + (1.0 - s.beta2) * g[i];
            }
        });
        Ok(())
    }

    fn asgd_update(
        &self,
        s: &AsgdStep,
        w: &mut Vec<f32>,
        g: &Vec<f32>,
        ax: &mut Vec<f32>,
    ) -> Result<()> {
        let len = w.len();
        check_state("asgd_update", len, &[("g", g.len()), ("ax", ax.len())])?;
        let s = *s;
        zip_chunks(self, len, [w, ax], [g], |_, [w, ax], [g]| {
            for i in 0..w.len() {
                let gi = decayed(g[i], w[i], s.weight_decay);
                w[i] *= s.decay;
                w[i] -= s.eta * gi;
                ax[i] = if s.mu == 1.0 {
                    w[i]
                } else {
                    ax[i] + (w[i] - ax[i]) * s.mu
                };
            }
        });
        Ok(())
    }

    fn rprop_update(
        &self,
        s: &RpropStep,
        w: &mut Vec<f32>,
        g: &Vec<f32>,
        prev: &mut Vec<f32>,
        step_size: &mut Vec<f32>,
    ) -> Result<()> {
        let len = w.len();
        check_state(
            "rprop_update",
            len,
            &[
                ("g", g.len()),
                ("prev", prev.len()),
                ("step_size", step_size.len()),
            ],
        )?;
        let s = *s;
        zip_chunks(
            self,
            len,
            [w, prev, step_size],
            [g],
            |_, [w, prev, ss], [g]| {
                for i in 0..w.len() {
                    let product = g[i] * prev[i];
                    let factor = if product > 0.0 {
                        s.etaplus
                    } else if product < 0.0 {
                        s.etaminus
                    } else {
                        1.0
                    };
                    ss[i] = (ss[i] * factor).max(s.step_size_min).min(s.step_size_max);
                    let gi = if factor == s.etaminus { 0.0 } else { g[i] };
                    w[i] -= sign(gi) * ss[i];
                    prev[i] = gi;
                }
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be() -> CpuBackend {
        CpuBackend::with_threads(2).unwrap()
    }

    fn close(a: f32, b: f64) {
        assert!(
            (f64::from(a) - b).abs() <= 1e-6 + 1e-5 * b.abs(),
            "{a} vs {b}"
        );
    }

    #[test]
    fn sgd_plain_momentum_nesterov() {
        let b = be();
        let mut w = vec![1.0f32];
        let step = SgdStep {
            lr: 0.1,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.5,
            nesterov: false,
            first_step: true,
        };
        b.sgd_update(&step, &mut w, &vec![2.0], None).unwrap();
        close(w[0], 1.0 - 0.1 * (2.0 + 0.5));

        // Momentum, two steps: b1 = g1; b2 = 0.9 b1 + (1 - 0.1) g2.
        let mut w = vec![1.0f32];
        let mut buf = vec![123.0f32];
        let mut s = SgdStep {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.1,
            weight_decay: 0.0,
            nesterov: false,
            first_step: true,
        };
        b.sgd_update(&s, &mut w, &vec![2.0], Some(&mut buf))
            .unwrap();
        close(buf[0], 2.0);
        close(w[0], 1.0 - 0.2);
        s.first_step = false;
        b.sgd_update(&s, &mut w, &vec![1.0], Some(&mut buf))
            .unwrap();
        let b2 = 0.9 * 2.0 + 0.9 * 1.0;
        close(buf[0], b2);
        close(w[0], 0.8 - 0.1 * b2);

        // Nesterov: d = g + momentum * b.
        let mut w = vec![1.0f32];
        let mut buf = vec![0.5f32];
        let s = SgdStep {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: true,
            first_step: false,
        };
        b.sgd_update(&s, &mut w, &vec![2.0], Some(&mut buf))
            .unwrap();
        let nb = 0.9 * 0.5 + 2.0;
        close(buf[0], nb);
        close(w[0], 1.0 - 0.1 * (2.0 + 0.9 * nb));

        assert!(b.sgd_update(&s, &mut w, &vec![2.0], None).is_err());
        assert!(
            b.sgd_update(&s, &mut w, &vec![2.0, 1.0], Some(&mut buf))
                .is_err()
        );
    }

    #[test]
    fn adam_adamw_amsgrad_one_step() {
        let b = be();
        let (lr, b1, b2, eps, wd) = (0.01f64, 0.9f64, 0.999f64, 1e-8f64, 0.1f64);
        let (w0, g0, m0, v0) = (1.5f64, -0.3f64, 0.2f64, 0.05f64);
        let t = 3;
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        for (decoupled, amsgrad) in [(false, false), (true, false), (false, true)] {
            let s = AdamStep {
                lr: lr as f32,
                beta1: b1 as f32,
                beta2: b2 as f32,
                eps: eps as f32,
                weight_decay: wd as f32,
                decoupled,
                amsgrad,
                bias_correction1: bc1 as f32,
                bias_correction2: bc2 as f32,
            };
            let mut w = vec![w0 as f32];
            let mut m = vec![m0 as f32];
            let mut v = vec![v0 as f32];
            let mut vmax = vec![0.07f32];
            b.adam_update(
                &s,
                &mut w,
                &vec![g0 as f32],
                &mut m,
                &mut v,
                Some(&mut vmax),
            )
            .unwrap();
            let (mut wr, mut g) = (w0, g0);
            if decoupled {
                wr *= 1.0 - lr * wd;
            } else {
                g += wd * w0;
            }
            let mr = b1 * m0 + (1.0 - b1) * g;
            let vr = b2 * v0 + (1.0 - b2) * g * g;
            let second = if amsgrad { vr.max(0.07) } else { vr };
            wr -= lr / bc1 * mr / (second.sqrt() / bc2.sqrt() + eps);
            close(m[0], mr);
            close(v[0], vr);
            close(w[0], wr);
            if amsgrad {
                close(vmax[0], 0.07f64.max(vr));
            }
        }
    }

    #[test]
    fn rmsprop_centered_momentum_one_step() {
        let b = be();
        let s = RmspropStep {
            lr: 0.01,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.9,
            centered: true,
        };
        let (w0, g0) = (1.0f64, 0.5f64);
        let mut w = vec![w0 as f32];
        let mut sq = vec![0.2f32];
        let mut buf = vec![0.1f32];
        let mut ga = vec![0.05f32];
        b.rmsprop_update(
            &s,
            &mut w,
            &vec![g0 as f32],
            &mut sq,
            Some(&mut buf),
            Some(&mut ga),
        )
        .unwrap();
        let sqr = 0.99 * 0.2f32 as f64 + 0.01 * g0 * g0;
        let gar = 0.99 * 0.05f32 as f64 + 0.01 * g0;
        let avg = (sqr - gar * gar).sqrt() + 1e-8;
        let bufr = 0.9 * 0.1f32 as f64 + g0 / avg;
        close(sq[0], sqr);
        close(ga[0], gar);
        close(buf[0], bufr);
        close(w[0], w0 - 0.01 * bufr);

        // Plain: w -= lr g / (sqrt(s) + eps).
        let s = RmspropStep {
            momentum: 0.0,
            centered: false,
            weight_decay: 0.1,
            ..s
        };
        let mut w = vec![1.0f32];
        let mut sq = vec![0.0f32];
        b.rmsprop_update(&s, &mut w, &vec![0.5], &mut sq, None, None)
            .unwrap();
        let g = 0.5f64 + 0.1;
        close(w[0], 1.0 - 0.01 * g / ((0.01 * g * g).sqrt() + 1e-8));
        let s = RmspropStep {
            centered: true,
            ..s
        };
        assert!(
            b.rmsprop_update(&s, &mut w, &vec![0.5], &mut sq, None, None)
                .is_err()
        );
    }

    #[test]
    fn adagrad_adadelta_one_step() {
        let b = be();
        let mut w = vec![2.0f32];
        let mut sum = vec![0.5f32];
        b.adagrad_update(
            &AdagradStep {
                clr: 0.1,
                eps: 1e-10,
                weight_decay: 0.0,
            },
            &mut w,
            &vec![1.0],
            &mut sum,
        )
        .unwrap();
        close(sum[0], 1.5);
        close(w[0], 2.0 - 0.1 / 1.5f64.sqrt());

        let mut w = vec![2.0f32];
        let mut sq = vec![0.3f32];
        let mut acc = vec![0.2f32];
        let s = AdadeltaStep {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
        };
        b.adadelta_update(&s, &mut w, &vec![0.4], &mut sq, &mut acc)
            .unwrap();
        let sqr = 0.9 * 0.3f32 as f64 + 0.1 * 0.16;
        let d = (0.2f32 as f64 + 1e-6).sqrt() / (sqr + 1e-6).sqrt() * 0.4;
        close(sq[0], sqr);
        close(acc[0], 0.9 * 0.2f32 as f64 + 0.1 * d * d);
        close(w[0], 2.0 - d);
    }

    #[test]
    fn nadam_radam_adamax_one_step() {
        let b = be();
        let (b1, b2, lr, eps) = (0.9f64, 0.999f64, 0.002f64, 1e-8f64);
        let (g0, w0) = (0.7f64, 1.0f64);
        // NAdam step 1 from zero state, momentum_decay 0.004.
        let mu_t = b1 * (1.0 - 0.5 * 0.96f64.powf(0.004));
        let mu_next = b1 * (1.0 - 0.5 * 0.96f64.powf(2.0 * 0.004));
        let s = NadamStep {
            lr: lr as f32,
            beta1: b1 as f32,
            beta2: b2 as f32,
            eps: eps as f32,
            weight_decay: 0.0,
            mu_t: mu_t as f32,
            mu_next: mu_next as f32,
            mu_product: mu_t as f32,
            mu_product_next: (mu_t * mu_next) as f32,
            bias_correction2: (1.0 - b2) as f32,
        };
        let (mut w, mut m, mut v) = (vec![w0 as f32], vec![0.0f32], vec![0.0f32]);
        b.nadam_update(&s, &mut w, &vec![g0 as f32], &mut m, &mut v)
            .unwrap();
        let mr = (1.0 - b1) * g0;
        let vr = (1.0 - b2) * g0 * g0;
        let denom = (vr / (1.0 - b2)).sqrt() + eps;
        let wr = w0
            - lr * (1.0 - mu_t) / (1.0 - mu_t) * g0 / denom
            - lr * mu_next / (1.0 - mu_t * mu_next) * mr / denom;
        close(w[0], wr);

        // RAdam, rectified and not.
        for rectify in [false, true] {
            let s = RadamStep {
                lr: lr as f32,
                beta1: b1 as f32,
                beta2: b2 as f32,
                eps: eps as f32,
                weight_decay: 0.0,
                bias_correction1: 0.5,
                bias_correction2: 0.25,
                rectify,
                rect: 0.8,
            };
            let (mut w, mut m, mut v) = (vec![w0 as f32], vec![0.1f32], vec![0.2f32]);
            b.radam_update(&s, &mut w, &vec![g0 as f32], &mut m, &mut v)
                .unwrap();
            let mr = b1 * 0.1f32 as f64 + (1.0 - b1) * g0;
            let vr = b2 * 0.2f32 as f64 + (1.0 - b2) * g0 * g0;
            let m_hat = mr / 0.5;
            let wr = if rectify {
                w0 - m_hat * lr * 0.25f64.sqrt() / (vr.sqrt() + eps) * 0.8
            } else {
                w0 - m_hat * lr
            };
            close(w[0], wr);
        }

        // Adamax.
        let s = AdamaxStep {
            lr: lr as f32,
            beta1: b1 as f32,
            beta2: b2 as f32,
            eps: eps as f32,
            weight_decay: 0.0,
            bias_correction1: 0.1,
        };
        let (mut w, mut m, mut u) = (vec![w0 as f32], vec![0.0f32], vec![0.5f32]);
        b.adamax_update(&s, &mut w, &vec![-g0 as f32], &mut m, &mut u)
            .unwrap();
        let mr = (1.0 - b1) * -g0;
        let ur = (b2 * 0.5f64).max(g0 + eps);
        close(u[0], ur);
        close(w[0], w0 - lr / 0.1 * mr / ur);
    }

    #[test]
    fn long_tensors_take_the_parallel_path_identically() {
        let b = be();
        let n = 100_003;
        let g: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) / 10.0).collect();
        let s = AdamStep {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            decoupled: true,
            amsgrad: false,
            bias_correction1: 0.1,
            bias_correction2: 0.001,
        };
        let mut w = vec![1.0f32; n];
        let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
        b.adam_update(&s, &mut w, &g, &mut m, &mut v, None).unwrap();
        let serial = CpuBackend::with_threads(1).unwrap();
        let mut w1 = vec![1.0f32; n];
        let (mut m1, mut v1) = (vec![0.0; n], vec![0.0; n]);
        serial
            .adam_update(&s, &mut w1, &g, &mut m1, &mut v1, None)
            .unwrap();
        assert_eq!(w, w1);
        assert_eq!(m, m1);
    }
}
