//! Reference optimizer updates (`torch.optim`, single-tensor path), one
//! element at a time in f64.
//!
//! Each function takes the weights, the gradient and the state buffers as
//! they are before the step and returns them after it, as an
//! [`OptimOut`]. `g` is first replaced by `g + weight_decay * w` (coupled
//! L2) unless noted.

use cnn_core::backend::{
    AdadeltaStep, AdagradStep, AdamStep, AdamaxStep, AsgdStep, LionStep, NadamStep, RadamStep,
    RmspropStep, RpropStep, SgdStep,
};

/// The result of one optimizer step.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimOut {
    /// The updated weights.
    pub w: Vec<f64>,
    /// The updated state buffers, in the order the backend op takes them
    /// (buffers the call leaves out are left out here too).
    pub state: Vec<Vec<f64>>,
}

fn f(v: f32) -> f64 {
    f64::from(v)
}

/// `g + weight_decay * w`.
fn decayed(g: f32, w: f32, weight_decay: f32) -> f64 {
    f(g) + f(weight_decay) * f(w)
}

/// SGD. State: `[momentum_buf]` when given (required when momentum != 0).
pub fn sgd_update(s: &SgdStep, w: &[f32], g: &[f32], momentum_buf: Option<&[f32]>) -> OptimOut {
    let mut w_out = Vec::with_capacity(w.len());
    let mut buf_out = Vec::new();
    for i in 0..w.len() {
        let g = decayed(g[i], w[i], s.weight_decay);
        let mut d = g;
        if s.momentum != 0.0 {
            let old = f(momentum_buf.expect("SGD with momentum needs a momentum buffer")[i]);
            let b = if s.first_step {
                g
            } else {
                f(s.momentum) * old + (1.0 - f(s.dampening)) * g
            };
            d = if s.nesterov { g + f(s.momentum) * b } else { b };
            buf_out.push(b);
        } else if let Some(buf) = momentum_buf {
            buf_out.push(f(buf[i]));
        }
        w_out.push(f(w[i]) - f(s.lr) * d);
    }
    let state = if momentum_buf.is_some() {
        vec![buf_out]
    } else {
        vec![]
    };
    OptimOut { w: w_out, state }
}

/// Adam / AdamW (`decoupled`), optionally AMSGrad. State: `[m, v]` or
/// `[m, v, v_max]`.
pub fn adam_update(
    s: &AdamStep,
    w: &[f32],
    g: &[f32],
    m: &[f32],
    v: &[f32],
    v_max: Option<&[f32]>,
) -> OptimOut {
    let n = w.len();
    let (mut w_out, mut m_out, mut v_out, mut vmax_out) =
        (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        let mut wi = f(w[i]);
        let gi = if s.decoupled {
            wi *= 1.0 - f(s.lr) * f(s.weight_decay);
            f(g[i])
        } else {
            decayed(g[i], w[i], s.weight_decay)
        };
        let mi = f(s.beta1) * f(m[i]) + (1.0 - f(s.beta1)) * gi;
        let vi = f(s.beta2) * f(v[i]) + (1.0 - f(s.beta2)) * gi * gi;
        let v_used = match v_max {
            Some(vmax) if s.amsgrad => {
                vmax_out[i] = f(vmax[i]).max(vi);
                vmax_out[i]
            }
            Some(vmax) => {
                vmax_out[i] = f(vmax[i]);
                vi
            }
            None => vi,
        };
        let denom = v_used.sqrt() / f(s.bias_correction2).sqrt() + f(s.eps);
        w_out[i] = wi - f(s.lr) / f(s.bias_correction1) * mi / denom;
        m_out[i] = mi;
        v_out[i] = vi;
    }
    let mut state = vec![m_out, v_out];
    if v_max.is_some() {
        state.push(vmax_out);
    }
    OptimOut { w: w_out, state }
}

/// RMSprop. State: `[square_avg]`, then `momentum_buf` and `grad_avg`
/// when given (momentum > 0 and centered respectively).
pub fn rmsprop_update(
    s: &RmspropStep,
    w: &[f32],
    g: &[f32],
    square_avg: &[f32],
    momentum_buf: Option<&[f32]>,
    grad_avg: Option<&[f32]>,
) -> OptimOut {
    let n = w.len();
    let (mut w_out, mut sq_out, mut buf_out, mut ga_out) =
        (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        let gi = decayed(g[i], w[i], s.weight_decay);
        let sq = f(s.alpha) * f(square_avg[i]) + (1.0 - f(s.alpha)) * gi * gi;
        let avg = if s.centered {
            let ga = f(s.alpha) * f(grad_avg.expect("centered RMSprop needs grad_avg")[i])
                + (1.0 - f(s.alpha)) * gi;
            ga_out[i] = ga;
            (sq - ga * ga).sqrt() + f(s.eps)
        } else {
            if let Some(ga) = grad_avg {
                ga_out[i] = f(ga[i]);
            }
            sq.sqrt() + f(s.eps)
        };
        if s.momentum > 0.0 {
            let b = f(s.momentum)
                * f(momentum_buf.expect("RMSprop with momentum needs a buffer")[i])
                + gi / avg;
            buf_out[i] = b;
            w_out[i] = f(w[i]) - f(s.lr) * b;
        } else {
            if let Some(buf) = momentum_buf {
                buf_out[i] = f(buf[i]);
            }
            w_out[i] = f(w[i]) - f(s.lr) * gi / avg;
        }
        sq_out[i] = sq;
    }
    let mut state = vec![sq_out];
    if momentum_buf.is_some() {
        state.push(buf_out);
    }
    if grad_avg.is_some() {
        state.push(ga_out);
    }
    OptimOut { w: w_out, state }
}

/// Adagrad. State: `[sum]`.
pub fn adagrad_update(s: &AdagradStep, w: &[f32], g: &[f32], sum: &[f32]) -> OptimOut {
    let mut w_out = Vec::new();
    let mut sum_out = Vec::new();
    for i in 0..w.len() {
        let gi = decayed(g[i], w[i], s.weight_decay);
        let si = f(sum[i]) + gi * gi;
        w_out.push(f(w[i]) - f(s.clr) * gi / (si.sqrt() + f(s.eps)));
        sum_out.push(si);
    }
    OptimOut {
        w: w_out,
        state: vec![sum_out],
    }
}

/// Adadelta. State: `[square_avg, acc_delta]`.
pub fn adadelta_update(
    s: &AdadeltaStep,
    w: &[f32],
    g: &[f32],
    square_avg: &[f32],
    acc_delta: &[f32],
) -> OptimOut {
    let n = w.len();
    let (mut w_out, mut sq_out, mut acc_out) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let (rho, eps) = (f(s.rho), f(s.eps));
    for i in 0..n {
        let gi = decayed(g[i], w[i], s.weight_decay);
        let sq = rho * f(square_avg[i]) + (1.0 - rho) * gi * gi;
        let delta = (f(acc_delta[i]) + eps).sqrt() / (sq + eps).sqrt() * gi;
        acc_out[i] = rho * f(acc_delta[i]) + (1.0 - rho) * delta * delta;
        sq_out[i] = sq;
        w_out[i] = f(w[i]) - f(s.lr) * delta;
    }
    OptimOut {
        w: w_out,
        state: vec![sq_out, acc_out],
    }
}

/// NAdam. State: `[m, v]`.
pub fn nadam_update(s: &NadamStep, w: &[f32], g: &[f32], m: &[f32], v: &[f32]) -> OptimOut {
    let n = w.len();
    let (mut w_out, mut m_out, mut v_out) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        let gi = decayed(g[i], w[i], s.weight_decay);
        let mi = f(s.beta1) * f(m[i]) + (1.0 - f(s.beta1)) * gi;
        let vi = f(s.beta2) * f(v[i]) + (1.0 - f(s.beta2)) * gi * gi;
        let denom = (vi / f(s.bias_correction2)).sqrt() + f(s.eps);
        let lr = f(s.lr);
        w_out[i] = f(w[i])
            - lr * (1.0 - f(s.mu_t)) / (1.0 - f(s.mu_product)) * gi / denom
            - lr * f(s.mu_next) / (1.0 - f(s.mu_product_next)) * mi / denom;
        m_out[i] = mi;
        v_out[i] = vi;
    }
    OptimOut {
        w: w_out,
        state: vec![m_out, v_out],
    }
}

/// RAdam. State: `[m, v]`.
pub fn radam_update(s: &RadamStep, w: &[f32], g: &[f32], m: &[f32], v: &[f32]) -> OptimOut {
    let n = w.len();
    let (mut w_out, mut m_out, mut v_out) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        let gi = decayed(g[i], w[i], s.weight_decay);
        let mi = f(s.beta1) * f(m[i]) + (1.0 - f(s.beta1)) * gi;
        let vi = f(s.beta2) * f(v[i]) + (1.0 - f(s.beta2)) * gi * gi;
        let m_hat = mi / f(s.bias_correction1);
        let step = if s.rectify {
            m_hat * f(s.rect) * f(s.bias_correction2).sqrt() / (vi.sqrt() + f(s.eps))
        } else {
            m_hat
        };
        w_out[i] = f(w[i]) - f(s.lr) * step;
        m_out[i] = mi;
        v_out[i] = vi;
    }
    OptimOut {
        w: w_out,
        state: vec![m_out, v_out],
    }
}

/// Adamax. State: `[m, u]`.
pub fn adamax_update(s: &AdamaxStep, w: &[f32], g: &[f32], m: &[f32], u: &[f32]) -> OptimOut {
    let n = w.len();
    let (mut w_out, mut m_out, mut u_out) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        let gi = decayed(g[i], w[i], s.weight_decay);
        let mi = f(s.beta1) * f(m[i]) + (1.0 - f(s.beta1)) * gi;
        let ui = (f(s.beta2) * f(u[i])).max(gi.abs() + f(s.eps));
        w_out[i] = f(w[i]) - f(s.lr) / f(s.bias_correction1) * mi / ui;
        m_out[i] = mi;
        u_out[i] = ui;
    }
    OptimOut {
        w: w_out,
        state: vec![m_out, u_out],
    }
}

/// `torch.sign` in f64.
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Lion (lion-pytorch). State: `[exp_avg]`.
pub fn lion_update(s: &LionStep, w: &[f32], g: &[f32], m: &[f32]) -> OptimOut {
    let n = w.len();
    let (mut w_out, mut m_out) = (vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        let wi = f(w[i]) * (1.0 - f(s.lr) * f(s.weight_decay));
        let c = f(s.beta1) * f(m[i]) + (1.0 - f(s.beta1)) * f(g[i]);
        w_out[i] = wi - f(s.lr) * sign(c);
        m_out[i] = f(s.beta2) * f(m[i]) + (1.0 - f(s.beta2)) * f(g[i]);
    }
    OptimOut {
        w: w_out,
        state: vec![m_out],
    }
}

/// ASGD. State: `[ax]`.
pub fn asgd_update(s: &AsgdStep, w: &[f32], g: &[f32], ax: &[f32]) -> OptimOut {
    let n = w.len();
    let (mut w_out, mut ax_out) = (vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        let gi = decayed(g[i], w[i], s.weight_decay);
        let wi = f(w[i]) * f(s.decay) - f(s.eta) * gi;
        w_out[i] = wi;
        ax_out[i] = if s.mu == 1.0 {
            wi
        } else {
            f(ax[i]) + (wi - f(ax[i])) * f(s.mu)
        };
    }
    OptimOut {
        w: w_out,
        state: vec![ax_out],
    }
}

/// Rprop. State: `[prev, step_size]`.
pub fn rprop_update(s: &RpropStep, w: &[f32], g: &[f32], prev: &[f32], step: &[f32]) -> OptimOut {
    let n = w.len();
    let (mut w_out, mut prev_out, mut step_out) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        let product = f(g[i]) * f(prev[i]);
        let factor = if product > 0.0 {
            f(s.etaplus)
        } else if product < 0.0 {
            f(s.etaminus)
        } else {
            1.0
        };
        let ss = (f(step[i]) * factor)
            .max(f(s.step_size_min))
            .min(f(s.step_size_max));
        let gi = if factor == f(s.etaminus) {
            0.0
        } else {
            f(g[i])
        };
        w_out[i] = f(w[i]) - sign(gi) * ss;
        prev_out[i] = gi;
        step_out[i] = ss;
    }
    OptimOut {
        w: w_out,
        state: vec![prev_out, step_out],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_momentum_nesterov_by_hand() {
        let s = SgdStep {
            lr: 0.5,
            momentum: 0.5,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            first_step: true,
        };
        let out = sgd_update(&s, &[1.0], &[2.0], Some(&[100.0]));
        assert_eq!(out.state, vec![vec![2.0]]);
        assert_eq!(out.w, vec![0.0]);
        let s = SgdStep {
            first_step: false,
            nesterov: true,
            dampening: 0.5,
            weight_decay: 1.0,
            ..s
        };
        // g = 2 + 1 = 3; b = 0.5 * 2 + 0.5 * 3 = 2.5; d = 3 + 0.5 * 2.5 = 4.25.
        let out = sgd_update(&s, &[1.0], &[2.0], Some(&[2.0]));
        assert_eq!(out.state, vec![vec![2.5]]);
        assert_eq!(out.w, vec![1.0 - 0.5 * 4.25]);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        // On step 1 the bias-corrected update is lr * g / (|g| + eps') = ~lr sign(g).
        let s = AdamStep {
            lr: 0.125,
            beta1: 0.75,
            beta2: 0.5,
            eps: 0.0,
            weight_decay: 0.0,
            decoupled: false,
            amsgrad: false,
            bias_correction1: 0.25,
            bias_correction2: 0.5,
        };
        let out = adam_update(&s, &[1.0, 1.0], &[2.0, -3.0], &[0.0; 2], &[0.0; 2], None);
        assert!(
            (out.w[0] - 0.875).abs() < 1e-15 && (out.w[1] - 1.125).abs() < 1e-15,
            "{:?}",
            out.w
        );
        assert_eq!(out.state[0], vec![0.5, -0.75]);
        assert_eq!(out.state[1], vec![2.0, 4.5]);
    }

    #[test]
    fn adamax_and_adagrad_by_hand() {
        let s = AdamaxStep {
            lr: 1.0,
            beta1: 0.5,
            beta2: 0.5,
            eps: 0.0,
            weight_decay: 0.0,
            bias_correction1: 0.5,
        };
        let out = adamax_update(&s, &[0.0], &[-2.0], &[0.0], &[8.0]);
        assert_eq!(out.state, vec![vec![-1.0], vec![4.0]]);
        assert_eq!(out.w, vec![0.5]);
        let s = AdagradStep {
            clr: 1.0,
            eps: 0.0,
            weight_decay: 0.0,
        };
        let out = adagrad_update(&s, &[0.0], &[3.0], &[16.0]);
        assert_eq!(out.state, vec![vec![25.0]]);
        assert_eq!(out.w, vec![-0.6]);
    }

    /// `a` within 1e-15 relative of `b`, element by element.
    fn near(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-15 * y.abs().max(1.0))
    }

    // The decay rates below are not 0.5, so that a kernel mixing up a rate
    // and its complement (or beta1 and beta2) fails.

    #[test]
    fn adamw_and_amsgrad_by_hand() {
        // Decoupled decay: w = 2 (1 - 0.5 * 0.5) = 1.5 and g stays 2;
        // m = 0.25 * 2 = 0.5, v = 0.5 * 4 = 2, denominator sqrt(2) / sqrt(0.5) = 2,
        // w = 1.5 - 0.5 / 0.5 * 0.5 / 2.
        let s = AdamStep {
            lr: 0.5,
            beta1: 0.75,
            beta2: 0.5,
            eps: 0.0,
            weight_decay: 0.5,
            decoupled: true,
            amsgrad: false,
            bias_correction1: 0.5,
            bias_correction2: 0.5,
        };
        let out = adam_update(&s, &[2.0], &[2.0], &[0.0], &[0.0], Some(&[8.0]));
        assert!(near(&out.w, &[1.25]), "{:?}", out.w);
        // Without AMSGrad the max buffer passes through untouched.
        assert_eq!(out.state, vec![vec![0.5], vec![2.0], vec![8.0]]);
        // AMSGrad divides by the max of v and v_max: sqrt(8) / sqrt(0.5) = 4.
        let out = adam_update(
            &AdamStep { amsgrad: true, ..s },
            &[2.0],
            &[2.0],
            &[0.0],
            &[0.0],
            Some(&[8.0]),
        );
        assert!(near(&out.w, &[1.5 - 0.125]), "{:?}", out.w);
        assert_eq!(out.state, vec![vec![0.5], vec![2.0], vec![8.0]]);
        // Coupled decay instead adds 0.5 * w to g: g = 3, m = 0.75, v = 4.5,
        // denominator sqrt(4.5) / sqrt(0.5) = 3, w = 2 - 1 * 0.75 / 3.
        let out = adam_update(
            &AdamStep {
                decoupled: false,
                ..s
            },
            &[2.0],
            &[2.0],
            &[0.0],
            &[0.0],
            None,
        );
        assert!(near(&out.w, &[1.75]), "{:?}", out.w);
        assert_eq!(out.state, vec![vec![0.75], vec![4.5]]);
    }

    #[test]
    fn rmsprop_plain_centered_and_momentum_by_hand() {
        // g = 1 + 1 * 1 = 2 (weight decay 1); square_avg = 0.75 * 20 + 0.25 * 4 = 16;
        // w = 1 - 0.5 * 2 / sqrt(16).
        let s = RmspropStep {
            lr: 0.5,
            alpha: 0.75,
            eps: 0.0,
            weight_decay: 1.0,
            momentum: 0.0,
            centered: false,
        };
        let out = rmsprop_update(&s, &[1.0], &[1.0], &[20.0], None, None);
        assert_eq!(out.w, vec![0.75]);
        assert_eq!(out.state, vec![vec![16.0]]);
        // Centered with momentum, g = 2: square_avg = 0.75 * 44 + 0.25 * 4 = 34,
        // grad_avg = 0.75 * 6 + 0.25 * 2 = 5, denominator sqrt(34 - 5^2) = 3,
        // buf = 0.5 * 2 + 2 / 3 = 5/3, w = 1 - 0.5 * 5/3 = 1/6.
        let s = RmspropStep {
            weight_decay: 0.0,
            momentum: 0.5,
            centered: true,
            ..s
        };
        let out = rmsprop_update(&s, &[1.0], &[2.0], &[44.0], Some(&[2.0]), Some(&[6.0]));
        assert!(near(&out.w, &[1.0 / 6.0]), "{:?}", out.w);
        assert_eq!(out.state[0], vec![34.0]);
        assert!(near(&out.state[1], &[5.0 / 3.0]), "{:?}", out.state);
        assert_eq!(out.state[2], vec![5.0]);
    }

    #[test]
    fn adadelta_by_hand() {
        // square_avg = 0.75 * 3 + 0.25 * 1 = 2.5;
        // delta = sqrt(11.5 + 0.5) / sqrt(2.5 + 0.5) * 1 = 2;
        // acc_delta = 0.75 * 11.5 + 0.25 * 4 = 9.625; w = 0 - 0.5 * 2.
        let s = AdadeltaStep {
            lr: 0.5,
            rho: 0.75,
            eps: 0.5,
            weight_decay: 0.0,
        };
        let out = adadelta_update(&s, &[0.0], &[1.0], &[3.0], &[11.5]);
        assert!(near(&out.w, &[-1.0]), "{:?}", out.w);
        assert_eq!(out.state[0], vec![2.5]);
        assert!(near(&out.state[1], &[9.625]), "{:?}", out.state);
    }

    #[test]
    fn nadam_by_hand() {
        // m = 0.25 * 2 = 0.5, v = 0.5 * 4 = 2, denominator sqrt(2 / 0.5) = 2;
        // the gradient term (1 - 0.75) / (1 - 0.5) * 2 / 2 = 0.5 and the
        // momentum term 0.5 / (1 - 0.75) * 0.5 / 2 = 0.5 are both subtracted.
        let s = NadamStep {
            lr: 1.0,
            beta1: 0.75,
            beta2: 0.5,
            eps: 0.0,
            weight_decay: 0.0,
            mu_t: 0.75,
            mu_next: 0.5,
            mu_product: 0.5,
            mu_product_next: 0.75,
            bias_correction2: 0.5,
        };
        let out = nadam_update(&s, &[1.0], &[2.0], &[0.0], &[0.0]);
        assert_eq!(out.w, vec![1.0 - 0.5 - 0.5]);
        assert_eq!(out.state, vec![vec![0.5], vec![2.0]]);
    }

    #[test]
    fn radam_rectified_and_not_by_hand() {
        // m = 0.25 * 2 = 0.5, v = 0.5 * 4 + 0.5 * 4 = 4, m_hat = 0.5 / 0.25 = 2.
        let s = RadamStep {
            lr: 1.0,
            beta1: 0.75,
            beta2: 0.5,
            eps: 0.0,
            weight_decay: 0.0,
            bias_correction1: 0.25,
            bias_correction2: 0.25,
            rectify: true,
            rect: 0.5,
        };
        // Rectified: step = 2 * 0.5 * sqrt(0.25) / sqrt(4) = 0.25.
        let out = radam_update(&s, &[1.0], &[2.0], &[0.0], &[4.0]);
        assert_eq!(out.w, vec![0.75]);
        assert_eq!(out.state, vec![vec![0.5], vec![4.0]]);
        // Not rectified (early steps): plain momentum, step = m_hat.
        let out = radam_update(
            &RadamStep {
                rectify: false,
                ..s
            },
            &[1.0],
            &[2.0],
            &[0.0],
            &[4.0],
        );
        assert_eq!(out.w, vec![-1.0]);
        assert_eq!(out.state, vec![vec![0.5], vec![4.0]]);
    }

    #[test]
    fn lion_asgd_rprop_by_hand() {
        let s = LionStep {
            lr: 0.5,
            beta1: 0.5,
            beta2: 0.75,
            weight_decay: 0.5,
        };
        // c = 0.5 * 1 + 0.5 * -4 < 0: w = 2 * 0.75 + 0.5; m = 0.75 - 1.
        let out = lion_update(&s, &[2.0], &[-4.0], &[1.0]);
        assert_eq!(out.w, vec![2.0]);
        assert_eq!(out.state, vec![vec![-0.25]]);
        let s = AsgdStep {
            eta: 0.5,
            decay: 0.5,
            mu: 0.25,
            weight_decay: 0.0,
        };
        // w = 4 * 0.5 - 0.5 * 2 = 1; ax = 3 + (1 - 3) / 4.
        let out = asgd_update(&s, &[4.0], &[2.0], &[3.0]);
        assert_eq!((out.w, out.state), (vec![1.0], vec![vec![2.5]]));
        let s = RpropStep {
            etaminus: 0.5,
            etaplus: 2.0,
            step_size_min: 0.1,
            step_size_max: 3.0,
        };
        // Same sign: the step doubles (clamped to 3); opposite: it halves,
        // the gradient counts as 0 and the weight stays; zero: unchanged.
        let out = rprop_update(
            &s,
            &[1.0; 3],
            &[1.0, -1.0, 0.5],
            &[2.0, 2.0, 0.0],
            &[2.0; 3],
        );
        assert_eq!(out.w, vec![-2.0, 1.0, -1.0]);
        assert_eq!(out.state, vec![vec![1.0, 0.0, 0.5], vec![3.0, 1.0, 2.0]]);
    }
}
