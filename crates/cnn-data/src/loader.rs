//! Batches for training: shuffled, augmented, normalised, prepared on a
//! background thread.
//!
//! A [`Loader`] reads a [`Subset`] and hands out [`Batch`]es of host `f32`
//! images `[N, C, H, W]` (normalised, augmented) and `u32` labels.
//! [`Loader::epoch_from`]`(e, b)` yields batches `b..` of epoch `e`; it runs
//! a producer thread that keeps up to `prefetch` batches ready in a bounded
//! channel while the caller trains on the current one. Handing a finished
//! batch back with [`Loader::recycle`] lets the producer reuse its buffers.
//!
//! Determinism: epoch `e`'s order is [`epoch_order`]`(seed, e, n)` (or
//! `0..n` without shuffling) and sample `i`'s augmentation is drawn from
//! `(seed, e, i)`, so batch `b` of epoch `e` is a pure function of the
//! subset, the config, `e` and `b` — the same from the background thread,
//! from [`Loader::batch`], and after a resume.

use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use cnn_core::Shape;

use crate::augment::Augment;
use crate::dataset::Subset;
use crate::error::{DataError, Result};
use crate::normalize::Normalization;
use crate::shuffle::epoch_order;

/// One batch: `n` images `[n, C, H, W]` and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Normalised (and augmented) pixels, `n * C * H * W` values, NCHW.
    pub images: Vec<f32>,
    /// One class index per image.
    pub labels: Vec<u32>,
    /// Number of images (the last batch of an epoch may be short).
    pub n: usize,
    /// Shape of `images`: `[n, C, H, W]`.
    pub shape: Shape,
    /// Epoch this batch belongs to.
    pub epoch: u64,
    /// Index of this batch within its epoch.
    pub index: usize,
}

impl Batch {
    fn empty() -> Self {
        Batch {
            images: Vec::new(),
            labels: Vec::new(),
            n: 0,
            shape: Shape::default(),
            epoch: 0,
            index: 0,
        }
    }

    /// The per-image shape `[C, H, W]`.
    pub fn sample_shape(&self) -> Shape {
        self.shape.without_batch()
    }
}

/// How a [`Loader`] batches a subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Images per batch (> 0).
    pub batch_size: usize,
    /// Visit samples in a seeded random order each epoch.
    pub shuffle: bool,
    /// Drop a final batch smaller than `batch_size`.
    pub drop_last: bool,
    /// Seed of the shuffle and of the augmentation.
    pub seed: u64,
    /// Augmentation applied to every image.
    pub augment: Augment,
    /// Batches prepared ahead on the background thread; 0 prepares each
    /// batch on the caller's thread when it is asked for.
    pub prefetch: usize,
}

impl LoaderConfig {
    /// Training defaults: shuffled, no augmentation, keep the last partial
    /// batch, seed 0, 2 batches prefetched.
    pub fn train(batch_size: usize) -> Self {
        LoaderConfig {
            batch_size,
            shuffle: true,
            drop_last: false,
            seed: 0,
            augment: Augment::none(),
            prefetch: 2,
        }
    }

    /// Evaluation defaults: in order, no augmentation, every sample.
    pub fn eval(batch_size: usize) -> Self {
        LoaderConfig {
            shuffle: false,
            ..LoaderConfig::train(batch_size)
        }
    }
}

#[derive(Debug)]
struct Inner {
    data: Subset,
    norm: Normalization,
    config: LoaderConfig,
}

/// Hands out batches of a [`Subset`]; see the module docs.
#[derive(Debug)]
pub struct Loader {
    inner: Arc<Inner>,
    pool: Arc<Mutex<Vec<Batch>>>,
}

impl Loader {
    /// A loader over `data`, normalising with `norm`.
    pub fn new(data: Subset, norm: Normalization, config: LoaderConfig) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(DataError::value("batch_size", "must be at least 1"));
        }
        let channels = data.shape().dims()[0];
        if norm.channels() != channels {
            return Err(DataError::value(
                "normalization",
                format!(
                    "{} channels given for images of shape {}",
                    norm.channels(),
                    data.shape()
                ),
            ));
        }
        Ok(Loader {
            inner: Arc::new(Inner { data, norm, config }),
            pool: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.inner.config
    }

    /// The subset being loaded.
    pub fn data(&self) -> &Subset {
        &self.inner.data
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.inner.data.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.inner.data.is_empty()
    }

    /// Batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, bs) = (self.len(), self.inner.config.batch_size);
        if self.inner.config.drop_last {
            n / bs
        } else {
            n.div_ceil(bs)
        }
    }

    /// The order in which epoch `epoch` visits the samples.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        self.inner.order(epoch)
    }

    /// Batch `index` of epoch `epoch`, prepared on the caller's thread (the
    /// plain reference for the background path). Panics if `index` is not
    /// below [`batches_per_epoch`](Self::batches_per_epoch).
    pub fn batch(&self, epoch: u64, index: usize) -> Batch {
        assert!(
            index < self.batches_per_epoch(),
            "batch {index} out of range"
        );
        let mut batch = Batch::empty();
        let mut scratch = Vec::new();
        self.inner
            .fill(epoch, index, &self.order(epoch), &mut batch, &mut scratch);
        batch
    }

    /// All batches of epoch `epoch`.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        self.epoch_from(epoch, 0)
    }

    /// Batches `start..` of epoch `epoch` (none if `start` is past the end),
    /// for resuming mid-epoch.
    pub fn epoch_from(&self, epoch: u64, start: usize) -> EpochIter {
        let end = self.batches_per_epoch();
        let start = start.min(end);
        let producer = Producer {
            inner: Arc::clone(&self.inner),
            pool: Arc::clone(&self.pool),
            epoch,
            order: Vec::new(),
            next: start,
            end,
            scratch: Vec::new(),
        };
        let prefetch = self.inner.config.prefetch;
        if prefetch == 0 || start == end {
            let mut producer = producer;
            producer.order = self.order(epoch);
            return EpochIter {
                mode: Mode::Inline(Box::new(producer)),
                remaining: end - start,
            };
        }
        let (tx, rx) = sync_channel(prefetch);
        let handle = std::thread::Builder::new()
            .name("cnn-data-loader".into())
            .spawn(move || {
                let mut producer = producer;
                producer.order = producer.inner.order(producer.epoch);
                while let Some(batch) = producer.produce() {
                    if tx.send(batch).is_err() {
                        return; // the iterator was dropped
                    }
                }
            })
            .expect("failed to spawn the loader thread");
        EpochIter {
            mode: Mode::Threaded {
                rx: Some(rx),
                handle: Some(handle),
            },
            remaining: end - start,
        }
    }

    /// Give a finished batch back so its buffers can be reused.
    pub fn recycle(&self, batch: Batch) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.inner.config.prefetch + 2 {
            pool.push(batch);
        }
    }
}

impl Inner {
    fn order(&self, epoch: u64) -> Vec<usize> {
        let n = self.data.len();
        if self.config.shuffle {
            epoch_order(self.config.seed, epoch, n)
        } else {
            (0..n).collect()
        }
    }

    /// Fill `batch` with batch `index` of epoch `epoch` visiting `order`.
    fn fill(
        &self,
        epoch: u64,
        index: usize,
        order: &[usize],
        batch: &mut Batch,
        scratch: &mut Vec<f32>,
    ) {
        let bs = self.config.batch_size;
        let start = index * bs;
        let end = (start + bs).min(order.len());
        let n = end - start;
        let sample = self.data.shape();
        let numel = sample.numel();
        let d = sample.dims();
        let dims = [d[0], d[1], d[2]];
        batch.images.resize(n * numel, 0.0);
        batch.labels.clear();
        batch.n = n;
        batch.shape = sample.with_batch(n);
        batch.epoch = epoch;
        batch.index = index;
        let augment = self.config.augment;
        if !augment.is_identity() {
            scratch.resize(numel, 0.0);
        }
        for (out, &i) in batch.images.chunks_exact_mut(numel).zip(&order[start..end]) {
            batch.labels.push(self.data.label(i));
            if !augment.moves_pixels() {
                self.data.write_image(i, &self.norm, out);
            } else {
                self.data.write_image(i, &self.norm, scratch);
                augment
                    .draw(self.config.seed, epoch, i as u64)
                    .apply(scratch, dims, &self.norm, out);
            }
            if let Some(square) =
                augment.draw_cutout(self.config.seed, epoch, i as u64, dims[1], dims[2])
            {
                square.apply(out, dims);
            }
        }
    }
}

/// Produces the batches of one epoch, in order.
#[derive(Debug)]
struct Producer {
    inner: Arc<Inner>,
    pool: Arc<Mutex<Vec<Batch>>>,
    epoch: u64,
    order: Vec<usize>,
    next: usize,
    end: usize,
    scratch: Vec<f32>,
}

impl Producer {
    fn produce(&mut self) -> Option<Batch> {
        if self.next >= self.end {
            return None;
        }
        let recycled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut batch = recycled.unwrap_or_else(Batch::empty);
        self.inner.fill(
            self.epoch,
            self.next,
            &self.order,
            &mut batch,
            &mut self.scratch,
        );
        self.next += 1;
        Some(batch)
    }
}

#[derive(Debug)]
enum Mode {
    Inline(Box<Producer>),
    Threaded {
        rx: Option<Receiver<Batch>>,
        handle: Option<JoinHandle<()>>,
    },
}

/// The batches of one epoch (from [`Loader::epoch`] or
/// [`Loader::epoch_from`]). Dropping it early stops the producer thread.
#[derive(Debug)]
pub struct EpochIter {
    mode: Mode,
    remaining: usize,
}

impl Iterator for EpochIter {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let batch = match &mut self.mode {
            Mode::Inline(producer) => producer.produce(),
            Mode::Threaded { rx, handle } => match rx.as_ref().map(|rx| rx.recv()) {
                Some(Ok(batch)) => Some(batch),
                _ => {
                    // The producer finished (or panicked): surface a panic.
                    if let Some(Err(panic)) = handle.take().map(JoinHandle::join) {
                        std::panic::resume_unwind(panic);
                    }
                    None
                }
            },
        };
        if batch.is_some() {
            self.remaining -= 1;
        }
        batch
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for EpochIter {}

impl Drop for EpochIter {
    fn drop(&mut self) {
        if let Mode::Threaded { rx, handle } = &mut self.mode {
            // Closing the channel makes a blocked `send` fail, so the
            // producer exits and the join below returns promptly.
            drop(rx.take());
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}
