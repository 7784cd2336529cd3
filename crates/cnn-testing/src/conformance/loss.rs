//! Conformance of the losses and `argmax_rows`.

use proptest::prelude::*;

use crate::assert::{check_close, check_close_scalar};
use crate::conformance::runner::{CASES, all_ok, run_cases};
use crate::host::{ctx, down, down_indices, filled, up, up_indices};
use crate::reference as r;
use crate::strategies::{tied_values, values};
use cnn_core::backend::{Backend, CrossEntropyParams};
use cnn_core::rng::CounterRng;

/// Absolute tolerance for cross-entropy, per unit of the largest |logit|:
/// f32 log-softmax loses about one ulp of the largest logit (1e-7 relative),
/// so logits up to 100 allow ~1e-5 in the loss.
pub const CE_ABS_PER_LOGIT: f64 = 1e-6;
/// Relative tolerance for the losses.
pub const LOSS_REL: f64 = 1e-5;
/// Absolute tolerance for MSE: f32 differences and a mean of squares.
pub const MSE_ABS: f64 = 1e-6;

/// Softmax cross-entropy (with and without label smoothing, including
/// logits of +-100 that overflow a naive f32 softmax, and a single class),
/// MSE, and argmax with ties.
pub fn check_losses<B: Backend>(backend: &B) {
    let smoothing = prop_oneof![Just(0.0f32), 0.0f32..=1.0];
    let scale = prop_oneof![Just(1.0f32), Just(10.0f32), Just(100.0f32)];
    let ce = (1usize..=6, 1usize..=12, smoothing, scale, any::<u64>());
    run_cases(
        "softmax_cross_entropy",
        backend.name(),
        CASES,
        ce,
        |(n, classes, s, scale, seed)| {
            ce_one(
                backend,
                &CrossEntropyParams {
                    n,
                    classes,
                    label_smoothing: s,
                },
                scale,
                seed,
            )
        },
    );
    let lam = prop_oneof![Just(0.0f64), Just(1.0f64), 0.0f64..=1.0];
    let smoothing = prop_oneof![Just(0.0f32), 0.0f32..=1.0];
    let mixed = (1usize..=6, 1usize..=12, smoothing, lam, any::<u64>());
    run_cases(
        "softmax_cross_entropy_mixed",
        backend.name(),
        CASES,
        mixed,
        |(n, classes, s, lam, seed)| {
            ce_mixed_one(
                backend,
                &CrossEntropyParams {
                    n,
                    classes,
                    label_smoothing: s,
                },
                lam,
                seed,
            )
        },
    );
    run_cases(
        "mse_loss",
        backend.name(),
        CASES,
        (1usize..=300, any::<u64>()),
        |(len, seed)| mse_one(backend, len, seed),
    );
    run_cases(
        "argmax_rows",
        backend.name(),
        CASES,
        (1usize..=6, 1usize..=12, any::<u64>()),
        |(n, classes, seed)| argmax_one(backend, n, classes, seed),
    );
}

fn ce_one<B: Backend>(be: &B, p: &CrossEntropyParams, scale: f32, seed: u64) -> Result<(), String> {
    // logits and dlogits are (N, classes); targets are (N).
    let logits = values(seed, 0, p.n * p.classes, -scale, scale);
    let mut rng = CounterRng::new(seed, 1);
    let targets: Vec<u32> = (0..p.n)
        .map(|_| rng.next_u32() % p.classes as u32)
        .collect();
    let mut d = filled(be, p.n * p.classes, f32::NAN)?;
    let loss = ctx(
        be.softmax_cross_entropy(p, &up(be, &logits)?, &up_indices(be, &targets)?, &mut d),
        "softmax_cross_entropy",
    )?;
    let (loss_ref, d_ref) = r::softmax_cross_entropy(p, &logits, &targets);
    let abs = CE_ABS_PER_LOGIT * f64::from(scale.max(1.0));
    all_ok([
        check_close_scalar(
            f64::from(loss),
            loss_ref,
            abs,
            LOSS_REL,
            "softmax_cross_entropy loss",
        ),
        check_close(
            &down(be, &d)?,
            &d_ref,
            abs,
            LOSS_REL,
            "softmax_cross_entropy dlogits",
        ),
    ])
}

/// The mixed cross-entropy (mixup/CutMix targets: each row's partner is
/// the batch reversed, as timm pairs them) against the reference, with
/// logits up to 10.
fn ce_mixed_one<B: Backend>(
    be: &B,
    p: &CrossEntropyParams,
    lam: f64,
    seed: u64,
) -> Result<(), String> {
    // logits and dlogits are (N, classes); targets and partners are (N).
    let scale = 10.0f32;
    let logits = values(seed, 0, p.n * p.classes, -scale, scale);
    let mut rng = CounterRng::new(seed, 1);
    let targets: Vec<u32> = (0..p.n)
        .map(|_| rng.next_u32() % p.classes as u32)
        .collect();
    let partners: Vec<u32> = targets.iter().rev().copied().collect();
    let mut d = filled(be, p.n * p.classes, f32::NAN)?;
    let loss = ctx(
        be.softmax_cross_entropy_mixed(
            p,
            lam,
            &up(be, &logits)?,
            &up_indices(be, &targets)?,
            &up_indices(be, &partners)?,
            &mut d,
        ),
        "softmax_cross_entropy_mixed",
    )?;
    let (loss_ref, d_ref) = r::softmax_cross_entropy_mixed(p, lam, &logits, &targets, &partners);
    let abs = CE_ABS_PER_LOGIT * f64::from(scale);
    all_ok([
        check_close_scalar(
            f64::from(loss),
            loss_ref,
            abs,
            LOSS_REL,
            "softmax_cross_entropy_mixed loss",
        ),
        check_close(
            &down(be, &d)?,
            &d_ref,
            abs,
            LOSS_REL,
            "softmax_cross_entropy_mixed dlogits",
        ),
    ])
}

fn mse_one<B: Backend>(be: &B, len: usize, seed: u64) -> Result<(), String> {
    let x = values(seed, 0, len, -2.0, 2.0);
    let t = values(seed, 1, len, -2.0, 2.0);
    let mut dx = filled(be, len, f32::NAN)?;
    let loss = ctx(be.mse_loss(&up(be, &x)?, &up(be, &t)?, &mut dx), "mse_loss")?;
    let (loss_ref, dx_ref) = r::mse_loss(&x, &t);
    all_ok([
        check_close_scalar(
            f64::from(loss),
            loss_ref,
            MSE_ABS,
            LOSS_REL,
            "mse_loss loss",
        ),
        check_close(&down(be, &dx)?, &dx_ref, MSE_ABS, LOSS_REL, "mse_loss dx"),
    ])
}

fn argmax_one<B: Backend>(be: &B, n: usize, classes: usize, seed: u64) -> Result<(), String> {
    let x = tied_values(seed, 0, n * classes);
    let mut out = ctx(be.alloc_indices(n), "alloc_indices")?;
    ctx(
        be.argmax_rows(n, classes, &up(be, &x)?, &mut out),
        "argmax_rows",
    )?;
    let got = down_indices(be, &out)?;
    let want = r::argmax_rows(n, classes, &x);
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "argmax_rows: got {got:?}, expected {want:?} (first maximum) for x {x:?}"
        ))
    }
}
