//! Batch norm in training needs more than one value per channel (batch
//! times height times width at least 2), as PyTorch's "Expected more than
//! 1 value per channel when training": one value is an `InvalidGeometry`
//! error naming the layer, two values (from the batch or from the plane)
//! normalise to exactly -1 and 1 up to `eps`, and evaluation takes a
//! single value (it uses the running statistics). (Mutation testing found
//! the bound unpinned: `< 2` turned into `== 2` lived.)

use cnn_core::{CnnError, Graph, GraphBuilder, Mode};
use cnn_cpu::CpuBackend;

fn graph(c: usize, h: usize, w: usize) -> Graph<CpuBackend> {
    let be = CpuBackend::with_threads(1).expect("a CPU backend");
    GraphBuilder::new([c, h, w])
        .batch_norm2d("bn")
        .build(&be, 0)
        .unwrap()
}

fn forward(
    g: &mut Graph<CpuBackend>,
    x: &[f32],
    n: usize,
    mode: Mode,
) -> Result<Vec<f32>, CnnError> {
    let be = g.backend().clone();
    let y = g.forward_host(x, n, mode)?;
    y.to_vec(&be)
}

#[test]
fn one_value_per_channel_in_training_is_an_error_naming_the_layer() {
    let mut g = graph(3, 1, 1);
    let err = forward(&mut g, &[1.0, 2.0, 3.0], 1, Mode::Train).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, CnnError::InvalidGeometry { layer: Some(l), .. } if l == "bn"),
        "{msg}"
    );
    assert!(msg.contains("more than one value per channel"), "{msg}");
    // Evaluation normalises with the running statistics (mean 0, var 1):
    // y = x / sqrt(1 + eps).
    let y = forward(&mut g, &[1.0, 2.0, 3.0], 1, Mode::Eval).unwrap();
    let s = (1.0f64 + 1e-5).sqrt();
    for (got, want) in y.iter().zip([1.0, 2.0, 3.0]) {
        assert!((f64::from(*got) - want / s).abs() <= 1e-6, "{y:?}");
    }
}

/// Two values per channel normalise to `-d / sqrt(d^2 + eps)` and
/// `d / sqrt(d^2 + eps)`, `d` half their difference (biased variance `d^2`).
fn assert_two_value_norm(y: &[f32], pairs: &[(f32, f32)], yi: impl Fn(usize) -> (usize, usize)) {
    for (ch, &(a, b)) in pairs.iter().enumerate() {
        let d = (f64::from(b) - f64::from(a)) / 2.0;
        let want = d / (d * d + 1e-5).sqrt();
        let (ia, ib) = yi(ch);
        // 1e-6 abs + 1e-5 rel: f32 statistics of two values.
        for (got, want) in [(y[ia], -want), (y[ib], want)] {
            let err = (f64::from(got) - want).abs();
            assert!(
                err <= 1e-6 + 1e-5 * want.abs(),
                "channel {ch}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn two_values_per_channel_train_from_the_batch_or_the_plane() {
    // Batch 2 of [3, 1, 1]: x[n][c].
    let mut g = graph(3, 1, 1);
    let x = [0.0, 1.0, -2.0, 4.0, 3.0, 2.0];
    let y = forward(&mut g, &x, 2, Mode::Train).unwrap();
    assert_two_value_norm(&y, &[(0.0, 4.0), (1.0, 3.0), (-2.0, 2.0)], |c| (c, 3 + c));

    // Batch 1 of [2, 1, 2]: the two values of each channel are its plane.
    let mut g = graph(2, 1, 2);
    let x = [5.0, 1.0, -1.0, 0.5];
    let y = forward(&mut g, &x, 1, Mode::Train).unwrap();
    assert_two_value_norm(&y, &[(1.0, 5.0), (-1.0, 0.5)], |c| {
        if c == 0 { (1, 0) } else { (2, 3) }
    });
}
