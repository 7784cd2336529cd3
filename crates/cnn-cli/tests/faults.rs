//! Numeric faults and limits through the `cnn` command: a diverging run
//! stops naming the step and the layer and keeps its last good checkpoint;
//! `--detect-anomaly` names the first offending layer; a memory estimate
//! above `--max-memory` is refused before training.

use std::path::Path;
use std::process::Output;

use cnn::core::ArrayData;

mod common;
use common::{cnn, stderr};

const SMALL: &[&str] = &[
    "train",
    "--limit-train",
    "128",
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--threads",
    "2",
    "--quiet",
    "--out",
    "run",
];

/// Every F32 value of a safetensors file is finite.
fn assert_finite_weights(path: &Path) {
    let (arrays, _) = cnn::train::checkpoint::load_safetensors(path).unwrap();
    for a in arrays {
        if let ArrayData::F32(v) = &a.data {
            assert!(
                v.iter().all(|x| x.is_finite()),
                "{}: `{}` holds non-finite values",
                path.display(),
                a.name
            );
        }
    }
}

fn error_line(o: &Output) -> String {
    let err = stderr(o);
    err.lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {err}"))
        .to_string()
}

#[test]
fn a_diverging_run_names_step_and_layer_and_keeps_a_finite_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = SMALL.to_vec();
    args.extend(["--lr", "1e12", "--momentum", "0", "--checkpoint-every", "1"]);
    let o = cnn(&args, tmp.path());
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let line = error_line(&o);
    assert!(line.contains("at step "), "{line}");
    assert!(line.contains("layer `"), "no layer named: {line}");
    let run = tmp.path().join("run");
    let latest = std::fs::read_to_string(run.join("checkpoint/LATEST")).unwrap();
    let ckpt = run.join("checkpoint").join(latest.trim());
    assert_finite_weights(&ckpt.join("model.safetensors"));
    assert_finite_weights(&run.join("model.safetensors"));
}

#[test]
fn detect_anomaly_names_the_first_offending_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = SMALL.to_vec();
    args.extend(["--lr", "1e12", "--momentum", "0", "--detect-anomaly"]);
    let o = cnn(&args, tmp.path());
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // The run is deterministic (synthetic data, seed 0, 2 threads): the
    // first update at lr 1e12 sends fc2's output past f32 at step 2, and
    // the check walks the layers in forward order.
    assert_eq!(
        error_line(&o),
        "error: training diverged at step 2 (epoch 1): the loss is NaN \
         (first non-finite output at layer `fc2`)"
    );
    assert_finite_weights(&tmp.path().join("run/model.safetensors"));
}

#[test]
fn a_memory_estimate_above_the_limit_is_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = SMALL.to_vec();
    args.extend(["--max-memory", "1M"]);
    let o = cnn(&args, tmp.path());
    assert!(!o.status.success());
    let err = stderr(&o);
    let line = error_line(&o);
    assert!(
        line.contains("training needs about") && line.contains("1.0 MiB"),
        "{line}"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(
        !tmp.path().join("run").exists(),
        "refused before the run directory"
    );
    // A bad size is a usage error naming the value.
    let mut args = SMALL.to_vec();
    args.extend(["--max-memory", "lots"]);
    let o = cnn(&args, tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("`lots`"), "{}", stderr(&o));
    // A generous limit (and the default, used by every other test) passes.
    let mut args = SMALL.to_vec();
    args.extend(["--max-memory", "64G"]);
    let o = cnn(&args, tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn an_absurd_thread_count_is_refused_as_a_usage_error() {
    // 2^64-1 threads used to reach the memory estimate and be reported as
    // "16777216.0 TiB" of convolution workspace.
    let tmp = tempfile::tempdir().unwrap();
    let mut args = SMALL.to_vec();
    let threads = args.iter().position(|a| *a == "--threads").unwrap() + 1;
    args[threads] = "18446744073709551615";
    let o = cnn(&args, tmp.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let line = error_line(&o);
    assert!(
        line.contains("18446744073709551615 is more than 1024 threads"),
        "{line}"
    );
    assert!(!line.contains("TiB"), "{line}");
    assert!(!tmp.path().join("run").exists());
    // The same number in a config file is refused by the config check (a
    // bad value in a file exits 1, as every other config-file value does).
    std::fs::write(tmp.path().join("c.toml"), "threads = 5000\n").unwrap();
    let o = cnn(
        &["train", "--config", "c.toml", "--quiet", "--out", "run"],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        error_line(&o).contains("threads 5000 is more than 1024"),
        "{}",
        stderr(&o)
    );
}
