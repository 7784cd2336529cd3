//! `cargo xtask mutants`: mutation testing with cargo-mutants (the check of
//! the checks, docs/validation.md's "Mutation testing"), scoped to the code
//! whose tests should pin every behaviour: the optimizers and schedules,
//! cnn-core's layers and graph, and the CPU backend's fast paths.
//!
//! Each scope is one `cargo mutants` run (two for `optim`) that mutates the
//! scope's files and runs only the test binaries that exercise them
//! (`--test-package` and `cargo test --lib --test NAME...`, built and run,
//! never the doctests), writing `target/mutants/<scope>/mutants.out/` (`caught.txt`,
//! `missed.txt`, `timeout.txt`, `unviable.txt`, `outcomes.json`).
//!
//! A mutant's cost is nearly all the rebuild of the mutated crate, the
//! crates above it and the test binaries, so they build in the workspace's
//! `mutants` profile (Cargo.toml: the test profile's opt-level 1,
//! dependencies at 2, no debug info, incremental, 256 codegen units, and
//! like release no debug assertions or overflow checks in the workspace)
//! rather than in release: about a tenth of the time per mutant.
//!
//! By default each run builds in a scratch copy of the tree that
//! cargo-mutants makes (without `target/`), with `CARGO_TARGET_DIR` set to
//! `target/mutants-build/`, so the dependencies are built once for every
//! run and the tree stays free to edit and build meanwhile (with `--jobs
//! N` each copy builds in its own `target/`, as cargo would serialize
//! builds that share one). `--in-place` mutates the tree itself (and
//! builds in its `target/`): nothing else may build or edit the tree until
//! it ends.
//!
//! Not part of CI: the whole of the three scopes takes many hours on a few
//! cores; `--sample N` runs a deterministic 1-in-N sample of each.
//! Needs `cargo install cargo-mutants --locked`.

use std::path::{Path, PathBuf};
use std::process::Command;

const HELP: &str = "\
cargo xtask mutants [--scope SCOPE]... [--list] [--sample N [--shard K]] [--no-baseline]
                    [--timeout SECONDS] [--in-place] [--jobs N] [--profile NAME] [-- ARGS...]

scopes (default: all three, in this order):
  optim   cnn-optim (rules, schedules, regularizers, wrappers): cnn-optim's tests;
          the CPU's fused update rules (crates/cnn-cpu/src/optim.rs): cnn-cpu's unit
          tests and conformance suite, cnn-optim's golden trajectories
  core    cnn-core's layers/ and graph/: cnn-core's tests, and cnn-cpu's unit tests,
          conformance, golden, graph, gradient, data-parallel and batch norm tests
  cpu     cnn-cpu's fast paths: conv/ (direct, im2col, Winograd), pool/ (2x2 SIMD
          max), gemm/, norm.rs: cnn-cpu's unit tests, conformance, fast_paths,
          winograd, golden, gradcheck and batch_norm_edges

--list          only count and list the mutants of each scope
--sample N      every Nth mutant of each scope (cargo mutants --shard K/N
                --sharding round-robin; deterministic)
--shard K       which of the N samples (default 0)
--no-baseline   skip the run of the tests on the unmutated tree (cargo-mutants'
                own baseline, or for runs that test other packages than the
                mutated one, which cargo-mutants' baseline leaves out, a plain
                `cargo test` of the same binaries first)
--timeout S     per-mutant test timeout in seconds (default per scope: optim 120,
                core 300, cpu 300)
--in-place      mutate and build in the tree itself (nothing else may touch it)
--jobs N        parallel builds in scratch copies, each with its own target/
                (default 1, sharing target/mutants-build; not with --in-place)
--profile NAME  cargo profile the mutants build in (default: mutants)
-- ARGS         passed to cargo mutants (e.g. `-- --re adam` or `-- --file crates/cnn-cpu/src/norm.rs`)

results: target/mutants/<scope>/mutants.out/{caught,missed,timeout,unviable}.txt
";

/// One `cargo mutants` invocation of a scope.
struct Run {
    /// The package mutated.
    package: &'static str,
    /// The files mutated (empty: all of the package's).
    files: &'static [&'static str],
    /// The packages whose tests run against each mutant.
    test_packages: &'static [&'static str],
    /// The test binaries run (`cargo test` target options): the unit tests
    /// and the integration tests that exercise the files, never doctests.
    test_targets: &'static [&'static str],
}

/// A scope: its runs and its default per-mutant test timeout in seconds
/// (a few times the tests' own time on a loaded 2-core machine).
struct Scope {
    name: &'static str,
    runs: &'static [Run],
    timeout: u64,
}

/// The scopes, in the order they run.
const SCOPES: &[Scope] = &[
    Scope {
        name: "optim",
        runs: &[
            Run {
                package: "cnn-optim",
                files: &[],
                test_packages: &["cnn-optim"],
                test_targets: &["--tests"],
            },
            Run {
                package: "cnn-cpu",
                files: &["crates/cnn-cpu/src/optim.rs"],
                test_packages: &["cnn-cpu", "cnn-optim"],
                test_targets: &[
                    "--lib",
                    "--test",
                    "conformance",
                    "--test",
                    "golden",
                    "--test",
                    "golden_modern",
                ],
            },
        ],
        timeout: 120,
    },
    Scope {
        name: "core",
        runs: &[Run {
            package: "cnn-core",
            files: &[
                "crates/cnn-core/src/layers/*",
                "crates/cnn-core/src/graph/*",
            ],
            test_packages: &["cnn-core", "cnn-cpu"],
            test_targets: &[
                "--lib",
                "--test",
                "model_counts",
                "--test",
                "spec_hostile",
                "--test",
                "spec_values",
                "--test",
                "conformance",
                "--test",
                "golden",
                "--test",
                "graph",
                "--test",
                "graph_memory",
                "--test",
                "gradcheck",
                "--test",
                "eval_gradients",
                "--test",
                "data_parallel",
                "--test",
                "batch_norm_edges",
            ],
        }],
        timeout: 300,
    },
    Scope {
        name: "cpu",
        runs: &[Run {
            package: "cnn-cpu",
            files: &[
                "crates/cnn-cpu/src/conv/**",
                "crates/cnn-cpu/src/pool/**",
                "crates/cnn-cpu/src/gemm/**",
                "crates/cnn-cpu/src/norm.rs",
            ],
            test_packages: &["cnn-cpu"],
            test_targets: &[
                "--lib",
                "--test",
                "conformance",
                "--test",
                "fast_paths",
                "--test",
                "winograd",
                "--test",
                "golden",
                "--test",
                "gradcheck",
                "--test",
                "batch_norm_edges",
            ],
        }],
        timeout: 300,
    },
];

struct Options {
    scopes: Vec<&'static Scope>,
    list: bool,
    in_place: bool,
    jobs: u32,
    timeout: Option<u64>,
    baseline: bool,
    /// `(k, n)`: the kth of n round-robin shards.
    sample: Option<(u32, u32)>,
    profile: String,
    extra: Vec<String>,
}

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a String, String> {
    it.next().ok_or(format!("{flag} needs a value"))
}

fn whole(v: &str, flag: &str) -> Result<u64, String> {
    v.parse()
        .map_err(|_| format!("{flag} expects a whole number, got `{v}`"))
}

fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut o = Options {
        scopes: Vec::new(),
        list: false,
        in_place: false,
        jobs: 1,
        timeout: None,
        baseline: true,
        sample: None,
        profile: "mutants".into(),
        extra: Vec::new(),
    };
    let mut sample_n = None;
    let mut shard = 0;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scope" | "--package" | "-p" => {
                let v = value(&mut it, a)?;
                let scope = SCOPES.iter().find(|s| s.name == v).ok_or(format!(
                    "unknown scope `{v}` (expected one of: {})",
                    scope_names()
                ))?;
                o.scopes.push(scope);
            }
            "--list" => o.list = true,
            "--in-place" => o.in_place = true,
            "--no-baseline" => o.baseline = false,
            "--jobs" | "-j" => {
                let v = value(&mut it, a)?;
                o.jobs = whole(v, "--jobs")?
                    .try_into()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("--jobs expects a positive whole number, got `{v}`"))?;
            }
            "--timeout" => {
                let v = value(&mut it, a)?;
                o.timeout = Some(whole(v, "--timeout")?).filter(|&t| t > 0);
                if o.timeout.is_none() {
                    return Err("--timeout expects a positive number of seconds".into());
                }
            }
            "--sample" => {
                let v = value(&mut it, a)?;
                let n: u32 = whole(v, "--sample")?
                    .try_into()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!(
                        "--sample expects a positive whole number, got `{v}`"
                    ))?;
                sample_n = Some(n);
            }
            "--shard" => {
                let v = value(&mut it, a)?;
                shard = whole(v, "--shard")?
                    .try_into()
                    .map_err(|_| format!("--shard {v} is too large"))?;
            }
            "--profile" => o.profile = value(&mut it, a)?.clone(),
            "--" => o.extra.extend(it.by_ref().cloned()),
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument `{other}`\n\n{HELP}")),
        }
    }
    match sample_n {
        Some(n) if shard >= n => {
            return Err(format!("--shard {shard} must be below --sample {n}"));
        }
        Some(n) => o.sample = Some((shard, n)),
        None if shard != 0 => return Err("--shard needs --sample".into()),
        None => {}
    }
    if o.in_place && o.jobs > 1 {
        return Err("--jobs needs scratch copies: not with --in-place".into());
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
fn mutants_args(o: &Options, scope: &Scope, run: &Run, out: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec!["mutants".into(), "--package".into(), run.package.into()];
    for f in run.files {
        args.push("--file".into());
        args.push((*f).into());
    }
    if let Some((k, n)) = o.sample {
        args.extend([
            "--shard".into(),
            format!("{k}/{n}"),
            "--sharding".into(),
            "round-robin".into(),
        ]);
    }
    if o.list {
        args.push("--list".into());
    } else {
        for t in run.test_packages {
            args.push("--test-package".into());
            args.push((*t).into());
        }
        for t in run.test_targets {
            // `--cargo-arg` reaches the build (`cargo test --no-run`) as
            // well as the test run, so only these binaries are built; `=`
            // keeps a value such as `--lib` from reading as an option.
            args.push(format!("--cargo-arg={t}"));
        }
        args.extend(["--profile".into(), o.profile.clone()]);
        if o.in_place {
            // One tree, so one job (cargo mutants refuses `--jobs` with
            // `--in-place`).
            args.push("--in-place".into());
        } else {
            args.extend([
                "--copy-target=false".into(),
                "--jobs".into(),
                o.jobs.to_string(),
            ]);
        }
        // cargo-mutants' own baseline tests only the mutated package (with
        // these target options, which may name another package's tests), so
        // a run that tests other packages gets its baseline from
        // `baseline_args` instead.
        if !o.baseline || !own_baseline(run) {
            args.extend(["--baseline".into(), "skip".into()]);
        }
        let timeout = o.timeout.unwrap_or(scope.timeout);
        args.extend(["--timeout".into(), timeout.to_string()]);
        args.push("--output".into());
        args.push(out.display().to_string());
    }
    args.extend(o.extra.iter().cloned());
    args
}

/// Whether cargo-mutants' baseline run covers `run`: it tests the mutated
/// package alone.
fn own_baseline(run: &Run) -> bool {
    run.test_packages == [run.package]
}

/// The arguments after `cargo` of the baseline of a run whose tests span
/// several packages: the same tests on the unmutated tree, in the same
/// profile.
fn baseline_args(o: &Options, run: &Run) -> Vec<String> {
    let mut args: Vec<String> = vec!["test".into(), "--profile".into(), o.profile.clone()];
    for t in run.test_packages {
        args.push("--package".into());
        args.push((*t).into());
    }
    args.extend(run.test_targets.iter().map(|t| t.to_string()));
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
        for (i, run) in scope.runs.iter().enumerate() {
            let out = out_dir(&root, scope.name, i);
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let command = |args: &[String]| {
                eprintln!("$ cargo {}", args.join(" "));
                let mut cmd = Command::new(&cargo);
                cmd.args(args).current_dir(&root);
                if !o.in_place && o.jobs == 1 {
                    // The scratch copies share one target directory, so the
                    // dependencies build once for every run (with several
                    // jobs each copy keeps its own: cargo would hold one
                    // lock over a shared one, one build at a time).
                    cmd.env(
                        "CARGO_TARGET_DIR",
                        root.join("target").join("mutants-build"),
                    );
                }
                cmd.status().map_err(|e| format!("cannot run cargo: {e}"))
            };
            if o.baseline && !o.list && !own_baseline(run) {
                let args = baseline_args(&o, run);
                if !command(&args)?.success() {
                    return Err(format!(
                        "the unmutated tests fail (`cargo {}`), so no mutant was tested",
                        args.join(" ")
                    ));
                }
            }
            let args = mutants_args(&o, scope, run, &out);
            let status = command(&args)?;
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
    fn scopes_map_to_scoped_runs_in_the_mutants_profile() {
        let o = parse(&strings(&[
            "--scope",
            "cpu",
            "--sample",
            "40",
            "--shard",
            "3",
            "--no-baseline",
            "--",
            "--re",
            "max2x2",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(o.scopes.len(), 1);
        let scope = o.scopes[0];
        let args = mutants_args(&o, scope, &scope.runs[0], Path::new("/t/cpu"));
        assert_eq!(
            args.join(" "),
            "mutants --package cnn-cpu --file crates/cnn-cpu/src/conv/** \
             --file crates/cnn-cpu/src/pool/** --file crates/cnn-cpu/src/gemm/** \
             --file crates/cnn-cpu/src/norm.rs --shard 3/40 --sharding round-robin \
             --test-package cnn-cpu --cargo-arg=--lib \
             --cargo-arg=--test --cargo-arg=conformance \
             --cargo-arg=--test --cargo-arg=fast_paths \
             --cargo-arg=--test --cargo-arg=winograd \
             --cargo-arg=--test --cargo-arg=golden \
             --cargo-arg=--test --cargo-arg=gradcheck \
             --cargo-arg=--test --cargo-arg=batch_norm_edges \
             --profile mutants --copy-target=false --jobs 1 --baseline skip \
             --timeout 300 --output /t/cpu --re max2x2"
        );
        let o = parse(&strings(&[
            "--in-place",
            "--timeout",
            "50",
            "--profile",
            "release",
        ]))
        .unwrap()
        .unwrap();
        let args = mutants_args(&o, o.scopes[0], &o.scopes[0].runs[0], Path::new("/t"));
        assert_eq!(
            args.join(" "),
            "mutants --package cnn-optim --test-package cnn-optim --cargo-arg=--tests \
             --profile release --in-place --timeout 50 --output /t"
        );
    }

    #[test]
    fn runs_across_packages_take_their_baseline_from_cargo_test() {
        let o = parse(&strings(&["--scope", "core"])).unwrap().unwrap();
        let run = &o.scopes[0].runs[0];
        assert!(!own_baseline(run));
        let args = mutants_args(&o, o.scopes[0], run, Path::new("/t"));
        assert!(args.join(" ").contains(" --baseline skip "));
        let baseline = baseline_args(&o, run).join(" ");
        assert!(
            baseline.starts_with(
                "test --profile mutants --package cnn-core --package cnn-cpu --lib --test model_counts"
            ),
            "{baseline}"
        );
        let o = parse(&strings(&["--scope", "cpu"])).unwrap().unwrap();
        let run = &o.scopes[0].runs[0];
        assert!(own_baseline(run));
        let args = mutants_args(&o, o.scopes[0], run, Path::new("/t"));
        assert!(!args.contains(&"--baseline".to_string()));
    }

    #[test]
    fn every_test_target_named_exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for scope in SCOPES {
            for run in scope.runs {
                let mut names = run.test_targets.iter();
                while let Some(t) = names.next() {
                    if *t != "--test" {
                        continue;
                    }
                    let name = names.next().unwrap();
                    let found = run.test_packages.iter().any(|p| {
                        root.join("crates")
                            .join(p)
                            .join("tests")
                            .join(format!("{name}.rs"))
                            .is_file()
                    });
                    assert!(
                        found,
                        "{}: no test `{name}` in {:?}",
                        scope.name, run.test_packages
                    );
                }
            }
        }
    }

    #[test]
    fn listing_runs_nothing_and_bad_arguments_are_refused() {
        let o = parse(&strings(&["--list", "--sample", "7"]))
            .unwrap()
            .unwrap();
        assert_eq!(o.scopes.len(), 3);
        let args = mutants_args(&o, o.scopes[0], &o.scopes[0].runs[0], Path::new("/t"));
        assert_eq!(
            args.join(" "),
            "mutants --package cnn-optim --shard 0/7 --sharding round-robin --list"
        );
        for bad in [
            &["--scope", "gpu"][..],
            &["--jobs", "0"],
            &["--frobnicate"],
            &["--timeout", "0"],
            &["--sample", "0"],
            &["--sample", "4", "--shard", "4"],
            &["--shard", "1"],
            &["--in-place", "--jobs", "2"],
        ] {
            assert!(parse(&strings(bad)).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            out_dir(Path::new("/r"), "optim", 1),
            Path::new("/r/target/mutants/optim-2")
        );
    }
}
