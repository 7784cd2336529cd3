//! The shared conformance suite (the `cnn-testing` crate) on the CUDA
//! backend, one test per op family. Skips without a GPU (printing why)
//! unless `CNN_REQUIRE_CUDA=1`.

mod common;

use cnn_testing::conformance;

#[test]
fn memory() {
    if let Some(be) = common::cuda("memory") {
        conformance::check_memory(&be);
    }
}

#[test]
fn gemm() {
    if let Some(be) = common::cuda("gemm") {
        conformance::check_gemm(&be);
    }
}

#[test]
fn conv2d() {
    if let Some(be) = common::cuda("conv2d") {
        conformance::check_conv2d(&be);
    }
}

#[test]
fn pooling() {
    if let Some(be) = common::cuda("pooling") {
        conformance::check_pooling(&be);
    }
}

#[test]
fn activations() {
    if let Some(be) = common::cuda("activations") {
        conformance::check_activations(&be);
    }
}

#[test]
fn batch_norm() {
    if let Some(be) = common::cuda("batch_norm") {
        conformance::check_batch_norm(&be);
    }
}

#[test]
fn batch_norm_relu() {
    if let Some(be) = common::cuda("batch_norm_relu") {
        conformance::check_batch_norm_relu(&be);
    }
}

#[test]
fn dropout() {
    if let Some(be) = common::cuda("dropout") {
        conformance::check_dropout(&be);
    }
}

#[test]
fn losses() {
    if let Some(be) = common::cuda("losses") {
        conformance::check_losses(&be);
    }
}

#[test]
fn elementwise() {
    if let Some(be) = common::cuda("elementwise") {
        conformance::check_elementwise(&be);
    }
}

#[test]
fn optim_updates() {
    if let Some(be) = common::cuda("optim_updates") {
        conformance::check_optim_updates(&be);
    }
}

#[test]
fn errors() {
    if let Some(be) = common::cuda("errors") {
        conformance::check_errors(&be);
    }
}
