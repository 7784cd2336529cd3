//! The three ops (forward, input gradient, weight gradient) of the
//! stride-1 3x3 layers of ResNet-20 and the built-in VGG with 16 or more
//! channels (Winograd's candidates) at batch 128, per algorithm, in alternating rounds (docs/performance.md, entry
//! 41). `cargo run --release -p cnn-benches --example wino_ops` (threads
//! from `CNN_BENCH_THREADS` or every core; `OP_ITERS`, default 10, calls
//! per timing; `WINO_ROUNDS`, default 3; `WINO_LAYER`, e.g. `64->64 @8`,
//! `WINO_OPS`, e.g. `fwd,dx`, and `WINO_ALGS`, e.g. `winograd,direct`,
//! narrow it). `WINO_REPEAT=N` instead runs one layer's ops N times with
//! the first algorithm only (a target for `perf record`).

use std::time::Instant;

use cnn_benches::sys::bench_threads;
use cnn_benches::workloads::synthetic_values;
use cnn_core::{Conv2dGeometry, Conv2dParams, ConvOps, MemoryOps};
use cnn_cpu::{ConvAlgorithm, CpuBackend};

const N: usize = 128;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether the comma-separated list in `var` (empty: everything) names `what`.
fn wanted(var: &str, what: &str) -> bool {
    let list = std::env::var(var).unwrap_or_default();
    list.is_empty() || list.split(',').any(|w| w == what)
}

/// The fastest of three batches' mean seconds per call.
fn time(iters: usize, mut f: impl FnMut()) -> f64 {
    f();
    let per_batch = iters.div_ceil(3).max(1);
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            start.elapsed().as_secs_f64() / per_batch as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let threads = bench_threads();
    let iters = env("OP_ITERS", 10);
    let rounds = env("WINO_ROUNDS", 3);
    let repeat = env("WINO_REPEAT", 0);
    let algs: Vec<(&str, Option<ConvAlgorithm>)> = [
        ("winograd", Some(ConvAlgorithm::Winograd)),
        ("winograd2x2", Some(ConvAlgorithm::Winograd2x2)),
        ("direct", Some(ConvAlgorithm::Direct)),
        ("nowinograd", Some(ConvAlgorithm::NoWinograd)),
        ("default", None),
    ]
    .into_iter()
    .filter(|(name, _)| wanted("WINO_ALGS", name))
    .collect();
    let layer_filter = std::env::var("WINO_LAYER").unwrap_or_default();
    let backends: Vec<CpuBackend> = algs
        .iter()
        .map(|(_, a)| {
            let be = CpuBackend::with_threads(threads).unwrap();
            match a {
                Some(a) => be.with_conv_algorithm(*a),
                None => be,
            }
        })
        .collect();
    println!("batch {N}, {threads} threads, ms per call");
    print!("{:<26}", "layer op");
    for (name, _) in &algs {
        print!(" {name:>11}");
    }
    println!();
    // (c_in, c_out, side) of the stride-1 3x3 layers (padding 1).
    let layers = [
        (64, 64, 8),
        (64, 64, 16),
        (64, 128, 8),
        (128, 128, 8),
        (32, 32, 16),
        (32, 32, 32),
        (32, 64, 16),
        (16, 16, 32),
    ];
    for (ci, co, side) in layers {
        if !format!("{ci}->{co} @{side}").contains(&layer_filter) {
            continue;
        }
        let geo = Conv2dGeometry::new(co, 3).padding(1);
        let p = Conv2dParams::new(N, ci, side, side, &geo).unwrap();
        let be0 = &backends[0];
        let x = be0.upload(&synthetic_values(p.x_len(), 1)).unwrap();
        let w = be0.upload(&synthetic_values(p.w_len(), 2)).unwrap();
        let dy = be0.upload(&synthetic_values(p.y_len(), 3)).unwrap();
        let mut y = be0.upload(&vec![0.0; p.y_len()]).unwrap();
        let mut dx = be0.upload(&vec![0.0; p.x_len()]).unwrap();
        let mut dw = be0.upload(&vec![0.0; p.w_len()]).unwrap();
        let mut run = |be: &CpuBackend, op: &str| match op {
            "fwd" => be.conv2d_forward(&p, &x, &w, None, &mut y).unwrap(),
            "dx" => be.conv2d_backward_input(&p, &dy, &w, &mut dx).unwrap(),
            _ => be.conv2d_backward_weight(&p, &x, &dy, &mut dw).unwrap(),
        };
        let ops: Vec<&str> = ["fwd", "dx", "dw"]
            .into_iter()
            .filter(|op| wanted("WINO_OPS", op))
            .collect();
        if repeat > 0 {
            for _ in 0..repeat {
                for op in &ops {
                    run(be0, op);
                }
            }
            return;
        }
        for round in 0..rounds {
            let mut sums = vec![0.0f64; backends.len()];
            for op in &ops {
                print!("{:<26}", format!("{ci}->{co} @{side} {op} r{round}"));
                for (i, be) in backends.iter().enumerate() {
                    let ms = 1e3 * time(iters, || run(be, op));
                    sums[i] += ms;
                    print!(" {ms:>11.2}");
                }
                println!();
            }
            print!("{:<26}", format!("{ci}->{co} @{side} sum r{round}"));
            for s in &sums {
                print!(" {s:>11.2}");
            }
            println!();
        }
    }
}
