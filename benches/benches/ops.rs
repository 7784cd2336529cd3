//! Op-level criterion benches on the CPU backend: `cpu/sgemm/{256..2048}`
//! and the W3 convolution layer `cpu/conv2d_w3/{forward,forward_backward}`.
//!
//! Throughput is declared as `Elements(flops)`, so criterion's
//! "Gelem/s" column reads as GFLOP/s. Threads: `$CNN_BENCH_THREADS` (default:
//! every core). With `$CNN_BENCH_QUICK` set (`cargo xtask bench --quick`)
//! sgemm 2048 is left out. Slow benches use flat sampling (the same
//! iteration count per sample), so ten samples cost ten iterations each.

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};

use cnn_benches::sys::bench_threads;
use cnn_benches::workloads::{ConvBufs, synthetic_values, w3_params};
use cnn_core::{GemmOps, GemmParams, MemoryOps};
use cnn_cpu::CpuBackend;

fn backend() -> CpuBackend {
    CpuBackend::with_threads(bench_threads()).expect("thread pool")
}

fn sgemm(c: &mut Criterion) {
    let be = backend();
    let mut group = c.benchmark_group("cpu/sgemm");
    let quick = std::env::var_os("CNN_BENCH_QUICK").is_some();
    let sizes: &[usize] = if quick {
        &[256, 512, 1024]
    } else {
        &[256, 512, 1024, 2048]
    };
    for &size in sizes {
        let p = GemmParams::new(size, size, size);
        let a = be.upload(&synthetic_values(size * size, 1)).unwrap();
        let b = be.upload(&synthetic_values(size * size, 2)).unwrap();
        let mut out = be.alloc_zeros(size * size).unwrap();
        // Elements = FLOPs: criterion's element rate is GFLOP/s.
        group.throughput(Throughput::Elements(2 * (size as u64).pow(3)));
        if size >= 1024 {
            group.sample_size(10).sampling_mode(SamplingMode::Flat);
        }
        group.bench_function(BenchmarkId::from_parameter(size), |bench| {
            bench.iter(|| be.gemm(&p, &a, &b, &mut out).unwrap());
        });
    }
    group.finish();
}

fn conv2d_w3(c: &mut Criterion) {
    let be = backend();
    let mut bufs = ConvBufs::new(&be, w3_params()).unwrap();
    let flops = bufs.p.forward_flops() as u64;
    let mut group = c.benchmark_group("cpu/conv2d_w3");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(flops));
    group.bench_function("forward", |bench| {
        bench.iter(|| bufs.forward(&be).unwrap());
    });
    // Forward, input gradient and weight gradient: three times the forward FLOPs.
    group.throughput(Throughput::Elements(3 * flops));
    group.bench_function("forward_backward", |bench| {
        bench.iter(|| bufs.forward_backward(&be).unwrap());
    });
    group.finish();
}

criterion_group!(benches, sgemm, conv2d_w3);
criterion_main!(benches);
