//! Gradient accumulation (`accumulate` N): batches of 64 accumulated 4 at
//! a time train as batches of 256 do (a model without batch norm), and an
//! interrupted run resumes exactly, its checkpoints falling between
//! optimizer steps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod common;

use cnn_core::{ArrayData, Graph};
use cnn_cpu::CpuBackend;
use cnn_train::{RunDir, TrainConfig, TrainError, Trainer, setup};

fn weights(t: &Trainer<CpuBackend>) -> Vec<(String, Vec<f32>)> {
    t.graph()
        .state_dict()
        .unwrap()
        .into_iter()
        .filter_map(|a| match a.data {
            ArrayData::F32(v) => Some((a.name, v)),
            ArrayData::I64(_) => None,
        })
        .collect()
}

fn trainer(c: &TrainConfig, train: usize) -> Trainer<CpuBackend> {
    let data = common::synthetic_splits(c.seed, train, 64, c.val_fraction);
    let backend = CpuBackend::with_threads(2).unwrap();
    let spec = setup::model_spec(c, &data.shape, data.num_classes()).unwrap();
    let graph = Graph::new(&backend, spec, c.seed).unwrap();
    Trainer::new(backend, c.clone(), graph, data).unwrap()
}

/// |a - b| <= ABS + REL * |b|: the tolerance of the comparison with one big
/// batch. The sums of the gradient run in another order (per batch of 64
/// and its thread parts, then across the 4 batches), so values agree to
/// f32 rounding, grown over 8 steps of SGD with momentum.
const ABS: f64 = 1e-6;
const REL: f64 = 1e-5;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= ABS + REL * b.abs()
}

#[test]
fn batches_of_64_accumulated_4_times_train_as_batches_of_256() {
    let base = TrainConfig {
        model: "article".into(),
        data: "synthetic".into(),
        epochs: 2,
        schedule: "cosine".into(),
        l2: 1e-4,
        clip_grad_norm: 2.0,
        seed: 5,
        ..TrainConfig::default()
    };
    let big = TrainConfig {
        batch_size: 256,
        ..base.clone()
    };
    let small = TrainConfig {
        batch_size: 64,
        accumulate: 4,
        ..base
    };
    // 1100 images, 990 after validation: 3 batches of 256 and one of 222,
    // or 15 of 64 and one of 30, stepped 4 at a time.
    let (mut a, mut b) = (trainer(&big, 1100), trainer(&small, 1100));
    a.fit().unwrap();
    b.fit().unwrap();
    let (sa, sb) = (&a.history().steps, &b.history().steps);
    assert_eq!(sa.len(), 8, "4 optimizer steps per epoch");
    assert_eq!(sb.len(), sa.len());
    let mut worst = 0.0f64;
    for (x, y) in sa.iter().zip(sb) {
        assert_eq!((x.step, x.epoch), (y.step, y.epoch));
        // The schedule counts optimizer steps: the same rates.
        assert_eq!(x.lr, y.lr, "step {}", x.step);
        assert!(
            close(y.loss, x.loss),
            "step {}: {} vs {}",
            x.step,
            y.loss,
            x.loss
        );
        worst = worst.max((y.loss - x.loss).abs());
    }
    for ((name, x), (_, y)) in weights(&a).iter().zip(&weights(&b)) {
        for (i, (&p, &q)) in x.iter().zip(y).enumerate() {
            let (p, q) = (f64::from(p), f64::from(q));
            assert!(close(q, p), "{name}[{i}]: {q} vs {p}");
            worst = worst.max((q - p).abs());
        }
    }
    for (x, y) in a.history().epochs.iter().zip(&b.history().epochs) {
        assert!(close(y.train.loss, x.train.loss));
        // An arg-max may flip at rounding's distance: an image or two.
        assert!((x.train.accuracy - y.train.accuracy).abs() <= 2.0 / 990.0);
    }
    eprintln!("largest difference from batches of 256: {worst:e}");
    // Not the same run by accident: one batch of 64 per step is another.
    let plain = TrainConfig {
        accumulate: 1,
        ..small
    };
    let mut c = trainer(&plain, 1100);
    c.fit().unwrap();
    assert_eq!(c.history().steps.len(), 32);
}

fn resumable(dir: &std::path::Path, fresh: bool) -> Trainer<CpuBackend> {
    let c = TrainConfig {
        model: "article".into(),
        data: "synthetic".into(),
        epochs: 2,
        batch_size: 32,
        accumulate: 3,
        optimizer: "adam".into(),
        lr: Some(2e-3),
        schedule: "cosine".into(),
        dropout: 0.25,
        checkpoint_every: 1,
        seed: 9,
        ..TrainConfig::default()
    };
    let run = if fresh {
        let run = RunDir::create(dir, false).unwrap();
        cnn_train::io::write_atomic(&run.config(), c.to_toml().as_bytes()).unwrap();
        run
    } else {
        RunDir::open(dir).unwrap()
    };
    // 306 training images: 9 batches of 32 and one of 18, so each epoch
    // steps after batches 3, 6, 9 and 10.
    trainer(&c, 340).with_run_dir(run)
}

#[test]
fn an_interrupted_run_resumes_between_optimizer_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let mut straight = resumable(&tmp.path().join("straight"), true);
    straight.fit().unwrap();
    assert_eq!(straight.history().steps.len(), 8);

    let dir = tmp.path().join("interrupted");
    let mut t = resumable(&dir, true);
    t.checkpoint().unwrap();
    // An interrupt raised before a batch stops the run after the next
    // optimizer step, not mid-accumulation: 3 batches, then 3, 3, the
    // epoch's last 1 (the epoch's end is written on resuming), and 3 of
    // the second epoch.
    for (step, batch_in_epoch) in [(1, 3), (2, 6), (3, 9), (4, 10), (5, 3)] {
        let flag = Arc::new(AtomicBool::new(true));
        t = t.with_interrupt(Arc::clone(&flag));
        match t.fit() {
            Err(TrainError::Interrupted { step: at, .. }) => assert_eq!(at, step),
            other => panic!("expected an interruption, got {other:?}"),
        }
        flag.store(false, Ordering::SeqCst);
        t = resumable(&dir, false);
        assert!(t.restore_latest().unwrap());
        let state = t.state();
        assert_eq!(
            (state.step, state.batch_in_epoch),
            (step, batch_in_epoch),
            "the checkpoint of step {step}"
        );
    }
    t.fit().unwrap();
    let curve = |t: &Trainer<CpuBackend>| -> Vec<(u64, usize, u64, u64)> {
        t.history()
            .steps
            .iter()
            .map(|s| (s.step, s.epoch, s.loss.to_bits(), s.lr.to_bits()))
            .collect()
    };
    assert_eq!(
        curve(&straight),
        curve(&t),
        "the per-step curve after resuming"
    );
    let bits = |t: &Trainer<CpuBackend>| -> Vec<Vec<u32>> {
        weights(t)
            .into_iter()
            .map(|(_, v)| v.into_iter().map(f32::to_bits).collect())
            .collect()
    };
    assert_eq!(
        bits(&straight),
        bits(&t),
        "the final weights after resuming"
    );
}
