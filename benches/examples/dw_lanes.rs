//! The weight gradient of the stride-1 3x3 layers of ResNet-20 and the
//! built-in VGG at batch 128, per algorithm, timed in alternating rounds
//! (docs/performance.md, entry 38): `winograd` (F(4x4,3x3), the default
//! before entry 38 from 16 channels), `nowinograd` (the direct kernels'
//! 8-lane partial sums or im2col + GEMM), `direct` (the output-channel-lane
//! kernel) and the default. `cargo run --release -p cnn-benches --example
//! dw_lanes` (threads from `CNN_BENCH_THREADS` or every core; `OP_ITERS`,
//! default 10, calls per timing; `DW_ROUNDS`, default 3; `DW_LAYER`, e.g.
//! `16->16 @32`, and `DW_ALGS`, e.g. `winograd,direct`, narrow it).

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
    let rounds = env("DW_ROUNDS", 3);
    let wanted = std::env::var("DW_ALGS").unwrap_or_default();
    let algs: Vec<(&str, Option<ConvAlgorithm>)> = [
        ("winograd", Some(ConvAlgorithm::Winograd)),
        ("nowinograd", Some(ConvAlgorithm::NoWinograd)),
        ("direct", Some(ConvAlgorithm::Direct)),
        ("default", None),
    ]
    .into_iter()
    .filter(|(name, _)| wanted.is_empty() || wanted.split(',').any(|w| w == *name))
    .collect();
    let layer_filter = std::env::var("DW_LAYER").unwrap_or_default();
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
    println!("weight gradient, batch {N}, {threads} threads, ms per call");
    print!("{:<22}", "layer");
    for (name, _) in &algs {
        print!(" {name:>11}");
    }
    println!(" {:>16}", "first/second");
    // (c_in, c_out, side) of the stride-1 3x3 layers (padding 1).
    let layers = [
        (3, 16, 32),
        (16, 16, 32),
        (32, 32, 16),
        (64, 64, 8),
        (3, 32, 32),
        (32, 32, 32),
        (32, 64, 16),
        (64, 64, 16),
        (64, 128, 8),
        (128, 128, 8),
    ];
    for (ci, co, side) in layers {
        if !format!("{ci}->{co} @{side}").contains(&layer_filter) {
            continue;
        }
        let geo = Conv2dGeometry::new(co, 3).padding(1);
        let p = Conv2dParams::new(N, ci, side, side, &geo).unwrap();
        let be0 = &backends[0];
        let x = be0.upload(&synthetic_values(p.x_len(), 1)).unwrap();
        let dy = be0.upload(&synthetic_values(p.y_len(), 3)).unwrap();
        let mut dw = be0.upload(&vec![0.0; p.w_len()]).unwrap();
        for round in 0..rounds {
            print!("{:<22}", format!("{ci}->{co} @{side} r{round}"));
            let mut ms = vec![0.0f64; backends.len()];
            for (i, be) in backends.iter().enumerate() {
                ms[i] = 1e3
                    * time(iters, || {
                        be.conv2d_backward_weight(&p, &x, &dy, &mut dw).unwrap()
                    });
                print!(" {:>11.2}", ms[i]);
            }
            if ms.len() >= 2 {
                println!(" {:>16.2}", ms[0] / ms[1]);
            } else {
                println!();
            }
        }
    }
}
