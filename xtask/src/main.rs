//! Project chores: `cargo xtask <command>`.
//!
//! - `ci`: what `.ci/run` runs: format check, clippy with `-D warnings`,
//!   the API docs with `-D warnings`, and the README's test command.
//! - `test`: the README's test command alone.
//! - `bench`: criterion benches, the end-to-end workloads W1-W4 (and
//!   optionally PyTorch on the same workloads), report in `target/bench/`
//!   (see `bench.rs` and docs/benchmarks.md).
//! - `fuzz`: the cargo-fuzz targets in `fuzz/`, run for N seconds each or
//!   only built (see `fuzz.rs`).
//! - `mutants`: cargo-mutants over the optimizers, cnn-core's layers and
//!   graph and the CPU's fast paths, results in `target/mutants/` (see
//!   `mutants.rs` and docs/validation.md; not in CI).

mod bench;
mod fuzz;
mod gpu_check;
mod mutants;

use std::process::{Command, ExitCode};

const HELP: &str = "\
cargo xtask <command>

commands:
  ci      exactly what CI runs (.ci/run): format check, clippy -D warnings, docs, tests, quick bench, fuzz build
  test    the whole test suite (the README's test command)
  bench   benchmarks and the report in target/bench/ (`cargo xtask bench --help`)
  fuzz    run the cargo-fuzz targets (`--seconds N`) or only build them (`--build`)
  gpu-check  build the CUDA tests and CLI, print the command that runs them on a GPU machine
  mutants mutation testing (cargo-mutants) of the optimizers, layers, graph and CPU fast paths (`cargo xtask mutants --help`; hours, not in CI)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("test") => test(),
        Some("bench") => bench::bench(&args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("gpu-check") => gpu_check::gpu_check(&args[1..]),
        Some("mutants") => mutants::mutants(&args[1..]),
        Some("help") | Some("--help") | Some("-h") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cargo(args: &[&str]) -> Result<(), String> {
    eprintln!("$ cargo {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

/// The README's test command.
fn test() -> Result<(), String> {
    cargo(&["test", "--workspace", "--release"])
}

/// Exactly what CI runs: `.ci/run` (format check, clippy -D warnings, the
/// API docs with -D warnings, the test suite with its set-up, the quick
/// bench and the fuzz-target build).
fn ci() -> Result<(), String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    eprintln!("$ bash .ci/run");
    let status = Command::new("bash")
        .arg(root.join(".ci/run"))
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(".ci/run failed ({status})"))
    }
}
