//! Batch norm fused with the residual add and the ReLU after it
//! (`NormOps::batch_norm2d_relu_forward_train` and `_eval`, and the graph's
//! `fuse.rs`): the fused op gives the bits of batch norm, `add` and ReLU
//! run one after the other on this backend, and agrees with the reference
//! kernels; a ResNet-20 graph gives the same bits with fusion on and off
//! (forwards and backwards, `NormOps::batch_norm2d_relu_backward`).

use cnn_core::models::{ModelOptions, resnet20};
use cnn_core::{
    Activation, ActivationOps, BatchNormParams, ElementwiseOps, Graph, Mode, NormOps, Tensor,
};
use cnn_cpu::CpuBackend;
use cnn_testing::assert::assert_close;
use cnn_testing::reference;
use cnn_testing::strategies::values;
use proptest::prelude::*;

/// Every output of one call (the fused op, or the separate ops), as bits.
struct Outputs {
    y: Vec<u32>,
    stats: Vec<u32>,
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

/// Inputs of one case: x, residual, gamma, beta, running mean and variance.
struct Case {
    p: BatchNormParams,
    x: Vec<f32>,
    residual: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    rm: Vec<f32>,
    rv: Vec<f32>,
}

impl Case {
    fn new(n: usize, c: usize, hw: usize, seed: u64) -> Self {
        let len = n * c * hw;
        Case {
            p: BatchNormParams {
                n,
                c,
                hw,
                eps: 1e-5,
                momentum: 0.1,
            },
            // Shifted so that the outputs fall on both sides of zero.
            x: values(seed, 1, len, -2.0, 3.0),
            residual: values(seed, 2, len, -1.5, 1.0),
            gamma: values(seed, 3, c, -1.5, 2.0),
            beta: values(seed, 4, c, -0.5, 0.5),
            rm: values(seed, 5, c, -0.2, 0.2),
            rv: values(seed, 6, c, 0.5, 2.0),
        }
    }

    /// The fused op, with or without the residual.
    fn fused(&self, be: &CpuBackend, add: bool) -> Outputs {
        let (c, len) = (self.p.c, self.x.len());
        let residual = add.then_some(&self.residual);
        let mut y = vec![f32::NAN; len];
        let (mut rm, mut rv) = (self.rm.clone(), self.rv.clone());
        let (mut sm, mut si) = (vec![0.0; c], vec![0.0; c]);
        be.batch_norm2d_relu_forward_train(
            &self.p,
            &self.x,
            residual,
            &self.gamma,
            &self.beta,
            &mut rm,
            &mut rv,
            &mut y,
            &mut sm,
            &mut si,
        )
        .unwrap();
        Outputs {
            y: bits(&y),
            stats: [rm, rv, sm, si].iter().flat_map(|v| bits(v)).collect(),
        }
    }

    /// `add(bn, residual)` (with `add`) and ReLU on the backend, as
    /// separate ops after a batch norm's output `bn`.
    fn add_relu_apart(&self, be: &CpuBackend, bn: Vec<f32>, add: bool) -> Vec<f32> {
        let sum = if add {
            let mut s = vec![0.0; bn.len()];
            be.add(&bn, &self.residual, &mut s).unwrap();
            s
        } else {
            bn
        };
        let mut y = vec![0.0; sum.len()];
        be.activation_forward(Activation::Relu, &sum, &mut y)
            .unwrap();
        y
    }

    /// Batch norm, `add(bn, residual)` and ReLU as separate ops.
    fn unfused(&self, be: &CpuBackend, add: bool) -> Outputs {
        let (c, len) = (self.p.c, self.x.len());
        let mut bn = vec![0.0; len];
        let (mut rm, mut rv) = (self.rm.clone(), self.rv.clone());
        let (mut sm, mut si) = (vec![0.0; c], vec![0.0; c]);
        be.batch_norm2d_forward_train(
            &self.p,
            &self.x,
            &self.gamma,
            &self.beta,
            &mut rm,
            &mut rv,
            &mut bn,
            &mut sm,
            &mut si,
        )
        .unwrap();
        let y = self.add_relu_apart(be, bn, add);
        Outputs {
            y: bits(&y),
            stats: [rm, rv, sm, si].iter().flat_map(|v| bits(v)).collect(),
        }
    }

    /// The eval-mode fused op (running statistics), with or without the
    /// residual.
    fn fused_eval(&self, be: &CpuBackend, add: bool) -> Vec<u32> {
        let mut y = vec![f32::NAN; self.x.len()];
        be.batch_norm2d_relu_forward_eval(
            &self.p,
            &self.x,
            add.then_some(&self.residual),
            &self.gamma,
            &self.beta,
            &self.rm,
            &self.rv,
            &mut y,
        )
        .unwrap();
        bits(&y)
    }

    /// The eval-mode fused op in place: x in y.
    fn fused_eval_in_place(&self, be: &CpuBackend, add: bool) -> Vec<u32> {
        let mut y = self.x.clone();
        be.batch_norm2d_relu_forward_eval_in_place(
            &self.p,
            add.then_some(&self.residual),
            &self.gamma,
            &self.beta,
            &self.rm,
            &self.rv,
            &mut y,
        )
        .unwrap();
        bits(&y)
    }

    /// Eval-mode batch norm, `add(bn, residual)` and ReLU as separate ops.
    fn unfused_eval(&self, be: &CpuBackend, add: bool) -> Vec<u32> {
        let len = self.x.len();
        let mut bn = vec![0.0; len];
        be.batch_norm2d_forward_eval(
            &self.p,
            &self.x,
            &self.gamma,
            &self.beta,
            &self.rm,
            &self.rv,
            &mut bn,
        )
        .unwrap();
        let y = self.add_relu_apart(be, bn, add);
        bits(&y)
    }

    /// `relu(bn + residual)` of the reference's batch norm output `bn`.
    fn add_relu(&self, bn: Vec<f64>, add: bool) -> Vec<f64> {
        let sum: Vec<f64> = if add {
            bn.iter()
                .zip(&self.residual)
                .map(|(b, &r)| b + f64::from(r))
                .collect()
        } else {
            bn
        };
        reference::activation_forward(Activation::Relu, &sum)
    }

    /// The reference kernels (f64) in eval mode.
    fn reference_eval(&self, add: bool) -> Vec<f64> {
        let bn = reference::batch_norm2d_forward_eval(
            &self.p,
            &self.x,
            &self.gamma,
            &self.beta,
            &self.rm,
            &self.rv,
        );
        self.add_relu(bn, add)
    }

    /// The reference kernels (f64): `relu(bn(x) + residual)`.
    fn reference(&self, add: bool) -> Vec<f64> {
        let Case {
            p,
            x,
            gamma,
            beta,
            rm,
            rv,
            ..
        } = self;
        let bn = reference::batch_norm2d_forward_train(p, x, gamma, beta, rm, rv).y;
        self.add_relu(bn, add)
    }
}

/// One case on 1 and 2 threads, with and without the residual, in
/// training and eval mode: the separate ops' bits, and the reference
/// within `1e-5` abs + `1e-5` rel (f32 rounding of values of order 10).
fn check(n: usize, c: usize, hw: usize, seed: u64) {
    let case = Case::new(n, c, hw, seed);
    for threads in [1, 2] {
        let be = CpuBackend::with_threads(threads).unwrap();
        for add in [false, true] {
            let what = format!("({n}, {c}, {hw}) add {add} threads {threads}");
            let fused = case.fused(&be, add);
            let unfused = case.unfused(&be, add);
            assert!(fused.y == unfused.y, "{what}: output bits differ");
            assert!(fused.stats == unfused.stats, "{what}: statistics differ");
            let y: Vec<f32> = fused.y.iter().map(|&b| f32::from_bits(b)).collect();
            assert_close(&y, &case.reference(add), 1e-5, 1e-5, &what);
            assert!(y.iter().all(|&v| v >= 0.0), "{what}: negative after ReLU");
            let fused = case.fused_eval(&be, add);
            assert!(
                fused == case.unfused_eval(&be, add),
                "{what}: eval bits differ"
            );
            let in_place = case.fused_eval_in_place(&be, add);
            assert!(fused == in_place, "{what}: in-place eval bits differ");
            let y: Vec<f32> = fused.iter().map(|&b| f32::from_bits(b)).collect();
            assert_close(&y, &case.reference_eval(add), 1e-5, 1e-5, &what);
        }
    }
}

#[test]
fn fused_batch_norm_relu_gives_the_bits_of_the_separate_ops_over_a_grid() {
    // Small planes, odd sizes, one channel, and sizes that take the
    // parallel paths (`PAR_MIN_ELEMS`); ResNet-20's three stages at batch 2.
    for (n, c, hw) in [
        (1, 1, 2),
        (2, 3, 5),
        (3, 7, 33),
        (8, 5, 1031),
        (2, 16, 1024),
        (2, 32, 256),
        (2, 64, 64),
    ] {
        check(n, c, hw, (n * 1000 + c * 10 + hw) as u64);
    }
}

#[test]
fn fused_batch_norm_relu_rejects_a_residual_of_the_wrong_length() {
    let be = CpuBackend::with_threads(1).unwrap();
    let case = Case::new(2, 3, 4, 1);
    let short = vec![0.0; case.x.len() - 1];
    let (mut rm, mut rv) = (case.rm.clone(), case.rv.clone());
    let (mut sm, mut si) = (vec![0.0; 3], vec![0.0; 3]);
    let mut y = vec![0.0; case.x.len()];
    let r = be.batch_norm2d_relu_forward_train(
        &case.p,
        &case.x,
        Some(&short),
        &case.gamma,
        &case.beta,
        &mut rm,
        &mut rv,
        &mut y,
        &mut sm,
        &mut si,
    );
    assert!(r.is_err(), "a residual one element short was accepted");
    let r = be.batch_norm2d_relu_forward_eval(
        &case.p,
        &case.x,
        Some(&short),
        &case.gamma,
        &case.beta,
        &case.rm,
        &case.rv,
        &mut y,
    );
    assert!(
        r.is_err(),
        "eval: a residual one element short was accepted"
    );
    let r = be.batch_norm2d_relu_forward_eval_in_place(
        &case.p,
        Some(&short),
        &case.gamma,
        &case.beta,
        &case.rm,
        &case.rv,
        &mut y,
    );
    assert!(
        r.is_err(),
        "in place: a residual one element short was accepted"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn fused_batch_norm_relu_gives_the_bits_of_the_separate_ops(
        n in 1usize..5,
        c in 1usize..9,
        hw in 2usize..70,
        seed in 0u64..1000,
    ) {
        check(n, c, hw, seed);
    }
}

/// A ResNet-20 graph's logits, parameter gradients after two training
/// steps, and an evaluation forward (the running statistics), as bits;
/// and how many outputs the last training forward left unformed, how
/// many groups the last backward ran as one op, and how many outputs the
/// evaluation left unformed.
fn resnet_bits(be: &CpuBackend, fusion: bool) -> (Vec<Vec<u32>>, [usize; 3]) {
    let spec = resnet20(&ModelOptions::new([3, 16, 16], 10)).unwrap();
    let n = 6;
    let x: Vec<f32> = values(11, 0, n * 3 * 256, -1.0, 1.0);
    let dlogits = Tensor::from_slice(be, [n, 10], &values(12, 0, n * 10, -0.1, 0.1)).unwrap();
    let mut graph = Graph::new(be, spec, 3).unwrap();
    graph.set_batch_norm_fusion(fusion);
    let mut out = Vec::new();
    for _ in 0..2 {
        graph.zero_grad().unwrap();
        let logits = graph.forward_host(&x, n, Mode::Train).unwrap();
        out.push(bits(&logits.to_vec(be).unwrap()));
        graph.backward(&dlogits).unwrap();
    }
    let trained = [graph.unformed_outputs(), graph.fused_backward_groups()];
    for p in graph.params_iter() {
        out.push(bits(&p.grad.to_vec(be).unwrap()));
    }
    let logits = graph.forward_host(&x, n, Mode::Eval).unwrap();
    out.push(bits(&logits.to_vec(be).unwrap()));
    (out, [trained[0], trained[1], graph.unformed_outputs()])
}

/// Outputs a ResNet-20 evaluation leaves unformed with fusion on: the
/// same 28 as training's (its batch norms write over their inputs, so the
/// groups run in place, `fuse.rs`).
const EVAL_UNFORMED: usize = 28;

#[test]
fn a_resnet20_step_gives_the_same_bits_with_and_without_fusion() {
    for threads in [1, 2] {
        let be = CpuBackend::with_threads(threads).unwrap();
        let (fused, unformed) = resnet_bits(&be, true);
        let (plain, unformed_plain) = resnet_bits(&be, false);
        assert_eq!(fused.len(), plain.len());
        for (k, (a, b)) in fused.iter().zip(&plain).enumerate() {
            assert!(a == b, "threads {threads}: output {k} differs with fusion");
        }
        // The stem's and the nine blocks' first batch norm run fused with
        // their ReLU (10 outputs unformed), the nine blocks' second batch
        // norm with the add and the ReLU (18): the in-place ReLU holds the
        // add's own buffer, which the fused op does not read (`fuse.rs`).
        // Backward runs all 19 groups as one op each (the gradient
        // buffers allow it), and none without fusion. The evaluation
        // fuses the same groups, in place (`EVAL_UNFORMED`).
        assert_eq!(
            (unformed, unformed_plain),
            ([28, 19, EVAL_UNFORMED], [0, 0, 0])
        );
    }
}
