//! Conformance of `activation_forward` / `activation_backward`.

use proptest::prelude::*;

use crate::assert::check_close;
use crate::conformance::runner::{CASES, all_ok, run_cases};
use crate::host::{ctx, down, filled, up};
use crate::reference as r;
use crate::strategies::values;
use cnn_core::backend::{Activation, Backend};

/// Absolute tolerance for activations: f32 `exp`/`tanh`/`erf` of inputs up
/// to |x| = 30; an f32 erf approximation may be off by ~2e-7, times |x|.
pub const ACT_ABS: f64 = 2e-6;
/// Relative tolerance for activations.
pub const ACT_REL: f64 = 1e-5;

/// Every activation kind with random parameters (leaky slopes of either
/// sign, ELU alpha, softplus beta and threshold).
pub fn activation_strategy() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::Relu),
        (-0.5f32..0.5).prop_map(|negative_slope| Activation::LeakyRelu { negative_slope }),
        Just(Activation::Sigmoid),
        Just(Activation::Tanh),
        Just(Activation::Gelu),
        Just(Activation::GeluTanh),
        (0.1f32..2.0).prop_map(|alpha| Activation::Elu { alpha }),
        Just(Activation::Silu),
        (0.5f32..3.0, 1.0f32..20.0)
            .prop_map(|(beta, threshold)| Activation::Softplus { beta, threshold }),
    ]
}

/// Forward and backward of every kind on values in [-10, 10] plus the
/// special points 0 (the kinks: PyTorch's slope there is part of the
/// contract) and +-30 (saturation).
pub fn check_activations<B: Backend>(backend: &B) {
    let strategy = (activation_strategy(), 1usize..=200, any::<u64>());
    run_cases(
        "activations",
        backend.name(),
        CASES * 2,
        strategy,
        |(act, len, seed)| activation_one(backend, act, len, seed),
    );
}

fn activation_one<B: Backend>(
    be: &B,
    act: Activation,
    len: usize,
    seed: u64,
) -> Result<(), String> {
    let mut x = values(seed, 0, len, -10.0, 10.0);
    for (slot, special) in x.iter_mut().zip([0.0, 30.0, -30.0, -0.0]) {
        *slot = special;
    }
    let dy = values(seed, 1, len, -1.0, 1.0);
    let xb = up(be, &x)?;
    let mut y = filled(be, len, f32::NAN)?;
    ctx(
        be.activation_forward(act, &xb, &mut y),
        "activation_forward",
    )?;
    let mut dx = filled(be, len, f32::NAN)?;
    ctx(
        be.activation_backward(act, &xb, &y, &up(be, &dy)?, &mut dx),
        "activation_backward",
    )?;
    let name = act.name();
    all_ok([
        check_close(
            &down(be, &y)?,
            &r::activation_forward(act, &x),
            ACT_ABS,
            ACT_REL,
            &format!("{name} forward"),
        ),
        check_close(
            &down(be, &dx)?,
            &r::activation_backward(act, &x, &dy),
            ACT_ABS,
            ACT_REL,
            &format!("{name} backward"),
        ),
    ])
}
