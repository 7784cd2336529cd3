//! Skips that say so and can be made strict (matrixmultiply's
//! `MMTEST_ENSUREFEATURE`): a test that needs something this machine may
//! lack (a GPU, libnvrtc, Chromium, the real MNIST, a Slurm cluster) calls
//! [`skip`] when it
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

/// Whether a Slurm cluster answers here: `sbatch` on `PATH` and `sinfo`
/// reaching a controller that lists a node which can take jobs (`.ci/slurm-up.sh`
/// starts a one-node cluster; clients find it through `SLURM_CONF`). `false`
/// after a [`skip`] (or a panic under `CNN_REQUIRE_SLURM=1`) otherwise.
pub fn slurm(test: &str) -> bool {
    match slurm_answers() {
        Ok(()) => true,
        Err(why) => {
            skip(test, "CNN_REQUIRE_SLURM", &why);
            false
        }
    }
}

/// Why no Slurm cluster can take a job here, if none can.
fn slurm_answers() -> Result<(), String> {
    use std::process::Command;
    let on_path = Command::new("sbatch")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !on_path {
        return Err(
            "sbatch is not on PATH (see README: .ci/slurm-up.sh starts a one-node cluster)".into(),
        );
    }
    let sinfo = Command::new("sinfo")
        .args(["-h", "-N", "-o", "%t"])
        .output()
        .map_err(|e| format!("sinfo cannot run: {e}"))?;
    let states = String::from_utf8_lossy(&sinfo.stdout);
    if !sinfo.status.success() {
        let err = String::from_utf8_lossy(&sinfo.stderr);
        return Err(format!(
            "no Slurm controller answers (sinfo: {}); start one with .ci/slurm-up.sh and export SLURM_CONF",
            err.lines().next().unwrap_or("no output").trim()
        ));
    }
    // idle, mix, alloc (and their `*`/`~` suffixes for not responding or
    // powered down, which cannot take a job).
    let usable = states
        .lines()
        .map(str::trim)
        .any(|s| matches!(s, "idle" | "mix" | "alloc" | "comp"));
    if usable {
        Ok(())
    } else {
        Err(format!(
            "the Slurm cluster has no node that takes jobs (node states: {})",
            states.split_whitespace().collect::<Vec<_>>().join(", ")
        ))
    }
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

    #[test]
    fn slurm_is_found_or_says_why() {
        // Either way the answer is definite: a cluster that answers, or a
        // reason that names what is missing.
        match slurm_answers() {
            Ok(()) => assert!(
                std::process::Command::new("squeue")
                    .arg("-h")
                    .status()
                    .is_ok_and(|s| s.success()),
                "sinfo answered, so squeue must too"
            ),
            Err(why) => assert!(
                why.contains("sbatch") || why.contains("Slurm") || why.contains("sinfo"),
                "{why}"
            ),
        }
    }
}
