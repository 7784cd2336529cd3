//! Skips that say so and can be made strict (matrixmultiply's
//! `MMTEST_ENSUREFEATURE`): a test that needs something this machine may
//! lack (a GPU, libnvrtc, Chromium, the real MNIST) calls [`skip`] when it
//! is missing. The line goes straight to the process's standard error, past
//! the test harness's output capture, so it shows without `--nocapture`;
//! it is also appended to the file `CNN_SKIP_LOG` names, which `.ci/run`
//! counts; and the dependency's `CNN_REQUIRE_*` variable set to `1` turns
//! the skip into a failure.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The variable that names the file every skip is appended to.
pub const SKIP_LOG: &str = "CNN_SKIP_LOG";

/// Whether the variable `require` is set to `1`.
pub fn required(require: &str) -> bool {
    std::env::var(require).is_ok_and(|v| v == "1")
}

/// Records that `test` skips because `why`; panics instead when the
/// variable `require` is `1`.
pub fn skip(test: &str, require: &str, why: &str) {
    let log = std::env::var_os(SKIP_LOG).map(PathBuf::from);
    record_skip(test, require, required(require), log.as_deref(), why);
}

/// [`skip`] with the environment read: `strict` is `require`'s value.
fn record_skip(test: &str, require: &str, strict: bool, log: Option<&Path>, why: &str) {
    if strict {
        panic!("{require}=1 but {test} cannot run: {why}");
    }
    let line = format!("SKIPPED {test}: {why} (set {require}=1 to make this a failure)\n");
    // `io::stderr()` written directly is not captured by libtest (only the
    // print macros are), so the reason shows in a plain `cargo test`.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    if let Some(log) = log {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            panic!("{test}: cannot append to {SKIP_LOG}={}: {e}", log.display());
        }
    }
}

/// The real MNIST directory: `CNN_MNIST_DIR`, else `shared/data/mnist`
/// beside the repository; `None` after a [`skip`] (or a panic under
/// `CNN_REQUIRE_MNIST=1`) when it holds no MNIST training images.
pub fn mnist_dir(test: &str) -> Option<PathBuf> {
    let candidate = std::env::var_os("CNN_MNIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/data/mnist"
            ))
        });
    if candidate.join("train-images-idx3-ubyte.gz").is_file()
        || candidate.join("train-images-idx3-ubyte").is_file()
    {
        return Some(candidate);
    }
    skip(
        test,
        "CNN_REQUIRE_MNIST",
        &format!(
            "MNIST not found at {} (set CNN_MNIST_DIR)",
            candidate.display()
        ),
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_is_logged_and_a_required_one_fails() {
        let dir = std::env::temp_dir().join(format!("cnn-skip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("skips.log");
        record_skip(
            "t1",
            "CNN_REQUIRE_X",
            false,
            Some(&log),
            "no such thing here",
        );
        record_skip("t2", "CNN_REQUIRE_X", false, Some(&log), "nor this");
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            text,
            "SKIPPED t1: no such thing here (set CNN_REQUIRE_X=1 to make this a failure)\n\
             SKIPPED t2: nor this (set CNN_REQUIRE_X=1 to make this a failure)\n"
        );
        let strict = std::panic::catch_unwind(|| {
            record_skip("t3", "CNN_REQUIRE_X", true, Some(&log), "gone")
        });
        let msg = strict.expect_err("a required dependency must fail the test");
        let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("CNN_REQUIRE_X=1 but t3 cannot run: gone"),
            "{msg}"
        );
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            text,
            "a failure is no skip"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
