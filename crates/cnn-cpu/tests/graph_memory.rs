//! A run's memory stays flat: once a graph has met the batch sizes a run
//! alternates between (the training batch and its last partial one, the
//! evaluation batch and its last partial one), further epochs allocate no
//! buffer. Four sizes used to share three workspaces, so each epoch
//! evicted and reallocated some; glibc kept the freed blocks in per-thread
//! arenas and a ResNet-20 run grew by 0.6 GB an epoch (issue #20). A last
//! partial batch now runs in the full batch's workspace, its buffers
//! shortened in place, so it makes none of its own.
//!
//! A training step keeps one output buffer per node (backward reads
//! them) but only a few gradient buffers: a node's output gradient lives
//! from the backward of its last reader to its own, and nodes whose
//! gradients are never live at once share a buffer (`graph/slots.rs`).
//!
//! A counting global allocator measures the bytes of buffer-sized
//! allocations (16 KiB or more; the small ones a step still makes are the
//! steady-state allocation test's subject, in benches/tests); the tests
//! take one lock, so that no other test allocates while one counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use cnn_core::models::{ModelOptions, resnet20, vgg_small};
use cnn_core::{
    Conv2dGeometry, DataParallel, Graph, GraphBuilder, Mode, SoftmaxCrossEntropy, Tensor,
};
use cnn_cpu::CpuBackend;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static BYTES: AtomicUsize = AtomicUsize::new(0);
/// The smallest allocation counted: every workspace buffer below is larger.
const BUFFER: usize = 16 << 10;
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

// SAFETY: forwards every call to the system allocator unchanged; the
// counter is an atomic and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) && layout.size() >= BUFFER {
            BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) && layout.size() >= BUFFER {
            BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) && new_size >= BUFFER {
            BYTES.fetch_add(new_size, Ordering::Relaxed);
        }
        // SAFETY: as for `alloc`; `ptr` came from this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated while `f` runs.
fn bytes_allocated(f: impl FnOnce()) -> usize {
    BYTES.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    BYTES.load(Ordering::SeqCst)
}

#[test]
fn epochs_after_the_first_allocate_no_buffer() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let be = CpuBackend::with_threads(2).unwrap();
    let spec = resnet20(&ModelOptions::new([3, 16, 16], 10)).unwrap();
    let mut graph = Graph::new(&be, spec, 0).unwrap();
    // An epoch of a run: training batches of 8 and a last one of 5, then
    // validation in batches of 16 and a last one of 13 (as the trainer's
    // batch size and `max(256)` evaluation batches do at full size).
    let (train, eval) = ([8, 5], [16, 13]);
    let inputs: Vec<Vec<f32>> = (0..=16)
        .map(|n| {
            (0..n * 3 * 256)
                .map(|i| (i % 17) as f32 / 17.0 - 0.5)
                .collect()
        })
        .collect();
    let dlogits: Vec<Tensor<CpuBackend>> = (0..=16)
        .map(|n| Tensor::from_slice(&be, [n.max(1), 10], &vec![0.01; n.max(1) * 10]).unwrap())
        .collect();
    let epoch = |graph: &mut Graph<CpuBackend>| {
        for n in train {
            graph.forward_host(&inputs[n], n, Mode::Train).unwrap();
            graph.backward(&dlogits[n]).unwrap();
        }
        for n in eval {
            graph.forward_host(&inputs[n], n, Mode::Eval).unwrap();
        }
    };
    let first = bytes_allocated(|| epoch(&mut graph));
    // The smallest activation of the smallest batch, 5 x 64 x 4 x 4 floats
    // (80 KiB), is over `BUFFER`: an evicted workspace would be counted.
    assert!(first > 0, "the first epoch makes the workspaces");
    for e in 2..=4 {
        let bytes = bytes_allocated(|| epoch(&mut graph));
        assert_eq!(
            bytes, 0,
            "epoch {e} allocated {bytes} bytes (the first: {first}): a workspace was evicted and made again"
        );
    }
}

#[test]
fn shared_evaluation_buffers_give_the_bits_of_one_buffer_per_node() {
    // Without batch norm or dropout a training-mode forward computes what an
    // evaluation forward does, op for op, but keeps every node's output in a
    // buffer of its own; the evaluation forward shares buffers between
    // nodes. Residual adds read a value several nodes later, so a buffer
    // reused too early would change the output.
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let be = CpuBackend::with_threads(1).unwrap();
    let conv = |c| Conv2dGeometry::new(c, 3).padding(1);
    let b = GraphBuilder::new([3, 8, 8]).conv2d("stem", conv(4)).relu();
    let skip_a = b.last();
    let b = b
        .conv2d("a1", conv(4))
        .relu()
        .conv2d("a2", conv(4))
        .add("add_a", skip_a)
        .relu();
    let skip_b = b.last();
    let mut graph = b
        .conv2d("b1", conv(4))
        .relu()
        .conv2d("b2", conv(4))
        .add("add_b", skip_b)
        .relu()
        .global_avg_pool()
        .flatten()
        .linear("fc", 10)
        .build(&be, 5)
        .unwrap();
    let names: Vec<String> = graph.node_names().map(str::to_string).collect();
    let x: Vec<f32> = (0..4 * 3 * 64)
        .map(|i| ((i * 7) % 23) as f32 / 23.0 - 0.5)
        .collect();
    let eval = graph
        .forward_host(&x, 4, Mode::Eval)
        .unwrap()
        .to_vec(&be)
        .unwrap();
    let last = names.len() - 1;
    assert!(graph.node_output(last).is_some());
    assert!(
        (0..last).any(|i| graph.node_output(i).is_none()),
        "evaluation kept every node's output: its buffers are not shared"
    );
    let train = graph
        .forward_host(&x, 4, Mode::Train)
        .unwrap()
        .to_vec(&be)
        .unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&eval), bits(&train));
}

/// Bytes of every node's output at batch `n`, in f32.
fn activation_bytes(graph: &Graph<CpuBackend>, n: usize) -> usize {
    graph.node_shapes().iter().map(|s| s.numel() * n * 4).sum()
}

#[test]
fn a_training_step_keeps_only_what_backward_reads() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let be = CpuBackend::with_threads(2).unwrap();
    let spec = resnet20(&ModelOptions::new([3, 16, 16], 10)).unwrap();
    let n = 8;
    let x: Vec<f32> = (0..n * 3 * 256)
        .map(|i| (i % 17) as f32 / 17.0 - 0.5)
        .collect();
    let dlogits = Tensor::from_slice(&be, [n, 10], &vec![0.01; n * 10]).unwrap();
    let step = |graph: &mut Graph<CpuBackend>| {
        graph.forward_host(&x, n, Mode::Train).unwrap();
        graph.backward(&dlogits).unwrap();
    };
    // A first graph grows the backend's pools (GEMM packing, workspaces
    // of the convolutions), so that the second's first step allocates
    // only what the graph itself keeps.
    step(&mut Graph::new(&be, spec.clone(), 0).unwrap());
    let mut graph = Graph::new(&be, spec, 0).unwrap();
    let acts = activation_bytes(&graph, n);
    let bytes = bytes_allocated(|| step(&mut graph));
    // The outputs backward reads (the convolutions', the ReLUs'; batch
    // norm's and the adds' take turns in a few shared buffers), the input,
    // batch norm's small caches and a few gradient buffers: less than one
    // buffer per node's output. One output and one gradient buffer per
    // node allocated 2.1x `acts`; with shared gradient buffers alone, 1.1x.
    assert!(
        bytes < acts,
        "the first training step allocated {bytes} bytes, {:.2}x the {acts} bytes of the nodes' outputs",
        bytes as f64 / acts as f64
    );
}

#[test]
fn shared_gradient_buffers_give_the_bits_of_one_buffer_per_node() {
    // Residual adds and the 1x1 shortcuts write a block input's gradient
    // several nodes before its own backward reads it, and batch norm's and
    // the adds' outputs share buffers in the forward: a buffer reused too
    // early would change the parameter gradients. Keeping every gradient
    // keeps every output too.
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let be = CpuBackend::with_threads(2).unwrap();
    let spec = resnet20(&ModelOptions::new([3, 16, 16], 10)).unwrap();
    let n = 6;
    let x: Vec<f32> = (0..n * 3 * 256)
        .map(|i| ((i * 7) % 23) as f32 / 23.0 - 0.5)
        .collect();
    let dlogits: Vec<f32> = (0..n * 10).map(|i| (i % 7) as f32 / 70.0 - 0.04).collect();
    let dlogits = Tensor::from_slice(&be, [n, 10], &dlogits).unwrap();
    let grads = |keep: bool| {
        let mut graph = Graph::new(&be, spec.clone(), 3).unwrap();
        graph.set_keep_gradients(keep);
        assert_eq!(graph.keeps_gradients(), keep);
        for _ in 0..2 {
            graph.zero_grad().unwrap();
            graph.forward_host(&x, n, Mode::Train).unwrap();
            graph.backward(&dlogits).unwrap();
        }
        let kept = (0..graph.node_shapes().len())
            .filter(|&i| graph.node_grad(i).is_some())
            .count();
        let outputs = (0..graph.node_shapes().len())
            .filter(|&i| graph.node_output(i).is_some())
            .count();
        assert_eq!(
            outputs == graph.node_shapes().len(),
            keep,
            "outputs kept: {outputs}"
        );
        let params: Vec<Vec<u32>> = graph
            .params_iter()
            .map(|p| {
                p.grad
                    .to_vec(&be)
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            })
            .collect();
        (params, kept, graph.node_shapes().len())
    };
    let (shared, kept_shared, nodes) = grads(false);
    let (own, kept_own, _) = grads(true);
    assert_eq!(kept_own, nodes, "keep-all keeps every node's gradient");
    assert!(
        kept_shared < nodes / 2,
        "{kept_shared} of {nodes} gradients survive backward: the buffers are not shared"
    );
    assert_eq!(shared.len(), own.len());
    for (i, (a, b)) in shared.iter().zip(&own).enumerate() {
        assert!(
            a == b,
            "parameter {i}'s gradient differs with shared buffers"
        );
    }
}

#[test]
fn released_workspaces_are_made_again_with_the_same_bits() {
    // A run drops its workspaces before the final test evaluation, so that
    // the test batches reuse their memory rather than add to it.
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let be = CpuBackend::with_threads(2).unwrap();
    let spec = resnet20(&ModelOptions::new([3, 16, 16], 10)).unwrap();
    let mut graph = Graph::new(&be, spec, 0).unwrap();
    let n = 4;
    let x: Vec<f32> = (0..n * 3 * 256)
        .map(|i| (i % 13) as f32 / 13.0 - 0.5)
        .collect();
    let dlogits = Tensor::from_slice(&be, [n, 10], &vec![0.01; n * 10]).unwrap();
    graph.forward_host(&x, n, Mode::Train).unwrap();
    graph.backward(&dlogits).unwrap();
    let eval = |graph: &mut Graph<CpuBackend>| {
        let y = graph
            .forward_host(&x, n, Mode::Eval)
            .unwrap()
            .to_vec(&be)
            .unwrap();
        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    };
    let before = eval(&mut graph);
    assert_eq!(bytes_allocated(|| assert_eq!(eval(&mut graph), before)), 0);
    graph.release_workspaces();
    assert!(
        graph.node_output(0).is_none(),
        "no forward's outputs are left"
    );
    let mut after = Vec::new();
    let made = bytes_allocated(|| after = eval(&mut graph));
    assert!(made > 0, "the evaluation workspace was not dropped");
    assert_eq!(after, before);
}

/// The bits of a tensor's values.
fn bits_of(t: &Tensor<CpuBackend>, be: &CpuBackend) -> Vec<u32> {
    t.to_vec(be).unwrap().iter().map(|v| v.to_bits()).collect()
}

/// The bits of every parameter gradient of `graph`.
fn grad_bits(graph: &Graph<CpuBackend>, be: &CpuBackend) -> Vec<Vec<u32>> {
    graph.params_iter().map(|p| bits_of(&p.grad, be)).collect()
}

#[test]
fn a_last_partial_batch_runs_in_the_full_batchs_workspace() {
    // An epoch ends with a partial batch (training and each evaluation
    // split): it runs in the full batch's workspace, its buffers (and the
    // max poolings' argmax buffers) shortened in place, so it allocates
    // nothing and gives the bits of a workspace of its own. VGG's
    // evaluation workspace at 256 32x32 images holds 140 MB.
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let be = CpuBackend::with_threads(2).unwrap();
    let spec = vgg_small(&ModelOptions::new([3, 16, 16], 10)).unwrap();
    let input = |n: usize| -> Vec<f32> {
        (0..n * 3 * 256)
            .map(|i| ((i * 7) % 23) as f32 / 23.0 - 0.5)
            .collect()
    };
    let dlogits = |n: usize| {
        let v: Vec<f32> = (0..n * 10).map(|i| (i % 7) as f32 / 70.0 - 0.04).collect();
        Tensor::from_slice(&be, [n, 10], &v).unwrap()
    };
    let (full, part) = (16, 13);
    let (x_full, x_part) = (input(full), input(part));
    let (d_full, d_part) = (dlogits(full), dlogits(part));
    // The logits' bits are read after the counted part.
    let eval = |graph: &mut Graph<CpuBackend>, x: &[f32], n: usize| {
        graph.forward_host(x, n, Mode::Eval).unwrap();
    };
    let logits = |graph: &Graph<CpuBackend>| {
        bits_of(
            graph.node_output(graph.node_shapes().len() - 1).unwrap(),
            &be,
        )
    };
    let train = |graph: &mut Graph<CpuBackend>, x: &[f32], n: usize, d: &Tensor<CpuBackend>| {
        graph.zero_grad().unwrap();
        graph.forward_host(x, n, Mode::Train).unwrap();
        graph.backward(d).unwrap();
    };

    // What a graph that meets only the partial batch gives.
    let mut alone = Graph::new(&be, spec.clone(), 4).unwrap();
    eval(&mut alone, &x_part, part);
    let eval_alone = logits(&alone);
    train(&mut alone, &x_part, part, &d_part);
    let train_alone = grad_bits(&alone, &be);

    let mut graph = Graph::new(&be, spec, 4).unwrap();
    eval(&mut graph, &x_full, full);
    let eval_full = logits(&graph);
    train(&mut graph, &x_full, full, &d_full);
    let train_full = grad_bits(&graph, &be);
    let bytes = bytes_allocated(|| eval(&mut graph, &x_part, part));
    assert_eq!(
        bytes, 0,
        "the partial evaluation batch allocated {bytes} bytes: a workspace of its own"
    );
    assert_eq!(logits(&graph).len(), part * 10);
    assert!(logits(&graph) == eval_alone, "partial evaluation differs");
    let bytes = bytes_allocated(|| train(&mut graph, &x_part, part, &d_part));
    assert_eq!(
        bytes, 0,
        "the partial training batch allocated {bytes} bytes: a workspace of its own"
    );
    assert!(
        grad_bits(&graph, &be) == train_alone,
        "partial training step differs"
    );
    // Back at the full size, still without allocating, the same bits.
    let bytes = bytes_allocated(|| eval(&mut graph, &x_full, full));
    assert_eq!(
        bytes, 0,
        "the full evaluation batch made its workspace again"
    );
    assert!(logits(&graph) == eval_full);
    let bytes = bytes_allocated(|| train(&mut graph, &x_full, full, &d_full));
    assert_eq!(bytes, 0, "the full training batch made its workspace again");
    assert!(grad_bits(&graph, &be) == train_full);
}

#[test]
fn data_parallel_partial_batches_reuse_the_replicas_workspaces() {
    // The replicas of a data-parallel step (VGG, 2 parts) run a last
    // partial batch in their full parts' workspaces: no new buffer, and
    // the gradients of a runner that met only the partial batch.
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let be = CpuBackend::with_threads(2).unwrap();
    let spec = vgg_small(&ModelOptions::new([3, 16, 16], 10)).unwrap();
    let loss = SoftmaxCrossEntropy::new();
    let batch = |n: usize| -> (Vec<f32>, Vec<u32>) {
        let x = (0..n * 3 * 256)
            .map(|i| ((i * 5) % 19) as f32 / 19.0 - 0.5)
            .collect();
        (x, (0..n as u32).map(|i| i % 10).collect())
    };
    let (full, part) = (batch(16), batch(10));
    let step = |dp: &mut DataParallel<CpuBackend>,
                graph: &mut Graph<CpuBackend>,
                b: &(Vec<f32>, Vec<u32>)| {
        graph.zero_grad().unwrap();
        dp.forward_backward(graph, &b.0, &b.1, &loss, None).unwrap();
    };
    let mut alone = Graph::new(&be, spec.clone(), 6).unwrap();
    let mut dp_alone = DataParallel::for_graph(&alone).unwrap().expect("2 parts");
    step(&mut dp_alone, &mut alone, &part);
    let want = grad_bits(&alone, &be);

    let mut graph = Graph::new(&be, spec, 6).unwrap();
    let mut dp = DataParallel::for_graph(&graph).unwrap().expect("2 parts");
    step(&mut dp, &mut graph, &full);
    let bytes = bytes_allocated(|| step(&mut dp, &mut graph, &part));
    assert_eq!(bytes, 0, "the partial step allocated {bytes} bytes");
    assert!(
        grad_bits(&graph, &be) == want,
        "the partial step's gradients differ"
    );
}

#[test]
fn relus_write_over_their_inputs_with_the_same_bits() {
    // VGG keeps every output backward reads, one buffer each; a ReLU whose
    // input (a convolution's, a linear layer's) nothing else reads writes
    // over that buffer, as PyTorch's `inplace=True`. A leaky ReLU (its
    // backward reads its input) cannot, so the same network with leaky
    // ReLUs allocates those outputs on top.
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let be = CpuBackend::with_threads(1).unwrap();
    let opts = ModelOptions::new([3, 16, 16], 10);
    let spec = vgg_small(&opts).unwrap();
    let n = 6;
    let x: Vec<f32> = (0..n * 3 * 256)
        .map(|i| ((i * 11) % 29) as f32 / 29.0 - 0.5)
        .collect();
    let dlogits: Vec<f32> = (0..n * 10).map(|i| (i % 9) as f32 / 90.0 - 0.04).collect();
    let dlogits = Tensor::from_slice(&be, [n, 10], &dlogits).unwrap();
    let step = |graph: &mut Graph<CpuBackend>| {
        graph.forward_host(&x, n, Mode::Train).unwrap();
        graph.backward(&dlogits).unwrap();
    };
    // Grow the backend's pools first, so that a first step allocates only
    // what the graph keeps.
    step(&mut Graph::new(&be, spec.clone(), 2).unwrap());
    let mut graph = Graph::new(&be, spec.clone(), 2).unwrap();
    let relu_bytes = bytes_allocated(|| step(&mut graph));
    let names: Vec<String> = graph.node_names().map(str::to_string).collect();
    let written_over: Vec<usize> = ["features.1.1", "features.2.1", "features.3.1", "fc1"]
        .iter()
        .map(|name| names.iter().position(|m| m == name).unwrap())
        .collect();
    for &i in &written_over {
        assert!(
            graph.node_output(i).is_none(),
            "{} kept its output",
            names[i]
        );
        assert!(graph.node_output(i + 1).is_some(), "its ReLU kept nothing");
    }
    let over_bytes: usize = written_over
        .iter()
        .map(|&i| graph.node_shapes()[i].numel() * n * 4)
        .sum();
    let mut leaky_opts = opts.clone();
    leaky_opts.activation = cnn_core::Activation::LeakyRelu {
        negative_slope: 0.01,
    };
    let leaky_spec = vgg_small(&leaky_opts).unwrap();
    step(&mut Graph::new(&be, leaky_spec.clone(), 2).unwrap());
    let mut leaky = Graph::new(&be, leaky_spec, 2).unwrap();
    let leaky_bytes = bytes_allocated(|| step(&mut leaky));
    assert!(
        relu_bytes + over_bytes <= leaky_bytes,
        "ReLU step {relu_bytes} bytes, leaky ReLU step {leaky_bytes}: the {over_bytes} bytes of written-over outputs were allocated"
    );

    // The bits of a graph that keeps every output (no ReLU in place): the
    // logits, the parameter gradients, and an evaluation (which pools and
    // applies the ReLU in place, without the pooled buffers) equal to the
    // training forward (VGG has no batch norm or dropout).
    let run = |keep: bool| {
        let mut g = Graph::new(&be, spec.clone(), 5).unwrap();
        g.set_keep_gradients(keep);
        let eval = bits_of(g.forward_host(&x, n, Mode::Eval).unwrap(), &be);
        let train = bits_of(g.forward_host(&x, n, Mode::Train).unwrap(), &be);
        g.backward(&dlogits).unwrap();
        (eval, train, grad_bits(&g, &be))
    };
    let (eval, train, grads) = run(false);
    let (_, train_kept, grads_kept) = run(true);
    assert!(train == train_kept, "logits differ with the ReLUs in place");
    assert!(
        grads == grads_kept,
        "gradients differ with the ReLUs in place"
    );
    assert!(
        eval == train,
        "the evaluation differs from the training forward"
    );
}
