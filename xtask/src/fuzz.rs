//! `cargo xtask fuzz`: the cargo-fuzz targets in `fuzz/` (one per parser of
//! outside data, see `fuzz/src/lib.rs`).
//!
//! - `cargo xtask fuzz --build`: build every target (what CI does).
//! - `cargo xtask fuzz --seconds N [TARGET...]`: run each target (default:
//!   all, as `cargo fuzz list` names them) for N seconds on its corpus
//!   (`fuzz/corpus/<target>`, grown by the run, git-ignored) and its seeds
//!   (`fuzz/seeds/<target>`), then print executions and findings per
//!   target. Fails when any target found a crash (its input is in
//!   `fuzz/artifacts/<target>/`).
//!
//! Needs `cargo install cargo-fuzz`. The targets build without a sanitizer
//! (`--sanitizer none`: the code under test is safe Rust; the targets'
//! own allocator catches oversized allocations) but with debug assertions
//! (`-a`: arithmetic overflow panics), and `RUSTC_BOOTSTRAP=1`
//! lets cargo-fuzz's unstable flags through on a stable toolchain.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const HELP: &str = "\
cargo xtask fuzz --build                 build every fuzz target
cargo xtask fuzz --seconds N [TARGET...] run each target (default: all) for N seconds
";

/// Entry point: `args` follow `fuzz`.
pub fn fuzz(args: &[String]) -> Result<(), String> {
    let mut seconds: Option<u64> = None;
    let mut build_only = false;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--build" => build_only = true,
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a value")?;
                seconds = Some(
                    v.parse()
                        .map_err(|_| format!("--seconds expects a whole number, got `{v}`"))?,
                );
            }
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(());
            }
            t if !t.starts_with('-') => targets.push(t.to_string()),
            other => return Err(format!("unknown flag `{other}`\n\n{HELP}")),
        }
    }
    let dir = fuzz_dir();
    if build_only {
        return cargo_fuzz(&dir, &["build", "--sanitizer", "none", "-O", "-a"]);
    }
    let Some(seconds) = seconds else {
        return Err(format!("give --build or --seconds N\n\n{HELP}"));
    };
    if targets.is_empty() {
        targets = list_targets(&dir)?;
    }
    cargo_fuzz(&dir, &["build", "--sanitizer", "none", "-O", "-a"])?;
    let mut report = Vec::new();
    for target in &targets {
        report.push(run_target(&dir, target, seconds)?);
    }
    println!("\n{:<26} {:>14}  result", "target", "executions");
    let mut failed = Vec::new();
    for r in &report {
        println!(
            "{:<26} {:>14}  {}",
            r.target,
            r.executions.map_or("?".into(), |n| n.to_string()),
            r.result
        );
        if !r.ok {
            failed.push(r.target.clone());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("fuzz findings in: {}", failed.join(", ")))
    }
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .join("fuzz")
}

fn cargo_fuzz_command(dir: &Path) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir).env("RUSTC_BOOTSTRAP", "1").arg("fuzz");
    cmd
}

fn cargo_fuzz(dir: &Path, args: &[&str]) -> Result<(), String> {
    eprintln!("$ cargo fuzz {} (in {})", args.join(" "), dir.display());
    let status = cargo_fuzz_command(dir)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`cargo fuzz {}` failed ({status}); is cargo-fuzz installed (`cargo install cargo-fuzz`)?",
            args.join(" ")
        ))
    }
}

fn list_targets(dir: &Path) -> Result<Vec<String>, String> {
    let out = cargo_fuzz_command(dir)
        .arg("list")
        .output()
        .map_err(|e| format!("cannot run cargo fuzz list: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`cargo fuzz list` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

struct TargetReport {
    target: String,
    executions: Option<u64>,
    ok: bool,
    result: String,
}

/// Run one target for `seconds`, echoing libFuzzer's output and keeping
/// its final statistics.
fn run_target(dir: &Path, target: &str, seconds: u64) -> Result<TargetReport, String> {
    let corpus = dir.join("corpus").join(target);
    std::fs::create_dir_all(&corpus)
        .map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
    let seeds = dir.join("seeds").join(target);
    let mut args = vec![
        "run".to_string(),
        "--sanitizer".into(),
        "none".into(),
        "-O".into(),
        "-a".into(),
        target.into(),
        corpus.display().to_string(),
    ];
    if seeds.is_dir() {
        args.push(seeds.display().to_string());
    }
    args.extend([
        "--".into(),
        format!("-max_total_time={seconds}"),
        "-print_final_stats=1".into(),
        "-rss_limit_mb=4096".into(),
        "-timeout=30".into(),
    ]);
    eprintln!("$ cargo fuzz {}", args.join(" "));
    let mut child = cargo_fuzz_command(dir)
        .args(&args)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    let mut executions = None;
    let mut artifact = None;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
                executions = n.trim().parse().ok();
            }
            if let Some(at) = line.find("Test unit written to ") {
                artifact = Some(line[at + "Test unit written to ".len()..].to_string());
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cargo fuzz {target}: {e}"))?;
    let ok = status.success();
    let result = match (ok, artifact) {
        (true, _) => "no findings".to_string(),
        (false, Some(a)) => format!("CRASH, input in {a}"),
        (false, None) => format!("failed ({status})"),
    };
    Ok(TargetReport {
        target: target.to_string(),
        executions,
        ok,
        result,
    })
}
