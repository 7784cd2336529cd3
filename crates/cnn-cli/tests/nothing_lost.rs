//! A command that cannot start finds out before it touches its output: an
//! existing run or comparison given with `--overwrite` survives bad input,
//! and a run records the data it trained on.

use std::path::Path;

mod common;
use common::{assert_one_line_error, cnn_with_env as cnn, stderr};

const TINY: &[&str] = &[
    "--epochs",
    "1",
    "--limit-train",
    "64",
    "--batch-size",
    "32",
    "--quiet",
];

/// Every file under `dir` with its bytes, sorted by path.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                out.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A valid MNIST directory of `n` blank 28x28 images per split.
fn write_mnist(dir: &Path, n: u8) {
    std::fs::create_dir_all(dir).unwrap();
    for split in ["train", "t10k"] {
        let mut labels = vec![0, 0, 8, 1, 0, 0, 0, n];
        labels.extend((0..n).map(|i| i % 10));
        let mut images = vec![0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 28, 0, 0, 0, 28];
        images.extend((0..n as usize * 784).map(|i| (i % 251) as u8));
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), labels).unwrap();
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte")), images).unwrap();
    }
}

#[test]
fn a_comparison_that_cannot_start_leaves_the_old_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["compare", "--out", "cmp", "--vary", "lr=0.1,0.01"];
    args.extend_from_slice(TINY);
    let first = cnn(&args, tmp.path(), &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let before = snapshot(&tmp.path().join("cmp"));
    assert!(before.iter().any(|(name, _)| name == "compare.json"));

    args.extend_from_slice(&["--overwrite", "--data", "mnist", "--data-dir", "nowhere"]);
    assert_one_line_error(&cnn(&args, tmp.path(), &[]), "nowhere");
    assert!(
        snapshot(&tmp.path().join("cmp")) == before,
        "the old comparison changed"
    );
}

#[test]
fn a_model_file_with_the_wrong_class_count_leaves_the_old_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["train", "--out", "run"];
    args.extend_from_slice(TINY);
    let first = cnn(&args, tmp.path(), &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let before = snapshot(&tmp.path().join("run"));

    // The synthetic set has 10 classes.
    std::fs::write(
        tmp.path().join("net.toml"),
        "[[nodes]]\nname = \"flat\"\ntype = \"flatten\"\n\n\
         [[nodes]]\nname = \"fc\"\ntype = \"linear\"\nout_features = 3\n",
    )
    .unwrap();
    args.extend_from_slice(&["--overwrite", "--model", "net.toml"]);
    let out = cnn(&args, tmp.path(), &[]);
    assert_one_line_error(&out, "net.toml");
    assert!(
        stderr(&out).contains("3 outputs but the data has 10 classes"),
        "{}",
        stderr(&out)
    );
    assert!(
        snapshot(&tmp.path().join("run")) == before,
        "the old run changed"
    );
}

#[test]
fn a_run_records_the_mnist_directory_it_found_in_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("digits");
    write_mnist(&data, 40);
    let mut args = vec![
        "train", "--data", "mnist", "--model", "lenet5", "--out", "run",
    ];
    args.extend_from_slice(TINY);
    let out = cnn(&args, tmp.path(), &[("CNN_MNIST_DIR", &data)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let recorded = std::fs::read_to_string(tmp.path().join("run/config.toml")).unwrap();
    let expected = format!("data_dir = {:?}", data.display().to_string());
    assert!(
        recorded.contains(&expected),
        "`{expected}` not in:\n{recorded}"
    );

    // Without the variable, eval finds the data through the run's record.
    let out = cnn(
        &["eval", "--weights", "run/model.safetensors", "--json"],
        tmp.path(),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["n"], 40);
}

#[test]
fn an_existing_file_as_out_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("precious.txt"), "keep me").unwrap();
    let mut args = vec!["train", "--out", "precious.txt", "--overwrite"];
    args.extend_from_slice(TINY);
    assert_one_line_error(
        &cnn(&args, tmp.path(), &[]),
        "precious.txt: exists and is not a directory",
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("precious.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn overwrite_replaces_the_default_directory_and_only_runs_are_resumable() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["train"];
    args.extend_from_slice(TINY);
    for _ in 0..2 {
        assert!(cnn(&args, tmp.path(), &[]).status.success());
    }
    // Without --overwrite the second run took the next free name.
    assert!(tmp.path().join("runs/article-synthetic-2").is_dir());
    args.push("--overwrite");
    let out = cnn(&args, tmp.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!tmp.path().join("runs/article-synthetic-3").exists());

    // A run suggests --resume; a comparison, which cannot resume, does not.
    let run = cnn(
        &["train", "--out", "runs/article-synthetic"],
        tmp.path(),
        &[],
    );
    assert_one_line_error(&run, "or --resume to continue it");
    let mut compare = vec!["compare", "--out", "cmp", "--vary", "lr=0.1"];
    compare.extend_from_slice(TINY);
    assert!(cnn(&compare, tmp.path(), &[]).status.success());
    let again = cnn(&compare, tmp.path(), &[]);
    assert_one_line_error(&again, "already exists; pass --overwrite to replace it");
    assert!(!stderr(&again).contains("--resume"), "{}", stderr(&again));
}
