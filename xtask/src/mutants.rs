//! `cargo xtask mutants`: mutation testing with cargo-mutants (the check of
//! the checks, docs/validation.md's "Mutation testing"), scoped to the code
//! whose tests should pin every behaviour: the optimizers and schedules,
//! cnn-core's layers and graph, and the CPU backend's fast paths.
//!
//! Each scope is one `cargo mutants` run that mutates the scope's files and
//! runs only the tests that exercise them (`--test-package`), in the release
//! profile the suite uses, one job at a time, writing
//! `target/mutants/<scope>/mutants.out/` (`caught.txt`, `missed.txt`,
//! `timeout.txt`, `unviable.txt`, `outcomes.json`).
//!
//! By default the mutants are built in place (`--in-place`): the tree's own
//! `target/` is reused and nothing is copied (a copy of `target/` is several
//! GB). cargo-mutants puts each mutated file back after its test, but do
//! not edit the tree while a run is going; `--copy` builds in a scratch
//! copy instead (it copies `target/` too).
//!
//! Not part of CI: a whole run takes hours on a few cores. Needs
//! `cargo install cargo-mutants --locked`.

use std::path::{Path, PathBuf};
use std::process::Command;

const HELP: &str = "\
cargo xtask mutants [--scope SCOPE]... [--list] [--copy] [--jobs N] [--timeout SECONDS] [-- ARGS...]

scopes (default: all three, in this order):
  optim   cnn-optim (rules, schedules, regularizers, wrappers) and the CPU's
          fused update rules (crates/cnn-cpu/src/optim.rs); tests of cnn-optim
          (and cnn-cpu's for optim.rs)
  core    cnn-core's layers/ and graph/; tests of cnn-core and cnn-cpu
  cpu     cnn-cpu's fast paths: conv/ (direct, im2col), pool/ (2x2 SIMD max),
          gemm/, norm.rs; tests of cnn-cpu

--list         only count and list the mutants of each scope
--copy         build in a scratch copy instead of in place
--jobs N       parallel builds with --copy (default 1; in place there is one)
--timeout S    per-mutant test timeout (default: cargo-mutants' own, from the baseline)
-- ARGS        passed to cargo mutants (e.g. `-- --re adam` or `-- --file crates/cnn-cpu/src/norm.rs`)

results: target/mutants/<scope>/mutants.out/{caught,missed,timeout,unviable}.txt
";

/// One scope: a cargo mutants invocation's file filter and test packages.
struct Scope {
    name: &'static str,
    /// `(package, file globs)`: one cargo mutants run each.
    runs: &'static [(
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    )],
}

/// The scopes, in the order they run. Each run: the package mutated, the
/// files mutated (empty: all of the package's), the packages whose tests
/// are run against each mutant.
const SCOPES: &[Scope] = &[
    Scope {
        name: "optim",
        runs: &[
            ("cnn-optim", &[], &["cnn-optim"]),
            (
                "cnn-cpu",
                &["crates/cnn-cpu/src/optim.rs"],
                &["cnn-cpu", "cnn-optim"],
            ),
        ],
    },
    Scope {
        name: "core",
        runs: &[(
            "cnn-core",
            &[
                "crates/cnn-core/src/layers/*",
                "crates/cnn-core/src/graph/*",
            ],
            &["cnn-core", "cnn-cpu"],
        )],
    },
    Scope {
        name: "cpu",
        runs: &[(
            "cnn-cpu",
            &[
                "crates/cnn-cpu/src/conv/**",
                "crates/cnn-cpu/src/pool/**",
                "crates/cnn-cpu/src/gemm/**",
                "crates/cnn-cpu/src/norm.rs",
            ],
            &["cnn-cpu"],
        )],
    },
];

struct Options {
    scopes: Vec<&'static Scope>,
    list: bool,
    copy: bool,
    jobs: u32,
    timeout: Option<u64>,
    extra: Vec<String>,
}

fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut o = Options {
        scopes: Vec::new(),
        list: false,
        copy: false,
        jobs: 1,
        timeout: None,
        extra: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scope" | "--package" | "-p" => {
                let v = it.next().ok_or(format!("{a} needs a value"))?;
                let scope = SCOPES.iter().find(|s| s.name == v).ok_or(format!(
                    "unknown scope `{v}` (expected one of: {})",
                    scope_names()
                ))?;
                o.scopes.push(scope);
            }
            "--list" => o.list = true,
            "--copy" => o.copy = true,
            "--jobs" | "-j" => {
                let v = it.next().ok_or("--jobs needs a value")?;
                o.jobs = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("--jobs expects a positive whole number, got `{v}`"))?;
            }
            "--timeout" => {
                let v = it.next().ok_or("--timeout needs a value")?;
                o.timeout = Some(
                    v.parse()
                        .map_err(|_| format!("--timeout expects whole seconds, got `{v}`"))?,
                );
            }
            "--" => o.extra.extend(it.by_ref().cloned()),
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument `{other}`\n\n{HELP}")),
        }
    }
    if o.scopes.is_empty() {
        o.scopes = SCOPES.iter().collect();
    }
    Ok(Some(o))
}

fn scope_names() -> String {
    SCOPES.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// The arguments after `cargo` for one run of a scope.
fn mutants_args(
    o: &Options,
    package: &str,
    files: &[&str],
    tests: &[&str],
    out: &Path,
) -> Vec<String> {
    let mut args: Vec<String> = vec!["mutants".into(), "--package".into(), package.into()];
    for f in files {
        args.push("--file".into());
        args.push((*f).into());
    }
    if o.list {
        args.push("--list".into());
    } else {
        for t in tests {
            args.push("--test-package".into());
            args.push((*t).into());
        }
        args.extend(["--profile".into(), "release".into()]);
        // In place there is one tree, so one job (cargo mutants refuses
        // `--jobs` with `--in-place`).
        if o.copy {
            args.extend(["--jobs".into(), o.jobs.to_string()]);
        } else {
            args.push("--in-place".into());
        }
        if let Some(t) = o.timeout {
            args.extend(["--timeout".into(), t.to_string()]);
        }
        args.push("--output".into());
        args.push(out.display().to_string());
    }
    args.extend(o.extra.iter().cloned());
    args
}

/// Entry point: `args` follow `mutants`.
pub fn mutants(args: &[String]) -> Result<(), String> {
    let Some(o) = parse(args)? else {
        return Ok(());
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut failed = Vec::new();
    for scope in &o.scopes {
        for (i, (package, files, tests)) in scope.runs.iter().enumerate() {
            let out = out_dir(&root, scope.name, i);
            let args = mutants_args(&o, package, files, tests, &out);
            eprintln!("$ cargo {}", args.join(" "));
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(&args)
                .current_dir(&root)
                .status()
                .map_err(|e| format!("cannot run cargo: {e}"))?;
            // cargo mutants exits 2 when mutants were missed, 3 on timeouts:
            // findings to read, not a failure to run.
            match status.code() {
                Some(0) => {}
                Some(2) | Some(3) => failed.push(format!("{} ({})", scope.name, out.display())),
                _ => {
                    return Err(format!(
                        "`cargo {}` failed ({status}); is cargo-mutants installed (`cargo install cargo-mutants --locked`)?",
                        args.join(" ")
                    ));
                }
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "missed or timed-out mutants in: {} (see mutants.out/missed.txt and timeout.txt)",
            failed.join(", ")
        ))
    }
}

/// `target/mutants/<scope>` (a second run of the scope in `<scope>-<i>`).
fn out_dir(root: &Path, scope: &str, i: usize) -> PathBuf {
    let name = if i == 0 {
        scope.to_string()
    } else {
        format!("{scope}-{}", i + 1)
    };
    root.join("target").join("mutants").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scopes_map_to_scoped_release_in_place_runs() {
        let o = parse(&strings(&["--scope", "cpu", "--", "--re", "max2x2"]))
            .unwrap()
            .unwrap();
        assert_eq!(o.scopes.len(), 1);
        let (package, files, tests) = o.scopes[0].runs[0];
        let args = mutants_args(&o, package, files, tests, Path::new("/t/cpu"));
        assert_eq!(
            args.join(" "),
            "mutants --package cnn-cpu --file crates/cnn-cpu/src/conv/** \
             --file crates/cnn-cpu/src/pool/** --file crates/cnn-cpu/src/gemm/** \
             --file crates/cnn-cpu/src/norm.rs --test-package cnn-cpu --profile release \
             --in-place --output /t/cpu --re max2x2"
        );
    }

    #[test]
    fn listing_runs_nothing_and_bad_arguments_are_refused() {
        let o = parse(&strings(&["--list", "--copy"])).unwrap().unwrap();
        assert_eq!(o.scopes.len(), 3);
        let (package, files, tests) = o.scopes[0].runs[0];
        let args = mutants_args(&o, package, files, tests, Path::new("/t"));
        assert_eq!(args.join(" "), "mutants --package cnn-optim --list");
        assert!(parse(&strings(&["--scope", "gpu"])).is_err());
        assert!(parse(&strings(&["--jobs", "0"])).is_err());
        assert!(parse(&strings(&["--frobnicate"])).is_err());
        assert_eq!(
            out_dir(Path::new("/r"), "optim", 1),
            Path::new("/r/target/mutants/optim-2")
        );
    }
}
