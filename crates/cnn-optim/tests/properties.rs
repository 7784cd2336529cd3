//! Properties: schedules stay within their bounds and repeat where they
//! should; a zero rate without weight decay leaves parameters unchanged;
//! exported then imported state continues the same trajectory bit for bit.

use cnn_core::{Param, ParamKind, Tensor};
use cnn_cpu::CpuBackend;
use cnn_optim::schedule::{
    CosineSchedule, CosineWarmRestartsSchedule, CyclicMode, CyclicSchedule, ExponentialSchedule,
    LinearSchedule, MultiStepSchedule, OneCycleSchedule, PlateauSchedule, PolynomialSchedule,
    StepSchedule,
};
use cnn_optim::{
    AdadeltaConfig, AdagradConfig, AdamConfig, AdamWConfig, AdamaxConfig, NadamConfig, Optimizer,
    OptimizerConfig, OptimizerState, RadamConfig, RmspropConfig, ScheduleConfig, Scheduler,
    SgdConfig,
};
use proptest::prelude::*;

/// Within `[lo, hi]` up to rounding.
fn within(x: f64, lo: f64, hi: f64) -> bool {
    let slack = 1e-12 * hi.abs().max(lo.abs()).max(1e-300);
    x >= lo - slack && x <= hi + slack
}

fn check_bounds(
    config: ScheduleConfig,
    base: f64,
    lo: f64,
    hi: f64,
    steps: u64,
) -> Result<(), TestCaseError> {
    let s = Scheduler::new(config.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    for t in 0..steps {
        let lr = s.lr_at(base, t);
        prop_assert!(
            within(lr, lo, hi),
            "{config:?}: lr({t}) = {lr} outside [{lo}, {hi}]"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn decays_stay_between_zero_and_base(base in 1e-5f64..1.0, gamma in 0.01f64..=1.0, step in 1u64..20, m in proptest::collection::vec(0u64..100, 0..5)) {
        let mut milestones = m;
        milestones.sort_unstable();
        check_bounds(ScheduleConfig::Step(StepSchedule { step_size: step, gamma }), base, 0.0, base, 200)?;
        check_bounds(ScheduleConfig::MultiStep(MultiStepSchedule { milestones, gamma }), base, 0.0, base, 200)?;
        check_bounds(ScheduleConfig::Exponential(ExponentialSchedule { gamma }), base, 0.0, base, 200)?;
        check_bounds(ScheduleConfig::Polynomial(PolynomialSchedule { total_iters: step, power: gamma * 3.0 }), base, 0.0, base, 200)?;
    }

    #[test]
    fn cosine_stays_between_eta_min_and_base(base in 1e-4f64..1.0, frac in 0.0f64..1.0, t_max in 1u64..100) {
        let eta_min = base * frac;
        check_bounds(ScheduleConfig::Cosine(CosineSchedule { t_max, eta_min }), base, eta_min, base, 300)?;
    }

    #[test]
    fn warm_restarts_are_bounded_and_periodic(base in 1e-4f64..1.0, frac in 0.0f64..1.0, t_0 in 1u64..30, t_mult in 1u64..4) {
        let eta_min = base * frac;
        let c = CosineWarmRestartsSchedule { t_0, t_mult, eta_min };
        check_bounds(ScheduleConfig::CosineWarmRestarts(c.clone()), base, eta_min, base, 300)?;
        // Every period restarts at the base rate.
        let (mut start, mut period) = (0u64, t_0);
        while start < 300 {
            let lr = c.lr_at(base, start);
            prop_assert!((lr - base).abs() <= 1e-15 * base, "lr({start}) = {lr}, base {base}");
            start += period;
            period *= t_mult;
        }
        if t_mult == 1 {
            for t in 0..200 {
                prop_assert_eq!(c.lr_at(base, t).to_bits(), c.lr_at(base, t + t_0).to_bits());
            }
        }
    }

    #[test]
    fn cyclic_is_bounded_and_periodic(lo in 1e-4f64..0.1, span in 1e-4f64..1.0, up in 1u32..20, down in 1u32..20, mode in 0u8..3, gamma in 0.9f64..=1.0) {
        let hi = lo + span;
        let mode = [CyclicMode::Triangular, CyclicMode::Triangular2, CyclicMode::ExpRange][mode as usize];
        let c = CyclicSchedule {
            base_lr: Some(lo),
            max_lr: Some(hi),
            step_size_up: up as f64,
            step_size_down: Some(down as f64),
            mode,
            gamma,
        };
        check_bounds(ScheduleConfig::Cyclic(c.clone()), 1.0, lo, hi, 300)?;
        let period = (up + down) as u64;
        // Each cycle starts at base_lr and (triangular) peaks at max_lr.
        for k in 0..5u64 {
            prop_assert!((c.lr_at(1.0, k * period) - lo).abs() <= 1e-12 * hi);
        }
        if mode == CyclicMode::Triangular {
            for t in 0..200 {
                let (a, b) = (c.lr_at(1.0, t), c.lr_at(1.0, t + period));
                prop_assert!((a - b).abs() <= 1e-12 * hi, "lr({t}) = {a}, lr({t} + {period}) = {b}");
            }
            prop_assert!((c.lr_at(1.0, up as u64) - hi).abs() <= 1e-12 * hi);
        }
    }

    #[test]
    fn linear_stays_between_its_factors(base in 1e-4f64..1.0, start in 0.01f64..=1.0, end in 0.0f64..=1.0, total in 0u64..50) {
        let (lo, hi) = (base * start.min(end), base * start.max(end));
        check_bounds(ScheduleConfig::Linear(LinearSchedule { start_factor: start, end_factor: end, total_iters: total }), base, lo, hi, 100)?;
    }

    #[test]
    fn one_cycle_stays_between_min_and_max(max_lr in 1e-4f64..1.0, total in 2u64..200, pct in 0.05f64..0.95, three in any::<bool>(), linear in any::<bool>()) {
        let mut c = OneCycleSchedule::new(Some(max_lr), total);
        c.pct_start = pct;
        c.three_phase = three && pct < 0.5;
        if linear {
            c.anneal = cnn_optim::schedule::Anneal::Linear;
        }
        let min_lr = max_lr / c.div_factor / c.final_div_factor;
        check_bounds(ScheduleConfig::OneCycle(c), 0.5, min_lr, max_lr, total + 10)?;
    }

    #[test]
    fn plateau_only_decreases_down_to_min_lr(base in 1e-3f64..1.0, factor in 0.1f64..0.9, patience in 0u64..4, cooldown in 0u64..3, metrics in proptest::collection::vec(0.0f64..1.0, 1..60)) {
        let p = PlateauSchedule { factor, patience, cooldown, min_lr: base * 0.01, ..Default::default() };
        let mut s = Scheduler::new(ScheduleConfig::ReduceOnPlateau(p)).unwrap();
        let mut last = s.lr(base);
        prop_assert_eq!(last, base);
        for m in metrics {
            s.step_with_metric(m);
            let lr = s.lr(base);
            prop_assert!(lr <= last && lr >= base * 0.01 * (1.0 - 1e-12));
            last = lr;
        }
    }
}

/// One config per optimizer, and variants that exercise every state slot.
fn all_configs() -> Vec<OptimizerConfig> {
    vec![
        OptimizerConfig::Sgd(SgdConfig {
            lr: 0.05,
            ..Default::default()
        }),
        OptimizerConfig::Sgd(SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.01,
            ..Default::default()
        }),
        OptimizerConfig::Sgd(SgdConfig {
            lr: 0.05,
            momentum: 0.8,
            dampening: 0.1,
            ..Default::default()
        }),
        OptimizerConfig::Adam(AdamConfig {
            lr: 0.05,
            ..Default::default()
        }),
        OptimizerConfig::Adam(AdamConfig {
            lr: 0.05,
            amsgrad: true,
            weight_decay: 0.01,
            ..Default::default()
        }),
        OptimizerConfig::AdamW(AdamWConfig {
            lr: 0.05,
            ..Default::default()
        }),
        OptimizerConfig::AdamW(AdamWConfig {
            lr: 0.05,
            amsgrad: true,
            ..Default::default()
        }),
        OptimizerConfig::Rmsprop(RmspropConfig {
            lr: 0.01,
            ..Default::default()
        }),
        OptimizerConfig::Rmsprop(RmspropConfig {
            lr: 0.01,
            momentum: 0.5,
            centered: true,
            ..Default::default()
        }),
        OptimizerConfig::Rmsprop(RmspropConfig {
            lr: 0.01,
            centered: true,
            ..Default::default()
        }),
        OptimizerConfig::Adagrad(AdagradConfig {
            lr: 0.1,
            lr_decay: 0.01,
            initial_accumulator_value: 0.1,
            ..Default::default()
        }),
        OptimizerConfig::Adadelta(AdadeltaConfig::default()),
        OptimizerConfig::NAdam(NadamConfig {
            lr: 0.05,
            ..Default::default()
        }),
        OptimizerConfig::NAdam(NadamConfig {
            lr: 0.05,
            weight_decay: 0.01,
            decoupled_weight_decay: true,
            ..Default::default()
        }),
        OptimizerConfig::RAdam(RadamConfig {
            lr: 0.05,
            ..Default::default()
        }),
        OptimizerConfig::RAdam(RadamConfig {
            lr: 0.05,
            weight_decay: 0.01,
            decoupled_weight_decay: true,
            ..Default::default()
        }),
        OptimizerConfig::Adamax(AdamaxConfig {
            lr: 0.05,
            ..Default::default()
        }),
    ]
}

fn param(backend: &CpuBackend, name: &str, w: &[f32]) -> Param<CpuBackend> {
    let value = Tensor::from_slice(backend, vec![w.len()], w).unwrap();
    Param::new(backend, name, ParamKind::Weight, value).unwrap()
}

/// Step `opt` once with gradient `g(w) = w - target + noise` computed on the host.
fn step_with(
    backend: &CpuBackend,
    opt: &mut Optimizer<CpuBackend>,
    p: &mut Param<CpuBackend>,
    noise: &[f32],
) {
    let w = p.value.to_vec(backend).unwrap();
    let g: Vec<f32> = w.iter().zip(noise).map(|(w, n)| w - 0.5 + n).collect();
    p.grad.copy_from_slice(backend, &g).unwrap();
    opt.step(backend, &mut [p]).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn zero_rate_without_decay_changes_nothing(w in proptest::collection::vec(-3.0f32..3.0, 1..20), seed in proptest::collection::vec(-1.0f32..1.0, 20)) {
        let backend = CpuBackend::with_threads(1).unwrap();
        for config in all_configs() {
            let config = config.with_lr(0.0).with_weight_decay(0.0);
            let mut opt = Optimizer::<CpuBackend>::new(config.clone()).unwrap();
            let mut p = param(&backend, "w", &w);
            for k in 0..5 {
                let noise: Vec<f32> = seed.iter().cycle().skip(k).take(w.len()).copied().collect();
                step_with(&backend, &mut opt, &mut p, &noise);
            }
            let after = p.value.to_vec(&backend).unwrap();
            prop_assert_eq!(&after, &w, "{:?}", config);
        }
    }

    #[test]
    fn exported_state_continues_bit_for_bit(w in proptest::collection::vec(-3.0f32..3.0, 1..20), seed in proptest::collection::vec(-1.0f32..1.0, 20), before in 1usize..6, after in 1usize..6) {
        let backend = CpuBackend::with_threads(1).unwrap();
        for config in all_configs() {
            let noise = |k: usize| -> Vec<f32> { seed.iter().cycle().skip(k).take(w.len()).copied().collect() };
            let mut opt = Optimizer::<CpuBackend>::new(config.clone()).unwrap();
            let mut sched = Scheduler::new(ScheduleConfig::Cosine(CosineSchedule { t_max: 7, eta_min: 0.0 })).unwrap();
            let mut p = param(&backend, "w", &w);
            for k in 0..before {
                opt.apply_schedule(&sched).unwrap();
                step_with(&backend, &mut opt, &mut p, &noise(k));
                sched.step();
            }
            // Through JSON, as a checkpoint would store it.
            let text = serde_json::to_string(&opt.export_state(&backend).unwrap()).unwrap();
            let state: OptimizerState = serde_json::from_str(&text).unwrap();
            let sched_text = serde_json::to_string(&sched.export_state()).unwrap();
            let mut opt2 = Optimizer::<CpuBackend>::new(config.clone()).unwrap();
            opt2.import_state(&backend, &state).unwrap();
            let mut sched2 = Scheduler::new(sched.config().unwrap().clone()).unwrap();
            sched2.import_state(&serde_json::from_str(&sched_text).unwrap()).unwrap();
            let mut p2 = param(&backend, "w", &p.value.to_vec(&backend).unwrap());
            for k in before..before + after {
                opt.apply_schedule(&sched).unwrap();
                step_with(&backend, &mut opt, &mut p, &noise(k));
                sched.step();
                opt2.apply_schedule(&sched2).unwrap();
                step_with(&backend, &mut opt2, &mut p2, &noise(k));
                sched2.step();
            }
            let a: Vec<u32> = p.value.to_vec(&backend).unwrap().iter().map(|x| x.to_bits()).collect();
            let b: Vec<u32> = p2.value.to_vec(&backend).unwrap().iter().map(|x| x.to_bits()).collect();
            prop_assert_eq!(a, b, "{:?}", config);
            prop_assert_eq!(opt.export_state(&backend).unwrap(), opt2.export_state(&backend).unwrap());
        }
    }
}

#[test]
fn plateau_state_round_trips_through_json() {
    let p = PlateauSchedule {
        patience: 1,
        factor: 0.5,
        ..Default::default()
    };
    let mut a = Scheduler::new(ScheduleConfig::ReduceOnPlateau(p)).unwrap();
    // Before any metric `best` is PyTorch's inf, which JSON cannot hold.
    let fresh: cnn_optim::ScheduleState =
        serde_json::from_str(&serde_json::to_string(&a.export_state()).unwrap()).unwrap();
    assert_eq!(fresh, a.export_state());
    for m in [1.0, 1.0, 1.0, 0.5, 0.6, 0.7] {
        a.step_with_metric(m);
    }
    let mut b = Scheduler::new(a.config().unwrap().clone()).unwrap();
    let state = serde_json::from_str(&serde_json::to_string(&a.export_state()).unwrap()).unwrap();
    b.import_state(&state).unwrap();
    for m in [0.7, 0.7, 0.2, 0.3, 0.3, 0.3] {
        a.step_with_metric(m);
        b.step_with_metric(m);
        assert_eq!(a.lr(0.1).to_bits(), b.lr(0.1).to_bits());
    }
    assert_eq!(a.export_state(), b.export_state());
}
