//! Schedule-free's evaluation point and the wrappers' state: exported and
//! imported exactly, refused where it does not fit, and the steps that
//! must not run at the evaluation point.

use cnn_core::{Param, ParamKind, Tensor};
use cnn_cpu::CpuBackend;
use cnn_optim::{LookaheadConfig, Optimizer, OptimizerConfig, SamConfig};

type Opt = Optimizer<CpuBackend>;

fn param(b: &CpuBackend, w: &[f32]) -> Param<CpuBackend> {
    let value = Tensor::from_slice(b, vec![w.len()], w).unwrap();
    Param::new(b, "w", ParamKind::Weight, value).unwrap()
}

/// One step on the gradient `w - 1`.
fn step(b: &CpuBackend, opt: &mut Opt, p: &mut Param<CpuBackend>) {
    let g: Vec<f32> = p.value.to_vec(b).unwrap().iter().map(|w| w - 1.0).collect();
    p.grad.copy_from_slice(b, &g).unwrap();
    opt.step(b, &mut [p]).unwrap();
}

#[test]
fn schedule_free_state_resumes_the_training_point_bit_for_bit() {
    let b = CpuBackend::with_threads(1).unwrap();
    let config = OptimizerConfig::from_name("schedule_free_adamw")
        .unwrap()
        .with_lr(0.1);
    let mut opt = Opt::new(config.clone()).unwrap();
    let mut p = param(&b, &[0.3, -2.0, 5.0]);
    for _ in 0..4 {
        step(&b, &mut opt, &mut p);
    }
    let y = p.value.to_vec(&b).unwrap();
    // Saved as a checkpoint is: the state at the training point, the
    // weights at the evaluation point.
    let state = opt.export_state(&b).unwrap();
    opt.set_eval_point([&mut p], true).unwrap();
    assert!(
        opt.export_state(&b).is_err(),
        "exported at the evaluation point"
    );
    let x = p.value.to_vec(&b).unwrap();
    assert_ne!(x, y);
    assert_eq!(state.params["w"].slots["x"], x);
    let stepped = {
        let mut q = param(&b, &[0.0; 3]);
        q.grad.copy_from_slice(&b, &[1.0; 3]).unwrap();
        opt.step(&b, &mut [&mut q])
    };
    assert!(stepped.is_err(), "a step at the evaluation point");
    // A new optimizer from that state and the saved x continues from y.
    let mut resumed = Opt::new(config).unwrap();
    resumed.import_state(&b, &state).unwrap();
    let mut q = param(&b, &x);
    resumed.restore_train_point(&b, [&mut q]).unwrap();
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    assert_eq!(bits(q.value.to_vec(&b).unwrap()), bits(y.clone()));
    opt.set_eval_point([&mut p], false).unwrap();
    step(&b, &mut opt, &mut p);
    step(&b, &mut resumed, &mut q);
    assert_eq!(
        bits(q.value.to_vec(&b).unwrap()),
        bits(p.value.to_vec(&b).unwrap())
    );
}

#[test]
fn lookahead_state_round_trips_and_must_match() {
    let b = CpuBackend::with_threads(1).unwrap();
    let la = LookaheadConfig { k: 3, alpha: 0.5 };
    let sgd = OptimizerConfig::from_name("sgd").unwrap().with_lr(0.1);
    let mut opt = Opt::new(sgd.clone())
        .unwrap()
        .with_lookahead(la.clone())
        .unwrap();
    let mut p = param(&b, &[2.0, -1.0]);
    step(&b, &mut opt, &mut p);
    step(&b, &mut opt, &mut p);
    let state = opt.export_state(&b).unwrap();
    let ls = state.lookahead.as_ref().expect("lookahead state");
    assert_eq!(ls.counter, 2);
    assert_eq!(
        ls.slow["w"],
        vec![2.0, -1.0],
        "the slow weights start at w0"
    );
    let mut resumed = Opt::new(sgd.clone()).unwrap().with_lookahead(la).unwrap();
    resumed.import_state(&b, &state).unwrap();
    let mut q = param(&b, &p.value.to_vec(&b).unwrap());
    step(&b, &mut opt, &mut p);
    step(&b, &mut resumed, &mut q);
    assert_eq!(p.value.to_vec(&b).unwrap(), q.value.to_vec(&b).unwrap());
    // The third step synchronised: w = slow = w0 + 0.5 (w3 - w0).
    let after = opt.export_state(&b).unwrap();
    assert_eq!(after.lookahead.as_ref().unwrap().counter, 0);
    assert_eq!(
        after.lookahead.unwrap().slow["w"],
        p.value.to_vec(&b).unwrap()
    );
    // A state without lookahead does not fit an optimizer with it, and back.
    let plain = Opt::new(sgd.clone()).unwrap().export_state(&b).unwrap();
    let mut with = Opt::new(sgd.clone())
        .unwrap()
        .with_lookahead(LookaheadConfig::default())
        .unwrap();
    assert!(
        with.import_state(&b, &plain)
            .unwrap_err()
            .to_string()
            .contains("lookahead")
    );
    let mut without = Opt::new(sgd).unwrap();
    assert!(without.import_state(&b, &state).is_err());
}

#[test]
fn wrappers_check_their_parameters_and_combinations() {
    let sf = OptimizerConfig::from_name("schedule_free_sgd").unwrap();
    let e = Opt::new(sf)
        .unwrap()
        .with_lookahead(LookaheadConfig::default())
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("lookahead cannot wrap schedule_free_sgd"),
        "{e}"
    );
    let sgd = || Opt::new(OptimizerConfig::default()).unwrap();
    let e = sgd()
        .with_lookahead(LookaheadConfig { k: 0, alpha: 0.5 })
        .unwrap_err();
    assert!(e.to_string().contains("`k`"), "{e}");
    let e = sgd()
        .with_lookahead(LookaheadConfig { k: 2, alpha: -0.1 })
        .unwrap_err();
    assert!(e.to_string().contains("`alpha`"), "{e}");
    let e = sgd()
        .with_sam(SamConfig {
            rho: f64::NAN,
            ..SamConfig::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("`rho`"), "{e}");
    let b = CpuBackend::with_threads(1).unwrap();
    let mut p = param(&b, &[1.0]);
    assert!(
        sgd().sam_perturb(&b, &mut [&mut p]).is_err(),
        "perturb without SAM"
    );
}

#[test]
fn sam_restores_the_weights_before_the_inner_step() {
    let b = CpuBackend::with_threads(1).unwrap();
    let sgd = OptimizerConfig::from_name("sgd").unwrap().with_lr(0.5);
    let mut opt = Opt::new(sgd)
        .unwrap()
        .with_sam(SamConfig {
            rho: 0.5,
            ..SamConfig::default()
        })
        .unwrap();
    let mut p = param(&b, &[0.0, 0.0]);
    p.grad.copy_from_slice(&b, &[3.0, 4.0]).unwrap();
    opt.sam_perturb(&b, &mut [&mut p]).unwrap();
    // e = 0.5 * g / 5
    let w = p.value.to_vec(&b).unwrap();
    assert!(
        (w[0] - 0.3).abs() < 1e-7 && (w[1] - 0.4).abs() < 1e-7,
        "{w:?}"
    );
    assert!(
        opt.sam_perturb(&b, &mut [&mut p]).is_err(),
        "perturbed twice"
    );
    p.grad.copy_from_slice(&b, &[1.0, -1.0]).unwrap();
    opt.step(&b, &mut [&mut p]).unwrap();
    // From the saved w = 0 with the second gradient.
    assert_eq!(p.value.to_vec(&b).unwrap(), vec![-0.5, 0.5]);
}
