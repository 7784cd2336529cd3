//! Conformance of the fused optimizer updates.
//!
//! Each case draws the rule's hyper-parameters (and flags: nesterov,
//! AMSGrad, decoupled decay, centered, rectify, first step...) from the
//! case seed, runs one step on random weights, gradients and state, and
//! compares the weights and every state buffer with the reference.

use proptest::prelude::*;

use crate::assert::check_close;
use crate::conformance::runner::{CASES, all_ok, run_cases};
use crate::host::{ctx, down, up};
use crate::reference::{self as r, OptimOut};
use crate::strategies::values;
use cnn_core::backend::{
    AdadeltaStep, AdagradStep, AdamStep, AdamaxStep, AsgdStep, Backend, LionStep, NadamStep,
    RadamStep, RmspropStep, RpropStep, SgdStep,
};
use cnn_core::rng::CounterRng;

/// Absolute tolerance for optimizer steps: weights and state of order 1
/// after a handful of f32 operations (f32 rounding of a value near 1 is 6e-8).
pub const OPTIM_ABS: f64 = 1e-6;
/// Relative tolerance for optimizer steps (larger values such as
/// `m / bias_correction1` for a small correction, or `sum + g^2`).
pub const OPTIM_REL: f64 = 1e-5;

/// The optimizer rules this check covers, one per `*_update` op.
const RULES: [&str; 11] = [
    "sgd", "adam", "rmsprop", "adagrad", "adadelta", "nadam", "radam", "adamax", "lion", "asgd",
    "rprop",
];

/// One step of every update rule of [`OptimOps`](cnn_core::backend::OptimOps),
/// with and without weight decay and with every flag combination.
pub fn check_optim_updates<B: Backend>(backend: &B) {
    for rule in RULES {
        run_cases(
            &format!("{rule}_update"),
            backend.name(),
            CASES,
            (1usize..=64, any::<u64>()),
            |(len, seed)| optim_one(backend, rule, len, seed),
        );
    }
}

/// Host-side draws of hyper-parameters.
struct Draw(CounterRng);

impl Draw {
    fn uniform(&mut self, lo: f64, hi: f64) -> f32 {
        self.0.uniform(lo, hi) as f32
    }
    fn flag(&mut self) -> bool {
        self.0.next_u32().is_multiple_of(2)
    }
    fn pick(&mut self, options: &[f32]) -> f32 {
        options[self.0.next_u32() as usize % options.len()]
    }
    fn weight_decay(&mut self) -> f32 {
        if self.flag() {
            0.0
        } else {
            self.uniform(0.0, 0.1)
        }
    }
    fn step(&mut self) -> i32 {
        1 + (self.0.next_u32() % 20) as i32
    }
}

fn compare(rule: &str, w: &[f32], state: &[Vec<f32>], want: &OptimOut) -> Result<(), String> {
    let mut results = vec![check_close(
        w,
        &want.w,
        OPTIM_ABS,
        OPTIM_REL,
        &format!("{rule} w"),
    )];
    if state.len() != want.state.len() {
        return Err(format!(
            "{rule}: {} state buffers compared, {} expected",
            state.len(),
            want.state.len()
        ));
    }
    for (i, (got, exp)) in state.iter().zip(&want.state).enumerate() {
        results.push(check_close(
            got,
            exp,
            OPTIM_ABS,
            OPTIM_REL,
            &format!("{rule} state buffer {i}"),
        ));
    }
    all_ok(results)
}

fn optim_one<B: Backend>(be: &B, rule: &str, len: usize, seed: u64) -> Result<(), String> {
    let mut d = Draw(CounterRng::new(seed, 100));
    let w0 = values(seed, 0, len, -2.0, 2.0);
    let g = values(seed, 1, len, -1.0, 1.0);
    let signed = values(seed, 2, len, -1.0, 1.0); // momentum-like state
    let positive = values(seed, 3, len, 0.0, 1.0); // second-moment-like state
    let extra = values(seed, 4, len, 0.0, 0.5);
    let gb = up(be, &g)?;
    let mut w = up(be, &w0)?;
    match rule {
        "sgd" => {
            let momentum = if d.flag() { 0.0 } else { d.uniform(0.1, 0.99) };
            let s = SgdStep {
                lr: d.uniform(1e-3, 0.1),
                momentum,
                dampening: if d.flag() { 0.0 } else { d.uniform(0.0, 0.5) },
                weight_decay: d.weight_decay(),
                nesterov: momentum != 0.0 && d.flag(),
                first_step: d.flag(),
            };
            let mut buf = if momentum != 0.0 {
                Some(up(be, &signed)?)
            } else {
                None
            };
            ctx(be.sgd_update(&s, &mut w, &gb, buf.as_mut()), "sgd_update")?;
            let state = match &buf {
                Some(b) => vec![down(be, b)?],
                None => vec![],
            };
            let want = r::sgd_update(&s, &w0, &g, (momentum != 0.0).then_some(signed.as_slice()));
            compare(&format!("sgd {s:?}"), &down(be, &w)?, &state, &want)
        }
        "adam" => {
            let (beta1, beta2) = (d.uniform(0.5, 0.99), d.uniform(0.9, 0.9999));
            let t = d.step();
            let s = AdamStep {
                lr: d.uniform(1e-3, 0.1),
                beta1,
                beta2,
                eps: d.pick(&[1e-8, 1e-6, 1e-3]),
                weight_decay: d.weight_decay(),
                decoupled: d.flag(),
                amsgrad: d.flag(),
                bias_correction1: (1.0 - f64::from(beta1).powi(t)) as f32,
                bias_correction2: (1.0 - f64::from(beta2).powi(t)) as f32,
            };
            // v_max >= v, as an optimizer keeps it.
            let vmax0: Vec<f32> = positive.iter().zip(&extra).map(|(v, e)| v + e).collect();
            let (mut m, mut v) = (up(be, &signed)?, up(be, &positive)?);
            let mut vmax = if s.amsgrad {
                Some(up(be, &vmax0)?)
            } else {
                None
            };
            ctx(
                be.adam_update(&s, &mut w, &gb, &mut m, &mut v, vmax.as_mut()),
                "adam_update",
            )?;
            let mut state = vec![down(be, &m)?, down(be, &v)?];
            if let Some(b) = &vmax {
                state.push(down(be, b)?);
            }
            let want = r::adam_update(
                &s,
                &w0,
                &g,
                &signed,
                &positive,
                s.amsgrad.then_some(vmax0.as_slice()),
            );
            compare(&format!("adam {s:?}"), &down(be, &w)?, &state, &want)
        }
        "rmsprop" => {
            let s = RmspropStep {
                lr: d.uniform(1e-3, 0.1),
                alpha: d.uniform(0.8, 0.99),
                eps: d.pick(&[1e-8, 1e-6, 1e-3]),
                weight_decay: d.weight_decay(),
                momentum: if d.flag() { 0.0 } else { d.uniform(0.1, 0.9) },
                centered: d.flag(),
            };
            // Centered: grad_avg a in [-0.5, 0.5) and square_avg >= a^2 + 0.1 keep sqrt(s - a^2) well away from 0.
            let grad_avg0: Vec<f32> = extra.iter().map(|e| e - 0.25).collect();
            let sq0: Vec<f32> = positive
                .iter()
                .zip(&grad_avg0)
                .map(|(p, a)| a * a + 0.1 + p)
                .collect();
            let mut sq = up(be, &sq0)?;
            let mut buf = if s.momentum > 0.0 {
                Some(up(be, &signed)?)
            } else {
                None
            };
            let mut ga = if s.centered {
                Some(up(be, &grad_avg0)?)
            } else {
                None
            };
            ctx(
                be.rmsprop_update(&s, &mut w, &gb, &mut sq, buf.as_mut(), ga.as_mut()),
                "rmsprop_update",
            )?;
            let mut state = vec![down(be, &sq)?];
            for b in [&buf, &ga].into_iter().flatten() {
                state.push(down(be, b)?);
            }
            let want = r::rmsprop_update(
                &s,
                &w0,
                &g,
                &sq0,
                (s.momentum > 0.0).then_some(signed.as_slice()),
                s.centered.then_some(grad_avg0.as_slice()),
            );
            compare(&format!("rmsprop {s:?}"), &down(be, &w)?, &state, &want)
        }
        "adagrad" => {
            let s = AdagradStep {
                clr: d.uniform(1e-3, 0.1),
                eps: d.pick(&[1e-10, 1e-6]),
                weight_decay: d.weight_decay(),
            };
            let mut sum = up(be, &positive)?;
            ctx(
                be.adagrad_update(&s, &mut w, &gb, &mut sum),
                "adagrad_update",
            )?;
            let want = r::adagrad_update(&s, &w0, &g, &positive);
            compare(
                &format!("adagrad {s:?}"),
                &down(be, &w)?,
                &[down(be, &sum)?],
                &want,
            )
        }
        "adadelta" => {
            let s = AdadeltaStep {
                lr: d.uniform(0.1, 1.0),
                rho: d.uniform(0.8, 0.99),
                eps: d.pick(&[1e-6, 1e-3]),
                weight_decay: d.weight_decay(),
            };
            let (mut sq, mut acc) = (up(be, &positive)?, up(be, &extra)?);
            ctx(
                be.adadelta_update(&s, &mut w, &gb, &mut sq, &mut acc),
                "adadelta_update",
            )?;
            let want = r::adadelta_update(&s, &w0, &g, &positive, &extra);
            compare(
                &format!("adadelta {s:?}"),
                &down(be, &w)?,
                &[down(be, &sq)?, down(be, &acc)?],
                &want,
            )
        }
        "nadam" => {
            let (beta1, beta2) = (d.uniform(0.5, 0.99), d.uniform(0.9, 0.9999));
            let t = d.step();
            // torch.optim.NAdam: mu_t = beta1 (1 - 0.5 * 0.96^(t * 0.004)).
            let mu = |k: i32| f64::from(beta1) * (1.0 - 0.5 * 0.96f64.powf(f64::from(k) * 0.004));
            let mu_product: f64 = (1..=t).map(mu).product();
            let s = NadamStep {
                lr: d.uniform(1e-3, 0.1),
                beta1,
                beta2,
                eps: d.pick(&[1e-8, 1e-6, 1e-3]),
                weight_decay: d.weight_decay(),
                mu_t: mu(t) as f32,
                mu_next: mu(t + 1) as f32,
                mu_product: mu_product as f32,
                mu_product_next: (mu_product * mu(t + 1)) as f32,
                bias_correction2: (1.0 - f64::from(beta2).powi(t)) as f32,
            };
            let (mut m, mut v) = (up(be, &signed)?, up(be, &positive)?);
            ctx(
                be.nadam_update(&s, &mut w, &gb, &mut m, &mut v),
                "nadam_update",
            )?;
            let want = r::nadam_update(&s, &w0, &g, &signed, &positive);
            compare(
                &format!("nadam {s:?}"),
                &down(be, &w)?,
                &[down(be, &m)?, down(be, &v)?],
                &want,
            )
        }
        "radam" => {
            let (beta1, beta2) = (d.uniform(0.5, 0.99), d.uniform(0.9, 0.9999));
            let t = d.step();
            let s = RadamStep {
                lr: d.uniform(1e-3, 0.1),
                beta1,
                beta2,
                eps: d.pick(&[1e-8, 1e-6, 1e-3]),
                weight_decay: d.weight_decay(),
                bias_correction1: (1.0 - f64::from(beta1).powi(t)) as f32,
                bias_correction2: (1.0 - f64::from(beta2).powi(t)) as f32,
                rectify: d.flag(),
                rect: d.uniform(0.1, 1.0),
            };
            let (mut m, mut v) = (up(be, &signed)?, up(be, &positive)?);
            ctx(
                be.radam_update(&s, &mut w, &gb, &mut m, &mut v),
                "radam_update",
            )?;
            let want = r::radam_update(&s, &w0, &g, &signed, &positive);
            compare(
                &format!("radam {s:?}"),
                &down(be, &w)?,
                &[down(be, &m)?, down(be, &v)?],
                &want,
            )
        }
        "adamax" => {
            let beta1 = d.uniform(0.5, 0.99);
            let t = d.step();
            let s = AdamaxStep {
                lr: d.uniform(1e-3, 0.1),
                beta1,
                beta2: d.uniform(0.9, 0.9999),
                eps: d.pick(&[1e-8, 1e-6, 1e-3]),
                weight_decay: d.weight_decay(),
                bias_correction1: (1.0 - f64::from(beta1).powi(t)) as f32,
            };
            let (mut m, mut u) = (up(be, &signed)?, up(be, &positive)?);
            ctx(
                be.adamax_update(&s, &mut w, &gb, &mut m, &mut u),
                "adamax_update",
            )?;
            let want = r::adamax_update(&s, &w0, &g, &signed, &positive);
            compare(
                &format!("adamax {s:?}"),
                &down(be, &w)?,
                &[down(be, &m)?, down(be, &u)?],
                &want,
            )
        }
        "lion" => {
            let s = LionStep {
                lr: d.uniform(1e-4, 0.1),
                beta1: d.uniform(0.5, 0.99),
                beta2: d.uniform(0.9, 0.999),
                weight_decay: d.weight_decay(),
            };
            let mut m = up(be, &signed)?;
            ctx(be.lion_update(&s, &mut w, &gb, &mut m), "lion_update")?;
            let want = r::lion_update(&s, &w0, &g, &signed);
            compare(
                &format!("lion {s:?}"),
                &down(be, &w)?,
                &[down(be, &m)?],
                &want,
            )
        }
        "asgd" => {
            let eta = d.uniform(1e-3, 0.1);
            let s = AsgdStep {
                eta,
                decay: (1.0 - f64::from(d.uniform(0.0, 0.1)) * f64::from(eta)) as f32,
                mu: if d.flag() { 1.0 } else { d.uniform(0.01, 1.0) },
                weight_decay: d.weight_decay(),
            };
            let mut ax = up(be, &signed)?;
            ctx(be.asgd_update(&s, &mut w, &gb, &mut ax), "asgd_update")?;
            let want = r::asgd_update(&s, &w0, &g, &signed);
            compare(
                &format!("asgd {s:?}"),
                &down(be, &w)?,
                &[down(be, &ax)?],
                &want,
            )
        }
        "rprop" => {
            let s = RpropStep {
                etaminus: d.uniform(0.1, 0.9),
                etaplus: d.uniform(1.1, 2.0),
                step_size_min: d.pick(&[1e-6, 0.05]),
                step_size_max: d.pick(&[0.3, 50.0]),
            };
            // Some previous gradients exactly 0 (the first step's state).
            let prev: Vec<f32> = signed
                .iter()
                .enumerate()
                .map(|(i, &p)| if i % 3 == 0 { 0.0 } else { p })
                .collect();
            let (mut pb, mut sb) = (up(be, &prev)?, up(be, &extra)?);
            ctx(
                be.rprop_update(&s, &mut w, &gb, &mut pb, &mut sb),
                "rprop_update",
            )?;
            let want = r::rprop_update(&s, &w0, &g, &prev, &extra);
            compare(
                &format!("rprop {s:?}"),
                &down(be, &w)?,
                &[down(be, &pb)?, down(be, &sb)?],
                &want,
            )
        }
        other => Err(format!("no conformance case for optimizer rule `{other}`")),
    }
}
