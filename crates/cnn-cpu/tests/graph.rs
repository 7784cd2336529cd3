//! Behaviour of `Graph` on the CPU backend: built-in model shapes, gradient
//! accumulation, the state_dict, batch norm and dropout modes, the
//! per-batch-size workspaces, and forwards checked by hand.

use cnn_core::graph::{INPUT, NamedArray};
use cnn_core::models::{BUILTIN, ModelOptions, builtin, lenet5};
use cnn_core::{
    Activation, ArrayData, CnnError, Graph, GraphBuilder, LayerSpec, Mode, SoftmaxCrossEntropy,
    Tensor,
};
use cnn_cpu::CpuBackend;
use cnn_testing::assert_close;
use cnn_testing::strategies::values;

fn backend() -> CpuBackend {
    CpuBackend::with_threads(2).expect("a 2-thread CPU backend")
}

/// `n` random samples for `graph`, uniform in [-1, 1).
fn inputs(graph: &Graph<CpuBackend>, n: usize, seed: u64) -> Vec<f32> {
    values(seed, 0, n * graph.input_shape().numel(), -1.0, 1.0)
}

fn forward(graph: &mut Graph<CpuBackend>, x: &[f32], n: usize, mode: Mode) -> Vec<f32> {
    let b = graph.backend().clone();
    graph.forward_host(x, n, mode).unwrap().to_vec(&b).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// One training step's gradients: forward in train mode at step `step`,
/// cross-entropy against `targets`, backward (accumulating).
fn train_backward(graph: &mut Graph<CpuBackend>, x: &[f32], targets: &[u32], step: u64) -> f32 {
    let b = graph.backend().clone();
    let n = targets.len();
    graph.set_step(step);
    let logits = graph
        .forward_host(x, n, Mode::Train)
        .unwrap()
        .try_clone(&b)
        .unwrap();
    let t = cnn_core::MemoryOps::upload_indices(&b, targets).unwrap();
    let mut dlogits = Tensor::zeros(&b, logits.shape().clone()).unwrap();
    let loss = SoftmaxCrossEntropy::new()
        .forward_backward(&b, &logits, &t, &mut dlogits)
        .unwrap();
    graph.backward(&dlogits).unwrap();
    loss
}

fn grads(graph: &Graph<CpuBackend>) -> Vec<(String, Vec<f32>)> {
    let b = graph.backend().clone();
    graph
        .params()
        .iter()
        .map(|p| (p.name.clone(), p.grad.to_vec(&b).unwrap()))
        .collect()
}

fn state_values<'a>(state: &'a [NamedArray], name: &str) -> &'a [f32] {
    match &state.iter().find(|e| e.name == name).unwrap().data {
        ArrayData::F32(v) => v,
        ArrayData::I64(_) => panic!("{name} is an integer entry"),
    }
}

fn counter(state: &[NamedArray], name: &str) -> i64 {
    match &state.iter().find(|e| e.name == name).unwrap().data {
        ArrayData::I64(v) => v[0],
        ArrayData::F32(_) => panic!("{name} is a float entry"),
    }
}

#[test]
fn every_builtin_model_gives_one_row_of_logits_per_sample() {
    let b = backend();
    let inputs_for = |name: &str| match name {
        "lenet5" => [1, 28, 28],
        _ => [3, 32, 32],
    };
    assert_eq!(BUILTIN.len(), 5, "a new built-in model needs a case here");
    for (name, _) in BUILTIN {
        let opts = ModelOptions::new(inputs_for(name), 10);
        let mut graph = Graph::new(&b, builtin(name, &opts).unwrap(), 0).unwrap();
        assert_eq!(graph.output_shape().dims(), &[10], "{name}");
        let x = inputs(&graph, 3, 1);
        for mode in [Mode::Eval, Mode::Train] {
            let y = graph.forward_host(&x, 3, mode).unwrap();
            assert_eq!(y.shape().dims(), &[3, 10], "{name} {mode:?}");
            let y = y.to_vec(&b).unwrap();
            assert!(y.iter().all(|v| v.is_finite()), "{name} {mode:?}: {y:?}");
            // Different samples give different logits (the input reaches the output).
            assert!(max_abs_diff(&y[..10], &y[10..20]) > 1e-6, "{name} {mode:?}");
        }
    }
}

#[test]
fn parameter_gradients_accumulate_over_backward_passes_until_zeroed() {
    let b = backend();
    let spec = lenet5(&ModelOptions::new([1, 28, 28], 10)).unwrap();
    let mut graph = Graph::new(&b, spec, 3).unwrap();
    let x = inputs(&graph, 2, 4);
    let targets = [3, 7];
    let before = grads(&graph);
    assert!(before.iter().all(|(_, g)| g.iter().all(|&v| v == 0.0)));

    let l1 = train_backward(&mut graph, &x, &targets, 0);
    let once = grads(&graph);
    for (name, g) in &once {
        assert!(g.iter().any(|&v| v != 0.0), "{name} got no gradient");
    }
    let l2 = train_backward(&mut graph, &x, &targets, 0);
    assert_eq!(
        l1, l2,
        "the same batch at the same step gives the same loss"
    );
    for ((name, g2), (_, g1)) in grads(&graph).iter().zip(&once) {
        let doubled: Vec<f32> = g1.iter().map(|v| 2.0 * v).collect();
        assert_close(
            g2,
            &doubled,
            1e-7,
            1e-5,
            &format!("{name} after two backwards"),
        );
    }

    graph.zero_grad().unwrap();
    for (name, g) in grads(&graph) {
        assert!(g.iter().all(|&v| v == 0.0), "{name} not zeroed");
    }
    // And a backward after zeroing gives the single-pass gradient again.
    train_backward(&mut graph, &x, &targets, 0);
    for ((name, g), (_, g1)) in grads(&graph).iter().zip(&once) {
        assert_close(g, g1, 1e-7, 1e-5, name);
    }
}

#[test]
fn backward_needs_a_training_forward_of_the_same_batch() {
    let b = backend();
    let spec = lenet5(&ModelOptions::new([1, 28, 28], 10)).unwrap();
    let mut graph = Graph::new(&b, spec, 0).unwrap();
    let x = inputs(&graph, 4, 1);
    let dlogits = |n: usize| Tensor::zeros(&b, [n, 10]).unwrap();
    // No forward yet.
    assert!(graph.backward(&dlogits(4)).is_err());
    graph.forward_host(&x, 4, Mode::Eval).unwrap();
    let err = graph.backward(&dlogits(4)).unwrap_err();
    assert!(err.to_string().contains("training"), "{err}");
    graph.forward_host(&x, 4, Mode::Train).unwrap();
    graph.forward_host(&x[..2 * 784], 2, Mode::Train).unwrap();
    // The last forward had batch 2: a batch-4 gradient is rejected.
    assert!(matches!(
        graph.backward(&dlogits(4)),
        Err(CnnError::ShapeMismatch { .. })
    ));
    graph.backward(&dlogits(2)).unwrap();
}

#[test]
fn forward_rejects_inputs_of_the_wrong_size() {
    let b = backend();
    let spec = lenet5(&ModelOptions::new([1, 28, 28], 10)).unwrap();
    let mut graph = Graph::new(&b, spec, 0).unwrap();
    assert!(graph.forward_host(&[0.0; 783], 1, Mode::Eval).is_err());
    assert!(graph.forward_host(&[], 0, Mode::Eval).is_err());
    let wrong = Tensor::zeros(&b, [2, 1, 28, 27]).unwrap();
    let err = graph.forward(&wrong, Mode::Eval).unwrap_err();
    assert!(matches!(err, CnnError::ShapeMismatch { .. }), "{err}");
}

fn lenet5_bn(seed: u64) -> Graph<CpuBackend> {
    let opts = ModelOptions {
        batch_norm: true,
        ..ModelOptions::new([1, 28, 28], 10)
    };
    Graph::new(&backend(), lenet5(&opts).unwrap(), seed).unwrap()
}

#[test]
fn state_dict_round_trip_reproduces_the_model() {
    let mut a = lenet5_bn(1);
    let x = inputs(&a, 4, 2);
    // Move the running statistics and counters away from their defaults.
    forward(&mut a, &x, 4, Mode::Train);
    forward(&mut a, &x, 4, Mode::Train);
    let state = a.state_dict().unwrap();
    assert_eq!(counter(&state, "conv1_bn.num_batches_tracked"), 2);
    let names: Vec<_> = state.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        &names[..6],
        [
            "conv1.weight",
            "conv1_bn.weight",
            "conv1_bn.bias",
            "conv1_bn.running_mean",
            "conv1_bn.running_var",
            "conv1_bn.num_batches_tracked"
        ]
    );

    let mut b = lenet5_bn(2);
    let ya = forward(&mut a, &x, 4, Mode::Eval);
    assert!(max_abs_diff(&ya, &forward(&mut b, &x, 4, Mode::Eval)) > 1e-3);
    b.load_state_dict(&state).unwrap();
    assert_eq!(b.state_dict().unwrap(), state);
    assert_eq!(forward(&mut b, &x, 4, Mode::Eval), ya);
    assert_eq!(
        forward(&mut b, &x, 4, Mode::Train),
        forward(&mut a, &x, 4, Mode::Train)
    );
}

#[test]
fn load_state_dict_errors_name_the_entry_and_change_nothing() {
    let mut source = lenet5_bn(1);
    let x = inputs(&source, 2, 2);
    forward(&mut source, &x, 2, Mode::Train);
    let good = source.state_dict().unwrap();

    let mut missing = good.clone();
    missing.retain(|e| e.name != "fc3.bias");
    let mut wrong_shape = good.clone();
    let e = wrong_shape
        .iter_mut()
        .find(|e| e.name == "fc2.weight")
        .unwrap();
    e.shape = vec![84, 121];
    e.data = ArrayData::F32(vec![0.5; 84 * 121]);
    let mut wrong_len = good.clone();
    let e = wrong_len
        .iter_mut()
        .find(|e| e.name == "conv2_bn.running_var")
        .unwrap();
    e.data = ArrayData::F32(vec![1.0; 15]);
    let mut unexpected = good.clone();
    unexpected.push(NamedArray {
        name: "fc4.weight".into(),
        shape: vec![2],
        data: ArrayData::F32(vec![0.0; 2]),
    });
    let mut duplicated = good.clone();
    duplicated.push(good[0].clone());
    let mut float_counter = good.clone();
    let e = float_counter
        .iter_mut()
        .find(|e| e.name == "conv2_bn.num_batches_tracked")
        .unwrap();
    e.data = ArrayData::F32(vec![3.0]);

    let cases = [
        (missing, "fc3.bias"),
        (wrong_shape, "fc2.weight"),
        (wrong_len, "conv2_bn.running_var"),
        (unexpected, "fc4.weight"),
        (duplicated, "conv1.weight"),
        (float_counter, "conv2_bn.num_batches_tracked"),
    ];
    for (entries, name) in cases {
        let mut target = lenet5_bn(7);
        let before = target.state_dict().unwrap();
        let y_before = forward(&mut target, &x, 2, Mode::Eval);
        let err = target.load_state_dict(&entries).unwrap_err();
        assert!(matches!(err, CnnError::StateDict(_)), "{name}: {err}");
        assert!(
            err.to_string().contains(&format!("`{name}`")),
            "the error must name `{name}`: {err}"
        );
        assert_eq!(
            target.state_dict().unwrap(),
            before,
            "{name}: a failed load changed the graph"
        );
        assert_eq!(forward(&mut target, &x, 2, Mode::Eval), y_before, "{name}");
    }
}

#[test]
fn a_state_dict_without_counters_loads_and_keeps_them() {
    let mut source = lenet5_bn(1);
    let x = inputs(&source, 2, 2);
    forward(&mut source, &x, 2, Mode::Train);
    let mut state = source.state_dict().unwrap();
    state.retain(|e| !e.name.ends_with("num_batches_tracked"));
    let mut target = lenet5_bn(2);
    target.load_state_dict(&state).unwrap();
    let loaded = target.state_dict().unwrap();
    assert_eq!(counter(&loaded, "conv1_bn.num_batches_tracked"), 0);
    assert_eq!(
        state_values(&loaded, "conv1_bn.running_mean"),
        state_values(&state, "conv1_bn.running_mean")
    );
}

/// A batch-norm-only graph on `[3, 4, 4]` with per-channel offsets and
/// scales, so batch statistics are far from the initial running ones.
fn batch_norm_case(n: usize, seed: u64) -> (Graph<CpuBackend>, Vec<f32>) {
    let graph = GraphBuilder::new([3, 4, 4])
        .batch_norm2d("bn")
        .build(&backend(), 0)
        .unwrap();
    let mut x = values(seed, 0, n * 48, -1.0, 1.0);
    for (i, v) in x.iter_mut().enumerate() {
        let c = (i / 16) % 3;
        *v = *v * (1.0 + c as f32) + 2.0 * c as f32 - 1.0;
    }
    (graph, x)
}

/// Per-channel mean and biased / unbiased variance of an NCHW batch (f64).
fn channel_stats(x: &[f32], n: usize, c: usize, hw: usize) -> Vec<(f64, f64, f64)> {
    (0..c)
        .map(|ch| {
            let vals: Vec<f64> = (0..n)
                .flat_map(|s| (0..hw).map(move |k| (s * c + ch) * hw + k))
                .map(|i| f64::from(x[i]))
                .collect();
            let m = vals.len() as f64;
            let mean = vals.iter().sum::<f64>() / m;
            let ss = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
            (mean, ss / m, ss / (m - 1.0))
        })
        .collect()
}

#[test]
fn batch_norm_train_uses_batch_statistics_and_updates_running_ones() {
    let (n, c, hw) = (5, 3, 16);
    let (mut graph, x) = batch_norm_case(n, 1);
    let stats = channel_stats(&x, n, c, hw);

    let y = forward(&mut graph, &x, n, Mode::Train);
    for (ch, s) in channel_stats(&y, n, c, hw).iter().enumerate() {
        assert!(s.0.abs() < 1e-5, "channel {ch}: output mean {}", s.0);
        assert!((s.1 - 1.0).abs() < 1e-3, "channel {ch}: output var {}", s.1);
    }
    let state = graph.state_dict().unwrap();
    assert_eq!(counter(&state, "bn.num_batches_tracked"), 1);
    // PyTorch: running = (1 - momentum) running + momentum batch, with the
    // unbiased variance; initial mean 0, var 1, momentum 0.1.
    let rm1: Vec<f64> = stats.iter().map(|s| 0.1 * s.0).collect();
    let rv1: Vec<f64> = stats.iter().map(|s| 0.9 + 0.1 * s.2).collect();
    assert_close(
        state_values(&state, "bn.running_mean"),
        &rm1,
        1e-6,
        1e-5,
        "mean",
    );
    assert_close(
        state_values(&state, "bn.running_var"),
        &rv1,
        1e-6,
        1e-5,
        "var",
    );

    forward(&mut graph, &x, n, Mode::Train);
    let state = graph.state_dict().unwrap();
    assert_eq!(counter(&state, "bn.num_batches_tracked"), 2);
    let rm2: Vec<f64> = rm1
        .iter()
        .zip(&stats)
        .map(|(r, s)| 0.9 * r + 0.1 * s.0)
        .collect();
    let rv2: Vec<f64> = rv1
        .iter()
        .zip(&stats)
        .map(|(r, s)| 0.9 * r + 0.1 * s.2)
        .collect();
    assert_close(
        state_values(&state, "bn.running_mean"),
        &rm2,
        1e-6,
        1e-5,
        "mean 2",
    );
    assert_close(
        state_values(&state, "bn.running_var"),
        &rv2,
        1e-6,
        1e-5,
        "var 2",
    );

    // Eval normalises with the running statistics and changes no state.
    let y_eval = forward(&mut graph, &x, n, Mode::Eval);
    assert_eq!(graph.state_dict().unwrap(), state);
    let expected: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / hw) % c;
            (f64::from(v) - rm2[ch]) / (rv2[ch] + 1e-5).sqrt()
        })
        .collect();
    assert_close(&y_eval, &expected, 1e-5, 1e-5, "eval output");
    assert!(
        max_abs_diff(&y_eval, &y) > 0.5,
        "eval (running statistics) must differ from train (batch statistics)"
    );
}

fn dropout_graph(p: f32, seed: u64) -> Graph<CpuBackend> {
    GraphBuilder::new([4, 16, 16])
        .dropout(p)
        .build(&backend(), seed)
        .unwrap()
}

#[test]
fn dropout_is_identity_in_eval_and_drops_about_p_in_train() {
    let (p, n) = (0.4f32, 4);
    let mut graph = dropout_graph(p, 9);
    let x = values(1, 0, n * 1024, 0.5, 1.5); // no zeros in the input
    assert_eq!(forward(&mut graph, &x, n, Mode::Eval), x);
    assert_eq!(graph.step(), 0, "an eval forward does not advance the step");

    let y = forward(&mut graph, &x, n, Mode::Train);
    assert_eq!(graph.step(), 1);
    let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
    // 4096 Bernoulli(0.4) draws: standard deviation 0.0077; allow 5 sigma.
    assert!(
        (dropped - f64::from(p)).abs() < 0.04,
        "dropped fraction {dropped}"
    );
    let scale = 1.0 / (1.0 - p);
    for (i, (&yi, &xi)) in y.iter().zip(&x).enumerate() {
        if yi != 0.0 {
            assert!(
                (yi - xi * scale).abs() <= 1e-6 * yi.abs(),
                "[{i}] kept {xi} became {yi}, expected {}",
                xi * scale
            );
        }
    }
}

#[test]
fn dropout_masks_depend_on_seed_and_step_only() {
    let n = 4;
    let x = values(1, 0, n * 1024, 0.5, 1.5);
    let mut a = dropout_graph(0.5, 3);
    let y1 = forward(&mut a, &x, n, Mode::Train);
    let y2 = forward(&mut a, &x, n, Mode::Train);
    let zeros_differ = |u: &[f32], v: &[f32]| {
        u.iter()
            .zip(v)
            .filter(|(a, b)| (**a == 0.0) != (**b == 0.0))
            .count()
    };
    // Independent masks of p 0.5 disagree on about half the elements.
    assert!(
        zeros_differ(&y1, &y2) > 1500,
        "steps 1 and 2 drew the same mask"
    );

    // The same seed and step reproduce the mask, in this graph or another.
    a.set_step(0);
    assert_eq!(forward(&mut a, &x, n, Mode::Train), y1);
    let mut b = dropout_graph(0.5, 3);
    assert_eq!(forward(&mut b, &x, n, Mode::Train), y1);
    assert_eq!(forward(&mut b, &x, n, Mode::Train), y2);
    // Another seed draws another mask.
    let mut c = dropout_graph(0.5, 4);
    assert!(zeros_differ(&forward(&mut c, &x, n, Mode::Train), &y1) > 1500);
}

#[test]
fn batch_sizes_can_change_back_to_back_and_samples_stay_independent_in_eval() {
    let b = backend();
    let opts = ModelOptions {
        batch_norm: true,
        ..ModelOptions::new([1, 28, 28], 10)
    };
    let mut graph = Graph::new(&b, lenet5(&opts).unwrap(), 5).unwrap();
    let n = 6;
    let x = inputs(&graph, n, 6);
    // Move the running statistics so eval batch norm is not the identity.
    forward(&mut graph, &x, n, Mode::Train);
    let all = forward(&mut graph, &x, n, Mode::Eval);
    let sample = 784;
    // More distinct sizes than the graph keeps workspaces for, twice over.
    for round in 0..2 {
        for size in [1, 2, 3, 5, 4] {
            for start in (0..n).step_by(size).filter(|s| s + size <= n) {
                let y = forward(
                    &mut graph,
                    &x[start * sample..(start + size) * sample],
                    size,
                    Mode::Eval,
                );
                assert_close(
                    &y,
                    &all[start * 10..(start + size) * 10],
                    1e-5,
                    1e-5,
                    &format!("round {round}: samples {start}.. in a batch of {size}"),
                );
            }
        }
    }
    assert_eq!(forward(&mut graph, &x, n, Mode::Eval), all);
}

#[test]
fn a_linear_layer_computes_x_w_transpose_plus_b() {
    let b = backend();
    let mut graph = GraphBuilder::new([3]).linear("fc", 2).build(&b, 0).unwrap();
    let w = [0.5, -1.0, 2.0, 1.5, 0.25, -0.75]; // (out 2, in 3)
    let bias = [0.1, -0.2];
    let entry = |name: &str, shape: Vec<usize>, v: &[f32]| NamedArray {
        name: name.into(),
        shape,
        data: ArrayData::F32(v.to_vec()),
    };
    graph
        .load_state_dict(&[
            entry("fc.weight", vec![2, 3], &w),
            entry("fc.bias", vec![2], &bias),
        ])
        .unwrap();
    let x = [1.0, 2.0, 3.0, -1.0, 0.5, 4.0]; // 2 samples
    let y = forward(&mut graph, &x, 2, Mode::Train);
    // Row 0: 0.5 - 2 + 6 + 0.1 = 4.6; 1.5 + 0.5 - 2.25 - 0.2 = -0.45.
    // Row 1: -0.5 - 0.5 + 8 + 0.1 = 7.1; -1.5 + 0.125 - 3 - 0.2 = -4.575.
    assert_close(&y, &[4.6f32, -0.45, 7.1, -4.575], 1e-6, 1e-6, "y");

    // Backward: dW = dy^T x, db = column sums of dy.
    let dy = Tensor::from_slice(&b, [2, 2], &[1.0, -2.0, 0.5, 3.0]).unwrap();
    graph.backward(&dy).unwrap();
    let g = grads(&graph);
    assert_eq!(g[0].0, "fc.weight");
    // dW[o][i] = sum over samples of dy[s][o] x[s][i]:
    // o = 0: 1 (1, 2, 3) + 0.5 (-1, 0.5, 4); o = 1: -2 (1, 2, 3) + 3 (-1, 0.5, 4).
    let dw = [0.5f32, 2.25, 5.0, -5.0, -2.5, 6.0];
    assert_close(&g[0].1, &dw, 1e-6, 1e-6, "dW");
    assert_close(&g[1].1, &[1.5f32, 1.0], 1e-6, 1e-6, "db");
}

#[test]
fn a_residual_add_sums_its_two_inputs() {
    let b = backend();
    let mut graph = GraphBuilder::new([2, 3, 3])
        .layer("act", LayerSpec::Activation(Activation::Relu))
        .add_nodes("sum", "act", INPUT)
        .build(&b, 0)
        .unwrap();
    let x = inputs(&graph, 2, 3);
    let y = forward(&mut graph, &x, 2, Mode::Eval);
    let expected: Vec<f32> = x.iter().map(|&v| v.max(0.0) + v).collect();
    assert_eq!(y, expected);
}

/// A ReLU read only by the max pooling after it runs folded into it: the
/// outputs (train and eval) and every gradient equal those of the graph run
/// node by node; the folded ReLU has no output of its own to show. A ReLU
/// with a second reader is not folded.
#[test]
fn relu_folded_into_max_pooling_gives_the_same_results() {
    let be = backend();
    // The ReLU here is read by a residual add as well as by the pooling.
    let two_readers = GraphBuilder::new([2, 8, 8])
        .conv2d("conv", cnn_core::Conv2dGeometry::new(4, 3).padding(1))
        .layer("relu_shared", LayerSpec::Activation(Activation::Relu))
        .add_nodes("doubled", "relu_shared", "conv")
        .layer_from(
            "max_pool_shared",
            "relu_shared",
            LayerSpec::MaxPool2d(cnn_core::Pool2dGeometry::new(2)),
        )
        .flatten()
        .linear("fc", 3)
        .spec()
        .unwrap();
    let specs = [
        lenet5(&ModelOptions::new([1, 28, 28], 10)).unwrap(),
        builtin("article", &ModelOptions::new([3, 32, 32], 10)).unwrap(),
        two_readers,
    ];
    for spec in specs {
        let mut folded = Graph::new(&be, spec.clone(), 3).unwrap();
        let mut plain = Graph::new(&be, spec.clone(), 3).unwrap();
        plain.set_relu_folding(false);
        let n = 9;
        let x = inputs(&folded, n, 4);
        let classes = folded.output_shape().numel() as u32;
        let targets: Vec<u32> = (0..n as u32).map(|i| (i * 7) % classes).collect();
        assert_eq!(
            forward(&mut folded, &x, n, Mode::Eval),
            forward(&mut plain, &x, n, Mode::Eval),
            "eval output"
        );
        let a = train_backward(&mut folded, &x, &targets, 1);
        let b = train_backward(&mut plain, &x, &targets, 1);
        assert_eq!(a.to_bits(), b.to_bits(), "loss");
        assert_eq!(grads(&folded), grads(&plain), "parameter gradients");
        let relus: Vec<usize> = spec
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| node.name.starts_with("relu"))
            .map(|(i, _)| i)
            .collect();
        for i in relus {
            let only_pool_reads = spec.nodes[i].name != "relu_shared"
                && spec
                    .nodes
                    .get(i + 1)
                    .is_some_and(|next| next.name.starts_with("max_pool"));
            assert!(plain.node_output(i).is_some());
            assert_eq!(
                folded.node_output(i).is_none(),
                only_pool_reads,
                "node {i} ({})",
                spec.nodes[i].name
            );
        }
    }
}
