//! The shared conformance suite (the `cnn-testing` crate) on the CPU
//! backend: one test per op family, two worker threads so the parallel
//! paths run.

use cnn_cpu::CpuBackend;
use cnn_testing::conformance;

fn backend() -> CpuBackend {
    CpuBackend::with_threads(2).expect("a two-thread pool")
}

#[test]
fn memory() {
    conformance::check_memory(&backend());
}

#[test]
fn gemm() {
    conformance::check_gemm(&backend());
}

#[test]
fn conv2d() {
    conformance::check_conv2d(&backend());
}

#[test]
fn pooling() {
    conformance::check_pooling(&backend());
}

#[test]
fn activations() {
    conformance::check_activations(&backend());
}

#[test]
fn batch_norm() {
    conformance::check_batch_norm(&backend());
}

#[test]
fn batch_norm_relu() {
    conformance::check_batch_norm_relu(&backend());
}

#[test]
fn dropout() {
    conformance::check_dropout(&backend());
}

#[test]
fn losses() {
    conformance::check_losses(&backend());
}

#[test]
fn elementwise() {
    conformance::check_elementwise(&backend());
}

#[test]
fn optim_updates() {
    conformance::check_optim_updates(&backend());
}

#[test]
fn errors() {
    conformance::check_errors(&backend());
}
