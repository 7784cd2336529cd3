//! The stride-2 convolutions of ResNet-20 (batch 128) old against new
//! (docs/performance.md, entry 39): each op of each layer timed in
//! alternating pairs, im2col + GEMM (`ConvAlgorithm::Gemm`, the path
//! before entry 39) then the polyphase kernels (`ConvAlgorithm::Direct`,
//! which forces them for every stride-2 layer, the 1x1 ones included),
//! `PAIRS` times (default 5), printing each pair's ratio and the median.
//! `CNN_BENCH_THREADS=2 cargo run --release -p cnn-benches --example
//! stride2_ops` (threads from `CNN_BENCH_THREADS` or every core; `OP_ITERS`,
//! default 10, calls per timing; `BATCHES`, default 3, see [`time`]).
//! `POLY_ONLY=1` times only the default choice (the polyphase kernels
//! for all four layers since entry 42; `CNN_CPU_CONV` forces another),
//! the fastest of `PAIRS` timings, to compare two builds run alternately;
//! `ONLY=TEXT` keeps the rows whose label contains `TEXT` (for `perf`).

use std::time::Instant;

use cnn_benches::sys::bench_threads;
use cnn_benches::workloads::synthetic_values;
use cnn_core::{Conv2dGeometry, Conv2dParams, ConvOps, MemoryOps};
use cnn_cpu::{ConvAlgorithm, CpuBackend};

const N: usize = 128;

/// The fastest of `BATCHES` (default 3) batches' mean seconds per call
/// (`OP_ITERS` calls in all): on a loaded machine `BATCHES=OP_ITERS`
/// gives the fastest single call, the least disturbed by other work.
fn time(mut f: impl FnMut()) -> f64 {
    let iters: usize = std::env::var("OP_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let batches = env("BATCHES", 3).max(1);
    f();
    let per_batch = iters.div_ceil(batches).max(1);
    (0..batches)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            start.elapsed().as_secs_f64() / per_batch as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let threads = bench_threads();
    let new = CpuBackend::with_threads(threads)
        .unwrap()
        .with_conv_algorithm(ConvAlgorithm::Direct);
    let old = CpuBackend::with_threads(threads)
        .unwrap()
        .with_conv_algorithm(ConvAlgorithm::Gemm);
    let default = CpuBackend::with_threads(threads).unwrap();
    let pairs = env("PAIRS", 5);
    let poly_only = env("POLY_ONLY", 0) == 1;
    let only = std::env::var("ONLY").unwrap_or_default();
    println!("{threads} threads, batch {N}, {pairs} alternating pairs (gemm, then polyphase)");
    // (c_in, c_out, side, kernel): ResNet-20's stride-2 layers.
    for (ci, co, side, k) in [
        (16, 32, 32, 3),
        (32, 64, 16, 3),
        (16, 32, 32, 1),
        (32, 64, 16, 1),
    ] {
        let geo = Conv2dGeometry::new(co, k).stride(2).padding(k / 2);
        let p = Conv2dParams::new(N, ci, side, side, &geo).unwrap();
        let buf = |len: usize, seed: u64| new.upload(&synthetic_values(len, seed)).unwrap();
        let (x, w, dy) = (buf(p.x_len(), 1), buf(p.w_len(), 2), buf(p.y_len(), 3));
        let (mut y, mut dx, mut dw) = (buf(p.y_len(), 0), buf(p.x_len(), 0), buf(p.w_len(), 0));
        let flops = p.forward_flops();
        for op in ["forward", "input grad", "weight grad"] {
            let label = format!("conv {ci}->{co} {k}x{k} s2 @{side} {op:<11}");
            if !label.contains(&only) {
                continue;
            }
            let mut run = |be: &CpuBackend| match op {
                "forward" => time(|| be.conv2d_forward(&p, &x, &w, None, &mut y).unwrap()),
                "input grad" => time(|| be.conv2d_backward_input(&p, &dy, &w, &mut dx).unwrap()),
                _ => time(|| be.conv2d_backward_weight(&p, &x, &dy, &mut dw).unwrap()),
            };
            if poly_only {
                let best = (0..pairs)
                    .map(|_| run(&default))
                    .fold(f64::INFINITY, f64::min);
                println!(
                    "{label} default {:>6.3} ms ({:>5.1} GFLOP/s)",
                    best * 1e3,
                    flops / best / 1e9
                );
                continue;
            }
            let mut ratios = Vec::new();
            let (mut best_old, mut best_new) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..pairs {
                let (a, b) = (run(&old), run(&new));
                best_old = best_old.min(a);
                best_new = best_new.min(b);
                ratios.push(a / b);
            }
            ratios.sort_by(f64::total_cmp);
            let med = ratios[ratios.len() / 2];
            println!(
                "{label} gemm {:>6.3} ms ({:>5.1} GFLOP/s)  \
                 poly {:>6.3} ms ({:>5.1} GFLOP/s)  gemm/poly median {med:.2} (pairs {:.2}..{:.2})",
                best_old * 1e3,
                flops / best_old / 1e9,
                best_new * 1e3,
                flops / best_new / 1e9,
                ratios[0],
                ratios[ratios.len() - 1],
            );
        }
    }
}
