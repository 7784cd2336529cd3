//! `cargo xtask gpu-check`: build the CUDA test binaries and the CLI here
//! (no GPU or CUDA toolkit needed), stage them in `target/gpu-check/`
//! (debug info stripped, so the folder travels light), write
//! `target/gpu-check/run.sh`, and print the one command that runs it all
//! on a GPU machine from the repository root.
//!
//! On the GPU machine `run.sh` sets `CNN_REQUIRE_CUDA=1` and
//! `CNN_REQUIRE_NVRTC=1` (a skip becomes a failure), points the golden
//! harness at the checkout's `testdata/golden`, runs every test binary of
//! cnn-cuda, then 20 training steps of `cnn train --backend cuda`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const OUT: &str = "target/gpu-check";

pub fn gpu_check(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "cargo xtask gpu-check\n\nBuilds cnn-cuda's test binaries and the CLI with `--features cuda`,\n\
             stages them in {OUT}/ with run.sh, and prints the command that runs them on a GPU machine."
        );
        return Ok(());
    }
    let root = workspace_root()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    // The test binaries: cargo reports each executable as JSON.
    eprintln!("$ cargo test -p cnn-cuda --release --no-run --message-format=json");
    let output = Command::new(&cargo)
        .current_dir(&root)
        .args([
            "test",
            "-p",
            "cnn-cuda",
            "--release",
            "--no-run",
            "--message-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err("building the cnn-cuda test binaries failed".into());
    }
    let mut tests = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && msg["profile"]["test"] == true
            && let Some(exe) = msg["executable"].as_str()
        {
            let name = msg["target"]["name"].as_str().unwrap_or("test").to_string();
            tests.push((name, PathBuf::from(exe)));
        }
    }
    if tests.is_empty() {
        return Err("cargo reported no cnn-cuda test executables".into());
    }

    // The CLI with the CUDA backend.
    crate::cargo(&["build", "-p", "cnn-cli", "--release", "--features", "cuda"])?;

    let out = root.join(OUT);
    let bin = out.join("bin");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&bin).map_err(|e| format!("cannot create {}: {e}", bin.display()))?;
    let mut names = Vec::new();
    for (name, exe) in &tests {
        stage(exe, &bin.join(name))?;
        names.push(name.clone());
    }
    stage(&root.join("target/release/cnn"), &bin.join("cnn"))?;
    names.sort();

    let script = run_script(&names);
    let script_path = out.join("run.sh");
    std::fs::write(&script_path, script)
        .map_err(|e| format!("cannot write {}: {e}", script_path.display()))?;

    let size: u64 = std::fs::read_dir(&bin)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "staged {} test binaries and the CLI in {OUT}/ ({:.1} MiB)",
        names.len(),
        size as f64 / (1 << 20) as f64
    );
    println!("run on a GPU machine, from the repository root (carry `{OUT}`):");
    println!();
    println!("    bash {OUT}/run.sh");
    Ok(())
}

/// Copy `from` to `to` without debug info (falls back to a plain copy).
fn stage(from: &Path, to: &Path) -> Result<(), String> {
    let stripped = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(from)
        .arg(to)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(from, to)
            .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
    }
    Ok(())
}

fn run_script(tests: &[String]) -> String {
    let mut s = String::from(
        r#"#!/usr/bin/env bash
# Written by `cargo xtask gpu-check`: runs cnn-cuda's tests and a short
# CUDA training run on a GPU machine. Run from the repository root.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
# The CUDA libraries: the toolkit's, then any pip wheels (nvidia-*).
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
         $(python3 -c 'import nvidia, os; p = nvidia.__path__[0]; print(" ".join(os.path.join(p, x, "lib") for x in os.listdir(p)))' 2>/dev/null || true); do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export CNN_REQUIRE_CUDA=1 CNN_REQUIRE_NVRTC=1
export CNN_GOLDEN_DIR="$root/testdata/golden"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
status=0
"#,
    );
    for t in tests {
        s.push_str(&format!(
            "echo \"== {t}\"; \"$here/bin/{t}\" --test-threads=1 || status=1\n"
        ));
    }
    s.push_str(
        r#"echo "== cnn train --backend cuda"
"$here/bin/cnn" train --backend cuda --model lenet5 --data synthetic --max-steps 20 --batch-size 64 || status=1
exit $status
"#,
    );
    s
}

fn workspace_root() -> Result<PathBuf, String> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "cannot find the workspace root".into())
}
