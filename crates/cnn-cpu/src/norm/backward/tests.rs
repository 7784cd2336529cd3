//! Batch norm's backward: the fused op (ReLU's mask, the residual's
//! gradient) against ReLU's backward and batch norm's run apart, and the
//! AVX kernels against the portable loops, bit for bit, over odd sizes and
//! ResNet-20's planes, on 1 and 2 threads.

use cnn_core::{Activation, ActivationOps, BatchNormParams, NormOps};

use super::{Dy, backward_with};
use crate::CpuBackend;
use crate::cpu_features;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

/// Values over six orders of magnitude (so that a change in the order of
/// a sum would show), a quarter of them negative.
fn spread(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let t = ((i + seed) as f32 * 0.618_034).fract();
            (t - 0.25) * 10f32.powi(((i * 7 + seed) % 7) as i32 - 3)
        })
        .collect()
}

/// One case's inputs: x, the ReLU's output y (zeros, -0, a NaN and
/// positives), dy and the saved statistics.
struct Case {
    p: BatchNormParams,
    x: Vec<f32>,
    y: Vec<f32>,
    dy: Vec<f32>,
    gamma: Vec<f32>,
    mean: Vec<f32>,
    invstd: Vec<f32>,
}

impl Case {
    fn new(n: usize, c: usize, hw: usize) -> Self {
        let len = n * c * hw;
        let mut y: Vec<f32> = spread(len, 3).iter().map(|&v| v.max(0.0)).collect();
        for (i, v) in y.iter_mut().enumerate() {
            match i % 11 {
                3 => *v = -0.0,
                7 if i % 5 == 0 => *v = f32::NAN,
                _ => {}
            }
        }
        Case {
            p: BatchNormParams {
                n,
                c,
                hw,
                eps: 1e-5,
                momentum: 0.1,
            },
            x: spread(len, 0),
            y,
            dy: spread(len, 5),
            gamma: (0..c).map(|i| 0.5 + i as f32 * 0.25).collect(),
            mean: (0..c).map(|i| 0.01 * i as f32 - 0.02).collect(),
            invstd: (0..c).map(|i| 1.5 + 0.125 * i as f32).collect(),
        }
    }

    /// dx, dgamma, dbeta and dy afterwards, as bits.
    fn run(&self, be: &CpuBackend, fused: Option<bool>, simd: bool) -> [Vec<u32>; 4] {
        let len = self.x.len();
        let c = self.p.c;
        let (mut dx, mut dg, mut db) = (vec![7.0; len], vec![1.0; c], vec![-2.0; c]);
        let mut dy = self.dy.clone();
        let saved = [&self.gamma[..], &self.mean, &self.invstd];
        let grads = [dg.as_mut_slice(), db.as_mut_slice()];
        match fused {
            // ReLU's backward, then batch norm's (the ops apart, as the
            // trait's default runs them).
            None => {
                let mut dz = vec![0.0; len];
                be.activation_backward(Activation::Relu, &self.y, &self.y, &self.dy, &mut dz)
                    .unwrap();
                backward_with(
                    be,
                    &self.p,
                    &self.x,
                    Dy::Plain(&dz),
                    saved,
                    &mut dx,
                    grads,
                    false,
                )
                .unwrap();
                dy = dz;
            }
            Some(residual) => {
                let dy = Dy::Relu {
                    y: &self.y,
                    dy: &mut dy,
                    residual,
                };
                backward_with(be, &self.p, &self.x, dy, saved, &mut dx, grads, simd).unwrap();
            }
        }
        [bits(&dx), bits(&dg), bits(&db), bits(&dy)]
    }
}

/// Small, odd and one-channel shapes, shapes that take the parallel
/// paths, and ResNet-20's three stages at batch 2.
const SHAPES: [(usize, usize, usize); 9] = [
    (1, 1, 2),
    (2, 3, 5),
    (3, 4, 7),
    (3, 7, 33),
    (4, 3, 13),
    (8, 5, 1031),
    (2, 16, 1024),
    (2, 32, 256),
    (2, 64, 64),
];

/// The kernels this CPU can run: portable, and AVX where it has AVX2.
fn kernels() -> Vec<bool> {
    if cpu_features::avx2() {
        vec![false, true]
    } else {
        vec![false]
    }
}

#[test]
fn fused_backward_gives_the_bits_of_relu_then_batch_norm() {
    for threads in [1, 2] {
        let be = CpuBackend::with_threads(threads).unwrap();
        for (n, c, hw) in SHAPES {
            let case = Case::new(n, c, hw);
            let [dx, dg, db, dz] = case.run(&be, None, false);
            for simd in kernels() {
                for residual in [false, true] {
                    let got = case.run(&be, Some(residual), simd);
                    let at = format!("({n}, {c}, {hw}), {threads} threads, simd {simd}");
                    assert!(got[0] == dx, "dx differs at {at}, residual {residual}");
                    assert!(got[1] == dg, "dgamma differs at {at}, residual {residual}");
                    assert!(got[2] == db, "dbeta differs at {at}, residual {residual}");
                    if residual {
                        assert!(got[3] == dz, "the residual's gradient differs at {at}");
                    }
                }
            }
        }
    }
}

#[test]
fn avx_kernels_give_the_portable_bits_of_the_plain_backward() {
    let be = CpuBackend::with_threads(2).unwrap();
    for (n, c, hw) in SHAPES {
        let case = Case::new(n, c, hw);
        let run = |simd: bool| {
            let len = case.x.len();
            let (mut dx, mut dg, mut db) = (vec![0.0; len], vec![0.5; c], vec![0.25; c]);
            let saved = [&case.gamma[..], &case.mean, &case.invstd];
            let grads = [dg.as_mut_slice(), db.as_mut_slice()];
            backward_with(
                &be,
                &case.p,
                &case.x,
                Dy::Plain(&case.dy),
                saved,
                &mut dx,
                grads,
                simd,
            )
            .unwrap();
            [bits(&dx), bits(&dg), bits(&db)]
        };
        let want = run(false);
        for simd in kernels() {
            assert!(run(simd) == want, "({n}, {c}, {hw}) simd {simd} differs");
        }
    }
}

#[test]
fn fused_backward_without_a_residual_leaves_the_masked_gradient_unasked() {
    // The trait's op on this backend: dx and the parameter gradients as
    // the ops apart; dy may hold anything afterwards.
    let be = CpuBackend::with_threads(1).unwrap();
    let case = Case::new(3, 4, 7);
    let [dx, dg, db, _] = case.run(&be, None, false);
    let len = case.x.len();
    let (mut out, mut g, mut b) = (vec![0.0; len], vec![1.0; 4], vec![-2.0; 4]);
    let mut dy = case.dy.clone();
    be.batch_norm2d_relu_backward(
        &case.p,
        &case.x,
        &case.y,
        &case.gamma,
        &case.mean,
        &case.invstd,
        &mut dy,
        false,
        &mut out,
        &mut g,
        &mut b,
    )
    .unwrap();
    assert!(bits(&out) == dx && bits(&g) == dg && bits(&b) == db);
}

#[test]
fn fused_backward_rejects_buffers_of_the_wrong_length() {
    let be = CpuBackend::with_threads(1).unwrap();
    let case = Case::new(2, 3, 4);
    let len = case.x.len();
    let short = vec![0.0; len - 1];
    let (mut g, mut b) = (vec![0.0; 3], vec![0.0; 3]);
    let mut run = |y: &Vec<f32>, dy: &mut Vec<f32>, dx: &mut Vec<f32>| {
        be.batch_norm2d_relu_backward(
            &case.p,
            &case.x,
            y,
            &case.gamma,
            &case.mean,
            &case.invstd,
            dy,
            true,
            dx,
            &mut g,
            &mut b,
        )
    };
    let full = || vec![0.0; len];
    assert!(run(&short, &mut full(), &mut full()).is_err(), "short y");
    assert!(
        run(&full(), &mut short.clone(), &mut full()).is_err(),
        "short dy"
    );
    assert!(
        run(&full(), &mut full(), &mut short.clone()).is_err(),
        "short dx"
    );
    assert!(run(&full(), &mut full(), &mut full()).is_ok());
}
