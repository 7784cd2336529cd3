//! Schedule-Free AdamW/SGD, `--lookahead` and `--sam` through the `cnn`
//! command: each trains, a run cut by a failed write
//! (`CNN_FAULT_INJECT=rename:N`, after its step-4 or step-8 checkpoint)
//! and continued with `--resume` ends with the uninterrupted run's
//! `model.safetensors` and `steps.csv` bit for bit, schedule-free's saved
//! weights are its average `x` (the validation loss `cnn eval` gives for
//! them is the run's last validation loss, to the bit), and bad parameters
//! are one error line.

mod common;

use std::path::Path;

use common::{assert_one_line_error, cnn, cnn_with_env, read, short_run as args, stderr};

/// Train `extra` straight through, then cut at two points and resumed:
/// the same bits. Returns the straight run's directory.
fn trains_and_resumes_bit_identically(tmp: &Path, extra: &[&str]) -> std::path::PathBuf {
    let out = cnn(&args(extra, "straight"), tmp);
    assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
    let straight = tmp.join("straight");
    let steps = String::from_utf8(read(&straight.join("steps.csv"))).unwrap();
    assert_eq!(steps.lines().count(), 13, "a header and 12 steps: {steps}");
    for (rename, checkpoint) in [("rename:10", "step-4"), ("rename:20", "step-8")] {
        let dir = format!("cut-{}", &rename[7..]);
        let fault = Path::new(rename);
        let cut = cnn_with_env(&args(extra, &dir), tmp, &[("CNN_FAULT_INJECT", fault)]);
        assert!(
            !cut.status.success(),
            "{extra:?}: the injected failure stops the run"
        );
        assert!(
            tmp.join(&dir).join("checkpoint").join(checkpoint).is_dir(),
            "{extra:?} {rename}: no {checkpoint} checkpoint to resume from"
        );
        let resumed = cnn(&["train", "--resume", &dir, "--quiet"], tmp);
        assert!(resumed.status.success(), "{extra:?}: {}", stderr(&resumed));
        for file in ["model.safetensors", "steps.csv"] {
            assert!(
                read(&straight.join(file)) == read(&tmp.join(&dir).join(file)),
                "{extra:?}: {file} differs after resuming from {checkpoint}"
            );
        }
    }
    straight
}

/// The last epoch's validation loss in `metrics.csv`.
fn last_val_loss(run: &Path) -> f64 {
    let text = String::from_utf8(read(&run.join("metrics.csv"))).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "val_loss").unwrap();
    let last = text.lines().last().unwrap();
    last.split(',').nth(col).unwrap().parse().unwrap()
}

/// What `cnn eval --split val --json` says of the run's saved weights.
fn eval_val_loss(tmp: &Path, run: &str) -> f64 {
    let weights = format!("{run}/model.safetensors");
    let out = cnn(
        &["eval", "--weights", &weights, "--split", "val", "--json"],
        tmp,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("eval --json");
    v["loss"].as_f64().expect("a loss")
}

/// The newest checkpoint's `optimizer.json`.
fn optimizer_state(run: &Path) -> serde_json::Value {
    let ckpt = run.join("checkpoint");
    let latest = String::from_utf8(read(&ckpt.join("LATEST"))).unwrap();
    let path = ckpt.join(latest.trim()).join("optimizer.json");
    serde_json::from_slice(&read(&path)).expect("optimizer.json")
}

/// The run's saved `model.safetensors` parameter `name` as f32s.
fn saved_param(run: &Path, name: &str) -> Vec<f32> {
    let (arrays, _) =
        cnn::train::checkpoint::load_safetensors(&run.join("model.safetensors")).unwrap();
    let a = arrays
        .into_iter()
        .find(|a| a.name == name)
        .expect("the parameter");
    match a.data {
        cnn::core::ArrayData::F32(v) => v,
        other => panic!("{other:?}"),
    }
}

#[test]
fn schedule_free_adamw_evaluates_and_saves_its_average_and_resumes_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = ["--optimizer", "schedule_free_adamw", "--lr", "0.003"];
    let run = trains_and_resumes_bit_identically(tmp.path(), &extra);
    // The saved weights are x (the state's average), not the training point.
    let state = optimizer_state(&run);
    assert_eq!(state["kind"], "schedule_free_adamw");
    let p = &state["params"]["conv1.weight"];
    let slots: Vec<&str> = p["slots"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(slots, ["exp_avg_sq", "x", "z"]);
    let x: Vec<f32> = serde_json::from_value(p["slots"]["x"].clone()).unwrap();
    let z: Vec<f32> = serde_json::from_value(p["slots"]["z"].clone()).unwrap();
    let saved = saved_param(&run, "conv1.weight");
    assert!(saved == x, "model.safetensors is not the average x");
    assert!(x != z, "x and z should have parted after 12 steps");
    // Validation curves are of the same point: eval on the saved weights
    // gives the last epoch's validation loss.
    assert_eq!(eval_val_loss(tmp.path(), "straight"), last_val_loss(&run));
}

#[test]
fn schedule_free_sgd_with_batch_norm_resumes_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = [
        "--optimizer",
        "schedule_free_sgd",
        "--lr",
        "0.5",
        "--weight-decay",
        "1e-4",
        "--batch-norm",
        "on",
    ];
    let run = trains_and_resumes_bit_identically(tmp.path(), &extra);
    assert_eq!(optimizer_state(&run)["kind"], "schedule_free_sgd");
    assert_eq!(eval_val_loss(tmp.path(), "straight"), last_val_loss(&run));
}

#[test]
fn lookahead_keeps_its_slow_weights_in_checkpoints_and_resumes_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = ["--optimizer", "adam", "--lookahead", "k=3,alpha=0.6"];
    let run = trains_and_resumes_bit_identically(tmp.path(), &extra);
    let state = optimizer_state(&run);
    let la = &state["lookahead"];
    // The last checkpoint is of step 12, a synchronisation (12 = 4 x 3).
    assert_eq!(la["counter"], 0);
    let slow: Vec<f32> = serde_json::from_value(la["slow"]["fc1.weight"].clone()).unwrap();
    assert!(
        slow == saved_param(&run, "fc1.weight"),
        "fast = slow right after a sync"
    );
    let config = String::from_utf8(read(&run.join("config.toml"))).unwrap();
    assert!(config.contains("[lookahead]"), "{config}");
    // Alone, the flag takes the reference's k=5, alpha=0.5 and changes the run.
    let plain = cnn(&args(&["--optimizer", "adam"], "plain"), tmp.path());
    assert!(plain.status.success(), "{}", stderr(&plain));
    let alone = cnn(
        &args(&["--optimizer", "adam", "--lookahead"], "alone"),
        tmp.path(),
    );
    assert!(alone.status.success(), "{}", stderr(&alone));
    let config = String::from_utf8(read(&tmp.path().join("alone/config.toml"))).unwrap();
    assert!(
        config.contains("k = 5") && config.contains("alpha = 0.5"),
        "{config}"
    );
    assert!(
        read(&tmp.path().join("plain/steps.csv")) != read(&tmp.path().join("alone/steps.csv")),
        "lookahead changed nothing"
    );
}

#[test]
fn sam_with_batch_norm_and_dropout_resumes_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = [
        "--sam",
        "rho=0.1",
        "--batch-norm",
        "on",
        "--dropout",
        "0.25",
    ];
    let run = trains_and_resumes_bit_identically(tmp.path(), &extra);
    let config = String::from_utf8(read(&run.join("config.toml"))).unwrap();
    assert!(
        config.contains("[sam]") && config.contains("rho = 0.1"),
        "{config}"
    );
    // Batch norm counted the first pass of each of the 12 steps only.
    let (arrays, _) =
        cnn::train::checkpoint::load_safetensors(&run.join("model.safetensors")).unwrap();
    let tracked: Vec<_> = arrays
        .iter()
        .filter(|a| a.name.ends_with("num_batches_tracked"))
        .map(|a| (a.name.clone(), a.data.clone()))
        .collect();
    assert!(!tracked.is_empty(), "no batch norm in the model");
    for (name, data) in tracked {
        assert_eq!(data, cnn::core::ArrayData::I64(vec![12]), "{name}");
    }
    let plain = cnn(
        &args(&["--batch-norm", "on", "--dropout", "0.25"], "plain"),
        tmp.path(),
    );
    assert!(plain.status.success(), "{}", stderr(&plain));
    assert!(
        read(&tmp.path().join("plain/steps.csv")) != read(&run.join("steps.csv")),
        "SAM changed nothing"
    );
    // Alone: rho = 0.05, on the data-parallel path (no batch norm).
    let alone = cnn(&args(&["--sam"], "alone"), tmp.path());
    assert!(alone.status.success(), "{}", stderr(&alone));
    let config = String::from_utf8(read(&tmp.path().join("alone/config.toml"))).unwrap();
    assert!(config.contains("rho = 0.05"), "{config}");
}

#[test]
fn bad_wrapper_parameters_are_one_error_line() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for (extra, needle) in [
        (&["--lookahead", "alpha=2"][..], "alpha"),
        (&["--lookahead", "k=0"], "`k`"),
        (&["--lookahead", "kk=3"], "unknown field `kk`"),
        (&["--lookahead", "k"], "KEY=VALUE"),
        (&["--sam", "rho=-1"], "rho"),
        (&["--sam", "radius=1"], "unknown field `radius`"),
        (&["--sam", "--accumulate", "2"], "cannot accumulate"),
        (
            &["--optimizer", "schedule_free_sgd", "--lookahead"],
            "lookahead cannot wrap",
        ),
    ] {
        let out = cnn(&args(extra, "bad"), t);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert_one_line_error(&out, needle);
        assert!(!t.join("bad").exists(), "{extra:?} made a run directory");
    }
    // Out-of-range hyperparameters of the rule itself exit as every
    // optimizer's do (sgd's `--weight-decay -1` too): 2, a usage error.
    for (extra, needle) in [
        (
            &["--optimizer", "schedule_free_sgd", "--momentum", "1"][..],
            "momentum",
        ),
        (
            &["--optimizer", "schedule_free_adamw", "--momentum", "1"],
            "betas[0]",
        ),
    ] {
        let out = cnn(&args(extra, "bad"), t);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert_one_line_error(&out, needle);
        assert!(!t.join("bad").exists(), "{extra:?} made a run directory");
    }
}

#[test]
fn compare_varies_the_schedule_free_optimizers() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cnn(
        &[
            "compare",
            "--vary",
            "optimizer=sgd,schedule_free_sgd,schedule_free_adamw",
            "--limit-train",
            "64",
            "--epochs",
            "1",
            "--threads",
            "1",
            "--quiet",
            "--out",
            "cmp",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = String::from_utf8(read(&tmp.path().join("cmp/compare.json"))).unwrap();
    for name in ["schedule_free_sgd", "schedule_free_adamw"] {
        assert!(manifest.contains(name), "{name} not in {manifest}");
    }
}

#[test]
fn adaptive_sam_resumes_bit_identically_and_takes_other_steps_than_sam() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = ["--sam", "adaptive=true,rho=0.5"];
    let run = trains_and_resumes_bit_identically(tmp.path(), &extra);
    let config = String::from_utf8(read(&run.join("config.toml"))).unwrap();
    assert!(
        config.contains("[sam]")
            && config.contains("rho = 0.5")
            && config.contains("adaptive = true"),
        "{config}"
    );
    let sam = cnn(&args(&["--sam", "rho=0.5"], "sam"), tmp.path());
    assert!(sam.status.success(), "{}", stderr(&sam));
    let config = String::from_utf8(read(&tmp.path().join("sam/config.toml"))).unwrap();
    assert!(!config.contains("adaptive"), "plain SAM's config: {config}");
    assert!(
        read(&tmp.path().join("sam/steps.csv")) != read(&run.join("steps.csv")),
        "adaptive SAM took SAM's steps"
    );
}

#[test]
fn compare_varies_the_wrappers() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cnn(
        &[
            "compare",
            "--vary",
            "sam=0,0.05",
            "--vary",
            "lookahead=off,on",
            // 6 steps: lookahead's first synchronisation is after step 5.
            "--limit-train",
            "192",
            "--batch-size",
            "32",
            "--epochs",
            "1",
            "--threads",
            "1",
            "--quiet",
            "--out",
            "cmp",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let root = tmp.path().join("cmp");
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&root.join("compare.json"))).unwrap();
    let variants = manifest["variants"].as_array().unwrap();
    let labels: Vec<&str> = variants
        .iter()
        .map(|v| v["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "sam=0, lookahead=off",
            "sam=0, lookahead=on",
            "sam=0.05, lookahead=off",
            "sam=0.05, lookahead=on"
        ]
    );
    let mut steps = Vec::new();
    for run in manifest["runs"].as_array().unwrap() {
        let label = labels[run["variant"].as_u64().unwrap() as usize];
        let dir = root.join(run["dir"].as_str().unwrap());
        let config = String::from_utf8(read(&dir.join("config.toml"))).unwrap();
        assert_eq!(
            config.contains("[sam]"),
            label.contains("sam=0.05"),
            "{label}: {config}"
        );
        assert_eq!(
            config.contains("[lookahead]"),
            label.contains("lookahead=on"),
            "{label}: {config}"
        );
        steps.push(read(&dir.join("steps.csv")));
    }
    assert_eq!(steps.len(), 4);
    for i in 0..4 {
        for j in 0..i {
            assert!(steps[i] != steps[j], "variants {j} and {i} trained alike");
        }
    }
}
