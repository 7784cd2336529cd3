//! Bad input (each error's message), regularizers, parameter groups and
//! learning-rate plumbing.

use cnn_core::{CnnError, Conv2dGeometry, Graph, GraphBuilder, Param, ParamKind, Tensor};
use cnn_cpu::CpuBackend;
use cnn_optim::regularize::{
    add_l1_grad, add_l2_grad, clip_grad_norm, clip_grad_norm_graph, clip_grad_value,
    clip_grad_value_graph, decoupled_weight_decay, l1_penalty, l2_penalty,
};
use cnn_optim::schedule::{CosineSchedule, PlateauSchedule, SequentialSchedule, StepSchedule};
use cnn_optim::{
    AdamConfig, OptimError, Optimizer, OptimizerConfig, ParamGroup, Regularizer, RmspropConfig,
    ScheduleConfig, Scheduler, SgdConfig,
};
use serde_json::json;

type Opt = Optimizer<CpuBackend>;

fn backend() -> CpuBackend {
    CpuBackend::with_threads(1).unwrap()
}

fn param(b: &CpuBackend, name: &str, kind: ParamKind, w: &[f32], g: &[f32]) -> Param<CpuBackend> {
    let mut p = Param::new(
        b,
        name,
        kind,
        Tensor::from_slice(b, vec![w.len()], w).unwrap(),
    )
    .unwrap();
    p.grad.copy_from_slice(b, g).unwrap();
    p
}

fn err(config: OptimizerConfig) -> String {
    Opt::new(config).unwrap_err().to_string()
}

#[test]
fn bad_learning_rates_are_rejected() {
    let sgd = |lr| {
        OptimizerConfig::Sgd(SgdConfig {
            lr,
            ..Default::default()
        })
    };
    assert_eq!(
        err(sgd(-0.1)),
        "invalid value for `lr` = -0.1: must be a finite number >= 0"
    );
    assert_eq!(
        err(sgd(f64::NAN)),
        "invalid value for `lr` = NaN: must be a finite number >= 0"
    );
    let mut opt = Opt::new(sgd(0.1)).unwrap();
    assert_eq!(
        opt.set_lr(-1.0).unwrap_err().to_string(),
        "invalid value for `lr` = -1: must be a finite number >= 0"
    );
}

#[test]
fn bad_betas_and_eps_are_rejected() {
    let adam = |betas, eps| {
        OptimizerConfig::Adam(AdamConfig {
            betas,
            eps,
            ..Default::default()
        })
    };
    assert_eq!(
        err(adam((1.0, 0.999), 1e-8)),
        "invalid value for `betas[0]` = 1: must be in [0, 1)"
    );
    assert_eq!(
        err(adam((0.9, -0.1), 1e-8)),
        "invalid value for `betas[1]` = -0.1: must be in [0, 1)"
    );
    assert_eq!(
        err(adam((0.9, 0.999), 0.0)),
        "invalid value for `eps` = 0: must be a finite number > 0"
    );
    assert_eq!(
        err(adam((0.9, 0.999), -1e-8)),
        "invalid value for `eps` = -0.00000001: must be a finite number > 0"
    );
    let rms = OptimizerConfig::Rmsprop(RmspropConfig {
        eps: 0.0,
        ..Default::default()
    });
    assert_eq!(
        err(rms),
        "invalid value for `eps` = 0: must be a finite number > 0"
    );
}

#[test]
fn bad_momentum_and_nesterov_are_rejected() {
    let sgd = |momentum, dampening, nesterov| {
        OptimizerConfig::Sgd(SgdConfig {
            lr: 0.1,
            momentum,
            dampening,
            nesterov,
            ..Default::default()
        })
    };
    assert_eq!(
        err(sgd(-0.5, 0.0, false)),
        "invalid value for `momentum` = -0.5: must be a finite number >= 0"
    );
    assert_eq!(
        err(sgd(0.0, 0.0, true)),
        "invalid combination: nesterov momentum requires momentum > 0 and dampening = 0 (momentum 0, dampening 0)"
    );
    assert_eq!(
        err(sgd(0.9, 0.1, true)),
        "invalid combination: nesterov momentum requires momentum > 0 and dampening = 0 (momentum 0.9, dampening 0.1)"
    );
    let rms = OptimizerConfig::Rmsprop(RmspropConfig {
        momentum: -1.0,
        ..Default::default()
    });
    assert_eq!(
        err(rms),
        "invalid value for `momentum` = -1: must be a finite number >= 0"
    );
    assert_eq!(
        OptimizerConfig::from_name("adagrad")
            .unwrap()
            .with_momentum(0.9)
            .unwrap_err()
            .to_string(),
        "invalid combination: adagrad has no momentum"
    );
}

#[test]
fn unknown_names_are_rejected() {
    let names = "sgd, adam, adamw, rmsprop, adagrad, adadelta, nadam, radam, adamax, asgd, rprop, \
                 adafactor, muon, lion, lamb, lars, schedule_free_adamw, schedule_free_sgd";
    assert_eq!(
        OptimizerConfig::from_name("adamm").unwrap_err().to_string(),
        format!("unknown optimizer `adamm`; expected one of: {names}")
    );
    assert_eq!(
        OptimizerConfig::from_json(&json!({"kind": "lbfgs", "lr": 1.0})).unwrap_err(),
        OptimError::UnknownOptimizer("lbfgs".into())
    );
    let e = OptimizerConfig::from_json(&json!({"kind": "Adam", "lr": 0.1, "momentum": 0.9}))
        .unwrap_err();
    assert!(matches!(e, OptimError::Config { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("invalid optimizer config: unknown field `momentum`"),
        "{e}"
    );
    assert_eq!(
        OptimizerConfig::from_json(&json!({"kind": "sgd", "lr": -1.0}))
            .unwrap_err()
            .to_string(),
        "invalid value for `lr` = -1: must be a finite number >= 0"
    );

    let kinds = "constant, step, multistep, exponential, cosine, cosine_warm_restarts, linear, polynomial, \
                 one_cycle, cyclic, sequential, reduce_on_plateau";
    assert_eq!(
        ScheduleConfig::from_name("cosin", 100)
            .unwrap_err()
            .to_string(),
        format!("unknown schedule `cosin`; expected one of: {kinds}")
    );
    assert_eq!(
        ScheduleConfig::from_json(&json!({"kind": "warmup"})).unwrap_err(),
        OptimError::UnknownSchedule("warmup".into())
    );
    let nested = json!({"kind": "sequential", "milestones": [5], "schedules": [
        {"kind": "linear"}, {"kind": "cosine_annealing", "t_max": 5}]});
    assert_eq!(
        ScheduleConfig::from_json(&nested).unwrap_err(),
        OptimError::UnknownSchedule("cosine_annealing".into())
    );
    let e = ScheduleConfig::from_json(&json!({"kind": "step", "step_size": 3, "gama": 0.5}))
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("invalid schedule config: unknown field `gama`"),
        "{e}"
    );
}

#[test]
fn bad_schedule_values_are_rejected() {
    let e = |c| Scheduler::new(c).unwrap_err().to_string();
    assert_eq!(
        e(ScheduleConfig::Cosine(CosineSchedule {
            t_max: 0,
            eta_min: 0.0
        })),
        "invalid value for `t_max` = 0: must be >= 1"
    );
    assert_eq!(
        e(ScheduleConfig::Step(StepSchedule {
            step_size: 0,
            gamma: 0.1
        })),
        "invalid value for `step_size` = 0: must be >= 1"
    );
    assert_eq!(
        e(ScheduleConfig::ReduceOnPlateau(PlateauSchedule {
            factor: 1.0,
            ..Default::default()
        })),
        "invalid value for `factor` = 1: must be in (0, 1)"
    );
    assert_eq!(
        e(ScheduleConfig::Sequential(SequentialSchedule {
            milestones: vec![],
            schedules: vec![
                ScheduleConfig::from_name("linear", 10).unwrap(),
                ScheduleConfig::from_name("cosine", 10).unwrap(),
            ]
        })),
        "invalid value for `milestones` = []: needs 1 milestones for 2 schedules"
    );
    assert_eq!(
        e(ScheduleConfig::Sequential(SequentialSchedule {
            milestones: vec![3],
            schedules: vec![
                ScheduleConfig::from_name("linear", 10).unwrap(),
                ScheduleConfig::from_name("reduce_on_plateau", 10).unwrap(),
            ]
        })),
        "invalid combination: reduce_on_plateau cannot be part of a sequential schedule"
    );
}

#[test]
fn backend_errors_are_wrapped_and_state_is_checked() {
    let b = backend();
    let mut opt = Opt::new(OptimizerConfig::from_name("adam").unwrap()).unwrap();
    // A gradient of the wrong length: the backend's error, wrapped.
    let mut p = Param {
        name: "w".into(),
        kind: ParamKind::Weight,
        value: Tensor::from_slice(&b, vec![3], &[1.0, 2.0, 3.0]).unwrap(),
        grad: Tensor::zeros(&b, vec![2]).unwrap(),
    };
    let e = opt.step(&b, &mut [&mut p]).unwrap_err();
    assert!(
        matches!(e, OptimError::Core(CnnError::BufferLength { .. })),
        "{e:?}"
    );
    assert_eq!(
        opt.steps_taken("w"),
        Some(0),
        "a failed step is not counted"
    );

    let sgd = Opt::new(OptimizerConfig::from_name("sgd").unwrap()).unwrap();
    let state = sgd.export_state(&b).unwrap();
    assert_eq!(
        opt.import_state(&b, &state).unwrap_err().to_string(),
        "cannot import state: state of a `sgd` optimizer given to a `adam` optimizer"
    );
    let mut q = param(&b, "q", ParamKind::Weight, &[1.0], &[1.0]);
    let mut p2 = param(&b, "q", ParamKind::Weight, &[1.0], &[1.0]);
    assert_eq!(
        opt.step_params(&b, [&mut q, &mut p2])
            .unwrap_err()
            .to_string(),
        "invalid combination: parameter `q` appears twice in one step"
    );
    assert_eq!(
        clip_grad_norm(&b, &mut [&mut q], -1.0)
            .unwrap_err()
            .to_string(),
        "invalid value for `max_norm` = -1: must be a finite number >= 0"
    );
    assert_eq!(
        Regularizer::new(-1e-4, 0.0).unwrap_err().to_string(),
        "invalid value for `l1` = -0.0001: must be a finite number >= 0"
    );
}

#[test]
fn clip_grad_norm_matches_torch() {
    let b = backend();
    let mut p = param(&b, "a", ParamKind::Weight, &[0.0; 2], &[3.0, 0.0]);
    let mut q = param(&b, "b", ParamKind::Bias, &[0.0; 1], &[4.0]);
    let total = clip_grad_norm(&b, &mut [&mut p, &mut q], 1.0).unwrap();
    assert!((total - 5.0).abs() < 1e-12);
    let coef = (1.0 / (5.0 + 1e-6)) as f32;
    assert_eq!(p.grad.to_vec(&b).unwrap(), vec![3.0 * coef, 0.0]);
    assert_eq!(q.grad.to_vec(&b).unwrap(), vec![4.0 * coef]);
    // Below the limit: untouched.
    let total = clip_grad_norm(&b, &mut [&mut p, &mut q], 10.0).unwrap();
    assert!((total - 1.0).abs() < 1e-5);
    assert_eq!(q.grad.to_vec(&b).unwrap(), vec![4.0 * coef]);

    let mut r = param(&b, "r", ParamKind::Weight, &[0.0; 3], &[-2.0, 0.5, 3.0]);
    clip_grad_value(&b, &mut [&mut r], 1.0).unwrap();
    assert_eq!(r.grad.to_vec(&b).unwrap(), vec![-1.0, 0.5, 1.0]);
}

/// The graph variants (used by the trainer, allocation-free) give what the
/// slice variants give on the same parameters.
#[test]
fn graph_variants_of_regularizers_and_clipping_match_the_slice_ones() {
    let b = backend();
    let graph_with_grads = || {
        let mut g = GraphBuilder::new([2, 5, 5])
            .conv2d("conv", Conv2dGeometry::new(3, 3))
            .flatten()
            .linear("fc", 4)
            .build(&b, 3)
            .unwrap();
        for (k, p) in g.params_iter_mut().enumerate() {
            let n = p.numel();
            let grads: Vec<f32> = (0..n).map(|i| ((i * 7 + k) % 11) as f32 - 5.0).collect();
            p.grad.copy_from_slice(&b, &grads).unwrap();
        }
        g
    };
    let all = |g: &Graph<CpuBackend>| -> Vec<Vec<f32>> {
        g.params_iter()
            .map(|p| p.grad.to_vec(&b).unwrap())
            .collect()
    };
    let reg = Regularizer::new(0.01, 0.02).unwrap();
    let (mut a, mut c) = (graph_with_grads(), graph_with_grads());
    reg.add_gradients(&b, &mut a.params_mut()).unwrap();
    reg.add_gradients_graph(&b, &mut c).unwrap();
    assert_eq!(all(&a), all(&c));
    clip_grad_value(&b, &mut a.params_mut(), 2.5).unwrap();
    clip_grad_value_graph(&b, &mut c, 2.5).unwrap();
    assert_eq!(all(&a), all(&c));
    let na = clip_grad_norm(&b, &mut a.params_mut(), 1.0).unwrap();
    let nc = clip_grad_norm_graph(&b, &mut c, 1.0).unwrap();
    assert_eq!(na.to_bits(), nc.to_bits());
    assert_eq!(all(&a), all(&c));
    assert!(na > 1.0, "the norm was clipped ({na})");
    assert!(clip_grad_norm_graph(&b, &mut c, f64::NAN).is_err());
    assert!(clip_grad_value_graph(&b, &mut c, -1.0).is_err());
}

#[test]
fn l1_l2_and_decoupled_decay() {
    let b = backend();
    let mut w = param(
        &b,
        "fc.weight",
        ParamKind::Weight,
        &[1.0, -2.0, 0.0],
        &[0.0; 3],
    );
    let mut bias = param(&b, "fc.bias", ParamKind::Bias, &[5.0], &[0.0]);
    assert!((l1_penalty(&b, [&w], 0.5).unwrap() - 1.5).abs() < 1e-12);
    assert!((l2_penalty(&b, [&w], 0.5).unwrap() - 1.25).abs() < 1e-12);
    add_l1_grad(&b, &mut [&mut w], 0.5).unwrap();
    assert_eq!(w.grad.to_vec(&b).unwrap(), vec![0.5, -0.5, 0.0]);
    add_l2_grad(&b, &mut [&mut w], 0.5).unwrap();
    assert_eq!(w.grad.to_vec(&b).unwrap(), vec![1.0, -1.5, 0.0]);

    // The Regularizer touches weights only by default.
    let reg = Regularizer::new(0.1, 0.2).unwrap();
    let pen = reg.penalty(&b, [&w, &bias]).unwrap();
    assert!((pen - (0.1 * 3.0 + 0.5 * 0.2 * 5.0)).abs() < 1e-12);
    w.zero_grad(&b).unwrap();
    reg.add_gradients(&b, &mut [&mut w, &mut bias]).unwrap();
    assert_eq!(w.grad.to_vec(&b).unwrap(), vec![0.1 + 0.2, -0.1 - 0.4, 0.0]);
    assert_eq!(bias.grad.to_vec(&b).unwrap(), vec![0.0]);

    decoupled_weight_decay(&b, &mut [&mut w], 0.1, 0.5).unwrap();
    assert_eq!(w.value.to_vec(&b).unwrap(), vec![0.95, -1.9, 0.0]);
}

#[test]
fn groups_get_their_own_rate_and_decay() {
    let b = backend();
    let mut w = param(&b, "conv1.weight", ParamKind::Weight, &[1.0], &[0.0]);
    let mut bias = param(&b, "conv1.bias", ParamKind::Bias, &[1.0], &[0.0]);
    let mut head = param(&b, "fc.weight", ParamKind::Weight, &[1.0], &[1.0]);
    let config = OptimizerConfig::Sgd(SgdConfig {
        lr: 0.1,
        weight_decay: 0.5,
        ..Default::default()
    });
    let mut opt = Opt::new(config).unwrap();
    let no_decay = opt
        .add_group(ParamGroup::no_decay([&w, &bias, &head]))
        .unwrap();
    let fast = opt
        .add_group(ParamGroup::new("head").with_prefix("fc.").with_lr(1.0))
        .unwrap();
    assert_eq!(
        (
            opt.group_of("conv1.bias"),
            opt.group_of("fc.weight"),
            opt.group_of("conv1.weight")
        ),
        (no_decay, fast, 0)
    );
    opt.step(&b, &mut [&mut w, &mut bias, &mut head]).unwrap();
    // Zero gradients: only weight decay moves the weight; the bias stays.
    assert_eq!(w.value.to_vec(&b).unwrap(), vec![1.0 - 0.1 * 0.5]);
    assert_eq!(bias.value.to_vec(&b).unwrap(), vec![1.0]);
    assert_eq!(
        head.value.to_vec(&b).unwrap(),
        vec![1.0 - 1.0 * (1.0 + 0.5)]
    );

    // set_lr scales every group by the same factor; a schedule uses each base.
    opt.set_lr(0.05).unwrap();
    assert_eq!((opt.lr(), opt.group_lr(fast)), (0.05, Some(0.5)));
    let mut sched = Scheduler::new(ScheduleConfig::Step(StepSchedule {
        step_size: 1,
        gamma: 0.5,
    }))
    .unwrap();
    sched.step();
    opt.apply_schedule(&sched).unwrap();
    assert_eq!(
        (opt.lr(), opt.group_lr(no_decay), opt.group_lr(fast)),
        (0.05, Some(0.05), Some(0.5))
    );
}

#[test]
fn gradients_accumulate_until_zeroed() {
    let b = backend();
    let mut p = param(&b, "w", ParamKind::Weight, &[0.0], &[1.0]);
    let mut opt = Opt::new(OptimizerConfig::Sgd(SgdConfig {
        lr: 1.0,
        ..Default::default()
    }))
    .unwrap();
    opt.step(&b, &mut [&mut p]).unwrap();
    opt.step(&b, &mut [&mut p]).unwrap();
    assert_eq!(p.value.to_vec(&b).unwrap(), vec![-2.0]);
    assert_eq!(
        p.grad.to_vec(&b).unwrap(),
        vec![1.0],
        "step leaves the gradient alone"
    );
    opt.zero_grad(&b, &mut [&mut p]).unwrap();
    assert_eq!(p.grad.to_vec(&b).unwrap(), vec![0.0]);
}

/// A small graph with every kind of parameter (conv and linear weights and
/// biases, batch-norm scale and shift) and fixed, distinct gradients.
fn graph_with_gradients(b: &CpuBackend) -> Graph<CpuBackend> {
    let mut graph = GraphBuilder::new([1, 4, 4])
        .conv2d("conv", Conv2dGeometry::new(2, 3))
        .batch_norm2d("bn")
        .flatten()
        .linear("fc", 3)
        .build(b, 7)
        .unwrap();
    for (i, p) in graph.params_iter_mut().enumerate() {
        let g: Vec<f32> = (0..p.numel())
            .map(|j| ((i * 31 + j * 7) % 13) as f32 / 13.0 - 0.5)
            .collect();
        p.grad.copy_from_slice(b, &g).unwrap();
    }
    graph
}

#[test]
fn step_graph_matches_step_over_collected_params() {
    let b = backend();
    let config = OptimizerConfig::from_name("adam").unwrap().with_lr(0.1);
    let (mut collected, mut direct) = (graph_with_gradients(&b), graph_with_gradients(&b));
    let mut opt_collected = Opt::new(config.clone()).unwrap();
    let mut opt_direct = Opt::new(config).unwrap();
    // Several calls: each parameter is stepped once per call, so no call
    // after the first may take it for a duplicate.
    for _ in 0..3 {
        opt_collected.step(&b, &mut collected.params_mut()).unwrap();
        opt_direct.step_graph(&b, &mut direct).unwrap();
    }
    let values = |g: &Graph<CpuBackend>| -> Vec<(String, Vec<f32>)> {
        g.params_iter()
            .map(|p| (p.name.clone(), p.value.to_vec(&b).unwrap()))
            .collect()
    };
    assert_eq!(values(&direct), values(&collected), "bit for bit");
    assert_eq!(opt_direct.steps_taken("bn.weight"), Some(3));
    // A name given twice is still caught after many calls.
    let mut q = param(&b, "fc.bias", ParamKind::Bias, &[1.0], &[1.0]);
    let fc_bias = direct.params_iter_mut().last().unwrap();
    assert_eq!(
        opt_direct
            .step_params(&b, [fc_bias, &mut q])
            .unwrap_err()
            .to_string(),
        "invalid combination: parameter `fc.bias` appears twice in one step"
    );
}

#[test]
fn configs_round_trip_through_serde_with_defaults() {
    let c: OptimizerConfig = serde_json::from_value(json!({"kind": "adamw"})).unwrap();
    assert_eq!(c.weight_decay(), 0.01);
    assert_eq!(c.lr(), 1e-3);
    let c: OptimizerConfig = serde_json::from_value(json!({"kind": "adadelta"})).unwrap();
    assert_eq!(c.lr(), 1.0);
    for name in [
        "sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "nadam", "radam", "adamax",
    ] {
        let c = OptimizerConfig::from_name(name).unwrap();
        let back: OptimizerConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert_eq!(c.name(), name);
    }
    for name in [
        "constant",
        "step",
        "multistep",
        "exponential",
        "cosine",
        "cosine_warm_restarts",
        "linear",
        "polynomial",
        "one_cycle",
        "cyclic",
        "sequential",
        "reduce_on_plateau",
    ] {
        let c = ScheduleConfig::from_name(name, 100).unwrap();
        c.validate().unwrap();
        assert_eq!(c.name(), name);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(ScheduleConfig::from_json(&v).unwrap(), c);
    }
    // A custom closure: warm-up then 1/sqrt(t) decay.
    let s = Scheduler::from_fn(|t, base| base * ((t + 1) as f64).sqrt().recip());
    assert_eq!(s.lr_at(0.1, 3), 0.05);
}
