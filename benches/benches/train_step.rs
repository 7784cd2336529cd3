//! `cpu/lenet5_train_step/64`: one LeNet-5 training step at batch 64
//! (zero grads, forward, softmax cross-entropy, backward, SGD momentum
//! update) on MNIST-shaped synthetic data. Throughput is declared in
//! training FLOPs (criterion's "Gelem/s" reads as GFLOP/s).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use cnn_benches::Trainer;
use cnn_benches::sys::bench_threads;
use cnn_benches::workloads::{BATCH, SEED, synthetic_values, train_flops_per_sample};
use cnn_core::models::{ModelOptions, lenet5};
use cnn_cpu::CpuBackend;

fn lenet5_train_step(c: &mut Criterion) {
    let be = CpuBackend::with_threads(bench_threads()).expect("thread pool");
    let spec = lenet5(&ModelOptions::new([1, 28, 28], 10)).unwrap();
    let flops = train_flops_per_sample(&spec).unwrap() * BATCH as f64;
    let mut t = Trainer::new(
        &be,
        spec,
        SEED,
        Trainer::<CpuBackend>::sgd_config().unwrap(),
    )
    .unwrap();
    let x = synthetic_values(BATCH * 28 * 28, 1);
    let y: Vec<u32> = (0..BATCH as u32).map(|i| i % 10).collect();
    let mut group = c.benchmark_group("cpu/lenet5_train_step");
    group.throughput(Throughput::Elements(flops as u64));
    group.bench_function("64", |bench| {
        bench.iter(|| t.step(&x, &y).unwrap());
    });
    group.finish();
}

criterion_group!(benches, lenet5_train_step);
criterion_main!(benches);
