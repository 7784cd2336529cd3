//! Fused per-element optimizer updates.
//!
//! The host computes the per-step scalars (rate, bias corrections); the
//! backend applies the rule to every element in place. Names and formulas
//! follow `torch.optim` (single-tensor, non-foreach, non-maximize paths).
//! In every rule `g` is first replaced by `g + weight_decay * w` when
//! `weight_decay != 0` (coupled L2), except where noted.

use crate::error::{CnnError, Result, check_len};

/// Validate that every optimizer state buffer `(name, len)` has the
/// parameter's length `w` (every backend's update ops call this first).
pub fn check_optim_state(op: &'static str, w: usize, bufs: &[(&'static str, usize)]) -> Result<()> {
    for &(name, len) in bufs {
        check_len(op, name, len, w)?;
    }
    Ok(())
}

/// The error for an optional state buffer (momentum, `v_max`, ...) that the
/// step's settings need but the caller did not pass.
pub fn missing_optim_state(op: &str, what: &str) -> CnnError {
    CnnError::value(
        op,
        format!("{what} buffer is required by these settings but was not given"),
    )
}

/// SGD: `b = momentum * b + (1 - dampening) * g` (on the first step `b = g`);
/// `d = g + momentum * b` if nesterov else `b` (or `g` when momentum is 0);
/// `w -= lr * d`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdStep {
    pub lr: f32,
    pub momentum: f32,
    pub dampening: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
    /// True on the first step, when the momentum buffer is initialised to `g`.
    pub first_step: bool,
}

/// Adam/AdamW: `m = b1 m + (1 - b1) g`; `v = b2 v + (1 - b2) g^2`;
/// `vmax = max(vmax, v)` if amsgrad;
/// `w -= lr / bias_correction1 * m / (sqrt(v or vmax) / sqrt(bias_correction2) + eps)`.
/// With `decoupled` (AdamW) weight decay is `w *= 1 - lr * weight_decay`
/// before the update instead of being added to `g`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decoupled: bool,
    pub amsgrad: bool,
    /// `1 - beta1^t`
    pub bias_correction1: f32,
    /// `1 - beta2^t`
    pub bias_correction2: f32,
}

/// RMSprop: `s = alpha s + (1 - alpha) g^2`; centered: `a = alpha a + (1 - alpha) g`,
/// `avg = sqrt(s - a^2) + eps`, else `avg = sqrt(s) + eps`;
/// momentum > 0: `buf = momentum buf + g / avg`, `w -= lr buf`; else `w -= lr g / avg`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmspropStep {
    pub lr: f32,
    pub alpha: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub momentum: f32,
    pub centered: bool,
}

/// Adagrad: `clr = lr / (1 + (t - 1) lr_decay)` (host); `s += g^2`;
/// `w -= clr g / (sqrt(s) + eps)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdagradStep {
    pub clr: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

/// Adadelta: `s = rho s + (1 - rho) g^2`;
/// `d = sqrt(acc + eps) / sqrt(s + eps) g`; `acc = rho acc + (1 - rho) d^2`;
/// `w -= lr d`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdadeltaStep {
    pub lr: f32,
    pub rho: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

/// NAdam: `m = b1 m + (1 - b1) g`; `v = b2 v + (1 - b2) g^2`;
/// `denom = sqrt(v / bias_correction2) + eps`;
/// `w -= lr (1 - mu_t) / (1 - mu_product) g / denom
///      + lr mu_next / (1 - mu_product_next) m / denom`.
/// The momentum-decay products `mu_*` are computed on the host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NadamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub mu_t: f32,
    pub mu_next: f32,
    /// `prod_{i<=t} mu_i`
    pub mu_product: f32,
    /// `mu_product * mu_next`
    pub mu_product_next: f32,
    /// `1 - beta2^t`
    pub bias_correction2: f32,
}

/// RAdam: `m`, `v` as Adam; `m_hat = m / bias_correction1`;
/// when `rectify`: `w -= lr m_hat * rect * sqrt(bias_correction2) / (sqrt(v) + eps)`,
/// else `w -= lr m_hat`. `rect` and `rectify` (rho_t > 5) come from the host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RadamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub bias_correction1: f32,
    pub bias_correction2: f32,
    pub rectify: bool,
    pub rect: f32,
}

/// Adamax: `m = b1 m + (1 - b1) g`; `u = max(b2 u, |g| + eps)`;
/// `w -= lr / bias_correction1 * m / u`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamaxStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub bias_correction1: f32,
}

/// Lion (PyPI `lion-pytorch`): `w *= 1 - lr * weight_decay` (decoupled,
/// first); `w -= lr * sign(beta1 m + (1 - beta1) g)`;
/// `m = beta2 m + (1 - beta2) g`. `sign(0) = 0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LionStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    /// The decay actually applied (lion-pytorch's `decoupled_weight_decay`
    /// divides by the initial rate on the host).
    pub weight_decay: f32,
}

/// ASGD (`torch.optim.ASGD`): `w *= decay` (`1 - lambd * eta`, from the
/// host); `w -= eta * g`; then `ax += (w - ax) * mu`, or `ax = w` when
/// `mu == 1` (torch copies then). `eta` and `mu` are the per-parameter
/// host scalars torch keeps in its state before this step updates them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AsgdStep {
    pub eta: f32,
    pub decay: f32,
    pub mu: f32,
    pub weight_decay: f32,
}

/// Rprop (`torch.optim.Rprop`): with `s = sign(g * prev)`, the factor is
/// `etaplus` (s > 0), `etaminus` (s < 0) or 1; `step_size = clamp(step_size
/// * factor, step_size_min, step_size_max)`; `g = 0` where the factor is
/// `etaminus`; `w -= sign(g) * step_size`; `prev = g`. No weight decay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RpropStep {
    pub etaminus: f32,
    pub etaplus: f32,
    pub step_size_min: f32,
    pub step_size_max: f32,
}

/// The fused update rules. `w` is updated in place, `g` is read only (weight
/// decay is folded in per element, never written back), state buffers have
/// the length of `w` and are updated in place.
pub trait OptimOps: super::MemoryOps {
    fn sgd_update(
        &self,
        s: &SgdStep,
        w: &mut Self::Buffer,
        g: &Self::Buffer,
        momentum_buf: Option<&mut Self::Buffer>,
    ) -> Result<()>;
    #[allow(clippy::too_many_arguments)]
    fn adam_update(
        &self,
        s: &AdamStep,
        w: &mut Self::Buffer,
        g: &Self::Buffer,
        m: &mut Self::Buffer,
        v: &mut Self::Buffer,
        v_max: Option<&mut Self::Buffer>,
    ) -> Result<()>;
    #[allow(clippy::too_many_arguments)]
    fn rmsprop_update(
        &self,
        s: &RmspropStep,
        w: &mut Self::Buffer,
        g: &Self::Buffer,
        square_avg: &mut Self::Buffer,
        momentum_buf: Option<&mut Self::Buffer>,
        grad_avg: Option<&mut Self::Buffer>,
    ) -> Result<()>;
    fn adagrad_update(
        &self,
        s: &AdagradStep,
        w: &mut Self::Buffer,
        g: &Self::Buffer,
        sum: &mut Self::Buffer,
    ) -> Result<()>;
    fn adadelta_update(
        &self,
        s: &AdadeltaStep,
        w: &mut Self::Buffer,
        g: &Self::Buffer,
        square_avg: &mut Self::Buffer,
        acc_delta: &mut Self::Buffer,
    ) -> Result<()>;
    fn nadam_update(
        &self,
        s: &NadamStep,
        w: &mut Self::Buffer,
        g: &Self::Buffer,
        m: &mut Self::Buffer,
        v: &mut Self::Buffer,
    ) -> Result<()>;
    fn radam_update(
        &self,
        s: &RadamStep,
        w: &mut Self::Buffer,
        g: &Self::Buffer,
        m: &mut Self::Buffer,
        v: &mut Self::Buffer,
    ) -> Result<()>;
    fn adamax_update(
        &self,
        s: &AdamaxStep,
        w: &mut Self::Buffer,
        g: &Self::Buffer,
        m: &mut Self::Buffer,
        u: &mut Self::Buffer,
    ) -> Result<()>;
    fn lion_update(
        &self,
        s: &LionStep,
        w: &mut Self::Buffer,
        g: &Self::Buffer,
        exp_avg: &mut Self::Buffer,
    ) -> Result<()>;
    fn asgd_update(
        &self,
        s: &AsgdStep,
        w: &mut Self::Buffer,
        g: &Self::Buffer,
        ax: &mut Self::Buffer,
    ) -> Result<()>;
    fn rprop_update(
        &self,
        s: &RpropStep,
        w: &mut Self::Buffer,
        g: &Self::Buffer,
        prev: &mut Self::Buffer,
        step_size: &mut Self::Buffer,
    ) -> Result<()>;
}
