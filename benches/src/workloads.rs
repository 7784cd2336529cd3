//! The workloads of `docs/benchmarks.md`, identical to `xtask/torch_bench.py`:
//! - W1 `lenet-mnist`: LeNet-5, one shuffled MNIST epoch, batch 64, SGD lr
//!   0.05 momentum 0.9, then accuracy on the 10,000 test images.
//! - W2 `article-cnn`: the article's classifier on synthetic 3x32x32 images,
//!   200 steps of batch 64.
//! - W3 `conv-layer`: one conv2d, batch 32, 64->64 channels, 3x3, pad 1,
//!   32x32; forward, and forward + backward (input, weight, bias grads).
//! - W4 `sgemm`: `C = A B`, f32, square.
//! - W5 `resnet20-train`: the built-in ResNet-20 on synthetic 3x32x32,
//!   training steps of batch 128, SGD lr 0.1 momentum 0.9, batch norm in
//!   training mode.
//! - W6 `vgg-train`: the built-in `vgg`, the same steps with SGD lr 0.01
//!   momentum 0.9.
//! - W7 `resnet20-infer`: W5's network in evaluation mode, batch 256.
//! - W5-GPU `resnet20-train` at batch 512: W5's steps at the batch a GPU
//!   wants (the GPU workload; it runs on the CPU too).
//! - W8 `airbench94`: the built-in `airbench94` (Jordan 2024's network),
//!   training steps of batch 1024, SGD lr 0.01 with Nesterov momentum 0.85.
//!
//! Each returns a [`Measurement`]: one value per run (higher is better),
//! seconds per run and the GFLOP/s achieved.

use std::path::Path;
use std::time::Instant;

use cnn_core::models::{ModelOptions, airbench94, article, lenet5, resnet20, vgg_small};
use cnn_core::{
    Backend, Conv2dGeometry, Conv2dParams, GemmParams, GraphSpec, LayerSpec, Shape, graph::NodeOp,
};
use cnn_data::{IdxFlavor, ImageSet, Normalization, load_mnist_dir};
use serde_json::{Value, json};

use cnn_optim::{OptimizerConfig, SgdConfig};

use crate::sys::{median, min_max};
use crate::{Result, Trainer};

/// Batch size of W1 and W2.
pub const BATCH: usize = 64;
/// Seed of parameters and shuffling.
pub const SEED: u64 = 0;

/// What one workload measured.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// `sgemm_1024`, `w1_lenet_mnist`, `w2_article`, `w3_conv_fwd`, `w3_conv_fwd_bwd`.
    pub name: String,
    /// Unit of `values`: `img/s` or `GFLOP/s`.
    pub unit: &'static str,
    /// One value per run; higher is better.
    pub values: Vec<f64>,
    /// Seconds per run (an epoch, 200 steps, one layer call, one product).
    pub seconds: Vec<f64>,
    /// GFLOP/s per run.
    pub gflops: Vec<f64>,
    /// Other figures (test accuracy, final loss, images per run).
    pub extra: Vec<(&'static str, f64)>,
}

impl Measurement {
    fn new(name: &str, unit: &'static str) -> Self {
        Measurement {
            name: name.into(),
            unit,
            values: Vec::new(),
            seconds: Vec::new(),
            gflops: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// The JSON object `xtask bench` reads (the same shape as `torch_bench.py`'s).
    pub fn to_json(&self) -> Value {
        let (lo, hi) = min_max(&self.values);
        let extra: serde_json::Map<String, Value> = self
            .extra
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        json!({
            "name": self.name,
            "unit": self.unit,
            "median": median(&self.values),
            "min": lo,
            "max": hi,
            "values": self.values,
            "seconds_median": median(&self.seconds),
            "gflops_median": median(&self.gflops),
            "extra": extra,
        })
    }
}

/// Training FLOPs per sample of a graph: each convolution and linear layer
/// costs its forward FLOPs three times (forward, input gradient, weight
/// gradient), except the first, whose input gradient backward skips.
/// Elementwise ops, batch norm, pooling and the loss are not counted.
pub fn train_flops_per_sample(spec: &GraphSpec) -> Result<f64> {
    let fwd = layer_forward_flops(spec)?;
    Ok(fwd
        .iter()
        .enumerate()
        .map(|(i, f)| f * if i == 0 { 2.0 } else { 3.0 })
        .sum())
}

/// Forward FLOPs per sample of a graph's convolution and linear layers
/// (2 per multiply-add), as `torch.utils.flop_counter` counts them.
pub fn forward_flops_per_sample(spec: &GraphSpec) -> Result<f64> {
    Ok(layer_forward_flops(spec)?.iter().sum())
}

/// Forward FLOPs per sample of each convolution and linear layer, in
/// execution order.
fn layer_forward_flops(spec: &GraphSpec) -> Result<Vec<f64>> {
    let resolved = spec.resolve()?;
    let mut flops = Vec::new();
    for (i, node) in spec.nodes.iter().enumerate() {
        let input: &Shape = resolved.inputs[i].map_or(&spec.input, |j| &resolved.shapes[j]);
        let fwd = match &node.op {
            NodeOp::Layer(LayerSpec::Conv2d { geometry, .. }) => {
                let d = input.dims();
                Conv2dParams::new(1, d[0], d[1], d[2], geometry)?.forward_flops()
            }
            NodeOp::Layer(LayerSpec::Linear { out_features, .. }) => {
                2.0 * (input.numel() * out_features) as f64
            }
            _ => continue,
        };
        flops.push(fwd);
    }
    Ok(flops)
}

/// MNIST train and test images, as bytes.
#[derive(Debug)]
pub struct Mnist {
    pub train: std::sync::Arc<ImageSet>,
    pub test: std::sync::Arc<ImageSet>,
}

/// Load MNIST from `dir` (IDX files, raw or gzip).
pub fn load_mnist(dir: &Path) -> Result<Mnist> {
    let ds = load_mnist_dir(dir, IdxFlavor::Mnist)?;
    Ok(Mnist {
        train: ds.train,
        test: ds.test,
    })
}

/// W1: `runs` LeNet-5 epochs (each from fresh parameters) over the first
/// `limit` images of the shuffled training set (all 60,000 by default),
/// timing the epoch, then the test accuracy (not timed in images/s).
pub fn w1_lenet_mnist<B: Backend>(
    backend: &B,
    data: &Mnist,
    limit: Option<usize>,
    runs: usize,
) -> Result<Measurement> {
    let spec = lenet5(&ModelOptions::new([1, 28, 28], 10))?;
    let flops = train_flops_per_sample(&spec)?;
    let norm = Normalization::mnist();
    let numel = 28 * 28;
    let mut x = vec![0.0f32; BATCH * numel];
    let mut y = vec![0u32; BATCH];
    let mut m = Measurement::new("w1_lenet_mnist", "img/s");
    let mut order = cnn_data::epoch_order(SEED, 0, data.train.len());
    order.truncate(limit.unwrap_or(usize::MAX));
    let images = order.len();
    for _ in 0..runs {
        let mut t = Trainer::new(backend, spec.clone(), SEED, Trainer::<B>::sgd_config()?)?;
        let start = Instant::now();
        let mut loss = 0.0;
        // The epoch inside one `run`, as cnn-train runs it: the CPU
        // backend's workers stay a team across steps.
        backend.run(|| -> Result<()> {
            for chunk in order.chunks(BATCH) {
                for (j, &i) in chunk.iter().enumerate() {
                    data.train
                        .write_image(i, &norm, &mut x[j * numel..(j + 1) * numel]);
                    y[j] = data.train.labels()[i];
                }
                loss = t.step(&x[..chunk.len() * numel], &y[..chunk.len()])?;
            }
            Ok(())
        })?;
        backend.synchronize()?;
        let secs = start.elapsed().as_secs_f64();
        let eval_start = Instant::now();
        let mut correct = 0;
        let test_idx: Vec<usize> = (0..data.test.len()).collect();
        for chunk in test_idx.chunks(BATCH) {
            for (j, &i) in chunk.iter().enumerate() {
                data.test
                    .write_image(i, &norm, &mut x[j * numel..(j + 1) * numel]);
                y[j] = data.test.labels()[i];
            }
            correct += t.correct(&x[..chunk.len() * numel], &y[..chunk.len()])?;
        }
        let eval_secs = eval_start.elapsed().as_secs_f64();
        m.values.push(images as f64 / secs);
        m.seconds.push(secs);
        m.gflops.push(flops * images as f64 / secs / 1e9);
        m.extra = vec![
            ("images", images as f64),
            (
                "test_accuracy",
                correct as f64 / data.test.len().max(1) as f64,
            ),
            ("final_loss", f64::from(loss)),
            ("eval_seconds", eval_secs),
        ];
    }
    Ok(m)
}

/// Deterministic pseudo-random values in `[-1, 1)` (a 64-bit LCG).
pub fn synthetic_values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// W2: `runs` times 200 training steps (`steps`) of the article's classifier
/// on synthetic 3x32x32 images, batch 64 (a pool of 16 batches, cycled).
pub fn w2_article<B: Backend>(backend: &B, steps: usize, runs: usize) -> Result<Measurement> {
    let spec = article(&ModelOptions::new([3, 32, 32], 10))?;
    let flops = train_flops_per_sample(&spec)?;
    let numel = 3 * 32 * 32;
    let pool = 16;
    let x = synthetic_values(pool * BATCH * numel, 1);
    let labels: Vec<u32> = (0..pool * BATCH).map(|i| (i * 7 % 10) as u32).collect();
    let mut m = Measurement::new("w2_article", "img/s");
    for _ in 0..runs {
        let mut t = Trainer::new(backend, spec.clone(), SEED, Trainer::<B>::sgd_config()?)?;
        // One untimed step builds the workspaces and optimizer state.
        t.step(&x[..BATCH * numel], &labels[..BATCH])?;
        let start = Instant::now();
        let mut loss = 0.0;
        backend.run(|| -> Result<()> {
            for s in 0..steps {
                let b = s % pool;
                loss = t.step(
                    &x[b * BATCH * numel..(b + 1) * BATCH * numel],
                    &labels[b * BATCH..(b + 1) * BATCH],
                )?;
            }
            Ok(())
        })?;
        backend.synchronize()?;
        let secs = start.elapsed().as_secs_f64();
        let images = (steps * BATCH) as f64;
        m.values.push(images / secs);
        m.seconds.push(secs);
        m.gflops.push(flops * images / secs / 1e9);
        m.extra = vec![("images", images), ("final_loss", f64::from(loss))];
    }
    Ok(m)
}

/// Batch size of W5 and W6's training steps.
pub const REAL_TRAIN_BATCH: usize = 128;
/// Batch size of W7's evaluation forwards.
pub const REAL_INFER_BATCH: usize = 256;

/// Synthetic 3x32x32 batches for W5-W7: `pool` batches of `batch` images
/// (values in `[-1, 1)`, seed 1) and their labels (`i * 7 % 10`), cycled.
struct SyntheticPool {
    x: Vec<f32>,
    labels: Vec<u32>,
    batch: usize,
    pool: usize,
}

impl SyntheticPool {
    const NUMEL: usize = 3 * 32 * 32;

    fn new(batch: usize, pool: usize) -> Self {
        SyntheticPool {
            x: synthetic_values(pool * batch * Self::NUMEL, 1),
            labels: (0..pool * batch).map(|i| (i * 7 % 10) as u32).collect(),
            batch,
            pool,
        }
    }

    /// Batch `s` (modulo the pool): images and labels.
    fn batch(&self, s: usize) -> (&[f32], &[u32]) {
        let (b, n) = (s % self.pool, self.batch);
        (
            &self.x[b * n * Self::NUMEL..(b + 1) * n * Self::NUMEL],
            &self.labels[b * n..(b + 1) * n],
        )
    }
}

/// W5 (`resnet20`, lr 0.1) and W6 (`vgg`, lr 0.01): `runs` times `steps`
/// timed training steps of batch 128 on synthetic 3x32x32 images, SGD
/// momentum 0.9, after two untimed steps (workspaces, optimizer state,
/// the backend's pools); each run from fresh parameters.
pub fn real_size_train<B: Backend>(
    backend: &B,
    model: &str,
    steps: usize,
    runs: usize,
) -> Result<Measurement> {
    let opts = ModelOptions::new([3, 32, 32], 10);
    let (name, spec, lr) = match model {
        "resnet20" => ("w5_resnet20_train", resnet20(&opts)?, 0.1),
        "vgg" => ("w6_vgg_train", vgg_small(&opts)?, 0.01),
        other => return Err(format!("no real-size training workload for `{other}`").into()),
    };
    let config = OptimizerConfig::from_name("sgd")?
        .with_lr(lr)
        .with_momentum(0.9)?;
    let setup = TrainSetup {
        name,
        spec,
        config,
        batch: REAL_TRAIN_BATCH,
    };
    train_steps(backend, &setup, steps, runs)
}

/// Batch size of W5-GPU.
pub const W5_GPU_BATCH: usize = 512;
/// Batch size of W8.
pub const W8_BATCH: usize = 1024;
/// Images in one CIFAR-10 training epoch (W8's `epoch_50k_seconds`).
pub const CIFAR10_EPOCH: usize = 50_000;

/// The GPU training workloads (they run on any backend): `w5gpu`, W5's
/// network and optimizer at batch 512; `w8`, the built-in `airbench94` at
/// batch 1024 with SGD lr 0.01 and Nesterov momentum 0.85 (airbench's
/// kind of update; its weight decay, label smoothing and schedule are
/// left out, as the other workloads time plain steps). `batch` replaces
/// the batch size (small batches for tests on the CPU). `runs` times
/// `steps` timed steps after two untimed ones, as W5; W8 also reports the
/// seconds one 50,000-image epoch takes at the measured rate.
pub fn gpu_train<B: Backend>(
    backend: &B,
    workload: &str,
    batch: Option<usize>,
    steps: usize,
    runs: usize,
) -> Result<Measurement> {
    let opts = ModelOptions::new([3, 32, 32], 10);
    let setup = match workload {
        "w5gpu" => TrainSetup {
            name: "w5gpu_resnet20_train",
            spec: resnet20(&opts)?,
            config: OptimizerConfig::from_name("sgd")?
                .with_lr(0.1)
                .with_momentum(0.9)?,
            batch: batch.unwrap_or(W5_GPU_BATCH),
        },
        "w8" => TrainSetup {
            name: "w8_airbench94_train",
            spec: airbench94(&opts)?,
            config: OptimizerConfig::Sgd(SgdConfig {
                lr: 0.01,
                momentum: 0.85,
                nesterov: true,
                ..SgdConfig::default()
            }),
            batch: batch.unwrap_or(W8_BATCH),
        },
        other => return Err(format!("no GPU training workload `{other}` (w5gpu, w8)").into()),
    };
    let mut m = train_steps(backend, &setup, steps, runs)?;
    if workload == "w8" {
        let secs_per_image = median(&m.seconds) / (steps * setup.batch) as f64;
        m.extra
            .push(("epoch_50k_seconds", CIFAR10_EPOCH as f64 * secs_per_image));
    }
    Ok(m)
}

/// A training workload: its result name, network, optimizer and batch.
struct TrainSetup {
    name: &'static str,
    spec: GraphSpec,
    config: OptimizerConfig,
    batch: usize,
}

/// `runs` times `steps` timed training steps of `setup` on synthetic
/// 3x32x32 images (a pool of 4 batches), after two untimed steps; each run
/// from fresh parameters.
fn train_steps<B: Backend>(
    backend: &B,
    setup: &TrainSetup,
    steps: usize,
    runs: usize,
) -> Result<Measurement> {
    let flops = train_flops_per_sample(&setup.spec)?;
    let data = SyntheticPool::new(setup.batch, 4);
    let mut m = Measurement::new(setup.name, "img/s");
    for _ in 0..runs {
        let mut t = Trainer::new(backend, setup.spec.clone(), SEED, setup.config.clone())?;
        for s in 0..2 {
            let (x, y) = data.batch(s);
            t.step(x, y)?;
        }
        backend.synchronize()?;
        let start = Instant::now();
        let mut loss = 0.0;
        backend.run(|| -> Result<()> {
            for s in 0..steps {
                let (x, y) = data.batch(s);
                loss = t.step(x, y)?;
            }
            Ok(())
        })?;
        backend.synchronize()?;
        let secs = start.elapsed().as_secs_f64();
        let images = (steps * setup.batch) as f64;
        m.values.push(images / secs);
        m.seconds.push(secs);
        m.gflops.push(flops * images / secs / 1e9);
        m.extra = vec![
            ("images", images),
            ("final_loss", f64::from(loss)),
            ("mflop_per_image", flops / 1e6),
        ];
    }
    Ok(m)
}

/// W7: `runs` times `batches` evaluation-mode forwards of ResNet-20 at
/// batch 256 (logits downloaded, arg-max taken), after one untimed
/// forward; images/s.
pub fn w7_resnet20_infer<B: Backend>(
    backend: &B,
    batches: usize,
    runs: usize,
) -> Result<Measurement> {
    let spec = resnet20(&ModelOptions::new([3, 32, 32], 10))?;
    let flops = forward_flops_per_sample(&spec)?;
    let data = SyntheticPool::new(REAL_INFER_BATCH, 2);
    let mut t = Trainer::new(backend, spec, SEED, Trainer::<B>::sgd_config()?)?;
    let mut m = Measurement::new("w7_resnet20_infer", "img/s");
    for _ in 0..runs {
        let (x, y) = data.batch(0);
        t.correct(x, y)?;
        backend.synchronize()?;
        let start = Instant::now();
        let mut correct = 0;
        backend.run(|| -> Result<()> {
            for s in 0..batches {
                let (x, y) = data.batch(s);
                correct += t.correct(x, y)?;
            }
            Ok(())
        })?;
        backend.synchronize()?;
        let secs = start.elapsed().as_secs_f64();
        let images = (batches * REAL_INFER_BATCH) as f64;
        m.values.push(images / secs);
        m.seconds.push(secs);
        m.gflops.push(flops * images / secs / 1e9);
        m.extra = vec![
            ("images", images),
            ("correct", correct as f64),
            ("mflop_per_image", flops / 1e6),
        ];
    }
    Ok(m)
}

/// W3's convolution: batch 32, 64->64 channels, 3x3, pad 1, 32x32.
pub fn w3_params() -> Conv2dParams {
    Conv2dParams::new(32, 64, 32, 32, &Conv2dGeometry::new(64, 3).padding(1))
        .expect("W3's geometry is valid")
}

/// Buffers for one W3 convolution (x, w, b, y and their gradients).
#[derive(Debug)]
pub struct ConvBufs<B: Backend> {
    pub p: Conv2dParams,
    pub x: B::Buffer,
    pub w: B::Buffer,
    pub b: B::Buffer,
    pub y: B::Buffer,
    pub dy: B::Buffer,
    pub dx: B::Buffer,
    pub dw: B::Buffer,
    pub db: B::Buffer,
}

impl<B: Backend> ConvBufs<B> {
    /// Buffers for `p` with deterministic data.
    pub fn new(backend: &B, p: Conv2dParams) -> Result<Self> {
        Ok(ConvBufs {
            p,
            x: backend.upload(&synthetic_values(p.x_len(), 1))?,
            w: backend.upload(&synthetic_values(p.w_len(), 2))?,
            b: backend.upload(&synthetic_values(p.c_out, 3))?,
            y: backend.alloc_zeros(p.y_len())?,
            dy: backend.upload(&synthetic_values(p.y_len(), 4))?,
            dx: backend.alloc_zeros(p.x_len())?,
            dw: backend.alloc_zeros(p.w_len())?,
            db: backend.alloc_zeros(p.c_out)?,
        })
    }

    /// `y = conv(x, w) + b`.
    pub fn forward(&mut self, backend: &B) -> Result<()> {
        backend.conv2d_forward(&self.p, &self.x, &self.w, Some(&self.b), &mut self.y)?;
        Ok(())
    }

    /// Forward, then the input, weight and bias gradients.
    pub fn forward_backward(&mut self, backend: &B) -> Result<()> {
        self.forward(backend)?;
        backend.conv2d_backward_weight(&self.p, &self.x, &self.dy, &mut self.dw)?;
        backend.conv2d_backward_bias(&self.p, &self.dy, &mut self.db)?;
        backend.conv2d_backward_input(&self.p, &self.dy, &self.w, &mut self.dx)?;
        Ok(())
    }
}

/// Time `f` over about `target_secs` (at least `min_iters` calls) after one
/// warm-up call; seconds per call.
fn time_per_call(
    min_iters: usize,
    target_secs: f64,
    mut f: impl FnMut() -> Result<()>,
) -> Result<f64> {
    f()?;
    let start = Instant::now();
    let mut iters = 0;
    while iters < min_iters || start.elapsed().as_secs_f64() < target_secs {
        f()?;
        iters += 1;
    }
    Ok(start.elapsed().as_secs_f64() / iters as f64)
}

/// W3: `runs` timings of the convolution forward and of forward + backward.
pub fn w3_conv<B: Backend>(
    backend: &B,
    runs: usize,
    secs_per_run: f64,
) -> Result<[Measurement; 2]> {
    let mut c = ConvBufs::new(backend, w3_params())?;
    let fwd_flops = c.p.forward_flops();
    let mut fwd = Measurement::new("w3_conv_fwd", "GFLOP/s");
    let mut both = Measurement::new("w3_conv_fwd_bwd", "GFLOP/s");
    for _ in 0..runs {
        let s = time_per_call(3, secs_per_run, || {
            c.forward(backend)?;
            backend.synchronize()?;
            Ok(())
        })?;
        fwd.seconds.push(s);
        fwd.values.push(fwd_flops / s / 1e9);
        let s = time_per_call(2, secs_per_run, || {
            c.forward_backward(backend)?;
            backend.synchronize()?;
            Ok(())
        })?;
        both.seconds.push(s);
        both.values.push(3.0 * fwd_flops / s / 1e9);
    }
    fwd.gflops = fwd.values.clone();
    both.gflops = both.values.clone();
    fwd.extra = vec![("gflop_per_call", fwd_flops / 1e9)];
    both.extra = vec![("gflop_per_call", 3.0 * fwd_flops / 1e9)];
    Ok([fwd, both])
}

/// W4: `runs` timings of a square `size` sgemm `C = A B`.
pub fn w4_sgemm<B: Backend>(
    backend: &B,
    size: usize,
    runs: usize,
    secs_per_run: f64,
) -> Result<Measurement> {
    let p = GemmParams::new(size, size, size);
    let a = backend.upload(&synthetic_values(size * size, 1))?;
    let b = backend.upload(&synthetic_values(size * size, 2))?;
    let mut c = backend.alloc_zeros(size * size)?;
    let flops = 2.0 * (size * size * size) as f64;
    let mut m = Measurement::new(&format!("sgemm_{size}"), "GFLOP/s");
    for _ in 0..runs {
        let s = time_per_call(3, secs_per_run, || {
            backend.gemm(&p, &a, &b, &mut c)?;
            backend.synchronize()?;
            Ok(())
        })?;
        m.seconds.push(s);
        m.values.push(flops / s / 1e9);
    }
    m.gflops = m.values.clone();
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenet_training_flops_match_the_hand_count() {
        let spec = lenet5(&ModelOptions::new([1, 28, 28], 10)).unwrap();
        // Forward: conv1 235,200; conv2 480,000; fc 96,000 + 20,160 + 1,680.
        let fwd_rest = 480_000.0 + 96_000.0 + 20_160.0 + 1_680.0;
        let want = 2.0 * 235_200.0 + 3.0 * fwd_rest;
        assert_eq!(train_flops_per_sample(&spec).unwrap(), want);
    }

    #[test]
    fn real_size_flops_match_the_workload_definitions() {
        // BENCHMARKS.md: 40,813,184 and 39,160,320 MACs per image forward.
        let opts = ModelOptions::new([3, 32, 32], 10);
        let resnet = resnet20(&opts).unwrap();
        assert_eq!(
            forward_flops_per_sample(&resnet).unwrap(),
            2.0 * 40_813_184.0
        );
        let vgg = vgg_small(&opts).unwrap();
        assert_eq!(forward_flops_per_sample(&vgg).unwrap(), 2.0 * 39_160_320.0);
        // Training: x3, less the stem's input gradient (3 -> 16, 3x3, 32x32).
        let stem = 2.0 * 16.0 * 32.0 * 32.0 * 27.0;
        let want = 3.0 * 2.0 * 40_813_184.0 - stem;
        assert_eq!(train_flops_per_sample(&resnet).unwrap(), want);
    }

    #[test]
    fn airbench94_flops_match_the_w8_definition() {
        // 118,147,360 MACs per image forward (models.rs tests, PyTorch's
        // flop counter); training x3 less the whitening conv's input
        // gradient (3 -> 24, 2x2, 31x31 outputs: 276,768 MACs).
        let spec = airbench94(&ModelOptions::new([3, 32, 32], 10)).unwrap();
        assert_eq!(
            forward_flops_per_sample(&spec).unwrap(),
            2.0 * 118_147_360.0
        );
        let want = 2.0 * (3.0 * 118_147_360.0 - 276_768.0);
        assert_eq!(train_flops_per_sample(&spec).unwrap(), want);
    }

    #[test]
    fn w8_and_w5gpu_train_on_the_cpu_at_a_small_batch() {
        let be = cnn_cpu::CpuBackend::with_threads(2).unwrap();
        let m = gpu_train(&be, "w8", Some(4), 2, 1).unwrap();
        assert_eq!(m.name, "w8_airbench94_train");
        assert_eq!(m.values.len(), 1);
        assert!(m.values[0] > 0.0 && m.seconds[0] > 0.0);
        let extra = |m: &Measurement, k: &str| m.extra.iter().find(|e| e.0 == k).unwrap().1;
        assert_eq!(extra(&m, "images"), 8.0);
        assert!(extra(&m, "final_loss").is_finite());
        // The epoch at the measured rate: 50,000 images / (8 / seconds).
        let epoch = extra(&m, "epoch_50k_seconds");
        assert!((epoch - 50_000.0 * m.seconds[0] / 8.0).abs() <= 1e-9 * epoch);
        let gflops = 2.0 * (3.0 * 118_147_360.0 - 276_768.0) * 8.0 / m.seconds[0] / 1e9;
        assert!((m.gflops[0] - gflops).abs() <= 1e-9 * gflops);
        let r = gpu_train(&be, "w5gpu", Some(2), 1, 1).unwrap();
        assert_eq!(r.name, "w5gpu_resnet20_train");
        assert_eq!(extra(&r, "images"), 2.0);
        assert!(r.extra.iter().all(|e| e.0 != "epoch_50k_seconds"));
        let err = gpu_train(&be, "w9", None, 1, 1).unwrap_err();
        assert!(err.to_string().contains("no GPU training workload `w9`"));
    }

    #[test]
    fn w3_forward_is_2_42_gflop() {
        let f = w3_params().forward_flops() / 1e9;
        assert!((f - 2.416).abs() < 0.01, "{f}");
    }
}
