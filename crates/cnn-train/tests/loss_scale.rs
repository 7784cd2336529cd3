//! Dynamic loss scaling in f32 on the CPU backend (switched on through the
//! config and the API; f16 needs a backend with that mode):
//!
//! - without an overflow a scaled run trains bit for bit as the run
//!   without scaling. The assumption: multiplying by a power of two is
//!   exact in f32 while values stay in the normal range, and every
//!   gradient is linear in the loss gradient (each product and sum of
//!   backward carries the factor through unrounded), so unscaling gives
//!   back the very bits of the unscaled gradients;
//! - a step whose gradients overflow is skipped: the weights and the
//!   optimizer's state as they were, `skipped` recorded, the scale halved;
//! - a resumed run continues the same sequence of scales.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod common;

use cnn_core::{ArrayData, Graph};
use cnn_cpu::CpuBackend;
use cnn_train::history::StepScaling;
use cnn_train::loss_scale::{LossScaleMode, LossScaler};
use cnn_train::{TrainConfig, TrainError, Trainer, setup};

fn bits(t: &Trainer<CpuBackend>) -> Vec<(String, Vec<u32>)> {
    t.graph()
        .state_dict()
        .unwrap()
        .into_iter()
        .filter_map(|a| match a.data {
            ArrayData::F32(v) => Some((a.name, v.into_iter().map(f32::to_bits).collect())),
            ArrayData::I64(_) => None,
        })
        .collect()
}

fn trainer(c: &TrainConfig) -> Trainer<CpuBackend> {
    let data = common::synthetic_splits(c.seed, 320, 64, c.val_fraction);
    let backend = CpuBackend::with_threads(2).unwrap();
    let spec = setup::model_spec(c, &data.shape, data.num_classes()).unwrap();
    let graph = Graph::new(&backend, spec, c.seed).unwrap();
    Trainer::new(backend, c.clone(), graph, data).unwrap()
}

fn batch(t: &Trainer<CpuBackend>, index: usize) -> cnn_data::Batch {
    let loader = cnn_data::Loader::new(
        t.data().train.clone(),
        t.data().normalization.clone(),
        cnn_data::LoaderConfig::train(32),
    )
    .unwrap();
    loader.batch(0, index)
}

#[test]
fn scaling_without_overflow_trains_bit_for_bit_as_without() {
    let plain = TrainConfig {
        model: "lenet5".into(),
        epochs: 2,
        batch_size: 32,
        l2: 1e-4,
        clip_grad_norm: 1.0,
        seed: 4,
        ..TrainConfig::default()
    };
    let scaled = TrainConfig {
        loss_scale: Some(LossScaleMode::Dynamic),
        ..plain.clone()
    };
    let mut a = trainer(&plain);
    // The config's GradScaler defaults, and a scale that grows every 3
    // steps (so the run sees several scales).
    let b = trainer(&scaled);
    assert_eq!(b.loss_scaler(), Some(&LossScaler::default()));
    assert_eq!(a.loss_scaler(), None);
    let mut b = b
        .with_loss_scaler(Some(LossScaler::new(1024.0, 3)))
        .unwrap();
    // The unscaled run splits its steps across the 2 threads, the scaled
    // one does not: the same bits either way.
    assert_eq!(a.data_parallel_parts(), Some(2));
    assert_eq!(b.data_parallel_parts(), None);
    a.fit().unwrap();
    b.fit().unwrap();
    let (sa, sb) = (&a.history().steps, &b.history().steps);
    assert_eq!(sa.len(), 18, "9 steps an epoch");
    assert_eq!(sa.len(), sb.len());
    for (k, (x, y)) in sa.iter().zip(sb).enumerate() {
        assert_eq!(x.loss.to_bits(), y.loss.to_bits(), "step {}", x.step);
        assert_eq!(x.scaling, None);
        // 1024 for steps 1-3, 2048 for 4-6, ...
        let want = 1024.0 * 2f32.powi(k as i32 / 3);
        assert_eq!(
            y.scaling,
            Some(StepScaling {
                loss_scale: want,
                skipped: false
            }),
            "step {}",
            y.step
        );
    }
    assert_eq!(bits(&a), bits(&b), "the weights after 18 steps");
    assert_eq!(b.loss_scaler().unwrap().scale, 1024.0 * 64.0);
}

#[test]
fn an_overflowing_step_is_skipped_and_halves_the_scale() {
    let c = TrainConfig {
        optimizer: "adam".into(),
        lr: Some(1e-3),
        seed: 2,
        ..TrainConfig::default()
    };
    let scaled = TrainConfig {
        loss_scale: Some(LossScaleMode::Dynamic),
        ..c.clone()
    };
    let (mut a, mut plain) = (trainer(&scaled), trainer(&c));
    let first = batch(&a, 0);
    for t in [&mut a, &mut plain] {
        t.train_step(1, &first.images, &first.labels).unwrap();
    }
    // 2^127 times a loss gradient whose activations are 1000 times the
    // usual: the last layer's weight gradient overflows to infinity.
    let huge = 2f32.powi(127);
    let mut a = a
        .with_loss_scaler(Some(LossScaler::new(huge, 2000)))
        .unwrap();
    let before = bits(&a);
    let mut big = batch(&a, 1);
    big.images.iter_mut().for_each(|v| *v *= 1000.0);
    let loss = a.train_step(1, &big.images, &big.labels).unwrap();
    assert!(loss.is_finite(), "the loss stays finite: {loss}");
    let record = a.history().steps.last().unwrap().clone();
    assert_eq!(record.step, 2, "a skipped step is still a step");
    assert_eq!(
        record.scaling,
        Some(StepScaling {
            loss_scale: huge,
            skipped: true
        })
    );
    assert_eq!(bits(&a), before, "the weights are those before the step");
    let scaler = a.loss_scaler().unwrap();
    assert_eq!((scaler.scale, scaler.growth_tracker), (huge / 2.0, 0));
    // Adam's moments and step count are as they were too: with a sane
    // scale, the next step equals the plain run's second step.
    let mut a = a.with_loss_scaler(Some(LossScaler::default())).unwrap();
    let third = batch(&a, 2);
    for t in [&mut a, &mut plain] {
        t.train_step(1, &third.images, &third.labels).unwrap();
    }
    assert_eq!(bits(&a), bits(&plain));
    assert_eq!(
        a.history().steps.last().unwrap().scaling.map(|s| s.skipped),
        Some(false)
    );
}

fn resumable(dir: &std::path::Path, fresh: bool) -> Trainer<CpuBackend> {
    let c = TrainConfig {
        epochs: 2,
        batch_size: 32,
        optimizer: "adam".into(),
        lr: Some(2e-3),
        loss_scale: Some(LossScaleMode::Dynamic),
        checkpoint_every: 1,
        seed: 6,
        ..TrainConfig::default()
    };
    common::run_dir_trainer(&c, dir, fresh)
}

#[test]
fn a_resumed_run_continues_the_sequence_of_scales() {
    let tmp = tempfile::tempdir().unwrap();
    let scaler = || Some(LossScaler::new(256.0, 2));
    let mut straight = resumable(&tmp.path().join("straight"), true)
        .with_loss_scaler(scaler())
        .unwrap();
    straight.fit().unwrap();
    assert_eq!(straight.history().steps.len(), 18);

    let dir = tmp.path().join("interrupted");
    let mut t = resumable(&dir, true).with_loss_scaler(scaler()).unwrap();
    // Interrupted after each of the first 5 steps (an interrupt raised
    // before a batch stops the run after the next step, with a
    // checkpoint): a trainer made from the config starts at GradScaler's
    // 65536 with an interval of 2000, so only the checkpoint's scaler
    // continues 256, doubled every 2 steps.
    for stop_at in 1..=5u64 {
        let flag = Arc::new(AtomicBool::new(true));
        t = t.with_interrupt(Arc::clone(&flag));
        match t.fit() {
            Err(TrainError::Interrupted { step, .. }) => assert_eq!(step, stop_at),
            other => panic!("expected an interruption, got {other:?}"),
        }
        flag.store(false, Ordering::SeqCst);
        let saved = t.loss_scaler().cloned();
        t = resumable(&dir, false);
        assert_eq!(t.loss_scaler(), Some(&LossScaler::default()));
        assert!(t.restore_latest().unwrap());
        assert_eq!(t.loss_scaler().cloned(), saved, "after step {stop_at}");
    }
    t.fit().unwrap();
    let scales = |t: &Trainer<CpuBackend>| -> Vec<Option<StepScaling>> {
        t.history().steps.iter().map(|s| s.scaling).collect()
    };
    assert_eq!(scales(&straight), scales(&t));
    assert_eq!(
        scales(&t)[17].map(|s| s.loss_scale),
        Some(256.0 * 2f32.powi(8))
    );
    assert_eq!(bits(&straight), bits(&t), "the final weights");
    // steps.csv carries the scale and the skipped flag.
    let text = std::fs::read_to_string(dir.join("steps.csv")).unwrap();
    assert!(
        text.starts_with("step,epoch,loss,lr,loss_scale,skipped\n"),
        "{text}"
    );
    assert!(text.lines().nth(3).unwrap().ends_with(",512,0"), "{text}");
}

#[test]
fn the_config_keys_are_recorded_only_when_set() {
    use cnn_core::Precision;
    use std::path::Path;
    let at = Path::new("run.toml");
    let text = TrainConfig::default().to_toml();
    assert!(
        !text.contains("precision") && !text.contains("loss_scale"),
        "{text}"
    );
    let c = TrainConfig::from_toml("precision = \"f16\"\nloss_scale = \"none\"\n", at).unwrap();
    assert_eq!(
        (c.precision, c.loss_scale),
        (Precision::F16, Some(LossScaleMode::None))
    );
    let back = TrainConfig::from_toml(&c.to_toml(), at).unwrap();
    assert_eq!(back, c);
    for (line, needle) in [
        ("precision = \"fp16\"", "fp16"),
        ("loss_scale = \"static\"", "static"),
        (
            "loss_scale = \"dynamic\"\n[sam]\nrho = 0.05",
            "does not combine with sam",
        ),
        (
            "precision = \"f16\"\n[sam]\nrho = 0.05",
            "on for precision f16",
        ),
    ] {
        let err = TrainConfig::from_toml(line, at).unwrap_err().to_string();
        assert!(
            err.starts_with("run.toml: ") && err.contains(needle),
            "{line}: {err}"
        );
    }
    // bf16 scales nothing, so SAM is fine there.
    assert!(TrainConfig::from_toml("precision = \"bf16\"\n[sam]\nrho = 0.05", at).is_ok());
}

#[test]
fn steps_csv_with_scaling_reads_back() {
    use cnn_train::StepRecord;
    let steps = vec![
        StepRecord {
            step: 1,
            epoch: 1,
            loss: 2.25,
            lr: 0.1,
            scaling: Some(StepScaling {
                loss_scale: 65536.0,
                skipped: true,
            }),
        },
        StepRecord {
            step: 2,
            epoch: 1,
            loss: 2.0,
            lr: 0.1,
            scaling: Some(StepScaling {
                loss_scale: 32768.0,
                skipped: false,
            }),
        },
    ];
    let text = cnn_train::records::steps_csv(&steps);
    assert_eq!(
        text,
        "step,epoch,loss,lr,loss_scale,skipped\n1,1,2.25,0.1,65536,1\n2,1,2,0.1,32768,0\n"
    );
    let at = std::path::Path::new("steps.csv");
    assert_eq!(
        cnn_train::records::parse_steps_csv(&text, at).unwrap(),
        steps
    );
    let bad = text.replace(",65536,1", ",65536,yes");
    let err = cnn_train::records::parse_steps_csv(&bad, at).unwrap_err();
    assert!(err.to_string().contains("skipped `yes`"), "{err}");
    let short = text.replace(",32768,0", "");
    let err = cnn_train::records::parse_steps_csv(&short, at).unwrap_err();
    assert!(err.to_string().contains("expected 6 fields"), "{err}");
}

#[test]
fn the_scale_sequences_match_torch_grad_scaler() {
    // testdata/golden/grad_scaler.json (scripts/golden_grad_scaler.py):
    // torch.amp.GradScaler over patterns of clean and overflowing steps.
    let path = common::golden_dir().join("grad_scaler.json");
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    let mut steps = 0;
    for case in cases {
        let init = case["init_scale"].as_f64().unwrap() as f32;
        let interval = case["growth_interval"].as_u64().unwrap();
        let mut scaler = LossScaler::new(init, interval);
        let column = |key: &str| case[key].as_array().unwrap().clone();
        let (overflow, scales) = (column("overflow"), column("scale_after_step"));
        let (trackers, stepped) = (column("growth_tracker_after_step"), column("stepped"));
        for (k, inf) in overflow.iter().enumerate() {
            let inf = inf.as_u64().unwrap() == 1;
            assert_eq!(stepped[k].as_bool().unwrap(), !inf, "torch skipped it");
            scaler.update(inf);
            let want = (
                scales[k].as_f64().unwrap() as f32,
                trackers[k].as_u64().unwrap(),
            );
            assert_eq!(
                (scaler.scale, scaler.growth_tracker),
                want,
                "init {init}, interval {interval}, step {}",
                k + 1
            );
            steps += 1;
        }
    }
    eprintln!("{steps} GradScaler steps checked");
    assert!(steps > 4000);
}
