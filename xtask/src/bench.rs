//! `cargo xtask bench`: the criterion benches, the end-to-end workloads
//! (one process each, so peak memory is per workload), optionally the same
//! workloads in PyTorch, and a report in `target/bench/report.{md,json}`.
//!
//! The workloads run in `cnn-workloads` (crate `cnn-benches`) and in
//! `xtask/torch_bench.py`; both print one JSON object per process:
//! `{framework, workload, backend, precision, threads, peak_rss_bytes,
//! peak_device_bytes, results: [{name, unit, median, min, max, values,
//! seconds_median, gflops_median, extra}]}`.
//!
//! With `--backend cuda` the GPU workloads (W3, W5-GPU, W8) also run in
//! each `--precision` mode (f32, tf32, bf16, f16 by default), cnn's and
//! PyTorch's back to back; a mode a side cannot run is a note in the
//! report, not the end of the run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use serde_json::{Value, json};

pub const HELP: &str = "\
cargo xtask bench [--quick] [--threads N] [--backend cpu|cuda] [--precision LIST]
                  [--compare-torch [--python PATH]] [--no-criterion]

  --quick          fewer criterion samples, one run per workload, W1 over 5,000 images,
                   W5/W6/W5-GPU/W8 3 steps, W7 2 batches (CI runs this; a few minutes once built)
  --threads N      worker threads for every bench (default: every core); with N > 1,
                   W1 and W5 also run on one thread for the scaling figures
  --backend NAME   backend of the end-to-end workloads (cpu, cuda); cuda builds
                   cnn-workloads with --features cuda and runs PyTorch on the GPU
                   too; the criterion benches stay on the CPU. On cuda the GPU workloads
                   W5-GPU (ResNet-20, batch 512) and W8 (airbench94, batch 1024) run too
  --precision LIST modes the GPU workloads W3, W5-GPU and W8 run in, comma-separated
                   from f32, tf32, bf16, f16 (default with cuda: all four; the other
                   workloads run in f32); the CPU backend has f32 only
  --compare-torch  run xtask/torch_bench.py on the same workloads and thread count,
                   print the ratio per workload (skipped, with a note, without torch)
  --python PATH    the Python for --compare-torch (default python3)
  --no-criterion   skip the criterion benches

MNIST for W1: $CNN_MNIST_DIR, else ../shared/data/mnist beside the repository;
without it W1 is skipped. Writes target/bench/report.md and report.json.
";

#[derive(Debug)]
struct Opts {
    quick: bool,
    threads: usize,
    backend: String,
    compare_torch: bool,
    python: String,
    criterion: bool,
    /// The modes of the GPU workloads; `None`: every mode on cuda, f32 on the CPU.
    precisions: Option<Vec<&'static str>>,
}

/// The precision modes, in the order `--precision` lists them.
const PRECISIONS: [&str; 4] = ["f32", "tf32", "bf16", "f16"];

/// `--precision`'s comma-separated list, each mode once, in [`PRECISIONS`]' order.
fn parse_precisions(list: &str) -> Result<Vec<&'static str>, String> {
    let mut modes = Vec::new();
    for m in list.split(',') {
        let mode = PRECISIONS
            .into_iter()
            .find(|p| *p == m.trim())
            .ok_or_else(|| format!("--precision: `{m}` is not one of f32, tf32, bf16, f16"))?;
        modes.push(mode);
    }
    Ok(PRECISIONS
        .into_iter()
        .filter(|p| modes.contains(p))
        .collect())
}

impl Opts {
    /// The modes the GPU workloads run in.
    fn precisions(&self) -> Vec<&'static str> {
        match (&self.precisions, self.backend.as_str()) {
            (Some(p), _) => p.clone(),
            (None, "cuda") => PRECISIONS.to_vec(),
            (None, _) => vec!["f32"],
        }
    }
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        quick: false,
        threads: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        backend: "cpu".into(),
        compare_torch: false,
        python: "python3".into(),
        criterion: true,
        precisions: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |what: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{what} needs a value\n\n{HELP}"))
        };
        match a.as_str() {
            "--quick" => o.quick = true,
            "--compare-torch" => o.compare_torch = true,
            "--no-criterion" => o.criterion = false,
            "--threads" => {
                o.threads = value("--threads")?
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n > 0)
                    .ok_or("--threads needs a positive integer")?
            }
            "--backend" => {
                o.backend = value("--backend")?;
                if o.backend != "cpu" && o.backend != "cuda" {
                    return Err(format!("unknown backend `{}` (cpu or cuda)", o.backend));
                }
            }
            "--python" => o.python = value("--python")?,
            "--precision" => o.precisions = Some(parse_precisions(&value("--precision")?)?),
            "-h" | "--help" => return Err(HELP.into()),
            other => return Err(format!("unknown option `{other}`\n\n{HELP}")),
        }
    }
    if o.backend == "cpu" && o.precisions().iter().any(|p| *p != "f32") {
        return Err(
            "--precision other than f32 needs --backend cuda (the CPU backend computes in f32)"
                .into(),
        );
    }
    Ok(o)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
}

fn mnist_dir(root: &Path) -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("CNN_MNIST_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    let d = root.join("../shared/data/mnist");
    d.is_dir().then(|| d.canonicalize().unwrap_or(d))
}

/// Run a command, echoing its stdout; returns stdout.
fn run_capture(cmd: &mut Command, echo: bool) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    eprintln!("$ {shown}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let mut out = String::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| e.to_string())?;
            if echo {
                println!("{line}");
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(out)
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

fn cargo_cmd() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The last line of `out` that parses as a JSON object.
fn last_json(out: &str) -> Option<Value> {
    out.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(Value::is_object)
}

fn git_commit(root: &Path) -> String {
    Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
        + if git_dirty(root) { " (dirty)" } else { "" }
}

fn git_dirty(root: &Path) -> bool {
    Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(root)
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false)
}

fn date_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            let secs = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!("unix {secs}")
        })
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// One workload process's JSON, or `None` with a note printed.
struct Runner<'a> {
    opts: &'a Opts,
    bin: PathBuf,
    mnist: Option<PathBuf>,
}

impl Runner<'_> {
    fn ours(&self, w: &Workload) -> Result<Value, String> {
        let (workload, threads) = (w.name, w.threads);
        let mut cmd = Command::new(&self.bin);
        cmd.arg(workload)
            .args(["--threads", &threads.to_string()])
            .args(["--backend", &self.opts.backend]);
        if w.precision != "f32" {
            cmd.args(["--precision", w.precision]);
        }
        if self.opts.quick {
            cmd.arg("--quick");
        }
        if let Some(d) = &self.mnist {
            cmd.arg("--mnist").arg(d);
        }
        let out = run_capture(&mut cmd, false)?;
        last_json(&out).ok_or_else(|| format!("no JSON result from cnn-workloads {workload}"))
    }

    fn torch(&self, w: &Workload) -> Result<Value, String> {
        let (workload, threads) = (w.name, w.threads);
        let mut cmd = Command::new(&self.opts.python);
        cmd.arg(root().join("xtask/torch_bench.py"))
            .arg(workload)
            .args(["--threads", &threads.to_string()])
            .args(["--device", &self.opts.backend]);
        if w.precision != "f32" {
            cmd.args(["--precision", w.precision]);
        }
        if self.opts.quick {
            cmd.arg("--quick");
        }
        if let Some(d) = &self.mnist {
            cmd.arg("--mnist").arg(d);
        }
        let out = run_capture(&mut cmd, false)?;
        last_json(&out).ok_or_else(|| format!("no JSON result from torch_bench.py {workload}"))
    }
}

/// One workload process: `cnn-workloads NAME --threads T [--precision P]`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Workload {
    name: &'static str,
    threads: usize,
    precision: &'static str,
}

/// The workloads of a run, in order: the CPU list (with the one-thread
/// scaling runs), or on cuda the same in f32 plus W5-GPU and W8, then W3,
/// W5-GPU and W8 in each other mode.
fn workload_list(opts: &Opts, mnist: bool) -> Vec<Workload> {
    let t = opts.threads;
    let cpu = opts.backend == "cpu";
    let plain = |name, threads| Workload {
        name,
        threads,
        precision: "f32",
    };
    let mut list = vec![plain("sgemm", t)];
    if mnist {
        list.push(plain("w1", t));
        if t > 1 && cpu {
            list.push(plain("w1", 1));
        }
    }
    list.push(plain("w2", t));
    let modes = opts.precisions();
    if modes.contains(&"f32") || cpu {
        list.push(plain("w3", t));
    }
    list.push(plain("w5", t));
    if t > 1 && cpu {
        list.push(plain("w5", 1));
    }
    list.push(plain("w6", t));
    list.push(plain("w7", t));
    if !cpu {
        for precision in modes {
            let gpu: &[&'static str] = if precision == "f32" {
                &["w5gpu", "w8"]
            } else {
                &["w3", "w5gpu", "w8"]
            };
            for &name in gpu {
                list.push(Workload {
                    name,
                    threads: t,
                    precision,
                });
            }
        }
    }
    list
}

/// Whether `python -c "import torch"` works.
fn torch_available(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import torch"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Criterion results written since `since`: `(id, median ns, elements per iteration)`.
fn criterion_results(dir: &Path, since: SystemTime) -> Vec<(String, f64, Option<f64>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "benchmark.json")
                && p.parent().is_some_and(|q| q.ends_with("new"))
            {
                let fresh = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .map(|t| t >= since)
                    .unwrap_or(false);
                if !fresh {
                    continue;
                }
                let read = |f: &Path| {
                    std::fs::read_to_string(f)
                        .ok()
                        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                };
                let (Some(bench), Some(est)) =
                    (read(&p), read(&p.with_file_name("estimates.json")))
                else {
                    continue;
                };
                let id = bench["full_id"].as_str().unwrap_or("?").to_string();
                let median = est["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN);
                let elems = bench["throughput"]["Elements"].as_f64();
                found.push((id, median, elems));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

fn fmt_bytes(b: Option<f64>) -> String {
    b.map_or("-".into(), |b| format!("{:.0} MB", b / 1e6))
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// `1.23x`, or `-` where either side is missing.
fn fmt_ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}x")
    } else {
        "-".into()
    }
}

/// Every `(process JSON, result JSON)` pair of a set of process outputs.
fn results(procs: &[Value]) -> Vec<(&Value, &Value)> {
    procs
        .iter()
        .flat_map(|p| {
            p["results"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |r| (p, r))
        })
        .collect()
}

fn find<'a>(procs: &'a [Value], name: &str, threads: u64) -> Option<&'a Value> {
    results(procs)
        .into_iter()
        .find(|(p, r)| r["name"] == name && p["threads"].as_u64() == Some(threads))
        .map(|(_, r)| r)
}

pub fn bench(args: &[String]) -> Result<(), String> {
    let opts = parse(args)?;
    let root = root();
    let target = target_dir(&root);
    let out_dir = target.join("bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let started = Instant::now();
    let since = SystemTime::now();
    let threads = opts.threads.to_string();

    // 1. Criterion benches.
    let mut criterion = Vec::new();
    if opts.criterion {
        let mut cmd = cargo_cmd();
        cmd.current_dir(&root)
            .args(["bench", "-p", "cnn-benches", "--benches", "--"])
            .env("CNN_BENCH_THREADS", &threads);
        if opts.quick {
            cmd.env("CNN_BENCH_QUICK", "1").args([
                "--warm-up-time",
                "0.3",
                "--measurement-time",
                "1",
                "--sample-size",
                "10",
            ]);
        }
        run_capture(&mut cmd, true)?;
        criterion = criterion_results(&target.join("criterion"), since);
    }

    // 2. The workload binary.
    let mut build = cargo_cmd();
    build.current_dir(&root).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "cnn-benches",
        "--bin",
        "cnn-workloads",
    ]);
    if opts.backend == "cuda" {
        build.args(["--features", "cuda"]);
    }
    run_capture(&mut build, true)?;
    let mnist = mnist_dir(&root);
    let runner = Runner {
        opts: &opts,
        bin: target.join("release/cnn-workloads"),
        mnist: mnist.clone(),
    };
    let mut notes: Vec<String> = Vec::new();
    if opts.quick {
        notes.push("quick mode: one run per workload, W1 over the first 5,000 shuffled images, W2 50 steps, W5/W6/W5-GPU/W8 3 steps, W7 2 batches; not comparable to full runs".into());
    }
    if mnist.is_none() {
        let note =
            "W1 skipped: no MNIST (set CNN_MNIST_DIR or put the IDX files in ../shared/data/mnist)";
        eprintln!("xtask bench: {note}");
        notes.push(note.into());
    }
    let workloads = workload_list(&opts, mnist.is_some());

    // 3. Each workload, then (with --compare-torch) the same in PyTorch
    // right after it: the machine's speed drifts over minutes on a shared
    // host, and back-to-back pairs keep that drift out of the ratios.
    let with_torch = opts.compare_torch && torch_available(&opts.python);
    if opts.compare_torch && !with_torch {
        let note = format!(
            "PyTorch comparison skipped: `{} -c \"import torch\"` failed (torch is not installed for that Python)",
            opts.python
        );
        eprintln!("xtask bench: {note}");
        notes.push(note);
    }
    if with_torch {
        notes.push("each workload ran in cnn, then in PyTorch right after it".into());
    }
    let mut ours = Vec::new();
    let mut torch = Vec::new();
    for wl in &workloads {
        let (w, t, p) = (wl.name, wl.threads, wl.precision);
        match runner.ours(wl) {
            Ok(v) => {
                eprintln!("  {w} {p} ({t} threads): {}", summary_line(&v));
                ours.push(v);
            }
            // A precision mode the backend lacks (or a GPU workload that
            // fails) is noted per mode; the f32 workloads stop the run as
            // before.
            Err(e) if p != "f32" || matches!(w, "w5gpu" | "w8") => {
                eprintln!("xtask bench: {w} {p}: {e}");
                notes.push(format!("cnn {w} {p} failed: {e}"));
            }
            Err(e) => return Err(e),
        }
        if !with_torch {
            continue;
        }
        match runner.torch(wl) {
            Ok(v) => {
                eprintln!("  torch {w} {p} ({t} threads): {}", summary_line(&v));
                torch.push(v);
            }
            Err(e) => {
                eprintln!("xtask bench: torch {w} {p}: {e}");
                notes.push(format!("torch {w} {p} failed: {e}"));
            }
        }
    }

    // 4. Report.
    let peak = find(&ours, "sgemm_1024", opts.threads as u64)
        .and_then(|r| r["median"].as_f64())
        .filter(|v| *v > 0.0);
    let meta = json!({
        "commit": git_commit(&root),
        "date": date_utc(),
        "cpu": cpu_model(),
        "threads": opts.threads,
        "backend": opts.backend,
        "precisions": opts.precisions(),
        "gpu": torch.iter().find_map(|p| p["gpu"].as_str()),
        "quick": opts.quick,
        "gemm_peak_gflops": peak,
        "seconds": started.elapsed().as_secs_f64(),
    });
    let report = json!({
        "meta": meta,
        "workloads": ours,
        "torch": torch,
        "criterion": criterion.iter().map(|(id, ns, el)| json!({
            "id": id, "median_ns": ns,
            "gflops": el.map(|e| e / ns),
        })).collect::<Vec<_>>(),
        "notes": notes,
    });
    let md = markdown(&report, &ours, &torch, &criterion, peak, &opts);
    let json_path = out_dir.join("report.json");
    let md_path = out_dir.join("report.md");
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n",
    )
    .map_err(|e| format!("{}: {e}", json_path.display()))?;
    std::fs::write(&md_path, &md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    println!("\n{md}");
    eprintln!(
        "xtask bench: wrote {} and {} ({:.0} s)",
        md_path.display(),
        json_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn summary_line(v: &Value) -> String {
    results(std::slice::from_ref(v))
        .iter()
        .map(|(_, r)| {
            format!(
                "{} {} {}",
                r["name"].as_str().unwrap_or("?"),
                fmt_num(r["median"].as_f64().unwrap_or(f64::NAN)),
                r["unit"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn markdown(
    report: &Value,
    ours: &[Value],
    torch: &[Value],
    criterion: &[(String, f64, Option<f64>)],
    peak: Option<f64>,
    opts: &Opts,
) -> String {
    let m = &report["meta"];
    let mut s = String::new();
    s.push_str("# cnn benchmark report\n\n");
    s.push_str(&format!(
        "- commit: {}\n- date: {}\n- machine: {}, {} threads used, backend {}\n- GEMM peak (sgemm 1024, this run): {}\n\n",
        m["commit"].as_str().unwrap_or("?"),
        m["date"].as_str().unwrap_or("?"),
        m["cpu"].as_str().unwrap_or("?"),
        opts.threads,
        opts.backend,
        peak.map_or("-".into(), |p| format!("{p:.1} GFLOP/s")),
    ));
    if let Some(gpu) = m["gpu"].as_str() {
        s.push_str(&format!(
            "- GPU (as PyTorch names it): {gpu}; precision modes of W3, W5-GPU, W8: {}\n\n",
            opts.precisions().join(", ")
        ));
    }
    s.push_str("## Workloads\n\nMedian of the runs, (min-max); % peak = achieved GFLOP/s over the sgemm 1024 figure above.\n\n");
    s.push_str("| workload | threads | median | min-max | unit | GFLOP/s | % peak | peak RSS | notes |\n|---|---|---|---|---|---|---|---|---|\n");
    for (p, r) in results(ours) {
        let gf = r["gflops_median"].as_f64().unwrap_or(f64::NAN);
        let pct = peak.map_or("-".into(), |pk| format!("{:.0}%", 100.0 * gf / pk));
        let extra = r["extra"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| format!("{k} {}", fmt_num(v.as_f64().unwrap_or(f64::NAN))))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let secs = r["seconds_median"].as_f64().unwrap_or(f64::NAN);
        s.push_str(&format!(
            "| {} | {} | {} | {}-{} | {} | {} | {} | {} | {:.4} s/run; {} |\n",
            r["name"].as_str().unwrap_or("?"),
            p["threads"],
            fmt_num(r["median"].as_f64().unwrap_or(f64::NAN)),
            fmt_num(r["min"].as_f64().unwrap_or(f64::NAN)),
            fmt_num(r["max"].as_f64().unwrap_or(f64::NAN)),
            r["unit"].as_str().unwrap_or(""),
            fmt_num(gf),
            pct,
            fmt_bytes(p["peak_rss_bytes"].as_f64()),
            secs,
            extra
        ));
    }
    let t = opts.threads as u64;
    for (label, name) in [("W1", "w1_lenet_mnist"), ("W5", "w5_resnet20_train")] {
        let median = |threads| find(ours, name, threads).and_then(|r| r["median"].as_f64());
        if let (true, Some(a), Some(b)) = (t > 1, median(t), median(1)) {
            s.push_str(&format!(
                "\n{label} scaling, {t} threads vs 1: {:.2}x (target >= 1.7x)\n",
                a / b
            ));
        }
    }
    if !torch.is_empty() {
        s.push_str("\n## Against PyTorch (same run, same threads, each PyTorch workload right after ours)\n\nRatio = cnn / PyTorch of the median (higher is better for both units); time ratio = cnn time / PyTorch time.\n\n");
        let device = opts.backend == "cuda";
        s.push_str("| workload | threads | cnn | PyTorch | unit | ratio | time ratio | cnn RSS | PyTorch RSS |");
        s.push_str(if device {
            " cnn device peak | PyTorch device peak |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
        } else {
            "\n|---|---|---|---|---|---|---|---|---|\n"
        });
        for (p, r) in results(torch) {
            let name = r["name"].as_str().unwrap_or("?");
            let th = p["threads"].as_u64().unwrap_or(0);
            // A mode cnn refused still shows PyTorch's figure, cnn's as "-".
            let mine = find(ours, name, th).unwrap_or(&Value::Null);
            let mine_proc = ours
                .iter()
                .find(|q| {
                    q["threads"].as_u64() == Some(th)
                        && results(std::slice::from_ref(*q))
                            .iter()
                            .any(|(_, x)| x["name"] == name)
                })
                .unwrap_or(&Value::Null);
            let (a, b) = (
                mine["median"].as_f64().unwrap_or(f64::NAN),
                r["median"].as_f64().unwrap_or(f64::NAN),
            );
            s.push_str(&format!(
                "| {name} | {th} | {} | {} | {} | {} | {} | {} | {} |",
                fmt_num(a),
                fmt_num(b),
                r["unit"].as_str().unwrap_or(""),
                fmt_ratio(a / b),
                fmt_ratio(b / a),
                fmt_bytes(mine_proc["peak_rss_bytes"].as_f64()),
                fmt_bytes(p["peak_rss_bytes"].as_f64()),
            ));
            if device {
                // cnn-cuda reports no device memory yet: "-" on its side.
                s.push_str(&format!(
                    " {} | {} |",
                    fmt_bytes(mine_proc["peak_device_bytes"].as_f64()),
                    fmt_bytes(p["peak_device_bytes"].as_f64()),
                ));
            }
            s.push('\n');
        }
    }
    if !criterion.is_empty() {
        s.push_str("\n## Criterion (median per iteration)\n\n| bench | median | GFLOP/s |\n|---|---|---|\n");
        for (id, ns, el) in criterion {
            s.push_str(&format!(
                "| {id} | {:.3} ms | {} |\n",
                ns / 1e6,
                el.map_or("-".into(), |e| format!("{:.1}", e / ns))
            ));
        }
    }
    if let Some(notes) = report["notes"].as_array().filter(|n| !n.is_empty()) {
        s.push_str("\n## Notes\n\n");
        for n in notes {
            s.push_str(&format!("- {}\n", n.as_str().unwrap_or("")));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options() {
        let a: Vec<String> = [
            "--quick",
            "--threads",
            "2",
            "--compare-torch",
            "--python",
            "py",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let o = parse(&a).unwrap();
        assert!(o.quick && o.compare_torch);
        assert_eq!((o.threads, o.python.as_str()), (2, "py"));
        assert!(parse(&["--threads".into(), "0".into()]).is_err());
        assert!(parse(&["--backend".into(), "tpu".into()]).is_err());
        assert_eq!(
            parse(&["--backend".into(), "cuda".into()]).unwrap().backend,
            "cuda"
        );
    }

    fn opts(args: &[&str]) -> Result<Opts, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn precision_lists_parse_in_order_and_need_cuda_beyond_f32() {
        let o = opts(&["--backend", "cuda", "--precision", "f16,bf16,f16"]).unwrap();
        assert_eq!(o.precisions(), ["bf16", "f16"]);
        assert_eq!(
            opts(&["--backend", "cuda"]).unwrap().precisions(),
            PRECISIONS
        );
        assert_eq!(opts(&[]).unwrap().precisions(), ["f32"]);
        assert_eq!(opts(&["--precision", "f32"]).unwrap().precisions(), ["f32"]);
        let err = opts(&["--precision", "bf16"]).unwrap_err();
        assert!(err.contains("needs --backend cuda"), "{err}");
        let err = opts(&["--backend", "cuda", "--precision", "fp8"]).unwrap_err();
        assert!(err.contains("`fp8` is not one of"), "{err}");
    }

    #[test]
    fn cuda_runs_the_gpu_workloads_in_every_mode_and_the_cpu_list_is_unchanged() {
        let names = |o: &Opts, mnist| {
            workload_list(o, mnist)
                .iter()
                .map(|w| format!("{}:{}:{}", w.name, w.threads, w.precision))
                .collect::<Vec<_>>()
        };
        let cpu = opts(&["--threads", "2"]).unwrap();
        assert_eq!(
            names(&cpu, true),
            [
                "sgemm:2:f32",
                "w1:2:f32",
                "w1:1:f32",
                "w2:2:f32",
                "w3:2:f32",
                "w5:2:f32",
                "w5:1:f32",
                "w6:2:f32",
                "w7:2:f32"
            ]
        );
        let cuda = opts(&["--threads", "2", "--backend", "cuda"]).unwrap();
        let list = names(&cuda, false);
        assert_eq!(
            &list[..6],
            [
                "sgemm:2:f32",
                "w2:2:f32",
                "w3:2:f32",
                "w5:2:f32",
                "w6:2:f32",
                "w7:2:f32"
            ]
        );
        let mut gpu = vec!["w5gpu:2:f32".to_string(), "w8:2:f32".to_string()];
        for p in ["tf32", "bf16", "f16"] {
            for w in ["w3", "w5gpu", "w8"] {
                gpu.push(format!("{w}:2:{p}"));
            }
        }
        assert_eq!(&list[6..], gpu.as_slice());
        // Without f32 among the modes, W3 runs only in the modes named.
        let bf16 = opts(&["--backend", "cuda", "--precision", "bf16", "--threads", "1"]).unwrap();
        let list = names(&bf16, false);
        assert_eq!(list.iter().filter(|w| w.starts_with("w3:")).count(), 1);
        assert_eq!(
            &list[list.len() - 3..],
            ["w3:1:bf16", "w5gpu:1:bf16", "w8:1:bf16"]
        );
    }

    #[test]
    fn a_mode_cnn_refused_keeps_pytorchs_row_with_device_peaks() {
        let o = opts(&["--backend", "cuda", "--threads", "1"]).unwrap();
        let proc = |framework: &str, name: &str, median: f64, device: Value| {
            json!({"framework": framework, "threads": 1, "peak_rss_bytes": 2e8,
                   "peak_device_bytes": device, "gpu": "NVIDIA H100",
                   "results": [{"name": name, "unit": "img/s", "median": median}]})
        };
        let ours = vec![proc("cnn", "w8_airbench94_train", 30_000.0, Value::Null)];
        let torch = vec![
            proc("torch", "w8_airbench94_train", 20_000.0, json!(3e9)),
            proc("torch", "w8_airbench94_train_bf16", 50_000.0, json!(2e9)),
        ];
        let report = json!({"meta": {"gpu": "NVIDIA H100"}, "notes": []});
        let md = markdown(&report, &ours, &torch, &[], None, &o);
        assert!(md.contains("- GPU (as PyTorch names it): NVIDIA H100; precision modes of W3, W5-GPU, W8: f32, tf32, bf16, f16"), "{md}");
        assert!(
            md.contains("| cnn device peak | PyTorch device peak |"),
            "{md}"
        );
        assert!(
            md.contains("| w8_airbench94_train | 1 | 30000 | 20000 | img/s | 1.50x | 0.67x | 200 MB | 200 MB | - | 3000 MB |"),
            "{md}"
        );
        assert!(
            md.contains("| w8_airbench94_train_bf16 | 1 | - | 50000 | img/s | - | - | - | 200 MB | - | 2000 MB |"),
            "{md}"
        );
    }

    #[test]
    fn last_json_skips_noise() {
        let v = last_json("warming up\n{\"a\": 1}\ndone\n").unwrap();
        assert_eq!(v["a"], 1);
        assert!(last_json("nothing").is_none());
    }
}
