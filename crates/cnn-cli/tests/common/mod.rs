//! Running the `cnn` binary from the command-line tests.

// Each test file uses its own share of these.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Run `cnn args` in `cwd`.
pub fn cnn(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the cnn binary runs")
}

/// Run `cnn args` in `cwd` with `CNN_MNIST_DIR` unset, then `env` set.
pub fn cnn_with_env(args: &[&str], cwd: &Path, env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cnn"));
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("CNN_MNIST_DIR");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("the cnn binary runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert a failure printed exactly one line, an `error:` line containing
/// `needle`.
pub fn assert_one_line_error(o: &Output, needle: &str) {
    assert!(
        !o.status.success(),
        "expected failure, stderr: {}",
        stderr(o)
    );
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "nothing but the error line expected: {err}"
    );
    assert!(lines[0].contains(needle), "`{needle}` not in: {}", lines[0]);
}

/// A short synthetic `cnn train` with a checkpoint every 4 steps: 192
/// images (173 for training after the 10% validation split) in batches of
/// 32, 6 steps an epoch (the last batch of 13), 12 in all.
pub const SHORT_RUN: &[&str] = &[
    "train",
    "--limit-train",
    "192",
    "--epochs",
    "2",
    "--batch-size",
    "32",
    "--checkpoint-every",
    "4",
    "--threads",
    "2",
    "--seed",
    "3",
    "--quiet",
];

/// [`SHORT_RUN`] with `extra` flags, written to `out`.
pub fn short_run<'a>(extra: &[&'a str], out: &'a str) -> Vec<&'a str> {
    let mut a: Vec<&str> = SHORT_RUN.to_vec();
    a.extend_from_slice(extra);
    a.extend_from_slice(&["--out", out]);
    a
}

/// The bytes of `p`, naming it when it cannot be read.
pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
