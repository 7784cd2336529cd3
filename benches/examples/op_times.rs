//! Per-op timings of a LeNet-5 step's heaviest ops at batch 64, and of
//! W3's convolution phase by phase (for
//! docs/performance.md): `cargo run --release -p cnn-benches --example op_times`.

use std::time::Instant;

use cnn_benches::sys::bench_threads;
use cnn_benches::workloads::synthetic_values;
use cnn_core::{
    Activation, ActivationOps, Conv2dGeometry, Conv2dParams, ConvOps, MemoryOps, Pool2dGeometry,
    Pool2dParams, PoolOps,
};
use cnn_cpu::CpuBackend;

/// Prints the fastest of ten batches' mean time per call. Set `OP_ITERS` (default 200) and `OP_FILTER` (a substring of the op
/// name) to run under `valgrind --tool=callgrind`.
fn time(name: &str, mut f: impl FnMut()) {
    if std::env::var("OP_FILTER").is_ok_and(|f| !name.contains(f.as_str())) {
        return;
    }
    f();
    let iters: usize = std::env::var("OP_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // The fastest of 10 batches: on a shared machine the minimum is the
    // figure least disturbed by other jobs.
    let per_batch = iters.div_ceil(10).max(1);
    let us = (0..10)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            start.elapsed().as_secs_f64() / per_batch as f64 * 1e6
        })
        .fold(f64::INFINITY, f64::min);
    println!("{name:<36} {us:>9.1} us");
}

fn main() {
    let be = CpuBackend::with_threads(bench_threads()).unwrap();
    let n = 64;
    let c1 = Conv2dParams::new(n, 1, 28, 28, &Conv2dGeometry::new(6, 5).padding(2)).unwrap();
    let c2 = Conv2dParams::new(n, 6, 14, 14, &Conv2dGeometry::new(16, 5)).unwrap();
    let p1 = Pool2dParams::new(n, 6, 28, 28, &Pool2dGeometry::new(2)).unwrap();
    let buf = |len: usize, seed: u64| be.upload(&synthetic_values(len, seed)).unwrap();
    let (x, w1, b1, mut y1) = (
        buf(c1.x_len(), 1),
        buf(c1.w_len(), 2),
        buf(6, 3),
        buf(c1.y_len(), 0),
    );
    let (mut dw1, dy1) = (buf(c1.w_len(), 0), buf(c1.y_len(), 4));
    let (q1, w2, b2, mut y2) = (
        buf(c2.x_len(), 5),
        buf(c2.w_len(), 6),
        buf(16, 7),
        buf(c2.y_len(), 0),
    );
    let (mut dq1, mut dw2, dy2) = (buf(c2.x_len(), 0), buf(c2.w_len(), 0), buf(c2.y_len(), 8));
    let (mut a1, mut pq, mut idx) = (
        buf(c1.y_len(), 0),
        buf(p1.y_len(), 0),
        be.alloc_indices(p1.y_len()).unwrap(),
    );
    time("conv1 forward", || {
        be.conv2d_forward(&c1, &x, &w1, Some(&b1), &mut y1).unwrap()
    });
    time("conv1 backward_weight", || {
        be.conv2d_backward_weight(&c1, &x, &dy1, &mut dw1).unwrap()
    });
    time("relu conv1", || {
        be.activation_forward(Activation::Relu, &y1, &mut a1)
            .unwrap()
    });
    time("max_pool pool1", || {
        be.max_pool2d_forward(&p1, &a1, &mut pq, &mut idx).unwrap()
    });
    let (dpq, mut da1, mut dy1b) = (buf(p1.y_len(), 9), buf(c1.y_len(), 0), buf(c1.y_len(), 0));
    time("max_pool backward pool1", || {
        be.max_pool2d_backward(&p1, &dpq, &idx, &mut da1).unwrap()
    });
    time("relu backward conv1", || {
        be.activation_backward(Activation::Relu, &y1, &a1, &da1, &mut dy1b)
            .unwrap()
    });
    time("conv2 forward", || {
        be.conv2d_forward(&c2, &q1, &w2, Some(&b2), &mut y2)
            .unwrap()
    });
    time("conv2 backward_weight", || {
        be.conv2d_backward_weight(&c2, &q1, &dy2, &mut dw2).unwrap()
    });
    time("conv2 backward_input", || {
        be.conv2d_backward_input(&c2, &dy2, &w2, &mut dq1).unwrap()
    });
    // W3's layer (batch 32, 64->64, 3x3, pad 1, 32x32), phase by phase.
    let c3 = cnn_benches::workloads::w3_params();
    let (x3, w3, b3, mut y3) = (
        buf(c3.x_len(), 9),
        buf(c3.w_len(), 10),
        buf(64, 11),
        buf(c3.y_len(), 0),
    );
    let (dy3, mut dx3, mut dw3) = (buf(c3.y_len(), 12), buf(c3.x_len(), 0), buf(c3.w_len(), 0));
    time("w3 forward", || {
        be.conv2d_forward(&c3, &x3, &w3, Some(&b3), &mut y3)
            .unwrap()
    });
    time("w3 backward_input", || {
        be.conv2d_backward_input(&c3, &dy3, &w3, &mut dx3).unwrap()
    });
    time("w3 backward_weight", || {
        be.conv2d_backward_weight(&c3, &x3, &dy3, &mut dw3).unwrap()
    });
}
