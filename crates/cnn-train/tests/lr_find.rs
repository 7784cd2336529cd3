//! The LR range test: its rates, its suggestion on a fixed synthetic
//! problem, its stop, that it leaves the tuned model and optimizer as they
//! were, and `lr_find` in a run's configuration (`cnn train --lr find`).

mod common;

use cnn_core::{ArrayData, Graph};
use cnn_cpu::CpuBackend;
use cnn_train::lr_find::{
    LrFindStop, LrFinding, minimum_index, range_test, steepest_index, sweep_lr,
};
use cnn_train::{LrFindSettings, RunOptions, RunPlan, RunTarget, TrainConfig, Trainer, setup};

fn config() -> TrainConfig {
    TrainConfig {
        model: "article".into(),
        data: "synthetic".into(),
        epochs: 1,
        batch_size: 32,
        seed: 11,
        ..TrainConfig::default()
    }
}

fn settings(steps: usize) -> LrFindSettings {
    LrFindSettings {
        start_lr: 1e-5,
        end_lr: 10.0,
        steps,
        suggestion: None,
    }
}

fn find(c: &TrainConfig, s: &LrFindSettings) -> LrFinding {
    let data = common::synthetic_splits(c.seed, 640, 64, c.val_fraction);
    let backend = CpuBackend::with_threads(2).unwrap();
    let plan = RunPlan::new(c, None, Some(data)).unwrap();
    let graph = plan.build_graph(&backend).unwrap();
    range_test(backend, &plan, &graph, s).unwrap()
}

fn bits(g: &Graph<CpuBackend>) -> Vec<(String, Vec<u32>)> {
    g.state_dict()
        .unwrap()
        .into_iter()
        .map(|a| match a.data {
            ArrayData::F32(v) => (a.name, v.into_iter().map(f32::to_bits).collect()),
            ArrayData::I64(v) => (a.name, v.into_iter().map(|x| x as u32).collect()),
        })
        .collect()
}

#[test]
fn the_rates_are_geometric_from_start_to_end() {
    let s = LrFindSettings::default();
    assert_eq!((s.start_lr, s.end_lr, s.steps), (1e-7, 10.0, 100));
    assert_eq!(sweep_lr(&s, 0), 1e-7);
    assert_eq!(sweep_lr(&s, 99), 10.0);
    let ratio = 1e8f64.powf(1.0 / 99.0);
    for k in 1..100 {
        let r = sweep_lr(&s, k) / sweep_lr(&s, k - 1);
        assert!((r / ratio - 1.0).abs() < 1e-12, "step {k}: ratio {r}");
    }
    let two = LrFindSettings {
        steps: 2,
        ..s.clone()
    };
    assert_eq!((sweep_lr(&two, 0), sweep_lr(&two, 1)), (1e-7, 10.0));
}

#[test]
fn the_steepest_descent_of_a_constructed_curve() {
    // 30 rates, a decade per 10 steps; the loss falls fastest (per
    // log-rate) from index 16 to 18, so the central difference is most
    // negative at 17. A sharper drop at 3 is skipped (the first 10
    // points), and so is the last point's.
    let lrs: Vec<f64> = (0..30)
        .map(|k| 1e-4 * 10f64.powf(k as f64 / 10.0))
        .collect();
    let mut loss: Vec<f64> = (0..30).map(|k| 2.0 - 0.01 * k as f64).collect();
    loss[17] -= 0.2;
    for l in &mut loss[18..] {
        *l -= 0.6;
    }
    loss[19] += 0.1;
    loss[3] -= 5.0;
    loss[29] -= 9.0;
    assert_eq!(steepest_index(&lrs, &loss), Some(17));
    // Non-finite points drop out; the index stays the curve's.
    loss[12] = f64::NAN;
    loss[16] = f64::INFINITY;
    assert_eq!(steepest_index(&lrs, &loss), Some(17));
    // Fewer than 2 points past the skips: no suggestion.
    assert_eq!(steepest_index(&lrs[..12], &loss[..12]), None);
    // Two points (10 and 11; 12 is the skipped last): both one-sided
    // differences are equal, and the first wins, as torch.argmin's does.
    assert_eq!(steepest_index(&lrs[..13], &loss[..13]), Some(10));
    assert_eq!(steepest_index(&lrs[..5], &loss[..5]), None);
    // fastai's minimum: past the first steps / 10, before the last 5.
    assert_eq!(minimum_index(&loss, 30), Some(3));
    assert_eq!(minimum_index(&loss, 40), Some(11));
}

#[test]
fn the_suggestion_on_a_fixed_synthetic_problem() {
    // Adam from 1e-6 to 1: the loss falls in the middle decades.
    let c = TrainConfig {
        optimizer: "adam".into(),
        ..config()
    };
    let s = LrFindSettings {
        start_lr: 1e-6,
        end_lr: 1.0,
        steps: 80,
        suggestion: None,
    };
    let a = find(&c, &s);
    let b = find(&c, &s);
    assert_eq!(a, b, "the test is deterministic for a seed");
    assert_eq!(a.points.len(), a.points.last().unwrap().step);
    for (k, p) in a.points.iter().enumerate() {
        assert_eq!(p.step, k + 1);
        assert_eq!(p.lr, sweep_lr(&s, k), "step {}", p.step);
    }
    let steepest = a.steepest.clone().expect("a suggestion");
    let lrs: Vec<f64> = a.points.iter().map(|p| p.lr).collect();
    let smoothed: Vec<f64> = a.points.iter().map(|p| p.smoothed_loss).collect();
    assert_eq!(steepest_index(&lrs, &smoothed), Some(steepest.step - 1));
    assert_eq!(a.suggestion(), Some(steepest.lr));
    let minimum = a.minimum.clone().expect("a minimum");
    assert_eq!(a.min_over_10(), Some(minimum.lr / 10.0));
    // Where a CNN learns: the loss falls at the suggestion, which lies
    // before the minimum.
    assert!(
        (1e-3..1.0).contains(&steepest.lr),
        "suggestion {:e}",
        steepest.lr
    );
    assert!(steepest.step <= minimum.step);
    // The figures of this seed (the CPU kernels agree bit for bit on any
    // CPU for a thread count): step 59 of 80, lr 2.54e-2, and the minimum
    // at step 70.
    assert_eq!((steepest.step, minimum.step), (59, 70));
    assert!(steepest.smoothed_loss < a.points[0].smoothed_loss);
    eprintln!("{}", a.summary());
}

#[test]
fn the_test_stops_once_the_loss_blows_up() {
    let s = LrFindSettings {
        start_lr: 1e-3,
        end_lr: 1e4,
        steps: 80,
        suggestion: None,
    };
    let f = find(&config(), &s);
    assert!(f.points.len() < 80, "{} steps ran", f.points.len());
    let last = f.points.last().unwrap();
    match &f.stop {
        LrFindStop::Diverged => {
            let lowest = f.points[..f.points.len() - 1]
                .iter()
                .map(|p| p.smoothed_loss)
                .fold(f64::INFINITY, f64::min);
            assert!(last.smoothed_loss > 4.0 * lowest);
            // Every step before it was under the bar.
            let mut low = f.points[0].smoothed_loss;
            for p in &f.points[1..f.points.len() - 1] {
                assert!(p.smoothed_loss <= 4.0 * low);
                low = low.min(p.smoothed_loss);
            }
        }
        LrFindStop::NonFinite { .. } => {}
        LrFindStop::Completed => panic!("the test ran all its steps"),
    }
}

#[test]
fn the_tuned_model_and_optimizer_are_left_as_they_were() {
    let c = TrainConfig {
        dropout: 0.25,
        ..config()
    };
    let make = || {
        let data = common::synthetic_splits(c.seed, 320, 64, c.val_fraction);
        let backend = CpuBackend::with_threads(2).unwrap();
        let spec = setup::model_spec(&c, &data.shape, data.num_classes()).unwrap();
        let graph = Graph::new(&backend, spec, c.seed).unwrap();
        Trainer::new(backend, c.clone(), graph, data).unwrap()
    };
    let batch = |t: &Trainer<CpuBackend>, index: usize| {
        let loader = cnn_data::Loader::new(
            t.data().train.clone(),
            t.data().normalization.clone(),
            cnn_data::LoaderConfig::train(32),
        )
        .unwrap();
        loader.batch(0, index)
    };
    let (mut tuned, mut plain) = (make(), make());
    for t in [&mut tuned, &mut plain] {
        let b = batch(t, 0);
        t.train_step(1, &b.images, &b.labels).unwrap();
    }
    let before = (
        bits(tuned.graph()),
        tuned.state().clone(),
        tuned.graph().step(),
    );
    let finding = tuned.lr_find(&settings(20)).unwrap();
    assert_eq!(finding.points.len(), 20);
    let after = (
        bits(tuned.graph()),
        tuned.state().clone(),
        tuned.graph().step(),
    );
    assert!(before == after, "the test changed the tuned trainer");
    // The optimizer's momentum and the dropout step counter are as they
    // were too: the next step equals that of a trainer never tested.
    for t in [&mut tuned, &mut plain] {
        let b = batch(t, 1);
        t.train_step(1, &b.images, &b.labels).unwrap();
    }
    assert_eq!(bits(tuned.graph()), bits(plain.graph()));
    assert_eq!(tuned.history(), plain.history());
}

#[test]
fn a_run_with_lr_find_trains_with_the_suggestion_and_records_it() {
    let tmp = tempfile::tempdir().unwrap();
    let c = TrainConfig {
        max_steps: 3,
        epochs: 0,
        lr_find: Some(settings(30)),
        ..config()
    };
    let out = tmp.path().join("run");
    let data = common::synthetic_splits(c.seed, 640, 64, c.val_fraction);
    let backend = CpuBackend::with_threads(2).unwrap();
    let target = RunTarget::Fresh {
        out: out.clone(),
        overwrite: false,
    };
    let opts = RunOptions {
        data: Some(data),
        ..RunOptions::default()
    };
    let summary = cnn_train::run_training(backend, &c, target, opts).unwrap();
    let recorded = TrainConfig::load(&out.join("config.toml")).unwrap();
    let found = recorded.lr_find.clone().expect("the test's record");
    let lr = found.suggestion.expect("its suggestion");
    assert_eq!(recorded.lr, Some(lr));
    assert_eq!(
        (found.start_lr, found.end_lr, found.steps),
        (1e-5, 10.0, 30)
    );
    assert!(summary.history.steps.iter().all(|s| s.lr == lr));
    let csv = std::fs::read_to_string(out.join("lr_find.csv")).unwrap();
    assert!(
        csv.starts_with("step,lr,loss,smoothed_loss\n1,0.00001,"),
        "{csv}"
    );
    assert!(out.join("lr_find.png").is_file() && out.join("lr_find.svg").is_file());
    // The recorded configuration trains again without a test.
    let again = tmp.path().join("again");
    let target = RunTarget::Fresh {
        out: again.clone(),
        overwrite: false,
    };
    let data = common::synthetic_splits(c.seed, 640, 64, c.val_fraction);
    let opts = RunOptions {
        data: Some(data),
        ..RunOptions::default()
    };
    let backend = CpuBackend::with_threads(2).unwrap();
    let rerun = cnn_train::run_training(backend, &recorded, target, opts).unwrap();
    assert!(!again.join("lr_find.csv").exists());
    assert_eq!(rerun.history.steps, summary.history.steps);
    // A rate and a pending test together are refused.
    let both = TrainConfig {
        lr: Some(0.1),
        ..c.clone()
    };
    let err = both.validate().unwrap_err().to_string();
    assert!(err.contains("give one of them"), "{err}");
}
