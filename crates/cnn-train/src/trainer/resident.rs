//! The trainer's side of the device-resident training set
//! (`crate::resident`, `data_on_device`): the choice and the upload when
//! the trainer is made, the epoch's batches (the host loader's order,
//! labels read on the host, no images) with the order uploaded once per
//! epoch, and each step's gather on the device into a batch tensor and
//! the loss's class targets.

use std::collections::HashMap;

use cnn_core::{Backend, GatherParams, HostPixels, ResidentSet, Shape, Tensor};
use cnn_data::{Batch, Loader, Pixels, Subset};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::resident::{DataOnDevice, fits};
use crate::setup::DataSplits;

/// The training set in device memory and the batch tensors it is gathered
/// into.
pub(crate) struct ResidentTraining<B: Backend> {
    set: ResidentSet<B>,
    /// The host's copy, for the labels the loop reads.
    train: Subset,
    /// The graph's per-sample input shape (the batch tensors').
    input: Shape,
    /// Everything of a batch's [`GatherParams`] but its place.
    params: GatherParams,
    batch_size: usize,
    /// One batch tensor per batch size (the full one and an epoch's last).
    images: HashMap<usize, Tensor<B>>,
    /// The batch the next gather writes: loader epoch, batch index.
    at: (u64, usize),
}

impl<B: Backend> ResidentTraining<B> {
    /// The resident set for a run, or `None` for the host loader, as
    /// `config.data_on_device` and the backend decide (see the module
    /// docs) for a graph of per-sample `input` shape; `split`: the
    /// trainer splits batches across workers.
    pub(crate) fn choose(
        b: &B,
        config: &TrainConfig,
        data: &DataSplits,
        input: &Shape,
        split: bool,
    ) -> Result<Option<Self>> {
        let wanted = config.data_on_device;
        if wanted == DataOnDevice::Off || data.train.is_empty() {
            return Ok(None);
        }
        let refuse = |why: String| -> Result<Option<Self>> {
            match wanted {
                DataOnDevice::On => Err(TrainError::Config(format!("--data-on-device on: {why}"))),
                _ => Ok(None),
            }
        };
        let Some(free) = b.resident_free_memory()? else {
            return refuse(format!(
                "the {} backend keeps no training set in device memory (its batches are \
                 built where it computes); use auto or off",
                b.name()
            ));
        };
        if config.mixup > 0.0 || config.cutmix > 0.0 {
            return refuse("mixup and CutMix mix each batch on the host; use auto or off".into());
        }
        if split {
            return refuse("the batches are split across the backend's workers".into());
        }
        let train = &data.train;
        let (n, d) = (train.len(), train.shape().dims());
        let dims = [d[0], d[1], d[2]];
        let numel = dims.iter().product::<usize>();
        if input.numel() != numel {
            return refuse(format!(
                "the model takes {input}, the images are {}",
                train.shape()
            ));
        }
        let values = train.offset() * numel..(train.offset() + n) * numel;
        let pixels = match train.set().pixels() {
            Pixels::U8(v) => HostPixels::U8(&v[values]),
            Pixels::F32(v) => HostPixels::F32(&v[values]),
        };
        let kind = pixels.kind();
        let bytes = GatherParams::set_bytes(kind, n, dims);
        if let Err(why) = fits(bytes, free) {
            return refuse(why);
        }
        let norm = &data.normalization;
        let consts = cnn_core::channel_constants(kind, &norm.mean, &norm.std)?;
        if let HostPixels::F32(v) = pixels {
            let plane = numel / dims[0];
            let finite = v.iter().enumerate().all(|(i, &p)| {
                let c = (i % numel) / plane;
                (p * consts[3 * c] + consts[3 * c + 1]).is_finite()
            });
            if !finite {
                return refuse("the training set has pixels that are not finite".into());
            }
        }
        let set = ResidentSet::upload(b, pixels, train.labels(), dims, &norm.mean, &norm.std)?;
        let augment = cnn_data::Augment {
            cutout: config.cutout,
            ..if config.augment {
                cnn_data::Augment::standard()
            } else {
                cnn_data::Augment::none()
            }
        };
        Ok(Some(ResidentTraining {
            set,
            train: train.clone(),
            input: input.clone(),
            params: GatherParams {
                samples: n,
                first: 0,
                n: 0,
                dims,
                pad: augment.pad,
                flip: augment.flip,
                cutout: augment.cutout,
                seed: config.seed,
                epoch: 0,
                kind,
            },
            batch_size: config.batch_size,
            images: HashMap::new(),
            at: (0, 0),
        }))
    }

    /// Device bytes the set takes.
    pub(crate) fn device_bytes(&self) -> u64 {
        GatherParams::set_bytes(self.params.kind, self.params.samples, self.params.dims)
    }

    /// The batches `start..` of `loader`'s epoch `epoch` with their labels
    /// and no images (the step gathers those); uploads the epoch's order.
    fn label_batches(
        &mut self,
        b: &B,
        loader: &Loader,
        epoch: u64,
        start: usize,
    ) -> Result<LabelBatches> {
        let order = loader.order(epoch);
        let words: Vec<u32> = order.iter().map(|&i| i as u32).collect();
        self.set.set_order(b, &words)?;
        let end = loader.batches_per_epoch();
        Ok(LabelBatches {
            train: self.train.clone(),
            order,
            batch_size: loader.config().batch_size,
            epoch,
            next: start.min(end),
            end,
        })
    }

    /// Name the batch the next [`gather`](Self::gather)s write.
    pub(crate) fn select(&mut self, batch: &Batch) {
        self.at = (batch.epoch, batch.index);
    }

    /// Gather the selected batch (`n` images) on the device: the images
    /// into the returned tensor, the labels into `targets`.
    pub(crate) fn gather(
        &mut self,
        b: &B,
        n: usize,
        targets: &mut B::IndexBuffer,
    ) -> Result<&Tensor<B>> {
        if !self.images.contains_key(&n) {
            self.images
                .insert(n, Tensor::zeros(b, self.input.with_batch(n))?);
        }
        let images = self.images.get_mut(&n).expect("inserted above");
        let p = GatherParams {
            first: self.at.1 * self.batch_size,
            n,
            epoch: self.at.0,
            ..self.params
        };
        b.gather_batch(&p, &self.set, images.buffer_mut(), targets)?;
        Ok(images)
    }
}

/// The training loop's batches of one epoch: the host loader's, or with a
/// resident set, the same batches with their labels and no images.
pub(crate) fn epoch_batches<B: Backend>(
    resident: Option<&mut ResidentTraining<B>>,
    b: &B,
    loader: &Loader,
    epoch: u64,
    start: usize,
) -> Result<Box<dyn Iterator<Item = Batch>>> {
    Ok(match resident {
        Some(r) => Box::new(r.label_batches(b, loader, epoch, start)?),
        None => Box::new(loader.epoch_from(epoch, start)),
    })
}

/// Batches of an epoch with labels only.
struct LabelBatches {
    train: Subset,
    order: Vec<usize>,
    batch_size: usize,
    epoch: u64,
    next: usize,
    end: usize,
}

impl Iterator for LabelBatches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.end {
            return None;
        }
        let index = self.next;
        self.next += 1;
        let first = index * self.batch_size;
        let last = (first + self.batch_size).min(self.order.len());
        let labels: Vec<u32> = self.order[first..last]
            .iter()
            .map(|&i| self.train.label(i))
            .collect();
        let n = labels.len();
        Some(Batch {
            images: Vec::new(),
            labels,
            n,
            shape: self.train.shape().with_batch(n),
            epoch: self.epoch,
            index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_key_reads_and_is_recorded_only_when_not_auto() {
        let path = std::path::Path::new("run.toml");
        let c = TrainConfig::from_toml("data_on_device = \"off\"\n", path).unwrap();
        assert_eq!(c.data_on_device, DataOnDevice::Off);
        assert!(c.to_toml().contains("data_on_device = \"off\""));
        assert!(!TrainConfig::default().to_toml().contains("data_on_device"));
        let err = TrainConfig::from_toml("data_on_device = \"gpu\"\n", path).unwrap_err();
        assert!(err.to_string().contains("gpu"), "{err}");
    }

    #[test]
    fn the_cpu_backend_trains_from_the_host_loader_and_refuses_on() {
        let cpu = cnn_cpu::CpuBackend::with_threads(1).unwrap();
        let config = |d| TrainConfig {
            data: "synthetic".into(),
            limit_train: 40,
            data_on_device: d,
            ..TrainConfig::default()
        };
        let data = crate::setup::load_data(&config(DataOnDevice::Auto)).unwrap();
        let input = data.shape.clone();
        for d in [DataOnDevice::Auto, DataOnDevice::Off] {
            let chosen = ResidentTraining::choose(&cpu, &config(d), &data, &input, false).unwrap();
            assert!(chosen.is_none(), "{d}");
        }
        let err = ResidentTraining::choose(&cpu, &config(DataOnDevice::On), &data, &input, false)
            .err()
            .unwrap();
        assert!(matches!(err, TrainError::Config(_)), "{err}");
        assert!(
            err.to_string()
                .contains("--data-on-device on: the cpu backend keeps no training set"),
            "{err}"
        );
    }
}
