//! `cargo xtask gpu-check`: build the CUDA test binaries and the CLI here
//! (no GPU or CUDA toolkit needed), stage them in `target/gpu-check/`
//! (debug info stripped, so the folder travels light), write
//! `target/gpu-check/run.sh`, and print the one command that runs it all
//! on a GPU machine from the repository root.
//!
//! On the GPU machine `run.sh` sets `CNN_REQUIRE_CUDA=1` and
//! `CNN_REQUIRE_NVRTC=1` (a skip becomes a failure), points the golden
//! harness at the checkout's `testdata/golden`, runs every test binary of
//! cnn-cuda (staging fails if one of `REQUIRED_TESTS` is missing, among
//! them `precision`, the tf32/bf16/f16 modes against the CPU emulation),
//! then 20 training steps of `cnn train --backend cuda`. When
//! MNIST was found here (`$CNN_MNIST_DIR` or `../shared/data/mnist`) it is
//! staged too, and `run.sh` trains LeNet-5 for one MNIST epoch with the CLI,
//! then runs the workloads W1-W3 and sgemm with `cnn-workloads --backend
//! cuda` and, where that machine's `python3` imports torch, the same in
//! PyTorch on the GPU (`xtask/torch_bench.py --device cuda`). Before those,
//! the GPU workloads W5-GPU and W8 (and W3 beyond f32) run in every
//! precision mode, each cnn run followed by PyTorch's in the same mode
//! (`gpu_workloads_in_every_mode`): a mode cnn's backend does not have
//! (exit status 2) and a PyTorch side that cannot run are printed as
//! SKIPPED lines, not failures. Logs and the
//! workloads' JSON go to `$CNN_GPU_CHECK_OUT` (default
//! `target/gpu-check/results`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const OUT: &str = "target/gpu-check";

/// cnn-cuda's test binaries that a GPU check must run; staging fails when
/// cargo does not report one (a renamed file would otherwise drop out of
/// the check unnoticed). `precision`: the tf32/bf16/f16 modes against the
/// CPU emulation of `cnn_testing::mixed`; `resident`: the device-resident
/// training set's batches and a LeNet-5 run against the host loader's
/// bits; `cnn_cuda`: the crate's unit tests.
const REQUIRED_TESTS: [&str; 9] = [
    "cnn_cuda",
    "conformance",
    "golden",
    "lenet",
    "no_gpu",
    "nvrtc",
    "precision",
    "resident",
    "vs_cpu",
];

/// The required test binaries missing from `names`.
fn missing_tests(names: &[String]) -> Vec<&'static str> {
    REQUIRED_TESTS
        .into_iter()
        .filter(|t| !names.iter().any(|n| n == t))
        .collect()
}

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
    let reported: Vec<String> = tests.iter().map(|(name, _)| name.clone()).collect();
    let missing = missing_tests(&reported);
    if !missing.is_empty() {
        return Err(format!(
            "cargo reported no cnn-cuda test executable named {} (found {})",
            missing.join(", "),
            reported.join(", ")
        ));
    }

    // The CLI and the workload runner with the CUDA backend.
    crate::cargo(&["build", "-p", "cnn-cli", "--release", "--features", "cuda"])?;
    crate::cargo(&[
        "build",
        "-p",
        "cnn-benches",
        "--release",
        "--bin",
        "cnn-workloads",
        "--features",
        "cuda",
    ])?;

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
    stage(
        &root.join("target/release/cnn-workloads"),
        &bin.join("cnn-workloads"),
    )?;
    names.sort();
    let mnist = stage_mnist(&root, &out.join("mnist"))?;

    let script = run_script(&names, mnist);
    let script_path = out.join("run.sh");
    std::fs::write(&script_path, script)
        .map_err(|e| format!("cannot write {}: {e}", script_path.display()))?;

    let size: u64 = [bin.clone(), out.join("mnist")]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "staged {} test binaries, the CLI and cnn-workloads{} in {OUT}/ ({:.1} MiB)",
        names.len(),
        if mnist {
            " and MNIST"
        } else {
            " (no MNIST found: the epoch and W1 are left out)"
        },
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

/// Copy the eight MNIST IDX files (as found: raw or gzip) from
/// `$CNN_MNIST_DIR` or `../shared/data/mnist` into `to`; false when there
/// is no such directory.
fn stage_mnist(root: &Path, to: &Path) -> Result<bool, String> {
    let from = std::env::var_os("CNN_MNIST_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/data/mnist"));
    let Ok(entries) = std::fs::read_dir(&from) else {
        return Ok(false);
    };
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let mut copied = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        if name.to_string_lossy().contains("-ubyte") {
            std::fs::copy(e.path(), to.join(&name))
                .map_err(|err| format!("cannot copy {}: {err}", e.path().display()))?;
            copied += 1;
        }
    }
    Ok(copied > 0)
}

fn run_script(tests: &[String], mnist: bool) -> String {
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
results="${CNN_GPU_CHECK_OUT:-$here/results}"
mkdir -p "$results"
# Everything below goes to the terminal and to gpu-check.log.
{
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader || true
status=0
"#,
    );
    for t in tests {
        s.push_str(&format!(
            "echo \"== {t}\"; timeout 180 \"$here/bin/{t}\" --test-threads=1 || status=1\n"
        ));
    }
    s.push_str(
        r#"echo "== cnn train --backend cuda"
"$here/bin/cnn" train --backend cuda --model lenet5 --data synthetic --max-steps 20 --batch-size 64 --out "$(mktemp -d)/run" || status=1
"#,
    );
    if mnist {
        s.push_str(
            r#"echo "== cnn train --backend cuda: LeNet-5, one MNIST epoch"
run_dir="$(mktemp -d)/lenet5-mnist"
"$here/bin/cnn" train --backend cuda --model lenet5 --data mnist --data-dir "$here/mnist" \
  --epochs 1 --lr 0.05 --momentum 0.9 --batch-size 64 --out "$run_dir" || status=1
cp "$run_dir/metrics.csv" "$results/lenet5-mnist-metrics.csv" 2>/dev/null || true
cp "$run_dir/curves.png" "$results/lenet5-mnist-curves.png" 2>/dev/null || true
export CNN_MNIST_DIR="$here/mnist"
"#,
        );
    }
    s.push_str(&gpu_workloads_in_every_mode());
    s.push_str(
        r#"echo "== workloads on the GPU (one JSON object per line in bench.jsonl)"
torch_ok=0
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null && torch_ok=1
for w in sgemm w1 w2 w3; do
  [ "$w" = w1 ] && [ -z "${CNN_MNIST_DIR:-}" ] && continue
  timeout 300 "$here/bin/cnn-workloads" "$w" --backend cuda | tee -a "$results/bench.jsonl" || status=1
  if [ $torch_ok = 1 ]; then
    timeout 300 python3 "$root/xtask/torch_bench.py" "$w" --device cuda | tee -a "$results/bench.jsonl" || status=1
  fi
done
[ $torch_ok = 1 ] || echo "python3 cannot use torch on the GPU here: the PyTorch side was left out"
echo "gpu-check: exit status $status (logs in $results)"
exit $status
} 2>&1 | tee "$results/gpu-check.log"
exit "${PIPESTATUS[0]}"
"#,
    );
    s
}

/// The bash that runs W5-GPU and W8 in f32, tf32, bf16 and f16, and W3 in
/// the three modes beyond f32 (the f32 one runs with the other workloads),
/// with `cnn-workloads --backend cuda --precision P`, each followed by
/// `torch_bench.py --device cuda --precision P` where that machine's
/// `python3` has torch with CUDA; one JSON object per run appended to
/// `bench.jsonl`. A mode cnn's CUDA backend refuses (exit status 2, one
/// line) is a SKIPPED line; any other failure sets `status=1`.
fn gpu_workloads_in_every_mode() -> String {
    r#"echo "== GPU workloads W5-GPU and W8 (and W3) in every precision mode, cnn then PyTorch"
python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())' 2>/dev/null \
  || echo "SKIPPED PyTorch version: python3 has no torch here"
torch_gpu=0
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null && torch_gpu=1
[ $torch_gpu = 1 ] || echo "SKIPPED the PyTorch side of every mode: python3 cannot use torch on the GPU here"
for p in f32 tf32 bf16 f16; do
  for w in w3 w5gpu w8; do
    [ "$w" = w3 ] && [ "$p" = f32 ] && continue
    rc=0
    timeout 300 "$here/bin/cnn-workloads" "$w" --backend cuda --precision "$p" >>"$results/bench.jsonl" || rc=$?
    if [ $rc = 2 ]; then
      echo "SKIPPED cnn $w $p: the CUDA backend has no $p mode in this build"
    elif [ $rc != 0 ]; then
      echo "cnn $w $p failed (exit $rc)"; status=1
    else
      tail -n 1 "$results/bench.jsonl"
    fi
    if [ $torch_gpu = 1 ]; then
      timeout 300 python3 "$root/xtask/torch_bench.py" "$w" --device cuda --precision "$p" \
        | tee -a "$results/bench.jsonl" || { echo "torch $w $p failed"; status=1; }
    fi
  done
done
"#
    .to_string()
}

fn workspace_root() -> Result<PathBuf, String> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "cannot find the workspace root".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_required_test_binary_must_be_staged() {
        let all: Vec<String> = REQUIRED_TESTS.iter().map(|t| t.to_string()).collect();
        assert!(missing_tests(&all).is_empty());
        let without: Vec<String> = all.iter().filter(|t| *t != "precision").cloned().collect();
        assert_eq!(missing_tests(&without), ["precision"]);
        // The required list names real test files of cnn-cuda.
        let tests = workspace_root().unwrap().join("crates/cnn-cuda/tests");
        for t in REQUIRED_TESTS.iter().filter(|t| **t != "cnn_cuda") {
            assert!(tests.join(format!("{t}.rs")).is_file(), "{t}.rs");
        }
    }

    #[test]
    fn run_script_runs_each_test_binary_then_training_and_the_workloads() {
        let tests = ["conformance".to_string(), "vs_cpu".to_string()];
        let with = run_script(&tests, true);
        for t in &tests {
            assert!(with.contains(&format!("\"$here/bin/{t}\" --test-threads=1")));
        }
        assert!(with.contains("export CNN_REQUIRE_CUDA=1 CNN_REQUIRE_NVRTC=1"));
        assert!(with.contains("--data mnist --data-dir \"$here/mnist\""));
        assert!(with.contains("\"$here/bin/cnn-workloads\" \"$w\" --backend cuda"));
        assert!(with.contains("torch_bench.py\" \"$w\" --device cuda"));
        // The GPU workloads in every mode, cnn then PyTorch, before the rest.
        let modes = with.find("for p in f32 tf32 bf16 f16; do").unwrap();
        assert!(modes < with.find("for w in sgemm w1 w2 w3; do").unwrap());
        assert!(with.contains("for w in w3 w5gpu w8; do"));
        assert!(
            with.contains("\"$here/bin/cnn-workloads\" \"$w\" --backend cuda --precision \"$p\"")
        );
        assert!(with.contains("torch_bench.py\" \"$w\" --device cuda --precision \"$p\""));
        assert!(with.contains("SKIPPED cnn $w $p"));
        let without = run_script(&tests, false);
        assert!(!without.contains("--data mnist"));
        assert!(without.contains("--backend cuda"));
        // Both parse as bash (where bash exists).
        for script in [&with, &without] {
            if let Ok(status) = Command::new("bash").args(["-n", "-c", script]).status() {
                assert!(status.success(), "bash -n rejects the script:\n{script}");
            }
        }
    }

    /// Runs `gpu_workloads_in_every_mode` with a stand-in `cnn-workloads`
    /// (`body`, a bash script) and a `python3` without torch; returns the
    /// output and the lines written to `bench.jsonl`.
    fn run_modes(tag: &str, body: &str) -> Option<(String, Vec<String>)> {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("cnn-gpu-modes-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for (name, text) in [("cnn-workloads", body), ("python3", "exit 1")] {
            let path = bin.join(name);
            std::fs::write(&path, format!("#!/usr/bin/env bash\n{text}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let script = format!(
            "set -euo pipefail\nhere={0}\nroot={0}\nresults={0}\nstatus=0\n{1}echo \"status=$status\"\n",
            dir.display(),
            gpu_workloads_in_every_mode()
        );
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("bash")
            .args(["-c", &script])
            .env("PATH", path)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let jsonl = std::fs::read_to_string(dir.join("bench.jsonl")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        Some((text, jsonl.lines().map(str::to_string).collect()))
    }

    #[test]
    fn modes_cnn_refuses_and_a_missing_pytorch_are_skips_and_other_failures_fail() {
        // A cnn-workloads with f32 only: exit 2 and one line for the rest.
        let f32_only = r#"[ "${5:-}" = f32 ] || { echo "no $5 mode" >&2; exit 2; }
echo "{\"workload\": \"$1\", \"precision\": \"$5\"}""#;
        let Some((out, jsonl)) = run_modes("skip", f32_only) else {
            return; // no bash here
        };
        assert_eq!(
            jsonl,
            [
                r#"{"workload": "w5gpu", "precision": "f32"}"#,
                r#"{"workload": "w8", "precision": "f32"}"#
            ],
            "{out}"
        );
        assert!(
            out.contains("SKIPPED the PyTorch side of every mode"),
            "{out}"
        );
        assert!(out.contains("SKIPPED PyTorch version"), "{out}");
        for p in ["tf32", "bf16", "f16"] {
            for w in ["w3", "w5gpu", "w8"] {
                let line = format!("SKIPPED cnn {w} {p}: the CUDA backend has no {p} mode");
                assert!(out.contains(&line), "{line}\n{out}");
            }
        }
        assert!(!out.contains("SKIPPED cnn w3 f32"), "W3 f32 runs elsewhere");
        assert!(out.trim_end().ends_with("status=0"), "{out}");
        // Any other failure makes the run fail.
        let (out, _) = run_modes("fail", "exit 1").unwrap();
        assert!(out.contains("cnn w8 bf16 failed (exit 1)"), "{out}");
        assert!(out.trim_end().ends_with("status=1"), "{out}");
    }
}
