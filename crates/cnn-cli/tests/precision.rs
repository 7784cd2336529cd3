//! `--precision` and `--loss-scale` through the `cnn` binary: a mode the
//! cpu backend does not compute in is one line and exit 2 before anything
//! is written (train, compare, curve, lr-find, a config file's key); an
//! unknown value is a clear error; f32 runs keep their files; a run with
//! loss scaling records it and trains the same weights.

mod common;

use common::{assert_one_line_error, cnn, read, short_run, stderr};

/// Exit 2 with one line naming the cpu backend and `mode`.
fn refused(o: &std::process::Output, mode: &str) {
    assert_eq!(o.status.code(), Some(2), "{}", stderr(o));
    assert_one_line_error(o, "the cpu backend computes in f32 only");
    assert!(
        stderr(o).contains(&format!("--precision {mode}")),
        "{}",
        stderr(o)
    );
}

#[test]
fn a_mode_the_cpu_backend_lacks_is_one_line_and_exit_2_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for mode in ["tf32", "bf16", "f16"] {
        let out = cnn(
            &[
                "train",
                "--precision",
                mode,
                "--epochs",
                "1",
                "--out",
                "run",
            ],
            dir,
        );
        refused(&out, mode);
    }
    let out = cnn(
        &[
            "compare",
            "--vary",
            "precision=f32,bf16",
            "--epochs",
            "1",
            "--out",
            "cmp",
        ],
        dir,
    );
    refused(&out, "bf16");
    let out = cnn(
        &[
            "curve",
            "--precision",
            "f16",
            "--epochs",
            "1",
            "--out",
            "lc",
        ],
        dir,
    );
    refused(&out, "f16");
    let out = cnn(&["lr-find", "--precision", "bf16", "--out", "lr"], dir);
    refused(&out, "bf16");
    // The config key, as the flag.
    std::fs::write(dir.join("run.toml"), "epochs = 1\nprecision = \"bf16\"\n").unwrap();
    let out = cnn(&["train", "--config", "run.toml", "--out", "run"], dir);
    refused(&out, "bf16");
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["run.toml"], "nothing but the config file");
}

#[test]
fn unknown_modes_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = cnn(&["train", "--precision", "fp16"], dir);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`fp16` is not one of f32, tf32, bf16, f16"),
        "{}",
        stderr(&out)
    );
    let out = cnn(&["train", "--loss-scale", "static"], dir);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("dynamic or none"), "{}", stderr(&out));
    std::fs::write(dir.join("run.toml"), "precision = \"half\"\n").unwrap();
    let out = cnn(&["train", "--config", "run.toml"], dir);
    assert_one_line_error(&out, "run.toml");
    assert!(stderr(&out).contains("half"), "{}", stderr(&out));
    std::fs::write(dir.join("run.toml"), "loss_scale = \"static\"\n").unwrap();
    let out = cnn(&["train", "--config", "run.toml"], dir);
    assert_one_line_error(&out, "run.toml");
    assert!(stderr(&out).contains("static"), "{}", stderr(&out));
    // Loss scaling and SAM do not combine (SAM's second gradient).
    let out = cnn(&["train", "--loss-scale", "dynamic", "--sam"], dir);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_one_line_error(&out, "does not combine with sam");
    assert!(!dir.join("runs").exists());
}

#[test]
fn f32_runs_keep_their_files_and_loss_scaling_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let plain = cnn(&short_run(&[], "plain"), dir);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let f32_flag = cnn(&short_run(&["--precision", "f32"], "f32"), dir);
    assert!(f32_flag.status.success(), "{}", stderr(&f32_flag));
    let scaled = cnn(&short_run(&["--loss-scale", "dynamic"], "scaled"), dir);
    assert!(scaled.status.success(), "{}", stderr(&scaled));
    // `--precision f32` is the default: the same files, byte for byte.
    for name in ["model.safetensors", "steps.csv", "config.toml"] {
        assert_eq!(
            read(&dir.join("plain").join(name)),
            read(&dir.join("f32").join(name)),
            "{name}"
        );
    }
    let config = String::from_utf8(read(&dir.join("plain/config.toml"))).unwrap();
    assert!(
        !config.contains("precision") && !config.contains("loss_scale"),
        "{config}"
    );
    let summary = String::from_utf8(read(&dir.join("plain/summary.json"))).unwrap();
    assert!(!summary.contains("skipped_steps"), "{summary}");
    // Loss scaling without an overflow: the same weights, the scale and
    // the skipped flag in steps.csv, the count in summary.json.
    assert_eq!(
        read(&dir.join("plain/model.safetensors")),
        read(&dir.join("scaled/model.safetensors"))
    );
    let steps = String::from_utf8(read(&dir.join("scaled/steps.csv"))).unwrap();
    let lines: Vec<&str> = steps.lines().collect();
    assert_eq!(lines[0], "step,epoch,loss,lr,loss_scale,skipped");
    assert_eq!(lines.len(), 13, "12 steps: {steps}");
    assert!(
        lines[1..].iter().all(|l| l.ends_with(",65536,0")),
        "{steps}"
    );
    let config = String::from_utf8(read(&dir.join("scaled/config.toml"))).unwrap();
    assert!(
        config.lines().any(|l| l == "loss_scale = \"dynamic\""),
        "{config}"
    );
    let summary = String::from_utf8(read(&dir.join("scaled/summary.json"))).unwrap();
    assert!(summary.contains("\"skipped_steps\": 0"), "{summary}");
}
