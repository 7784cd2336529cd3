//! `cnn-workloads`: run one benchmark workload in this process and print its
//! result as one JSON object on stdout (what `cargo xtask bench` collects).
//!
//! ```text
//! cnn-workloads <sgemm|w1|w2|w3|w5|w6|w7|w5gpu|w8> [--threads N]
//!               [--backend cpu|cuda] [--precision f32|tf32|bf16|f16]
//!               [--runs R] [--quick] [--mnist DIR] [--size N] [--batch N]
//! ```
//!
//! One workload per process, so the reported peak memory (`VmHWM`) is that
//! workload's alone. `--precision` makes the backend handle with
//! `Backend::with_precision`; a backend without that mode is one line and
//! exit status 2 (the CPU backend computes in f32 only). Results in a mode
//! other than f32 carry it in their names (`w8_airbench94_train_bf16`), as
//! `xtask/torch_bench.py`'s do.

use std::path::PathBuf;
use std::process::ExitCode;

use cnn_benches::sys::{bench_threads, peak_rss_bytes};
use cnn_benches::workloads::{self, Measurement};
use cnn_benches::{BoxError, Result};
use cnn_core::{Backend, CnnError, Precision};
use cnn_cpu::CpuBackend;
use serde_json::json;

const HELP: &str = "\
cnn-workloads <workload> [options]

workloads:
  sgemm   W4: square sgemm (--size, default 1024), GFLOP/s
  w1      LeNet-5, one MNIST epoch (batch 64, SGD 0.05 momentum 0.9), test accuracy
  w2      the article's classifier, 200 steps of batch 64 on synthetic 3x32x32
  w3      one conv2d (32x64x32x32, 64 out, 3x3 pad 1): forward and forward+backward
  w5      ResNet-20 training steps, batch 128 of synthetic 3x32x32, SGD 0.1 momentum 0.9
  w6      the built-in vgg, the same steps with SGD 0.01 momentum 0.9
  w7      ResNet-20 evaluation-mode forwards, batch 256
  w5gpu   W5-GPU: w5's steps at batch 512
  w8      W8: the built-in airbench94, training steps of batch 1024, SGD 0.01
          Nesterov momentum 0.85; also the seconds of a 50,000-image epoch

options:
  --threads N       worker threads (default: $CNN_BENCH_THREADS or every core)
  --backend NAME    cpu (default) or cuda (needs a build with `--features cuda`)
  --precision P     f32 (default), tf32, bf16 or f16: what the backend computes
                    convolutions and linear layers in (exit 2 where it has no such mode)
  --runs R          repetitions (default 3; sgemm and w3: 5)
  --quick           one run; W1 over 5,000 images; W5/W6/W5-GPU/W8 3 steps, W7 2
                    batches; shorter timings
  --mnist DIR       MNIST directory (default: $CNN_MNIST_DIR)
  --size N          sgemm size
  --batch N         batch size of w5gpu and w8 (default 512 and 1024)
";

#[derive(Debug)]
struct Args {
    workload: String,
    threads: usize,
    backend: String,
    runs: Option<usize>,
    quick: bool,
    mnist: Option<PathBuf>,
    size: usize,
    precision: Precision,
    batch: Option<usize>,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        workload: String::new(),
        threads: bench_threads(),
        backend: "cpu".into(),
        runs: None,
        quick: false,
        mnist: std::env::var_os("CNN_MNIST_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
        size: 1024,
        precision: Precision::F32,
        batch: None,
    };
    let num = |v: Option<String>, what: &str| -> std::result::Result<usize, String> {
        v.and_then(|s| s.parse().ok())
            .filter(|&n: &usize| n > 0)
            .ok_or_else(|| format!("{what} needs a positive integer"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--threads" => args.threads = num(it.next(), "--threads")?,
            "--runs" => args.runs = Some(num(it.next(), "--runs")?),
            "--size" => args.size = num(it.next(), "--size")?,
            "--batch" => args.batch = Some(num(it.next(), "--batch")?),
            "--precision" => {
                args.precision = it
                    .next()
                    .ok_or("--precision needs a mode (f32, tf32, bf16, f16)")?
                    .parse()
                    .map_err(|e: CnnError| e.to_string())?
            }
            "--backend" => args.backend = it.next().ok_or("--backend needs a name")?,
            "--mnist" => args.mnist = Some(it.next().ok_or("--mnist needs a directory")?.into()),
            "--quick" => args.quick = true,
            "-h" | "--help" => return Err(String::new()),
            w if !w.starts_with('-') && args.workload.is_empty() => args.workload = w.into(),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    if args.workload.is_empty() {
        return Err(String::new());
    }
    if args.batch.is_some() && !matches!(args.workload.as_str(), "w5gpu" | "w8") {
        return Err(format!(
            "--batch applies to w5gpu and w8, not `{}`",
            args.workload
        ));
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if e.is_empty() {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            eprintln!("cnn-workloads: {e}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    let result = match args.backend.as_str() {
        "cpu" => CpuBackend::with_threads(args.threads)
            .map_err(BoxError::from)
            .and_then(|be| run(&be.with_precision(args.precision)?, &args)),
        #[cfg(feature = "cuda")]
        "cuda" => cnn_cuda::CudaBackend::new()
            .map_err(BoxError::from)
            .and_then(|be| {
                eprintln!(
                    "cnn-workloads: CUDA device {} ({})",
                    be.device_name(),
                    be.arch()
                );
                let be = be.with_precision(args.precision)?;
                be.warm_up()?;
                run(&be, &args)
            }),
        #[cfg(not(feature = "cuda"))]
        "cuda" => {
            eprintln!(
                "cnn-workloads: the CUDA backend is not compiled in; build with \
                 `--features cuda` (cargo xtask bench --backend cuda does) or run with --backend cpu"
            );
            return ExitCode::from(3);
        }
        other => Err(format!("unknown backend `{other}` (cpu or cuda)").into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The mode is named where it is not f32 (the line stays as it
            // was for every run before precision modes).
            if args.precision == Precision::F32 {
                eprintln!("cnn-workloads {}: {e}", args.workload);
            } else {
                eprintln!("cnn-workloads {} ({}): {e}", args.workload, args.precision);
            }
            // A mode the backend does not have is a bad argument.
            let unsupported = matches!(
                e.downcast_ref::<CnnError>(),
                Some(CnnError::UnsupportedPrecision { .. })
            );
            if unsupported {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run<B: Backend>(backend: &B, args: &Args) -> Result<()> {
    let runs = |full: usize| {
        if args.quick {
            1
        } else {
            args.runs.unwrap_or(full)
        }
    };
    let secs = if args.quick { 0.3 } else { 1.0 };
    let results: Vec<Measurement> = match args.workload.as_str() {
        "sgemm" => vec![workloads::w4_sgemm(backend, args.size, runs(5), secs)?],
        "w1" => {
            let dir = args.mnist.as_ref().ok_or(
                "no MNIST directory: pass --mnist DIR or set CNN_MNIST_DIR \
                 (the IDX files of the MNIST training and test sets)",
            )?;
            let data = workloads::load_mnist(dir)?;
            let limit = args.quick.then_some(5000);
            vec![workloads::w1_lenet_mnist(backend, &data, limit, runs(3))?]
        }
        "w2" => {
            let steps = if args.quick { 50 } else { 200 };
            vec![workloads::w2_article(backend, steps, runs(3))?]
        }
        "w3" => workloads::w3_conv(backend, runs(5), secs)?.into(),
        "w5" | "w6" => {
            let steps = if args.quick { 3 } else { 20 };
            let model = if args.workload == "w5" {
                "resnet20"
            } else {
                "vgg"
            };
            vec![workloads::real_size_train(backend, model, steps, runs(3))?]
        }
        "w7" => {
            let batches = if args.quick { 2 } else { 10 };
            vec![workloads::w7_resnet20_infer(backend, batches, runs(3))?]
        }
        "w5gpu" | "w8" => {
            let steps = if args.quick { 3 } else { 20 };
            vec![workloads::gpu_train(
                backend,
                &args.workload,
                args.batch,
                steps,
                runs(3),
            )?]
        }
        other => {
            return Err(format!(
                "unknown workload `{other}` (sgemm, w1, w2, w3, w5, w6, w7, w5gpu, w8)"
            )
            .into());
        }
    };
    let mut results = results;
    if args.precision != Precision::F32 {
        for m in &mut results {
            m.name = format!("{}_{}", m.name, args.precision);
        }
    }
    let out = json!({
        "framework": "cnn",
        "workload": args.workload,
        "backend": backend.name(),
        "precision": args.precision.name(),
        "threads": args.threads,
        "quick": args.quick,
        "peak_rss_bytes": peak_rss_bytes(),
        // cnn-cuda does not report its device memory (yet): null, as on the CPU.
        "peak_device_bytes": null,
        "results": results.iter().map(Measurement::to_json).collect::<Vec<_>>(),
    });
    println!("{out}");
    Ok(())
}
