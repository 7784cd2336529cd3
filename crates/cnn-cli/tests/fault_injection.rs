//! Fault injection, as SQLite tests its I/O: `CNN_FAULT_INJECT=any:N`
//! makes the `N`th write, fsync or rename of the `cnn` process fail (every
//! other `N` as a full disk, `any:N:full`). For every `N` over all the
//! operations of a short run with checkpoints, the run either completes or
//! fails with one `error:` line naming the fault, and `--resume` afterwards
//! (or, when no checkpoint was committed yet, the same command again with
//! `--overwrite`) ends with the uninterrupted run's bits: the same
//! `model.safetensors` and `steps.csv`, and no temporary file left.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

mod common;
use common::stderr;

const RUN: &[&str] = &[
    "train",
    "--limit-train",
    "64",
    "--batch-size",
    "32",
    "--epochs",
    "2",
    "--checkpoint-every",
    "2",
    "--threads",
    "1",
    "--seed",
    "3",
    "--quiet",
];

fn cnn(args: &[&str], fault: Option<String>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cnn"));
    c.args(args).env_remove("CNN_MNIST_DIR");
    match fault {
        Some(f) => c.env("CNN_FAULT_INJECT", f),
        None => c.env_remove("CNN_FAULT_INJECT"),
    };
    c.output().unwrap()
}

fn train(out: &Path, extra: &[&str], fault: Option<String>) -> Output {
    let mut args = RUN.to_vec();
    args.extend(extra);
    args.extend(["--out", out.to_str().unwrap()]);
    cnn(&args, fault)
}

fn bits(run: &Path) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(run.join("model.safetensors")).unwrap(),
        std::fs::read(run.join("steps.csv")).unwrap(),
    )
}

fn temp_entries(dir: &Path, found: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().contains(".tmp-") {
            found.push(e.path().display().to_string());
        } else if e.file_type().unwrap().is_dir() {
            temp_entries(&e.path(), found);
        }
    }
}

/// Inject fault `n`; `None` when the run completed anyway (the fault lay
/// beyond its last operation, or hit a best-effort directory fsync).
fn walk_one(root: &Path, n: u64, reference: &(Vec<u8>, Vec<u8>)) -> Option<()> {
    let out = root.join(format!("n{n}"));
    let fault = if n.is_multiple_of(2) {
        format!("any:{n}:full")
    } else {
        format!("any:{n}")
    };
    let o = train(&out, &[], Some(fault.clone()));
    if o.status.success() {
        assert_eq!(&bits(&out), reference, "{fault}: completed with other bits");
        return None;
    }
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{fault}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{fault}: {err}");
    assert!(
        lines[0].contains("CNN_FAULT_INJECT") && !err.contains("panicked"),
        "{fault}: {err}"
    );
    let committed = out.join("checkpoint/LATEST").is_file();
    let o = if committed {
        cnn(
            &["train", "--quiet", "--resume", out.to_str().unwrap()],
            None,
        )
    } else {
        train(&out, &["--overwrite"], None)
    };
    assert!(o.status.success(), "{fault}, then again: {}", stderr(&o));
    assert_eq!(&bits(&out), reference, "{fault}: other bits after resuming");
    let mut left = Vec::new();
    temp_entries(&out, &mut left);
    assert!(left.is_empty(), "{fault}: left {left:?}");
    std::fs::remove_dir_all(&out).unwrap();
    Some(())
}

#[test]
fn every_write_fsync_and_rename_of_a_run_can_fail_without_losing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    let o = train(&straight, &[], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let reference = bits(&straight);

    // Workers take the next N until two consecutive N complete (a
    // best-effort directory fsync is never followed by another).
    let next = AtomicU64::new(1);
    let end = AtomicU64::new(u64::MAX);
    let failed = AtomicU64::new(0);
    let completed: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n > end.load(Ordering::SeqCst) {
                        break;
                    }
                    if walk_one(tmp.path(), n, &reference).is_some() {
                        failed.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    let mut done = completed.lock().unwrap();
                    done.push(n);
                    if done.contains(&(n + 1)) || done.contains(&(n.wrapping_sub(1))) {
                        end.fetch_min(n + 1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let end = end.load(Ordering::SeqCst);
    let done = completed.into_inner().unwrap();
    // Every N below the end failed the run but the best-effort directory
    // fsyncs (one per atomic write, four operations or more apart).
    assert!(failed.load(Ordering::SeqCst) > 100, "{end} {done:?}");
    assert!(
        done.iter().filter(|&&n| n + 1 < end).count() * 3 < end as usize,
        "{end} {done:?}"
    );
}
