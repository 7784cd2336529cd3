//! Schedule-Free AdamW and SGD (Defazio et al. 2024; reference: PyPI
//! `schedulefree`'s `AdamWScheduleFree` and `SGDScheduleFree`).
//!
//! The rule keeps three points per parameter: `z` (the base sequence the
//! gradient steps move), `x` (the weighted average of the `z`s, the point
//! evaluation uses) and `y` (their interpolation, where gradients are
//! taken: the parameter itself while training). Per step `k` (from 0):
//!
//! ```text
//! lr_k   = lr * min(1, (k + 1) / warmup_steps)        (host)
//! lr_max = max(lr_max, lr_k)                          (host)
//! w_k    = (k + 1)^r * lr_max^weight_lr_power          (host)
//! c      = w_k / sum_{i<=k} w_i   (0 while the sum is 0)   (host)
//! AdamW: v = b2 v + (1 - b2) g^2;  d = g / (sqrt(v / (1 - b2^(k+1))) + eps)
//! SGD:   d = g
//! z = z - lr_k * (d + weight_decay * y)
//! x = (1 - c) x + c z
//! y = (1 - beta) z + beta x          (beta: betas[0] or momentum)
//! ```
//!
//! The reference keeps only `y` and `z` and moves the parameter between
//! `y` and `x` by interpolation in `train()`/`eval()`; this keeps `x` as a
//! state buffer instead (`schedulefree`'s `*Reference` classes do the
//! same), so that switching to the evaluation point and back is an exact
//! buffer swap ([`Optimizer::set_eval_point`](crate::Optimizer::set_eval_point))
//! and `y` is recomputed bit for bit from the checkpointed `x` and `z`.
//!
//! Composed from existing fused backend ops (no kernel of its own): the
//! AdamW part is `rmsprop_update` on `z` with `alpha = b2` and the bias
//! correction folded into its rate and `eps`
//! (`lr sqrt(bc2) g / (sqrt(v) + eps sqrt(bc2)) = lr g / (sqrt(v / bc2) + eps)`),
//! the SGD part `sgd_update` on `z`; the decay, `x` and `y` are
//! `axpy`/`scale`/`copy`.

use cnn_core::{Backend, RmspropStep, SgdStep};
use serde::{Deserialize, Serialize};

use super::{GroupHyper, Rule, Slot, StepCtx, layout_error};
use crate::error::{OptimError, Result, check};

/// `schedulefree.AdamWScheduleFree`, its argument names and defaults.
///
/// State: `z`, `x`, `exp_avg_sq`; host scalars `lr_max`, `weight_sum`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleFreeAdamWConfig {
    /// Learning rate (default 0.0025).
    pub lr: f64,
    /// `(b1, b2)`: b1 the interpolation momentum, b2 the second-moment
    /// decay, each in [0, 1) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator, > 0 (default 1e-8).
    pub eps: f64,
    /// Weight decay applied at `y` (default 0).
    pub weight_decay: f64,
    /// Linear warmup of the rate over this many steps (default 0: none).
    pub warmup_steps: u64,
    /// Polynomial weighting power of the average (default 0).
    pub r: f64,
    /// The average weights steps by `lr_max^weight_lr_power` (default 2).
    pub weight_lr_power: f64,
}

impl Default for ScheduleFreeAdamWConfig {
    fn default() -> Self {
        ScheduleFreeAdamWConfig {
            lr: 0.0025,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            warmup_steps: 0,
            r: 0.0,
            weight_lr_power: 2.0,
        }
    }
}

/// `schedulefree.SGDScheduleFree`, its argument names and defaults.
///
/// State: `z`, `x`; host scalars `lr_max`, `weight_sum`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleFreeSgdConfig {
    /// Learning rate (default 1.0, the reference's).
    pub lr: f64,
    /// Interpolation momentum, in (0, 1) (default 0.9).
    pub momentum: f64,
    /// Weight decay applied at `y` (default 0).
    pub weight_decay: f64,
    /// Linear warmup of the rate over this many steps (default 0: none).
    pub warmup_steps: u64,
    /// Polynomial weighting power of the average (default 0).
    pub r: f64,
    /// The average weights steps by `lr_max^weight_lr_power` (default 2).
    pub weight_lr_power: f64,
}

impl Default for ScheduleFreeSgdConfig {
    fn default() -> Self {
        ScheduleFreeSgdConfig {
            lr: 1.0,
            momentum: 0.9,
            weight_decay: 0.0,
            warmup_steps: 0,
            r: 0.0,
            weight_lr_power: 2.0,
        }
    }
}

/// The slots both variants share: `z` and `x` first (in this order).
const Z: usize = 0;
const X: usize = 1;

/// The host side of one step: the warmed-up rate and the averaging weight.
struct Scalars {
    lr: f64,
    lr_max: f64,
    weight_sum: f64,
    ckp1: f64,
}

fn step_scalars(
    lr: f64,
    warmup_steps: u64,
    r: f64,
    power: f64,
    t: u64,
    scalars: &[f64],
) -> Result<Scalars> {
    let [lr_max, weight_sum] = scalars else {
        return Err(OptimError::State(format!(
            "schedule-free: expected 2 host scalars, found {}",
            scalars.len()
        )));
    };
    let k = t - 1;
    let sched = if k < warmup_steps {
        (k + 1) as f64 / warmup_steps as f64
    } else {
        1.0
    };
    let lr = lr * sched;
    let lr_max = lr_max.max(lr);
    let weight = ((k + 1) as f64).powf(r) * lr_max.powf(power);
    let weight_sum = weight_sum + weight;
    let ckp1 = if weight_sum == 0.0 {
        0.0
    } else {
        weight / weight_sum
    };
    Ok(Scalars {
        lr,
        lr_max,
        weight_sum,
        ckp1,
    })
}

fn check_common(lr: f64, weight_decay: f64, r: f64, power: f64) -> Result<()> {
    check::lr("lr", lr)?;
    check::non_negative("weight_decay", weight_decay)?;
    check::non_negative("r", r)?;
    check::non_negative("weight_lr_power", power)
}

/// `y = (1 - beta) z + beta x` into `w`, the same ops after a step and
/// after a resume, so that both give the same bits.
fn train_point<B: Backend>(
    backend: &B,
    beta: f64,
    z: &B::Buffer,
    x: &B::Buffer,
    w: &mut B::Buffer,
) -> Result<()> {
    backend.copy(x, w)?;
    backend.scale(beta as f32, w)?;
    backend.axpy((1.0 - beta) as f32, z, w)?;
    Ok(())
}

/// The step around the base update of `z`: first-step initialisation of
/// `z` and `x` from the parameter, the decay at `y`, then `x` and `y`.
fn schedule_free_step<B: Backend>(
    backend: &B,
    s: &Scalars,
    beta: f64,
    weight_decay: f64,
    ctx: StepCtx<'_, B>,
    base: impl FnOnce(&mut B::Buffer, &mut [B::Buffer]) -> Result<()>,
) -> Result<()> {
    let StepCtx {
        t,
        bufs,
        scalars,
        w,
        g: _,
        shape: _,
    } = ctx;
    if bufs.len() < 2 {
        return Err(layout_error("schedule-free", bufs.len()));
    }
    if t == 1 {
        backend.copy(w, &mut bufs[Z])?;
        backend.copy(w, &mut bufs[X])?;
    }
    let (zx, rest) = bufs.split_at_mut(2);
    let (z, x) = zx.split_at_mut(1);
    let (z, x) = (&mut z[0], &mut x[0]);
    if weight_decay != 0.0 {
        backend.axpy((-s.lr * weight_decay) as f32, w, z)?;
    }
    base(z, rest)?;
    backend.scale((1.0 - s.ckp1) as f32, x)?;
    backend.axpy(s.ckp1 as f32, z, x)?;
    train_point(backend, beta, z, x, w)?;
    scalars[0] = s.lr_max;
    scalars[1] = s.weight_sum;
    Ok(())
}

impl Rule for ScheduleFreeAdamWConfig {
    fn validate(&self) -> Result<()> {
        check_common(self.lr, self.weight_decay, self.r, self.weight_lr_power)?;
        super::check_betas_eps(self.betas, self.eps)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn slots(&self, _shape: &[usize]) -> Vec<Slot> {
        vec![
            Slot::zeros("z"),
            Slot::zeros("x"),
            Slot::zeros("exp_avg_sq"),
        ]
    }

    fn scalars(&self) -> Vec<(&'static str, f64)> {
        vec![("lr_max", -1.0), ("weight_sum", 0.0)]
    }

    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()> {
        let s = step_scalars(
            hp.lr,
            self.warmup_steps,
            self.r,
            self.weight_lr_power,
            ctx.t,
            ctx.scalars,
        )?;
        let (b2, t) = (self.betas.1, ctx.t);
        let sqrt_bc2 = super::bias_correction(b2, t).sqrt();
        let step = RmspropStep {
            lr: (s.lr * sqrt_bc2) as f32,
            alpha: b2 as f32,
            eps: (self.eps * sqrt_bc2) as f32,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        };
        let g = ctx.g;
        schedule_free_step(
            backend,
            &s,
            self.betas.0,
            hp.weight_decay,
            ctx,
            |z, rest| {
                let [v] = rest else {
                    return Err(layout_error("schedule_free_adamw", rest.len() + 2));
                };
                backend.rmsprop_update(&step, z, g, v, None, None)?;
                Ok(())
            },
        )
    }

    fn eval_slot(&self) -> Option<usize> {
        Some(X)
    }

    fn restore_train_point<B: Backend>(
        &self,
        backend: &B,
        bufs: &[B::Buffer],
        w: &mut B::Buffer,
    ) -> Result<()> {
        match bufs {
            [z, x, _] => train_point(backend, self.betas.0, z, x, w),
            other => Err(layout_error("schedule_free_adamw", other.len())),
        }
    }
}

impl Rule for ScheduleFreeSgdConfig {
    fn validate(&self) -> Result<()> {
        check_common(self.lr, self.weight_decay, self.r, self.weight_lr_power)?;
        if self.momentum > 0.0 && self.momentum < 1.0 {
            Ok(())
        } else {
            Err(OptimError::hyper(
                "momentum",
                self.momentum,
                "must be in (0, 1)",
            ))
        }
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn slots(&self, _shape: &[usize]) -> Vec<Slot> {
        vec![Slot::zeros("z"), Slot::zeros("x")]
    }

    fn scalars(&self) -> Vec<(&'static str, f64)> {
        vec![("lr_max", -1.0), ("weight_sum", 0.0)]
    }

    fn update<B: Backend>(&self, backend: &B, hp: GroupHyper, ctx: StepCtx<'_, B>) -> Result<()> {
        let s = step_scalars(
            hp.lr,
            self.warmup_steps,
            self.r,
            self.weight_lr_power,
            ctx.t,
            ctx.scalars,
        )?;
        let step = SgdStep {
            lr: s.lr as f32,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            first_step: ctx.t == 1,
        };
        let g = ctx.g;
        schedule_free_step(
            backend,
            &s,
            self.momentum,
            hp.weight_decay,
            ctx,
            |z, rest| {
                if !rest.is_empty() {
                    return Err(layout_error("schedule_free_sgd", rest.len() + 2));
                }
                backend.sgd_update(&step, z, g, None)?;
                Ok(())
            },
        )
    }

    fn eval_slot(&self) -> Option<usize> {
        Some(X)
    }

    fn restore_train_point<B: Backend>(
        &self,
        backend: &B,
        bufs: &[B::Buffer],
        w: &mut B::Buffer,
    ) -> Result<()> {
        match bufs {
            [z, x] => train_point(backend, self.momentum, z, x, w),
            other => Err(layout_error("schedule_free_sgd", other.len())),
        }
    }
}
