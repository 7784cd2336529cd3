//! The `cnn` command end to end: a short training run writes every file of
//! a run directory; bad input gives one clear line and a non-zero exit.

use std::process::Command;

mod common;
use common::{assert_one_line_error, cnn, stderr};

#[test]
fn train_writes_a_complete_run_directory_and_eval_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cnn(
        &[
            "train",
            "--epochs",
            "2",
            "--limit-train",
            "256",
            "--batch-size",
            "32",
            "--out",
            "run",
            "--seed",
            "3",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let run = tmp.path().join("run");
    for f in [
        "config.toml",
        "steps.csv",
        "metrics.csv",
        "history.jsonl",
        "model.safetensors",
        "best.safetensors",
        "curves.png",
        "curves.svg",
        "confusion.png",
        "checkpoint/LATEST",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    let steps = std::fs::read_to_string(run.join("steps.csv")).unwrap();
    let mut lines = steps.lines();
    assert_eq!(lines.next(), Some("step,epoch,loss,lr"));
    assert_eq!(
        lines.count(),
        2 * 8,
        "256 images in batches of 32 for 2 epochs"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.csv"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("curves:"));
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("limit_train = 256"), "{config}");

    let eval = cnn(
        &[
            "eval",
            "--weights",
            "run/model.safetensors",
            "--data",
            "synthetic",
            "--seed",
            "3",
            "--json",
        ],
        tmp.path(),
    );
    assert!(eval.status.success(), "{}", stderr(&eval));
    let v: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    for key in [
        "accuracy",
        "loss",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "top5_accuracy",
        "n",
    ] {
        assert!(v.get(key).is_some(), "eval --json lacks {key}: {v}");
    }
    assert_eq!(v["n"], 1000);
    // The run is deterministic (synthetic data, seed 3; the same at 1, 2
    // and 4 threads): 157 of the 1,000 test images right, 518 in the top
    // five. The loss is held to 1e-4, not to its bits, which a CPU with
    // other SIMD paths may round differently.
    assert_eq!(v["accuracy"], 0.157, "{v}");
    assert_eq!(v["top5_accuracy"], 0.518, "{v}");
    let loss = v["loss"].as_f64().unwrap();
    assert!((loss - 2.295_157).abs() < 1e-4, "loss {loss}");

    // A second run into the same directory is refused, and nothing is lost.
    let again = cnn(
        &[
            "train",
            "--epochs",
            "1",
            "--limit-train",
            "64",
            "--out",
            "run",
        ],
        tmp.path(),
    );
    assert_one_line_error(&again, "already exists; pass --overwrite");
    assert_eq!(
        std::fs::read_to_string(run.join("steps.csv")).unwrap(),
        steps
    );
}

#[test]
fn missing_data_directory_is_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cnn(
        &[
            "train",
            "--data",
            "mnist",
            "--data-dir",
            "no/such/dir",
            "--model",
            "lenet5",
        ],
        tmp.path(),
    );
    assert_one_line_error(&out, "no/such/dir");
}

#[test]
fn corrupted_idx_files_name_the_file_and_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mnist");
    std::fs::create_dir(&dir).unwrap();
    // Valid labels, images with a wrong magic number.
    let mut labels = vec![0, 0, 8, 1, 0, 0, 0, 2];
    labels.extend([3, 4]);
    let mut images = vec![0, 0, 8, 9, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28];
    images.extend(vec![0u8; 2 * 784]);
    for split in ["train", "t10k"] {
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), &labels).unwrap();
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte")), &images).unwrap();
    }
    let out = cnn(
        &[
            "train",
            "--data",
            "mnist",
            "--data-dir",
            "mnist",
            "--model",
            "lenet5",
        ],
        tmp.path(),
    );
    assert_one_line_error(&out, "train-images-idx3-ubyte");
    assert!(
        stderr(&out).to_lowercase().contains("magic"),
        "{}",
        stderr(&out)
    );

    // Fix the magic, truncate the data: a short-data error.
    images[3] = 3;
    images.truncate(16 + 700);
    std::fs::write(dir.join("train-images-idx3-ubyte"), &images).unwrap();
    let out = cnn(
        &[
            "train",
            "--data",
            "mnist",
            "--data-dir",
            "mnist",
            "--model",
            "lenet5",
        ],
        tmp.path(),
    );
    assert_one_line_error(&out, "train-images-idx3-ubyte");

    // Valid images, a label out of range.
    images.resize(16 + 2 * 784, 0);
    std::fs::write(dir.join("train-images-idx3-ubyte"), &images).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), &images).unwrap();
    labels[9] = 12;
    std::fs::write(dir.join("train-labels-idx1-ubyte"), &labels).unwrap();
    let out = cnn(
        &[
            "train",
            "--data",
            "mnist",
            "--data-dir",
            "mnist",
            "--model",
            "lenet5",
        ],
        tmp.path(),
    );
    assert_one_line_error(&out, "train-labels-idx1-ubyte");
    assert!(stderr(&out).contains("12"), "{}", stderr(&out));
}

#[test]
fn a_non_image_in_an_image_folder_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let class = tmp.path().join("images").join("cats");
    std::fs::create_dir_all(&class).unwrap();
    std::fs::write(class.join("notes.txt"), b"this is not a picture").unwrap();
    let out = cnn(
        &["train", "--data", "folder", "--data-dir", "images"],
        tmp.path(),
    );
    assert_one_line_error(&out, "notes.txt");
}

#[test]
fn unknown_config_keys_and_invalid_values_are_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("run.toml"),
        "epochs = 2\nlearning_rate = 0.1\n",
    )
    .unwrap();
    let out = cnn(&["train", "--config", "run.toml"], tmp.path());
    assert_one_line_error(&out, "run.toml");
    assert!(stderr(&out).contains("learning_rate"), "{}", stderr(&out));

    let out = cnn(&["train", "--dropout", "1.0"], tmp.path());
    assert_one_line_error(&out, "dropout 1");
    let out = cnn(&["train", "--optimizer", "lbfgs"], tmp.path());
    assert_one_line_error(&out, "lbfgs");
    let out = cnn(&["train", "--lr=-1", "--optimizer", "adam"], tmp.path());
    assert_one_line_error(&out, "lr");
    let out = cnn(&["train", "--model", "alexnet"], tmp.path());
    assert_one_line_error(&out, "unknown model `alexnet`");
    // Failed starts leave no run directory behind.
    assert!(!tmp.path().join("runs").exists());
}

#[test]
#[cfg(not(feature = "cuda"))]
fn cuda_backend_absent_is_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cnn(&["train", "--backend", "cuda", "--epochs", "1"], tmp.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "error: backend `cuda`: this build has no CUDA backend (build with `--features cuda`)\n"
    );
}

/// A CUDA build (`cargo test -p cnn-cli --features cuda --test cli`) on a
/// machine without a usable GPU ends with one line naming why, exit 1, and
/// no run directory; with a GPU (or under `CNN_REQUIRE_CUDA=1`, which says
/// one must be there) the same command trains.
#[test]
#[cfg(feature = "cuda")]
fn cuda_backend_without_a_gpu_is_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "train",
        "--backend",
        "cuda",
        "--epochs",
        "1",
        "--limit-train",
        "64",
        "--quiet",
        "--out",
        "run",
    ];
    let out = cnn(&args, tmp.path());
    if out.status.success() {
        assert!(tmp.path().join("run/model.safetensors").is_file());
        return;
    }
    assert!(
        std::env::var("CNN_REQUIRE_CUDA").as_deref() != Ok("1"),
        "CNN_REQUIRE_CUDA=1 but the CUDA run failed: {}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let known = [
        "error: backend `cuda`: cannot load the CUDA driver library (libcuda.so: is an NVIDIA driver installed?)\n",
        "error: backend `cuda`: no CUDA device found\n",
    ];
    assert!(known.contains(&err.as_str()), "{err}");
    assert!(!tmp.path().join("run").exists(), "no run directory is made");
}

#[test]
fn models_lists_parameter_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cnn(&["models", "--input", "1,28,28"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("lenet5") && text.contains("61706"), "{text}");
    let out = cnn(&["models"], tmp.path());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("200262"),
        "article on 3x32x32"
    );
}

#[test]
fn init_from_takes_pytorch_weights_and_rejects_mismatched_ones() {
    let golden = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/golden/lenet5_init_seed0.safetensors"
    );
    let tmp = tempfile::tempdir().unwrap();
    // LeNet-5 weights written by PyTorch do not fit the article model: one
    // line naming the file and the first entry that differs.
    let out = cnn(
        &[
            "train",
            "--model",
            "article",
            "--init-from",
            golden,
            "--epochs",
            "1",
        ],
        tmp.path(),
    );
    assert_one_line_error(&out, "lenet5_init_seed0.safetensors");
    assert!(
        !tmp.path().join("runs").exists(),
        "nothing created on a failed start"
    );
}

#[test]
fn overwrite_refuses_the_current_directory_and_foreign_folders() {
    let tmp = tempfile::tempdir().unwrap();
    // The current directory, even when it is a run directory.
    std::fs::write(tmp.path().join("config.toml"), b"epochs = 1\n").unwrap();
    std::fs::write(tmp.path().join("notes.txt"), b"mine").unwrap();
    let out = cnn(&["train", "--out", ".", "--overwrite"], tmp.path());
    assert_one_line_error(&out, "holds the current directory");
    // A folder cnn did not write.
    std::fs::create_dir(tmp.path().join("project")).unwrap();
    std::fs::write(tmp.path().join("project/main.rs"), b"fn main() {}").unwrap();
    let out = cnn(&["train", "--out", "project", "--overwrite"], tmp.path());
    assert_one_line_error(&out, "is not a directory cnn wrote");
    assert_eq!(
        std::fs::read(tmp.path().join("notes.txt")).unwrap(),
        b"mine"
    );
    assert!(tmp.path().join("project/main.rs").is_file());
}

#[test]
fn argument_errors_are_one_line_and_negative_numbers_reach_the_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cnn(&["train", "--bogus"], tmp.path());
    assert_one_line_error(&out, "--bogus");
    assert_eq!(out.status.code(), Some(2));
    // A missing argument is named on the same line.
    let out = cnn(&["eval"], tmp.path());
    assert_one_line_error(&out, "not provided: --weights");
    // A negative value is a value, checked by the configuration.
    let out = cnn(&["train", "--lr", "-0.1"], tmp.path());
    assert_one_line_error(&out, "lr -0.1");
    let out = cnn(&["train", "--schedule", "cosx"], tmp.path());
    assert_one_line_error(&out, "cosine_restarts");
    let out = cnn(
        &["eval", "--weights", "w.safetensors", "--batch-size", "0"],
        tmp.path(),
    );
    assert_one_line_error(&out, "--batch-size must be at least 1");
    let out = cnn(
        &[
            "eval",
            "--weights",
            "w.safetensors",
            "--split",
            "val",
            "--val-fraction",
            "0",
        ],
        tmp.path(),
    );
    assert_one_line_error(&out, "use --split test");
    let out = cnn(
        &[
            "predict",
            "--weights",
            "w.safetensors",
            "--top",
            "0",
            "x.png",
        ],
        tmp.path(),
    );
    assert_one_line_error(&out, "--top must be at least 1");
    assert!(!tmp.path().join("runs").exists());
}

#[test]
fn resume_takes_no_other_training_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cnn(
        &[
            "train", "--resume", "runs/x", "--epochs", "4", "--lr", "0.5",
        ],
        tmp.path(),
    );
    assert_one_line_error(&out, "cannot be combined with --epochs, --lr");
    // compare and curve have no --resume at all.
    let out = cnn(
        &["compare", "--resume", "x", "--vary", "lr=0.1,0.2"],
        tmp.path(),
    );
    assert_one_line_error(&out, "--resume");
}

#[test]
fn model_spec_files_refuse_the_built_in_model_flags() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("net.toml"),
        "[[nodes]]\nname = \"fc\"\ntype = \"linear\"\nout_features = 10\n",
    )
    .unwrap();
    let out = cnn(
        &[
            "train",
            "--model",
            "net.toml",
            "--activation",
            "gelu",
            "--dropout",
            "0.5",
        ],
        tmp.path(),
    );
    assert_one_line_error(
        &out,
        "--activation and --dropout apply to the built-in models",
    );
    assert!(!tmp.path().join("runs").exists());
}

#[test]
fn non_finite_initial_weights_are_named() {
    let golden = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/golden/lenet5_init_seed0.safetensors"
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(golden).unwrap();
    // safetensors: an 8-byte header length, the JSON header, then the data;
    // make the first float of the data a NaN.
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8 + header..8 + header + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(tmp.path().join("nan.safetensors"), &bytes).unwrap();
    let out = cnn(
        &[
            "train",
            "--model",
            "lenet5",
            "--init-from",
            "nan.safetensors",
        ],
        tmp.path(),
    );
    assert_one_line_error(&out, "holds non-finite values");
    assert!(!tmp.path().join("runs").exists());
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnn"))
        .arg("models")
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end at once, as `cnn models | head -0` would.
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "status {status}, stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn resuming_a_finished_run_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "train",
        "--epochs",
        "1",
        "--limit-train",
        "64",
        "--out",
        "run",
    ];
    let out = cnn(&args, tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = std::fs::read(tmp.path().join("run/summary.json")).unwrap();
    let out = cnn(&["train", "--resume", "run"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is already over (completed); nothing to resume"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(tmp.path().join("run/summary.json")).unwrap(),
        summary
    );
}

#[test]
fn an_empty_current_directory_takes_the_run() {
    // An empty --out directory is used as it is, never removed and made
    // again: here it is the current directory, which cannot be removed.
    let tmp = tempfile::tempdir().unwrap();
    let out = cnn(
        &[
            "train",
            "--out",
            ".",
            "--epochs",
            "1",
            "--limit-train",
            "64",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(tmp.path().join("config.toml").is_file());
    assert!(tmp.path().join(".cnn-output").is_file());
}

#[test]
fn eval_takes_the_run_configuration_beside_the_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "train",
        "--out",
        "bn",
        "--batch-norm",
        "on",
        "--label-smoothing",
        "0.2",
        "--seed",
        "5",
        "--epochs",
        "1",
        "--limit-train",
        "128",
        "--quiet",
    ];
    let out = cnn(&args, tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    // No --model, --data, --batch-norm, --label-smoothing or --seed: the
    // run's config.toml gives them, so the test split and the loss are the
    // run's own.
    let out = cnn(
        &["eval", "--weights", "bn/model.safetensors", "--json"],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("bn/summary.json")).unwrap())
            .unwrap();
    assert_eq!(eval["loss"], summary["test"]["loss"]);
    assert_eq!(eval["n"], summary["test"]["n"]);
    // A flag still overrides it: without batch norm the weights do not fit.
    let out = cnn(
        &[
            "eval",
            "--weights",
            "bn/model.safetensors",
            "--batch-norm",
            "off",
        ],
        tmp.path(),
    );
    assert_one_line_error(&out, "model.safetensors");
}
