//! Weight averaging in a run: the averages only read the model (a run with
//! `--ema` trains the same bits as one without), SWA's epochs train at
//! SWALR's rate with the schedule standing still, the averages are
//! written and validated each epoch, and an interrupted run resumes to the
//! same averages bit for bit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod common;

use cnn_core::Graph;
use cnn_cpu::CpuBackend;
use cnn_train::averaging::swa::swa_lr;
use cnn_train::averaging::{Anneal, AveragingSettings};
use cnn_train::{TrainConfig, TrainError, Trainer};

fn config(averaging: AveragingSettings) -> TrainConfig {
    TrainConfig {
        model: "article".into(),
        data: "synthetic".into(),
        epochs: 3,
        batch_size: 32,
        lr: Some(0.05),
        schedule: "cosine".into(),
        batch_norm: true,
        dropout: 0.25,
        seed: 5,
        averaging,
        ..TrainConfig::default()
    }
}

fn both() -> AveragingSettings {
    AveragingSettings {
        ema: Some(0.9),
        ema_warmup: true,
        swa_start: Some(2),
        swa_lr: Some(0.01),
        swa_anneal_epochs: 2,
        swa_anneal: Anneal::Cos,
    }
}

use common::run_dir_trainer as trainer;

fn read(path: std::path::PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn ema_leaves_the_training_bits_alone_and_is_validated_each_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let plain_dir = tmp.path().join("plain");
    let mut plain = trainer(&config(AveragingSettings::default()), &plain_dir, true);
    plain.fit().unwrap();
    let ema_settings = AveragingSettings {
        ema: Some(0.95),
        ..AveragingSettings::default()
    };
    let ema_dir = tmp.path().join("ema");
    let mut ema = trainer(&config(ema_settings), &ema_dir, true);
    ema.fit().unwrap();
    for name in ["model.safetensors", "steps.csv"] {
        assert_eq!(
            read(plain_dir.join(name)),
            read(ema_dir.join(name)),
            "{name} changed under --ema"
        );
    }
    assert!(!plain_dir.join("ema.safetensors").exists());
    assert!(plain.history().epochs.iter().all(|e| e.ema_val.is_none()));
    let metrics = String::from_utf8(read(plain_dir.join("metrics.csv"))).unwrap();
    assert!(!metrics.contains("ema_val"), "{metrics}");
    // The EMA's curve: one validation per epoch, and not the model's.
    let epochs = &ema.history().epochs;
    assert!(
        epochs
            .iter()
            .all(|e| e.ema_val.is_some() && e.swa_val.is_none())
    );
    assert_ne!(
        epochs[2].ema_val.as_ref().unwrap().loss,
        epochs[2].val.as_ref().unwrap().loss
    );
    let metrics = String::from_utf8(read(ema_dir.join("metrics.csv"))).unwrap();
    let header: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    assert_eq!(header.last(), Some(&"ema_val_f1_macro"));
    let row: Vec<&str> = metrics.lines().nth(3).unwrap().split(',').collect();
    assert_eq!(row.len(), header.len());
    let col = header.iter().position(|h| *h == "ema_val_loss").unwrap();
    assert_eq!(
        row[col].parse::<f64>().unwrap(),
        epochs[2].ema_val.as_ref().unwrap().loss
    );
    // ema.safetensors holds the final average: validated, it gives the
    // last epoch's EMA loss.
    let (arrays, _) =
        cnn_train::checkpoint::load_safetensors(&ema_dir.join("ema.safetensors")).unwrap();
    let mut g = Graph::new(
        &CpuBackend::with_threads(2).unwrap(),
        ema.graph().spec().clone(),
        0,
    )
    .unwrap();
    g.load_state_dict(&arrays).unwrap();
    let data = ema.data().clone();
    let (m, _) = cnn_train::evaluate(
        &mut g,
        &data.val,
        &data.normalization,
        256,
        cnn_core::SoftmaxCrossEntropy::default(),
    )
    .unwrap();
    assert_eq!(m.loss, epochs[2].ema_val.as_ref().unwrap().loss);
}

#[test]
fn swa_epochs_train_at_swalr_and_the_schedule_stands_still() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(both());
    let mut t = trainer(&c, tmp.path(), true);
    t.fit().unwrap();
    let steps = &t.history().steps;
    let first = |e: usize| steps.iter().find(|s| s.epoch == e).unwrap().lr;
    let last = |e: usize| steps.iter().rev().find(|s| s.epoch == e).unwrap().lr;
    // SWALR's lr0 is the rate the cosine schedule (27 steps) gives as
    // epoch 2 begins, at step 9 of 27.
    let lr0 = 0.05 * (1.0 + (std::f64::consts::PI * 9.0 / 27.0).cos()) / 2.0;
    assert!(last(1) > lr0, "the schedule moved during epoch 1");
    for e in [2, 3] {
        let want = swa_lr(e, 2, 0.01, 2, Anneal::Cos, lr0).unwrap();
        assert_eq!(first(e), want, "epoch {e}");
        assert_eq!(last(e), want, "epoch {e}: the rate is constant within it");
    }
    assert_eq!(first(3), 0.01);
    let epochs = &t.history().epochs;
    assert!(epochs[0].swa_val.is_none());
    assert!(epochs[1].swa_val.is_some() && epochs[2].swa_val.is_some());
    let (_, meta) =
        cnn_train::checkpoint::load_safetensors(&tmp.path().join("swa.safetensors")).unwrap();
    assert_eq!(meta.get("n_averaged").map(String::as_str), Some("2"));
}

#[test]
fn interrupted_runs_resume_to_the_same_averages() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(both());
    let straight_dir = tmp.path().join("straight");
    let mut straight = trainer(&c, &straight_dir, true);
    straight.fit().unwrap();
    assert_eq!(straight.history().steps.len(), 27);

    // Interrupt in epoch 1, then in epoch 2 (SWA's first), resuming in a
    // fresh trainer each time as a new process would.
    let dir = tmp.path().join("interrupted");
    let mut t = trainer(&c, &dir, true);
    for stop in [5u64, 14] {
        let flag = Arc::new(AtomicBool::new(false));
        t = t.with_interrupt(Arc::clone(&flag));
        while t.state().step + 1 < stop {
            flag.store(true, Ordering::SeqCst);
            match t.fit() {
                Err(TrainError::Interrupted { .. }) => flag.store(false, Ordering::SeqCst),
                other => panic!("expected an interruption, got {other:?}"),
            }
        }
        flag.store(true, Ordering::SeqCst);
        match t.fit() {
            Err(TrainError::Interrupted { step, .. }) => assert_eq!(step, stop),
            other => panic!("expected an interruption, got {other:?}"),
        }
        t = trainer(&c, &dir, false);
        assert!(t.restore_latest().unwrap());
    }
    t.fit().unwrap();
    for name in [
        "model.safetensors",
        "ema.safetensors",
        "swa.safetensors",
        "steps.csv",
    ] {
        assert!(
            read(straight_dir.join(name)) == read(dir.join(name)),
            "{name} differs after resuming"
        );
    }
    // The averages' curves (history.jsonl also holds timings).
    let curves = |t: &Trainer<CpuBackend>| -> Vec<_> {
        t.history()
            .epochs
            .iter()
            .map(|e| (e.ema_val.clone(), e.swa_val.clone()))
            .collect()
    };
    assert_eq!(curves(&straight), curves(&t));
}
