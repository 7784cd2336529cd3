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
