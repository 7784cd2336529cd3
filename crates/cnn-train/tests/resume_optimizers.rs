//! Every optimizer added beyond torch.optim's classic nine (ASGD, Rprop,
//! Adafactor, Muon, Lion, LAMB, LARS) keeps its whole state in the
//! checkpoint: a run interrupted after step 5 and resumed in a fresh
//! trainer (as a new process would) ends with the uninterrupted run's
//! per-step losses and weights, bit for bit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod common;

use cnn_core::ArrayData;
use cnn_cpu::CpuBackend;
use cnn_train::{TrainConfig, TrainError, Trainer};

fn config(optimizer: &str) -> TrainConfig {
    let mut params = toml::Table::new();
    // Weight decay where the optimizer has one, and a short first
    // averaging phase for ASGD so that its average moves.
    match optimizer {
        "rprop" => {}
        "asgd" => {
            params.insert("t0".into(), toml::Value::Float(3.0));
            params.insert("weight_decay".into(), toml::Value::Float(1e-3));
        }
        _ => {
            params.insert("weight_decay".into(), toml::Value::Float(1e-3));
        }
    }
    TrainConfig {
        model: "article".into(),
        data: "synthetic".into(),
        epochs: 1,
        max_steps: 9,
        batch_size: 32,
        optimizer: optimizer.into(),
        optimizer_params: params,
        schedule: "cosine".into(),
        seed: 3,
        ..TrainConfig::default()
    }
}

use common::run_dir_trainer as trainer;

fn bits(t: &Trainer<CpuBackend>) -> (Vec<u64>, Vec<(String, Vec<u32>)>) {
    let losses = t.history().steps.iter().map(|s| s.loss.to_bits()).collect();
    let weights = t
        .graph()
        .state_dict()
        .unwrap()
        .into_iter()
        .map(|a| match a.data {
            ArrayData::F32(v) => (a.name, v.into_iter().map(f32::to_bits).collect()),
            ArrayData::I64(v) => (a.name, v.into_iter().map(|x| x as u32).collect()),
        })
        .collect();
    (losses, weights)
}

#[test]
fn every_new_optimizer_resumes_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["asgd", "rprop", "adafactor", "muon", "lion", "lamb", "lars"] {
        let c = config(name);
        let mut straight = trainer(&c, &tmp.path().join(format!("{name}-straight")), true);
        straight.fit().unwrap();
        let want = bits(&straight);
        assert_eq!(want.0.len(), 9, "{name}: 9 steps");

        let dir = tmp.path().join(format!("{name}-interrupted"));
        let mut t = trainer(&c, &dir, true);
        let flag = Arc::new(AtomicBool::new(false));
        t = t.with_interrupt(Arc::clone(&flag));
        // Each raised flag lets exactly one more step run.
        while t.state().step < 5 {
            flag.store(true, Ordering::SeqCst);
            match t.fit() {
                Err(TrainError::Interrupted { .. }) => flag.store(false, Ordering::SeqCst),
                other => panic!("{name}: expected an interruption, got {other:?}"),
            }
        }
        drop(t);
        let mut resumed = trainer(&c, &dir, false);
        assert!(resumed.restore_latest().unwrap(), "{name}: no checkpoint");
        assert_eq!(resumed.state().step, 5, "{name}");
        resumed.fit().unwrap();
        let got = bits(&resumed);
        assert_eq!(
            got.0, want.0,
            "{name}: per-step losses differ after resuming"
        );
        assert!(
            got.1 == want.1,
            "{name}: final weights differ after resuming"
        );
        // The run moved: a state that was not restored would show.
        assert_ne!(want.0.first(), want.0.last(), "{name}");
    }
}
