//! `cnn-workloads` as `cargo xtask bench` runs it: the GPU training
//! workloads (W8, W5-GPU) run on the CPU at a small batch and print their
//! JSON; `--precision` is handed to `Backend::with_precision`, so the CPU
//! backend refuses every mode but f32 with one line and exit status 2.

use std::process::{Command, Output};

fn workloads(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnn-workloads"))
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[test]
fn w8_runs_on_the_cpu_at_a_small_batch() {
    let out = workloads(&["w8", "--threads", "2", "--batch", "4", "--quick"]);
    let v = json(&out);
    assert_eq!(v["workload"], "w8");
    assert_eq!(v["backend"], "cpu");
    assert_eq!(v["precision"], "f32");
    assert!(v["peak_device_bytes"].is_null());
    let r = &v["results"][0];
    assert_eq!(r["name"], "w8_airbench94_train");
    assert_eq!(r["unit"], "img/s");
    // --quick: one run of 3 timed steps of 4 images.
    assert_eq!(r["extra"]["images"], 12.0);
    assert!(r["median"].as_f64().unwrap() > 0.0);
    // 708.33 MFLOP per training image (2 x (3 x 118,147,360 - 276,768)).
    let mflop = r["extra"]["mflop_per_image"].as_f64().unwrap();
    assert!((mflop - 708.330_624).abs() < 1e-6, "{mflop}");
    let epoch = r["extra"]["epoch_50k_seconds"].as_f64().unwrap();
    let secs = r["seconds_median"].as_f64().unwrap();
    assert!((epoch - 50_000.0 * secs / 12.0).abs() <= 1e-9 * epoch);
}

#[test]
fn w5gpu_runs_on_the_cpu_at_a_small_batch() {
    let v = json(&workloads(&[
        "w5gpu",
        "--threads",
        "1",
        "--batch",
        "2",
        "--quick",
    ]));
    let r = &v["results"][0];
    assert_eq!(r["name"], "w5gpu_resnet20_train");
    assert_eq!(r["extra"]["images"], 6.0);
}

#[test]
fn the_cpu_backend_refuses_precisions_other_than_f32_per_mode() {
    for mode in ["tf32", "bf16", "f16"] {
        let out = workloads(&["w3", "--threads", "1", "--quick", "--precision", mode]);
        assert_eq!(out.status.code(), Some(2), "{mode}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim_end(),
            format!(
                "cnn-workloads w3 ({mode}): --precision {mode}: the cpu backend computes \
                 in f32 only (the cuda backend has every mode)"
            )
        );
        assert!(out.stdout.is_empty(), "{mode}: no result");
    }
    // f32 is every backend's mode: named as without the flag.
    let v = json(&workloads(&[
        "sgemm",
        "--threads",
        "1",
        "--quick",
        "--size",
        "64",
        "--precision",
        "f32",
    ]));
    assert_eq!(v["results"][0]["name"], "sgemm_64");
    assert_eq!(v["precision"], "f32");
}

#[test]
fn bad_precision_and_batch_arguments_exit_2() {
    let out = workloads(&["w8", "--precision", "fp8"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(
            "cnn-workloads: invalid value for `precision`: `fp8` is not one of f32, tf32, bf16, f16"
        ),
        "{err}"
    );
    let out = workloads(&["w5", "--batch", "64"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("cnn-workloads: --batch applies to w5gpu and w8, not `w5`"),
    );
}
