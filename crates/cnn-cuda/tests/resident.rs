//! The device-resident training set (`cnn_core::ResidentOps`,
//! `data_on_device`).
//!
//! Runs here (no GPU): `cnn_core::gather_reference`, the Rust definition
//! of `memory.cu`'s `gather_batch` (the same draws and per-element index
//! arithmetic, line for line), equals the host loader's batches bit for
//! bit over epochs, seeds, crop/flip/cutout settings, byte and f32
//! pixels, subsets that start past 0, shuffled and in-order epochs and
//! each epoch's last partial batch.
//!
//! Needs a GPU (skips without one; `CNN_REQUIRE_CUDA=1` makes that a
//! failure, as `cargo xtask gpu-check` does): the device's batches equal
//! the host loader's bit for bit; a short LeNet-5 run with the resident
//! set gives the host loader's step losses and weights bit for bit (what
//! `steps.csv` and `model.safetensors` hold); and its steps upload
//! nothing through `MemoryOps` (the host loader's upload each batch).

mod common;

use std::sync::Arc;

use cnn_core::{
    GatherParams, Graph, HostPixels, MemoryOps, ResidentOps, ResidentSet, Shape, channel_constants,
    gather_reference,
};
use cnn_data::{Augment, ImageSet, Loader, LoaderConfig, Normalization, Pixels, Subset};
use cnn_train::resident::DataOnDevice;
use cnn_train::{TrainConfig, Trainer, setup};

/// A set of `n` images of `dims`, bytes or f32 values in [0, 1], with
/// labels, as a subset starting at image 3.
fn subset(n: usize, dims: [usize; 3], bytes: bool, seed: u64) -> Subset {
    let numel: usize = dims.iter().product();
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let total = n + 3;
    let pixels = if bytes {
        Pixels::U8((0..total * numel).map(|_| next() as u8).collect())
    } else {
        Pixels::F32(
            (0..total * numel)
                .map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32)
                .collect(),
        )
    };
    let labels = (0..total).map(|_| (next() % 10) as u32).collect();
    let set = ImageSet::new(Shape::from(dims), pixels, labels).unwrap();
    Subset::full(Arc::new(set)).range(3..total)
}

/// The subset's own pixels (its images only), as the resident set holds them.
fn host_pixels(s: &Subset) -> HostPixels<'_> {
    let numel = s.shape().numel();
    let range = s.offset() * numel..(s.offset() + s.len()) * numel;
    match s.set().pixels() {
        Pixels::U8(v) => HostPixels::U8(&v[range]),
        Pixels::F32(v) => HostPixels::F32(&v[range]),
    }
}

/// The augmentations checked: none, crop, flip, crop + flip, cutout
/// alone, cutout with both, a cutout wider than the image, cutout 1
/// (an empty square).
fn augments() -> Vec<Augment> {
    let a = |pad, flip, cutout| Augment { pad, flip, cutout };
    vec![
        a(0, false, 0),
        a(2, false, 0),
        a(0, true, 0),
        a(4, true, 0),
        a(0, false, 3),
        a(4, true, 5),
        a(1, true, 16),
        a(3, false, 1),
    ]
}

fn norm(channels: usize) -> Normalization {
    let mean = (0..channels).map(|c| 0.3 + 0.1 * c as f32).collect();
    let std = (0..channels).map(|c| 0.2 + 0.05 * c as f32).collect();
    Normalization::new(mean, std).unwrap()
}

fn params(loader: &Loader, epoch: u64, index: usize, n: usize) -> GatherParams {
    let (s, c) = (loader.data(), loader.config());
    let d = s.shape().dims();
    GatherParams {
        samples: s.len(),
        first: index * c.batch_size,
        n,
        dims: [d[0], d[1], d[2]],
        pad: c.augment.pad,
        flip: c.augment.flip,
        cutout: c.augment.cutout,
        seed: c.seed,
        epoch,
        kind: host_pixels(s).kind(),
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Every (set, augmentation, seed, shuffle) the tests walk: 37 images in
/// batches of 8 (the last of 5).
fn loaders() -> Vec<Loader> {
    let mut out = Vec::new();
    for (k, (dims, bytes)) in [([3, 8, 7], true), ([1, 5, 6], false), ([2, 6, 6], true)]
        .into_iter()
        .enumerate()
    {
        let data = subset(37, dims, bytes, k as u64 + 1);
        for (a, augment) in augments().into_iter().enumerate() {
            for seed in [0, 7, u64::MAX] {
                let config = LoaderConfig {
                    batch_size: 8,
                    shuffle: (a + seed as usize) % 4 != 1,
                    seed,
                    augment,
                    prefetch: 0,
                    drop_last: false,
                };
                out.push(Loader::new(data.clone(), norm(dims[0]), config).unwrap());
            }
        }
    }
    out
}

#[test]
fn the_reference_gather_is_the_host_loaders_batches_bit_for_bit() {
    let mut batches = 0;
    for loader in loaders() {
        let s = loader.data();
        let norm = norm(s.shape().dims()[0]);
        let pixels = host_pixels(s);
        let consts = channel_constants(pixels.kind(), &norm.mean, &norm.std).unwrap();
        for epoch in 0..3 {
            let order: Vec<u32> = loader.order(epoch).iter().map(|&i| i as u32).collect();
            for batch in loader.epoch(epoch) {
                let p = params(&loader, epoch, batch.index, batch.n);
                let mut images = vec![f32::NAN; batch.images.len()];
                let mut labels = vec![u32::MAX; batch.n];
                gather_reference(
                    &p,
                    pixels,
                    s.labels(),
                    &order,
                    &consts,
                    &mut images,
                    &mut labels,
                )
                .unwrap();
                assert_eq!(labels, batch.labels, "{:?} epoch {epoch}", loader.config());
                assert!(
                    bits(&images) == bits(&batch.images),
                    "{:?}: epoch {epoch} batch {} differs",
                    loader.config(),
                    batch.index
                );
                batches += 1;
            }
        }
    }
    // 3 sets x 8 augmentations x 3 seeds x 3 epochs x 5 batches.
    assert_eq!(batches, 3 * 8 * 3 * 3 * 5);
}

#[test]
fn the_device_gather_is_the_host_loaders_batches_bit_for_bit() {
    let Some(cuda) = common::cuda("the_device_gather_is_the_host_loaders_batches_bit_for_bit")
    else {
        return;
    };
    assert!(cuda.resident_free_memory().unwrap().unwrap() > 0);
    for loader in loaders() {
        let s = loader.data();
        let d = s.shape().dims();
        let norm = norm(d[0]);
        let mut set = ResidentSet::upload(
            &cuda,
            host_pixels(s),
            s.labels(),
            [d[0], d[1], d[2]],
            &norm.mean,
            &norm.std,
        )
        .unwrap();
        for epoch in 0..2 {
            let order: Vec<u32> = loader.order(epoch).iter().map(|&i| i as u32).collect();
            set.set_order(&cuda, &order).unwrap();
            for batch in loader.epoch(epoch) {
                let p = params(&loader, epoch, batch.index, batch.n);
                let mut images = cuda.alloc_zeros(batch.images.len()).unwrap();
                let mut labels = cuda.alloc_indices(batch.n).unwrap();
                cuda.gather_batch(&p, &set, &mut images, &mut labels)
                    .unwrap();
                assert_eq!(cuda.download_indices(&labels).unwrap(), batch.labels);
                assert!(
                    bits(&cuda.download(&images).unwrap()) == bits(&batch.images),
                    "{:?}: epoch {epoch} batch {} differs on the device",
                    loader.config(),
                    batch.index
                );
            }
        }
        // A batch past the order is an error, not a read out of bounds.
        let mut p = params(&loader, 0, 4, 8);
        p.first = 33;
        let mut images = cuda.alloc_zeros(8 * s.shape().numel()).unwrap();
        let mut labels = cuda.alloc_indices(8).unwrap();
        assert!(
            cuda.gather_batch(&p, &set, &mut images, &mut labels)
                .is_err()
        );
    }
}

/// LeNet-5 on the synthetic set with crop, flip and cutout, shuffled, 2
/// epochs of 9 batches of 64 and a last one of 17.
fn lenet_config(data_on_device: DataOnDevice, epochs: usize, max_steps: u64) -> TrainConfig {
    TrainConfig {
        model: "lenet5".into(),
        data: "synthetic".into(),
        epochs,
        max_steps,
        batch_size: 64,
        optimizer: "sgd".into(),
        lr: Some(0.05),
        momentum: Some(0.9),
        augment: true,
        cutout: 8,
        val_fraction: 0.0,
        limit_train: 64 * 9 + 17,
        seed: 3,
        backend: "cuda".into(),
        data_on_device,
        ..TrainConfig::default()
    }
}

/// A fresh backend's run of `config`: the step losses' bits, the final
/// weights' bits, the trainer's resident bytes and the bytes uploaded.
fn lenet_run(config: TrainConfig) -> (Vec<u64>, Vec<u32>, Option<u64>, u64) {
    let cuda = cnn_cuda::CudaBackend::new().unwrap();
    let data = setup::load_data(&config).unwrap();
    let spec = setup::model_spec(&config, &data.shape, data.num_classes()).unwrap();
    let graph = Graph::new(&cuda, spec, config.seed).unwrap();
    let mut trainer = Trainer::new(cuda.clone(), config, graph, data).unwrap();
    let resident = trainer.resident_bytes();
    trainer.fit().unwrap();
    let losses = trainer
        .history()
        .steps
        .iter()
        .map(|s| s.loss.to_bits())
        .collect();
    let weights = trainer
        .graph()
        .params_iter()
        .flat_map(|p| cuda.download(p.value.buffer()).unwrap())
        .map(f32::to_bits)
        .collect();
    (losses, weights, resident, cuda.uploaded_bytes())
}

#[test]
fn a_lenet5_run_with_the_resident_set_has_the_host_loaders_bits() {
    if common::cuda("a_lenet5_run_with_the_resident_set_has_the_host_loaders_bits").is_none() {
        return;
    }
    let (host_losses, host_weights, none, _) = lenet_run(lenet_config(DataOnDevice::Off, 2, 0));
    let (losses, weights, bytes, _) = lenet_run(lenet_config(DataOnDevice::On, 2, 0));
    assert_eq!(none, None);
    // 593 images of 3x32x32 bytes, labels and order, 3 channels' constants.
    assert_eq!(bytes, Some(4 * ((593 * 3072u64).div_ceil(4) + 2 * 593 + 9)));
    assert_eq!(losses.len(), 20);
    assert!(losses == host_losses, "the step losses differ");
    assert!(weights == host_weights, "the weights differ");
    // auto picks the resident set on a GPU.
    let (auto_losses, _, auto_bytes, _) = lenet_run(lenet_config(DataOnDevice::Auto, 1, 0));
    assert_eq!(auto_bytes, bytes);
    assert!(auto_losses[..] == host_losses[..10]);
}

#[test]
fn resident_steps_upload_no_batch() {
    if common::cuda("resident_steps_upload_no_batch").is_none() {
        return;
    }
    // Two runs that differ only in 6 more steps of the same epoch: their
    // uploads differ by those steps' (the set, the order and the final
    // evaluation are the same).
    let per_steps = |d: DataOnDevice| {
        let short = lenet_run(lenet_config(d, 1, 2)).3;
        let long = lenet_run(lenet_config(d, 1, 8)).3;
        long - short
    };
    let host = per_steps(DataOnDevice::Off);
    let resident = per_steps(DataOnDevice::On);
    // The host loader uploads each batch's images and labels.
    assert!(
        host >= 6 * 64 * (3072 * 4 + 4),
        "host steps uploaded {host} bytes"
    );
    assert_eq!(resident, 0, "resident steps uploaded {resident} bytes");
}
