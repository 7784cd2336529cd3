//! Gradients of an evaluation-mode forward (`Graph::forward_host_for_gradients`
//! and `Graph::backward_to_input`), as Grad-CAM and saliency maps need them:
//! batch norm with its running statistics, dropout off, the input gradient
//! of one class's logit against central finite differences of evaluation
//! forwards; and a training step that follows keeps its bits.

use cnn_core::{Conv2dGeometry, Graph, GraphBuilder, GraphSpec, LayerSpec, Mode, Pool2dGeometry};
use cnn_cpu::CpuBackend;
use cnn_testing::strategies::values;

const N: usize = 2;
const CLASSES: usize = 3;

fn backend() -> CpuBackend {
    CpuBackend::with_threads(2).expect("a 2-thread CPU backend")
}

/// Batch norm, a residual sum that reads the graph input a second time,
/// max pooling after a ReLU (folded), dropout and a linear head.
fn spec() -> GraphSpec {
    let conv = |out| LayerSpec::Conv2d {
        geometry: Conv2dGeometry::new(out, 3).padding(1),
        bias: true,
    };
    GraphBuilder::new([2, 6, 6])
        .layer("conv0", conv(2))
        .batch_norm2d("bn0")
        .add_nodes("add", "bn0", cnn_core::graph::INPUT)
        .relu()
        .layer("conv1", conv(4))
        .batch_norm2d("bn1")
        .relu()
        .max_pool2d(Pool2dGeometry::new(2))
        .dropout(0.5)
        .flatten()
        .linear("fc", CLASSES)
        .spec()
        .unwrap()
}

/// A graph whose running statistics moved away from their initial values
/// (three training forwards on other data).
fn trained_graph() -> Graph<CpuBackend> {
    let mut graph = Graph::new(&backend(), spec(), 5).unwrap();
    for s in 0..3 {
        let x = values(100 + s, 0, 8 * 72, -2.0, 3.0);
        graph.forward_host(&x, 8, Mode::Train).unwrap();
    }
    graph
}

/// The logit of `class` summed over the batch, from an evaluation forward.
fn eval_score(graph: &mut Graph<CpuBackend>, x: &[f32], class: usize) -> f64 {
    let out = graph.forward_host(x, N, Mode::Eval).unwrap();
    let logits = out.to_vec(&backend()).unwrap();
    (0..N).map(|i| f64::from(logits[i * CLASSES + class])).sum()
}

fn one_hot(class: usize) -> cnn_core::Tensor<CpuBackend> {
    let mut d = vec![0.0; N * CLASSES];
    for i in 0..N {
        d[i * CLASSES + class] = 1.0;
    }
    cnn_core::Tensor::from_slice(&backend(), [N, CLASSES], &d).unwrap()
}

#[test]
fn input_gradient_of_a_class_logit_matches_finite_differences_of_evaluation() {
    let mut graph = trained_graph();
    let x = values(7, 0, N * 72, -1.0, 1.0);
    let eval_logits = graph
        .forward_host(&x, N, Mode::Eval)
        .unwrap()
        .to_vec(&backend())
        .unwrap();
    let step = graph.step();
    let logits = graph
        .forward_host_for_gradients(&x, N)
        .unwrap()
        .to_vec(&backend())
        .unwrap();
    // The same evaluation: running statistics, no dropout, no step.
    assert_eq!(logits, eval_logits);
    assert_eq!(graph.step(), step);
    for class in 0..CLASSES {
        graph.forward_host_for_gradients(&x, N).unwrap();
        let dx = graph
            .backward_to_input(&one_hot(class))
            .unwrap()
            .to_vec(&backend())
            .unwrap();
        assert_eq!(dx.len(), x.len());
        // Central differences, step 1e-3 in f32: error ~1e-4 from rounding.
        // Tolerance: 2e-3 absolute + 1e-2 relative.
        let h = 1e-3f32;
        let mut largest = 0.0f64;
        for k in 0..x.len() {
            let mut xp = x.clone();
            xp[k] += h;
            let up = eval_score(&mut graph, &xp, class);
            xp[k] -= 2.0 * h;
            let down = eval_score(&mut graph, &xp, class);
            let numeric = (up - down) / (2.0 * f64::from(h));
            let analytic = f64::from(dx[k]);
            largest = largest.max(analytic.abs());
            assert!(
                (numeric - analytic).abs() <= 2e-3 + 1e-2 * numeric.abs(),
                "class {class}, input {k}: analytic {analytic}, numeric {numeric}"
            );
        }
        assert!(largest > 0.05, "gradients too small to say much: {largest}");
    }
}

#[test]
fn a_training_step_after_evaluation_gradients_keeps_its_bits() {
    let mut plain = trained_graph();
    let mut probed = trained_graph();
    let x = values(8, 0, N * 72, -1.0, 1.0);
    probed.forward_host_for_gradients(&x, N).unwrap();
    probed.backward_to_input(&one_hot(1)).unwrap();
    probed.zero_grad().unwrap();
    let y = values(9, 0, N * 72, -1.0, 1.0);
    let dlogits = one_hot(2);
    for graph in [&mut plain, &mut probed] {
        graph.forward_host(&y, N, Mode::Train).unwrap();
        graph.backward(&dlogits).unwrap();
    }
    let b = backend();
    for (p, q) in plain.params_iter().zip(probed.params_iter()) {
        assert_eq!(p.name, q.name);
        assert_eq!(p.value.to_vec(&b).unwrap(), q.value.to_vec(&b).unwrap());
        assert_eq!(
            p.grad.to_vec(&b).unwrap(),
            q.grad.to_vec(&b).unwrap(),
            "{}",
            p.name
        );
    }
    let (sp, sq) = (plain.state_dict().unwrap(), probed.state_dict().unwrap());
    assert_eq!(sp, sq);
}

#[test]
fn backward_to_input_needs_a_forward_that_kept_its_activations() {
    let mut graph = trained_graph();
    let x = values(10, 0, N * 72, -1.0, 1.0);
    graph.forward_host(&x, N, Mode::Eval).unwrap();
    let err = graph.backward_to_input(&one_hot(0)).unwrap_err();
    assert!(
        err.to_string().contains("needs a preceding"),
        "unexpected error: {err}"
    );
}
