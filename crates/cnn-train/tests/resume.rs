//! Interrupting and resuming a run continues it exactly: the same batches,
//! the same dropout masks, the same optimizer and schedule state, so the
//! per-step loss curve and the final weights equal an uninterrupted run's
//! bit for bit; with mixup and CutMix too (the same batches mixed alike).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod common;

use cnn_core::{ArrayData, Graph};
use cnn_cpu::CpuBackend;
use cnn_train::{RunDir, TrainConfig, TrainError, Trainer, setup};

fn config() -> TrainConfig {
    TrainConfig {
        model: "article".into(),
        data: "synthetic".into(),
        epochs: 3,
        batch_size: 32,
        optimizer: "adam".into(),
        lr: Some(2e-3),
        schedule: "cosine".into(),
        dropout: 0.25,
        l1: 1e-5,
        l2: 1e-4,
        augment: true,
        seed: 7,
        ..TrainConfig::default()
    }
}

/// The run of [`config`] with mixup and CutMix (each batch one or the
/// other, 80% of them mixed) and label smoothing, without dropout so that
/// its steps are split across the two threads (`DataParallel`).
fn mixed_config() -> TrainConfig {
    TrainConfig {
        dropout: 0.0,
        label_smoothing: 0.1,
        mixup: 0.4,
        cutmix: 1.0,
        mix_prob: 0.8,
        ..config()
    }
}

fn trainer_of(c: TrainConfig, dir: &std::path::Path, fresh: bool) -> Trainer<CpuBackend> {
    let data = common::synthetic_splits(c.seed, 320, 64, c.val_fraction);
    let backend = CpuBackend::with_threads(2).unwrap();
    let spec = setup::model_spec(&c, &data.shape, data.num_classes()).unwrap();
    let graph = Graph::new(&backend, spec, c.seed).unwrap();
    let run = if fresh {
        RunDir::create(dir, false).unwrap()
    } else {
        RunDir::open(dir).unwrap()
    };
    if fresh {
        cnn_train::io::write_atomic(&run.config(), c.to_toml().as_bytes()).unwrap();
    }
    Trainer::new(backend, c, graph, data)
        .unwrap()
        .with_run_dir(run)
}

fn weights(t: &Trainer<CpuBackend>) -> Vec<(String, Vec<u32>)> {
    t.graph()
        .state_dict()
        .unwrap()
        .into_iter()
        .map(|a| match a.data {
            ArrayData::F32(v) => (a.name, v.into_iter().map(f32::to_bits).collect()),
            ArrayData::I64(v) => (a.name, v.into_iter().map(|x| x as u32).collect()),
        })
        .collect()
}

#[test]
fn interrupted_runs_resume_bit_identically() {
    resumes_bit_identically(config());
}

#[test]
fn interrupted_mixup_cutmix_runs_resume_bit_identically() {
    let c = mixed_config();
    let tmp = tempfile::tempdir().unwrap();
    let mut mixed = trainer_of(c.clone(), &tmp.path().join("mixed"), true);
    assert_eq!(mixed.data_parallel_parts(), Some(2));
    mixed.fit().unwrap();
    let unmixed_config = TrainConfig {
        mixup: 0.0,
        cutmix: 0.0,
        ..c.clone()
    };
    let mut unmixed = trainer_of(unmixed_config, &tmp.path().join("unmixed"), true);
    unmixed.fit().unwrap();
    // Mixing changes the losses of the mixed batches, not the first
    // epoch's data order: some steps differ, and (20% unmixed) not all.
    let differ = mixed
        .history()
        .steps
        .iter()
        .zip(&unmixed.history().steps)
        .filter(|(a, b)| a.loss != b.loss)
        .count();
    assert!(differ > 10, "{differ} of 27 steps changed by mixing");
    let written = std::fs::read_to_string(tmp.path().join("mixed/config.toml")).unwrap();
    for line in ["mixup = 0.4", "cutmix = 1.0", "mix_prob = 0.8"] {
        assert!(written.contains(line), "{line} not in\n{written}");
    }
    assert!(
        !written.contains("mix_switch_prob"),
        "a default is not written"
    );
    resumes_bit_identically(c);
}

fn resumes_bit_identically(c: TrainConfig) {
    let trainer = |dir: &std::path::Path, fresh: bool| trainer_of(c.clone(), dir, fresh);
    let tmp = tempfile::tempdir().unwrap();
    let mut straight = trainer(&tmp.path().join("straight"), true);
    straight.fit().unwrap();
    let steps = straight.history().steps.len();
    assert_eq!(
        steps,
        3 * 9,
        "288 training images in batches of 32 for 3 epochs"
    );

    // Interrupt after steps 4, 9 (an epoch boundary), 13 and 22, resuming in
    // a fresh trainer each time, as a new process would.
    let dir = tmp.path().join("interrupted");
    let mut t = trainer(&dir, true);
    t.checkpoint().unwrap();
    let mut stops = vec![4u64, 9, 13, 22].into_iter().peekable();
    loop {
        let flag = Arc::new(AtomicBool::new(false));
        t = t.with_interrupt(Arc::clone(&flag));
        let next = stops.peek().copied();
        // Train step by step until the next planned interruption.
        while let Some(stop) = next {
            if t.state().step + 1 >= stop {
                flag.store(true, Ordering::SeqCst);
                break;
            }
            // Raise the flag so exactly one more step runs, then clear it.
            flag.store(true, Ordering::SeqCst);
            match t.fit() {
                Err(TrainError::Interrupted { .. }) => flag.store(false, Ordering::SeqCst),
                other => panic!("expected an interruption, got {other:?}"),
            }
        }
        match t.fit() {
            Err(TrainError::Interrupted { step, .. }) => {
                assert_eq!(Some(step), next);
                stops.next();
                t = trainer(&dir, false);
                assert!(t.restore_latest().unwrap());
                assert_eq!(t.state().step, step);
            }
            Ok(_) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let resumed = t;
    let a: Vec<_> = straight
        .history()
        .steps
        .iter()
        .map(|s| (s.step, s.epoch, s.loss.to_bits(), s.lr.to_bits()))
        .collect();
    let b: Vec<_> = resumed
        .history()
        .steps
        .iter()
        .map(|s| (s.step, s.epoch, s.loss.to_bits(), s.lr.to_bits()))
        .collect();
    assert_eq!(a, b, "per-step curve differs after resuming");
    assert_eq!(
        weights(&straight),
        weights(&resumed),
        "final weights differ after resuming"
    );
    let ea: Vec<_> = straight
        .history()
        .epochs
        .iter()
        .map(|e| e.val.as_ref().map(|v| v.loss.to_bits()))
        .collect();
    let eb: Vec<_> = resumed
        .history()
        .epochs
        .iter()
        .map(|e| e.val.as_ref().map(|v| v.loss.to_bits()))
        .collect();
    assert_eq!(ea, eb);
}

#[test]
fn an_existing_run_directory_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("precious.txt"), b"keep me").unwrap();
    let err = RunDir::create(tmp.path(), false).unwrap_err();
    assert!(
        err.to_string().contains("already exists; pass --overwrite"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(tmp.path().join("precious.txt")).unwrap(),
        b"keep me"
    );
}

#[test]
fn overwrite_empties_only_directories_cnn_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    // Folders of the user's, one with a config.toml of its own (a static
    // site, say): --overwrite refuses them and keeps every file.
    let user = tmp.path().join("project");
    std::fs::create_dir_all(user.join("src")).unwrap();
    std::fs::write(user.join("src/main.rs"), b"fn main() {}").unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir_all(site.join("content")).unwrap();
    std::fs::write(site.join("config.toml"), b"title = 'mine'\n").unwrap();
    for dir in [&user, &site] {
        for err in [
            RunDir::check_free(dir, true).unwrap_err(),
            RunDir::create(dir, true).unwrap_err(),
        ] {
            assert!(
                err.to_string().contains("is not a directory cnn wrote"),
                "{err}"
            );
        }
    }
    assert_eq!(
        std::fs::read(user.join("src/main.rs")).unwrap(),
        b"fn main() {}"
    );
    assert!(site.join("config.toml").is_file() && site.join("content").is_dir());
    // A run directory (marked when created) is emptied and reused.
    let run = tmp.path().join("run");
    let dir = RunDir::create(&run, false).unwrap();
    std::fs::write(dir.config(), b"epochs = 1\n").unwrap();
    std::fs::write(dir.steps_csv(), b"step\n").unwrap();
    let dir = RunDir::create(&run, true).unwrap();
    assert!(!dir.config().exists() && !dir.steps_csv().exists());
    assert!(run.join(cnn_train::run_dir::OUTPUT_MARKER).is_file());
    // One written before the marker: config.toml beside checkpoint/.
    let old = tmp.path().join("old-run");
    std::fs::create_dir_all(old.join("checkpoint")).unwrap();
    std::fs::write(old.join("config.toml"), b"epochs = 1\n").unwrap();
    RunDir::create(&old, true).unwrap();
    assert!(!old.join("config.toml").exists());
}

#[test]
fn an_empty_directory_is_used_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let dir = RunDir::create(&out, false).unwrap();
    assert!(dir.root().join("checkpoint").is_dir());
    // Without --overwrite, the now non-empty directory is refused.
    let err = RunDir::create(&out, false).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[test]
fn resuming_without_a_checkpoint_removes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::create(tmp.path(), false).unwrap();
    std::fs::write(run.config(), b"epochs = 1\n").unwrap();
    // A complete checkpoint directory that LATEST does not name (LATEST
    // lost): opening the run must not delete it.
    let ckpt = tmp.path().join("checkpoint/step-571");
    std::fs::create_dir_all(&ckpt).unwrap();
    std::fs::write(ckpt.join("trainer.json"), b"{}").unwrap();
    let err = RunDir::open(tmp.path()).unwrap_err();
    assert!(
        err.to_string().contains("has no checkpoint to resume from"),
        "{err}"
    );
    assert!(ckpt.join("trainer.json").is_file());
    // LATEST naming a missing checkpoint: the same.
    std::fs::write(tmp.path().join("checkpoint/LATEST"), b"step-999").unwrap();
    let err = RunDir::open(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("step-999"), "{err}");
    assert!(ckpt.join("trainer.json").is_file());
}
