//! Criterion bench of the stride-1 3x3 convolutions of ResNet-20 and the
//! built-in VGG at batch 128, per algorithm (`default` (the backend's own
//! choice), `direct`, `gemm`, `winograd` F(4x4,3x3), `winograd2x2`
//! F(2x2,3x3)) on 1 and 2 threads: `cpu/conv3x3/{c_in}x{c_out}@{side}/
//! {algorithm}/{threads}t/{forward,backward_input,backward_weight}`.
//!
//! Throughput is declared as `Elements(flops)` of the direct algorithm
//! (`2 n c_in c_out 9 h w`), so criterion's "Gelem/s" reads as effective
//! GFLOP/s for every algorithm alike. `CNN_BENCH_LAYERS=16x16@32,...`
//! picks layers, `CNN_BENCH_ALGS=gemm,winograd` algorithms and
//! `CNN_BENCH_THREADS=1,2` thread counts. Run: `cargo bench -p cnn-cpu
//! --bench conv3x3`; entry 32 of docs/performance.md quotes it.

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use std::time::Duration;

use cnn_core::{Conv2dGeometry, Conv2dParams, ConvOps};
use cnn_cpu::{ConvAlgorithm, CpuBackend};

/// `(c_in, c_out, side)` of the layers at batch 128.
const LAYERS: [(usize, usize, usize); 6] = [
    (16, 16, 32),
    (32, 32, 16),
    (64, 64, 8),
    (32, 32, 32),
    (64, 64, 16),
    (128, 128, 8),
];

const BATCH: usize = 128;

fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + seed * 104_729) % 1013) as f32 / 506.5) - 1.0)
        .collect()
}

fn list(var: &str) -> Option<Vec<String>> {
    std::env::var(var)
        .ok()
        .map(|v| v.split(',').map(str::to_owned).collect())
}

fn conv3x3(c: &mut Criterion) {
    let layers = list("CNN_BENCH_LAYERS");
    let algs = list("CNN_BENCH_ALGS").unwrap_or_else(|| {
        ["default", "direct", "gemm", "winograd", "winograd2x2"]
            .map(String::from)
            .to_vec()
    });
    let threads: Vec<usize> = list("CNN_BENCH_THREADS")
        .map(|v| v.iter().filter_map(|t| t.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2]);
    for (c_in, c_out, side) in LAYERS {
        let name = format!("{c_in}x{c_out}@{side}");
        if layers.as_ref().is_some_and(|l| !l.contains(&name)) {
            continue;
        }
        let p = Conv2dParams::new(
            BATCH,
            c_in,
            side,
            side,
            &Conv2dGeometry::new(c_out, 3).padding(1),
        )
        .expect("valid geometry");
        let (x, w, dy) = (
            values(p.x_len(), 1),
            values(p.w_len(), 2),
            values(p.y_len(), 3),
        );
        let mut y = vec![0.0; p.y_len()];
        let mut dx = vec![0.0; p.x_len()];
        let mut dw = vec![0.0; p.w_len()];
        let mut group = c.benchmark_group(format!("cpu/conv3x3/{name}"));
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .throughput(Throughput::Elements(p.forward_flops() as u64));
        for alg in &algs {
            for &t in &threads {
                let mut be = CpuBackend::with_threads(t).expect("thread pool");
                if alg != "default" {
                    be = be.with_conv_algorithm(
                        ConvAlgorithm::from_name(alg).expect("an algorithm name"),
                    );
                }
                let id = |op: &str| BenchmarkId::new(format!("{alg}/{t}t"), op);
                group.bench_function(id("forward"), |b| {
                    b.iter(|| be.conv2d_forward(&p, &x, &w, None, &mut y).unwrap())
                });
                group.bench_function(id("backward_input"), |b| {
                    b.iter(|| be.conv2d_backward_input(&p, &dy, &w, &mut dx).unwrap())
                });
                group.bench_function(id("backward_weight"), |b| {
                    b.iter(|| be.conv2d_backward_weight(&p, &x, &dy, &mut dw).unwrap())
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, conv3x3);
criterion_main!(benches);
