//! Batch norm's hyperparameters in a model spec are checked where the spec
//! is built: `eps` must be finite and positive, `momentum` in [0, 1]
//! (PyTorch's `BatchNorm2d` takes the same ranges); anything else is an
//! `InvalidValue` naming the layer's key, and the bounds themselves are
//! accepted. (Mutation testing found the `eps` rule unpinned: with `&&`
//! turned into `||` a zero or negative `eps` passed.)

use cnn_core::graph::GraphBuilder;
use cnn_core::{CnnError, LayerSpec};

fn spec_with(eps: f32, momentum: f32) -> Result<(), CnnError> {
    GraphBuilder::new([3, 4, 4])
        .layer("bn", LayerSpec::BatchNorm2d { eps, momentum })
        .spec()
        .map(|_| ())
}

fn assert_invalid(err: CnnError, key: &str) {
    let msg = err.to_string();
    assert!(
        matches!(&err, CnnError::InvalidValue { name, .. } if name == key),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn batch_norm_eps_must_be_finite_and_positive() {
    for eps in [0.0, -0.0, -1e-5, f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
        let err = spec_with(eps, 0.1).expect_err(&format!("eps {eps} accepted"));
        assert_invalid(err, "bn.eps");
    }
    for eps in [f32::MIN_POSITIVE, 1e-5, 1e-3, 1.0, f32::MAX] {
        spec_with(eps, 0.1).unwrap_or_else(|e| panic!("eps {eps} refused: {e}"));
    }
}

#[test]
fn batch_norm_momentum_must_lie_in_zero_to_one() {
    for momentum in [-1e-6, 1.0 + 1e-6, -1.0, 2.0, f32::NAN, f32::INFINITY] {
        let err = spec_with(1e-5, momentum).expect_err(&format!("momentum {momentum} accepted"));
        assert_invalid(err, "bn.momentum");
    }
    for momentum in [0.0, 0.1, 0.5, 1.0] {
        spec_with(1e-5, momentum).unwrap_or_else(|e| panic!("momentum {momentum} refused: {e}"));
    }
}
