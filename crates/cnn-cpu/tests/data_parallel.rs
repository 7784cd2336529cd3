//! `DataParallel` on the CPU backend: a training step split across the
//! threads equals the unsplit step bit for bit (loss, predictions, every
//! parameter gradient), for several models, thread counts and batch sizes
//! that do and do not divide evenly; graphs that mix samples are not split;
//! bad input is an error that leaves the graph as it was. Steps run both
//! outside and inside `Backend::run` (where the CPU backend's team of
//! workers takes the phases).
//!
//! "Bit for bit" is checked as f32 equality, which does not tell +0 from
//! -0: a part whose gradient sums to -0 may give +0 once added to zero.

use cnn_core::models::{ModelOptions, article, lenet5};
use cnn_core::{
    Backend, Conv2dGeometry, DataParallel, ElementwiseOps, Graph, GraphBuilder, GraphSpec,
    MemoryOps, Mode, Pool2dGeometry, SoftmaxCrossEntropy, Tensor,
};
use cnn_cpu::CpuBackend;
use cnn_testing::strategies::values;

/// A small residual net: the add sums two branches, so the backward meets
/// a node with two consumers; the strided convolution takes the CPU
/// backend's im2col + GEMM path (the others take the direct kernels).
fn residual(classes: usize) -> GraphSpec {
    GraphBuilder::new([3, 12, 12])
        .conv2d("stem", Conv2dGeometry::new(8, 3).padding(1))
        .relu()
        .conv2d("branch", Conv2dGeometry::new(8, 3).padding(1))
        .add("sum", "stem")
        .relu()
        .conv2d("down", Conv2dGeometry::new(16, 3).stride(2).padding(1))
        .relu()
        .max_pool2d(Pool2dGeometry::new(2))
        .flatten()
        .linear("fc1", 32)
        .relu()
        .linear("fc2", classes)
        .spec()
        .unwrap()
}

fn models() -> Vec<(&'static str, GraphSpec)> {
    vec![
        (
            "lenet5",
            lenet5(&ModelOptions::new([1, 28, 28], 10)).unwrap(),
        ),
        (
            "article",
            article(&ModelOptions::new([3, 32, 32], 10)).unwrap(),
        ),
        ("residual", residual(5)),
    ]
}

fn labels(n: usize, classes: usize, seed: u64) -> Vec<u32> {
    values(seed, 7, n, 0.0, classes as f32)
        .iter()
        .map(|&v| (v as u32).min(classes as u32 - 1))
        .collect()
}

/// The unsplit step: forward, loss, arg-max, backward.
fn unsplit_step(graph: &mut Graph<CpuBackend>, x: &[f32], y: &[u32]) -> (f32, Vec<u32>) {
    let b = graph.backend().clone();
    let n = y.len();
    let logits = graph
        .forward_host(x, n, Mode::Train)
        .unwrap()
        .try_clone(&b)
        .unwrap();
    let classes = logits.numel() / n;
    let targets = b.upload_indices(y).unwrap();
    let mut dlogits = Tensor::zeros(&b, logits.shape().clone()).unwrap();
    let loss = SoftmaxCrossEntropy::new()
        .forward_backward(&b, &logits, &targets, &mut dlogits)
        .unwrap();
    let mut preds = b.alloc_indices(n).unwrap();
    cnn_core::LossOps::argmax_rows(&b, n, classes, logits.buffer(), &mut preds).unwrap();
    graph.backward(&dlogits).unwrap();
    (loss, b.download_indices(&preds).unwrap())
}

fn grads(graph: &Graph<CpuBackend>) -> Vec<(String, Vec<f32>)> {
    let b = graph.backend().clone();
    graph
        .params_iter()
        .map(|p| (p.name.clone(), p.grad.to_vec(&b).unwrap()))
        .collect()
}

fn assert_same_grads(split: &Graph<CpuBackend>, unsplit: &Graph<CpuBackend>, what: &str) {
    for ((name, a), (_, b)) in grads(split).iter().zip(grads(unsplit)) {
        if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
            panic!(
                "{what}: gradient of {name} differs at {i}: split {:e}, unsplit {:e}",
                a[i], b[i]
            );
        }
    }
}

/// Change every weight a little, as an optimizer step would.
fn nudge(graph: &mut Graph<CpuBackend>) {
    let b = graph.backend().clone();
    for p in graph.params_iter_mut() {
        b.scale(0.97, p.value.buffer_mut()).unwrap();
    }
}

#[test]
fn split_step_equals_the_unsplit_step_bit_for_bit() {
    for (name, spec) in models() {
        for threads in [2, 3] {
            let be = CpuBackend::with_threads(threads).unwrap();
            for n in [64, 33, 2, 1] {
                let what = format!("{name}, {threads} threads, batch {n}");
                let mut split = Graph::new(&be, spec.clone(), 5).unwrap();
                let mut unsplit = Graph::new(&be, spec.clone(), 5).unwrap();
                let mut parallel = DataParallel::for_graph(&split)
                    .unwrap()
                    .expect("a sample-independent graph on several threads is split");
                assert_eq!(parallel.parts(), threads);
                let classes = split.output_shape().numel();
                let sample = split.input_shape().numel();
                // Two steps without zeroing: gradients accumulate, and the
                // second step must use the weights changed in between.
                for step in 0..2u64 {
                    let x = values(100 + step, 0, n * sample, -1.0, 1.0);
                    let y = labels(n, classes, 100 + step);
                    let mut preds = vec![u32::MAX; n];
                    let mut split_step = || {
                        parallel
                            .forward_backward(
                                &mut split,
                                &x,
                                &y,
                                &SoftmaxCrossEntropy::new(),
                                Some(&mut preds),
                            )
                            .unwrap()
                    };
                    // The second step inside `run`, as the trainers call
                    // it: the phases then go to the pool's team.
                    let loss = if step == 0 {
                        split_step()
                    } else {
                        be.run(split_step)
                    };
                    let (want_loss, want_preds) = unsplit_step(&mut unsplit, &x, &y);
                    assert_eq!(loss.to_bits(), want_loss.to_bits(), "{what}: loss");
                    assert_eq!(preds, want_preds, "{what}: predictions");
                    assert_eq!(split.step(), unsplit.step(), "{what}: step counter");
                    assert_same_grads(&split, &unsplit, &format!("{what}, step {step}"));
                    nudge(&mut split);
                    nudge(&mut unsplit);
                }
            }
        }
    }
}

#[test]
fn graphs_that_mix_samples_or_run_on_one_thread_are_not_split() {
    let two = CpuBackend::with_threads(2).unwrap();
    let opts = ModelOptions::new([1, 28, 28], 10);
    let with_bn = GraphBuilder::new([1, 8, 8])
        .conv2d("conv", Conv2dGeometry::new(4, 3))
        .batch_norm2d("bn")
        .flatten()
        .linear("fc", 3)
        .spec()
        .unwrap();
    let with_dropout = GraphBuilder::new([4])
        .linear("fc1", 8)
        .dropout(0.5)
        .linear("fc2", 3)
        .spec()
        .unwrap();
    // Output per sample is an image, not a row of logits.
    let image_out = GraphBuilder::new([1, 8, 8])
        .conv2d("conv", Conv2dGeometry::new(2, 3))
        .spec()
        .unwrap();
    for (what, spec) in [
        ("batch norm", with_bn),
        ("dropout", with_dropout),
        ("image output", image_out),
    ] {
        let graph = Graph::new(&two, spec, 0).unwrap();
        assert!(
            DataParallel::for_graph(&graph).unwrap().is_none(),
            "{what} must keep the unsplit step"
        );
    }
    let one = CpuBackend::with_threads(1).unwrap();
    let graph = Graph::new(&one, lenet5(&opts).unwrap(), 0).unwrap();
    assert!(DataParallel::for_graph(&graph).unwrap().is_none());
}

#[test]
fn bad_input_is_an_error_and_leaves_the_graph_as_it_was() {
    let be = CpuBackend::with_threads(2).unwrap();
    let spec = residual(5);
    let mut graph = Graph::new(&be, spec, 1).unwrap();
    let mut parallel = DataParallel::for_graph(&graph).unwrap().unwrap();
    let sample = graph.input_shape().numel();
    let n = 6;
    let x = values(1, 0, n * sample, -1.0, 1.0);
    let loss = SoftmaxCrossEntropy::new();
    let before = grads(&graph);
    let step = graph.step();

    let short = parallel.forward_backward(&mut graph, &x[1..], &labels(n, 5, 1), &loss, None);
    assert_eq!(
        short.unwrap_err().to_string(),
        "invalid value for `input batch`: 2591 values given for 6 samples of shape [3, 12, 12]"
    );
    let mut small = vec![0u32; n - 1];
    let room = parallel.forward_backward(&mut graph, &x, &labels(n, 5, 1), &loss, Some(&mut small));
    assert_eq!(
        room.unwrap_err().to_string(),
        "invalid value for `predictions`: room for 5 given for 6 samples"
    );
    let mut bad_labels = labels(n, 5, 1);
    bad_labels[4] = 5;
    let out_of_range = parallel.forward_backward(&mut graph, &x, &bad_labels, &loss, None);
    assert_eq!(
        out_of_range.unwrap_err().to_string(),
        "op `softmax_cross_entropy`: target 5 at row 4 is out of range for 5 classes"
    );

    assert_eq!(graph.step(), step, "a failed step does not advance");
    assert_eq!(grads(&graph), before, "a failed step adds no gradient");
    // And the runner still works afterwards.
    parallel
        .forward_backward(&mut graph, &x, &labels(n, 5, 1), &loss, None)
        .unwrap();
    assert_eq!(graph.step(), step + 1);
}

/// A mixed batch (mixup/CutMix targets: `lam` of the labels, `1 - lam` of
/// the labels reversed, label smoothing 0.1): the split step's loss and
/// gradients equal the unsplit step with the mixed loss, bit for bit.
#[test]
fn a_mixed_split_step_equals_the_unsplit_mixed_step_bit_for_bit() {
    let be = CpuBackend::with_threads(2).unwrap();
    let spec = lenet5(&ModelOptions::new([1, 28, 28], 10)).unwrap();
    let loss = SoftmaxCrossEntropy {
        label_smoothing: 0.1,
    };
    for n in [33, 8] {
        let mut split = Graph::new(&be, spec.clone(), 5).unwrap();
        let mut unsplit = Graph::new(&be, spec.clone(), 5).unwrap();
        let mut parallel = DataParallel::for_graph(&split).unwrap().unwrap();
        let x = values(11, 0, n * 28 * 28, -1.0, 1.0);
        let y = labels(n, 10, 11);
        let partners: Vec<u32> = y.iter().rev().copied().collect();
        let lam = 0.3;
        let got = parallel
            .forward_backward_mixed(&mut split, &x, &y, Some((&partners, lam)), &loss, None)
            .unwrap();
        let logits = unsplit
            .forward_host(&x, n, Mode::Train)
            .unwrap()
            .try_clone(&be)
            .unwrap();
        let targets = be.upload_indices(&y).unwrap();
        let partner_targets = be.upload_indices(&partners).unwrap();
        let mut dlogits = Tensor::zeros(&be, logits.shape().clone()).unwrap();
        let mix = cnn_core::MixedTargets {
            targets: &targets,
            partners: &partner_targets,
            lam,
        };
        let want = loss
            .forward_backward_mixed(&be, &logits, &mix, &mut dlogits)
            .unwrap();
        unsplit.backward(&dlogits).unwrap();
        assert_eq!(got.to_bits(), want.to_bits(), "batch {n}: mixed loss");
        assert_same_grads(&split, &unsplit, &format!("mixed batch {n}"));
        // Not the plain loss: the mix reaches the gradient.
        let mut plain = Graph::new(&be, spec.clone(), 5).unwrap();
        let plain_loss = parallel
            .forward_backward(&mut plain, &x, &y, &loss, None)
            .unwrap();
        assert_ne!(plain_loss, got, "batch {n}");
    }
}
