//! Where a W5 step goes (docs/performance.md, "Where a 2-thread W5 step
//! goes now"): every op of a ResNet-20 training step at batch 128 timed
//! alone at its layer's shape, times its count per step, against a whole
//! step of the benches' trainer. `cargo run --release -p cnn-benches
//! --example w5_ops` (threads from `CNN_BENCH_THREADS` or every core;
//! `OP_ITERS`, default 20, calls per timing).

use std::time::Instant;

use cnn_benches::sys::bench_threads;
use cnn_benches::trainer::Trainer;
use cnn_benches::workloads::synthetic_values;
use cnn_core::models::{ModelOptions, resnet20};
use cnn_core::{
    Activation, ActivationOps, BatchNormParams, Conv2dGeometry, Conv2dParams, ConvOps,
    ElementwiseOps, MemoryOps, NormOps,
};
use cnn_cpu::CpuBackend;
use cnn_optim::OptimizerConfig;

const N: usize = 128;

/// The fastest of five batches' mean seconds per call (on a shared
/// machine the minimum is the figure least disturbed by other jobs).
fn time(mut f: impl FnMut()) -> f64 {
    let iters: usize = std::env::var("OP_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    f();
    let per_batch = iters.div_ceil(5).max(1);
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            start.elapsed().as_secs_f64() / per_batch as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// Rows of (what, count per step, ms per call).
struct Table(Vec<(String, usize, f64)>);

impl Table {
    fn add(&mut self, what: String, count: usize, secs: f64) {
        println!(
            "{what:<44} x{count:<2} {:>8.2} ms  {:>8.1} ms/step",
            secs * 1e3,
            secs * 1e3 * count as f64
        );
        self.0.push((what, count, secs));
    }
    fn total(&self) -> f64 {
        self.0.iter().map(|(_, c, s)| *c as f64 * s).sum()
    }
}

fn main() {
    let be = CpuBackend::with_threads(bench_threads()).unwrap();
    let buf = |len: usize, seed: u64| be.upload(&synthetic_values(len, seed)).unwrap();
    let mut t = Table(Vec::new());

    // Convolutions: (c_in, c_out, side, kernel, stride, count per step,
    // whether the input gradient is computed).
    let convs = [
        (3, 16, 32, 3, 1, 1, false),
        (16, 16, 32, 3, 1, 6, true),
        (16, 32, 32, 3, 2, 1, true),
        (16, 32, 32, 1, 2, 1, true),
        (32, 32, 16, 3, 1, 5, true),
        (32, 64, 16, 3, 2, 1, true),
        (32, 64, 16, 1, 2, 1, true),
        (64, 64, 8, 3, 1, 5, true),
    ];
    for (ci, co, side, k, s, count, dx) in convs {
        let geo = Conv2dGeometry::new(co, k).stride(s).padding(k / 2);
        let p = Conv2dParams::new(N, ci, side, side, &geo).unwrap();
        let (x, w, dy) = (buf(p.x_len(), 1), buf(p.w_len(), 2), buf(p.y_len(), 3));
        let (mut y, mut dxb, mut dw) = (buf(p.y_len(), 0), buf(p.x_len(), 0), buf(p.w_len(), 0));
        let name = format!("conv {ci}->{co} {k}x{k} s{s} @{side}");
        let f = time(|| be.conv2d_forward(&p, &x, &w, None, &mut y).unwrap());
        t.add(format!("{name} forward"), count, f);
        if dx {
            let f = time(|| be.conv2d_backward_input(&p, &dy, &w, &mut dxb).unwrap());
            t.add(format!("{name} input grad"), count, f);
        }
        let f = time(|| be.conv2d_backward_weight(&p, &x, &dy, &mut dw).unwrap());
        t.add(format!("{name} weight grad"), count, f);
    }

    // Batch norm, ReLU and the residual adds per stage: (channels, side,
    // batch norms, ReLUs, adds).
    let mut fused = 0.0;
    for (c, side, bns, relus, adds) in [(16, 32, 7, 7, 3), (32, 16, 7, 6, 3), (64, 8, 7, 6, 3)] {
        let hw = side * side;
        let len = N * c * hw;
        let p = BatchNormParams {
            n: N,
            c,
            hw,
            eps: 1e-5,
            momentum: 0.1,
        };
        let (x, r, dy) = (buf(len, 4), buf(len, 5), buf(len, 6));
        let (mut y, mut dx, mut out) = (buf(len, 0), buf(len, 0), buf(len, 0));
        let (g, b) = (be.upload(&vec![1.0; c]).unwrap(), buf(c, 7));
        let (mut rm, mut rv) = (buf(c, 0), be.upload(&vec![1.0; c]).unwrap());
        let (mut sm, mut si, mut dg, mut db) = (buf(c, 0), buf(c, 0), buf(c, 0), buf(c, 0));
        let at = format!("{c}ch @{side}");
        let bn_f = time(|| {
            be.batch_norm2d_forward_train(
                &p, &x, &g, &b, &mut rm, &mut rv, &mut y, &mut sm, &mut si,
            )
            .unwrap()
        });
        t.add(format!("batch norm forward {at}"), bns, bn_f);
        let bn_b = time(|| {
            be.batch_norm2d_backward(&p, &x, &g, &sm, &si, &dy, &mut dx, &mut dg, &mut db)
                .unwrap()
        });
        t.add(format!("batch norm backward {at}"), bns, bn_b);
        let relu_f = time(|| be.activation_forward(Activation::Relu, &x, &mut y).unwrap());
        t.add(format!("relu forward {at}"), relus, relu_f);
        let relu_b = time(|| {
            be.activation_backward(Activation::Relu, &x, &y, &dy, &mut dx)
                .unwrap()
        });
        t.add(format!("relu backward {at}"), relus, relu_b);
        let add_f = time(|| be.add(&x, &r, &mut out).unwrap());
        t.add(format!("add forward {at}"), adds, add_f);
        // Backward of an add: its gradient copied to both operands.
        let add_b = time(|| be.copy(&dy, &mut out).unwrap());
        t.add(format!("add backward (copy) {at}"), 2 * adds, add_b);
        // What fusion does instead of batch norm + (add +) ReLU forward.
        let f_relu = time(|| {
            be.batch_norm2d_relu_forward_train(
                &p, &x, None, &g, &b, &mut rm, &mut rv, &mut y, &mut sm, &mut si,
            )
            .unwrap()
        });
        let f_add = time(|| {
            be.batch_norm2d_relu_forward_train(
                &p,
                &x,
                Some(&r),
                &g,
                &b,
                &mut rm,
                &mut rv,
                &mut y,
                &mut sm,
                &mut si,
            )
            .unwrap()
        });
        println!(
            "  fused: bn+relu {:.2} ms (apart {:.2}), bn+add+relu {:.2} ms (apart {:.2})",
            f_relu * 1e3,
            (bn_f + relu_f) * 1e3,
            f_add * 1e3,
            (bn_f + add_f + relu_f) * 1e3
        );
        fused += (relus - adds) as f64 * (bn_f + relu_f - f_relu)
            + adds as f64 * (bn_f + add_f + relu_f - f_add);
        // What fusion does instead of ReLU (+ add) + batch norm backward:
        // the ops apart timed as the graph runs them, one after the other
        // on buffers of their own (the add's two copies become a buffer
        // swap in the graph), against the fused op.
        let (mut dz, mut a, mut sc) = (buf(len, 0), buf(len, 0), buf(len, 0));
        let mut apart = |add: bool| {
            time(|| {
                be.activation_backward(Activation::Relu, &y, &y, &dy, &mut dz)
                    .unwrap();
                let d = if add {
                    be.copy(&dz, &mut a).unwrap();
                    be.copy(&dz, &mut sc).unwrap();
                    &a
                } else {
                    &dz
                };
                be.batch_norm2d_backward(&p, &x, &g, &sm, &si, d, &mut dx, &mut dg, &mut db)
                    .unwrap()
            })
        };
        let (a_relu, a_add) = (apart(false), apart(true));
        let mut dyf = buf(len, 6);
        let mut fused_b = |residual: bool| {
            time(|| {
                be.batch_norm2d_relu_backward(
                    &p, &x, &y, &g, &sm, &si, &mut dyf, residual, &mut dx, &mut dg, &mut db,
                )
                .unwrap()
            })
        };
        let (b_relu, b_add) = (fused_b(false), fused_b(true));
        println!(
            "  fused backward: relu+bn {:.2} ms (apart {:.2}), relu+add+bn {:.2} ms (apart {:.2})",
            b_relu * 1e3,
            a_relu * 1e3,
            b_add * 1e3,
            a_add * 1e3
        );
        fused += (relus - adds) as f64 * (bn_b + relu_b - b_relu)
            + adds as f64 * (bn_b + relu_b + 2.0 * add_b - b_add);
        // An evaluation (W7): batch norm with the running statistics, the
        // (add and) ReLU as the graph runs them apart (the add writing over
        // the convolution's output, the ReLU in place), against the fused
        // ops (`bn -> relu` out of place, `bn -> add -> relu` in place, x in
        // y, as the graph's buffers have them). Not part of the step's sums.
        let (mut tmp, mut xy) = (buf(len, 0), buf(len, 4));
        let e_relu = time(|| {
            be.batch_norm2d_forward_eval(&p, &x, &g, &b, &rm, &rv, &mut tmp)
                .unwrap();
            be.relu_in_place(&mut tmp).unwrap();
        });
        let e_add = time(|| {
            be.batch_norm2d_forward_eval(&p, &xy, &g, &b, &rm, &rv, &mut tmp)
                .unwrap();
            be.add(&tmp, &r, &mut xy).unwrap();
            be.relu_in_place(&mut xy).unwrap();
        });
        let f_relu = time(|| {
            be.batch_norm2d_relu_forward_eval(&p, &x, None, &g, &b, &rm, &rv, &mut tmp)
                .unwrap()
        });
        let f_add = time(|| {
            be.batch_norm2d_relu_forward_eval_in_place(&p, Some(&r), &g, &b, &rm, &rv, &mut xy)
                .unwrap()
        });
        println!(
            "  evaluation: bn+relu {:.2} ms (apart {:.2}), bn+add+relu in place {:.2} ms (apart {:.2})",
            f_relu * 1e3,
            e_relu * 1e3,
            f_add * 1e3,
            e_add * 1e3
        );
    }

    // A whole step, as W5 runs it.
    let opts = ModelOptions::new([3, 32, 32], 10);
    let config = OptimizerConfig::from_name("sgd")
        .unwrap()
        .with_lr(0.1)
        .with_momentum(0.9)
        .unwrap();
    let mut trainer = Trainer::new(&be, resnet20(&opts).unwrap(), 1, config).unwrap();
    let x = synthetic_values(N * 3 * 32 * 32, 8);
    let labels: Vec<u32> = (0..N as u32).map(|i| i * 7 % 10).collect();
    let step = time(|| {
        trainer.step(&x, &labels).unwrap();
    });
    // The step runs the fused forwards and backwards where the graph can
    // (up to all of the groups counted here).
    let sum = t.total();
    println!(
        "ops above: {:.1} ms/step ({:.1} with the fused forwards and backwards); a whole step: {:.1} ms; \
         the rest (GAP, linear, loss, optimizer, gradient zeroing, graph): {:.1} ms",
        sum * 1e3,
        (sum - fused) * 1e3,
        step * 1e3,
        (step - sum + fused) * 1e3
    );
}
