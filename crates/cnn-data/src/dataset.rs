//! The in-memory dataset: images, labels, shape, classes, train/test.
//!
//! - [`Pixels`]: host pixel data, `u8` (0..=255) or `f32` (0.0..=1.0), images
//!   one after another, each `[C, H, W]`.
//! - [`ImageSet`]: pixels plus one `u32` label per image.
//! - [`Subset`]: a cheap view (shared [`ImageSet`] plus an index range);
//!   what splits produce and loaders read.
//! - [`Dataset`]: a train and a test [`ImageSet`], the per-sample shape,
//!   class names and the default [`Normalization`].

use std::ops::Range;
use std::sync::Arc;

use cnn_core::Shape;

use crate::error::{DataError, Result};
use crate::normalize::Normalization;

/// Host pixel data of a set of images, each `[C, H, W]`, stored one after
/// another.
#[derive(Debug, Clone, PartialEq)]
pub enum Pixels {
    /// Bytes; a pixel value `v` means `v / 255`.
    U8(Vec<u8>),
    /// Floats already on the `[0, 1]` scale.
    F32(Vec<f32>),
}

impl Pixels {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Pixels::U8(v) => v.len(),
            Pixels::F32(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i` on the `[0, 1]` scale.
    pub fn unit(&self, i: usize) -> f32 {
        match self {
            Pixels::U8(v) => f32::from(v[i]) / 255.0,
            Pixels::F32(v) => v[i],
        }
    }
}

/// A set of images with their labels. Invariant: `pixels.len() ==
/// labels.len() * shape.numel()`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    shape: Shape,
    pixels: Pixels,
    labels: Vec<u32>,
}

impl ImageSet {
    /// A set of `labels.len()` images of `shape` (`[C, H, W]`).
    pub fn new(shape: Shape, pixels: Pixels, labels: Vec<u32>) -> Result<Self> {
        if shape.rank() != 3 || shape.numel() == 0 {
            return Err(DataError::value(
                "shape",
                format!("expected a non-empty [C, H, W], got {shape}"),
            ));
        }
        let expected = labels.len().checked_mul(shape.numel());
        if expected != Some(pixels.len()) {
            return Err(DataError::value(
                "pixels",
                format!(
                    "{} values for {} images of shape {shape} (expected {})",
                    pixels.len(),
                    labels.len(),
                    labels.len() * shape.numel()
                ),
            ));
        }
        Ok(ImageSet {
            shape,
            pixels,
            labels,
        })
    }

    /// An empty set of images of `shape`.
    pub fn empty(shape: Shape) -> Self {
        ImageSet {
            shape,
            pixels: Pixels::U8(Vec::new()),
            labels: Vec::new(),
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Per-image shape `[C, H, W]`.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The pixel data.
    pub fn pixels(&self) -> &Pixels {
        &self.pixels
    }

    /// All labels.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Write image `i`, normalised, into `out` (`[C, H, W]`, `shape.numel()`
    /// values): `(v/255 - mean[c]) / std[c]` for bytes, `(v - mean[c]) /
    /// std[c]` for floats.
    pub fn write_image(&self, i: usize, norm: &Normalization, out: &mut [f32]) {
        let numel = self.shape.numel();
        let plane = numel / self.shape.dims()[0];
        let out = &mut out[..numel];
        let base = i * numel;
        for (c, out_plane) in out.chunks_exact_mut(plane).enumerate() {
            let inv_std = 1.0 / norm.std[c];
            let offset = -norm.mean[c] * inv_std;
            let range = base + c * plane..base + (c + 1) * plane;
            match &self.pixels {
                Pixels::U8(v) => {
                    touch_lines(&v[range.clone()]);
                    let scale = inv_std / 255.0;
                    for (o, &p) in out_plane.iter_mut().zip(&v[range]) {
                        *o = f32::from(p) * scale + offset;
                    }
                }
                Pixels::F32(v) => {
                    for (o, &p) in out_plane.iter_mut().zip(&v[range]) {
                        *o = p * inv_std + offset;
                    }
                }
            }
        }
    }
}

/// Read one byte per cache line of `bytes`, all before any is used.
///
/// Why: images are read in shuffled order from a set far larger than the
/// caches, so every line of an image misses. The normalising loop has too
/// many instructions per line for the CPU to run ahead to the next lines'
/// loads, and pays the misses one after another; these loads, a few
/// instructions each, overlap them.
fn touch_lines(bytes: &[u8]) {
    let mut any = 0u8;
    for line in bytes.chunks(64) {
        any |= line[0];
    }
    std::hint::black_box(any);
}

/// A contiguous range of an [`ImageSet`], sharing its data.
#[derive(Debug, Clone)]
pub struct Subset {
    set: Arc<ImageSet>,
    start: usize,
    len: usize,
}

impl Subset {
    /// All of `set`.
    pub fn full(set: Arc<ImageSet>) -> Self {
        let len = set.len();
        Subset { set, start: 0, len }
    }

    /// The images `range` of this subset (indices relative to it), clamped
    /// to its length.
    pub fn range(&self, range: Range<usize>) -> Subset {
        let end = range.end.min(self.len);
        let start = range.start.min(end);
        Subset {
            set: Arc::clone(&self.set),
            start: self.start + start,
            len: end - start,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Per-image shape `[C, H, W]`.
    pub fn shape(&self) -> &Shape {
        self.set.shape()
    }

    /// The labels of this subset.
    pub fn labels(&self) -> &[u32] {
        &self.set.labels()[self.start..self.start + self.len]
    }

    /// Label of image `i` (relative to this subset).
    pub fn label(&self, i: usize) -> u32 {
        assert!(
            i < self.len,
            "index {i} out of range for {} images",
            self.len
        );
        self.set.labels()[self.start + i]
    }

    /// Where this subset starts in its [`ImageSet`].
    pub fn offset(&self) -> usize {
        self.start
    }

    /// The underlying set.
    pub fn set(&self) -> &Arc<ImageSet> {
        &self.set
    }

    /// Write image `i` (relative to this subset), normalised, into `out`.
    pub fn write_image(&self, i: usize, norm: &Normalization, out: &mut [f32]) {
        assert!(
            i < self.len,
            "index {i} out of range for {} images",
            self.len
        );
        self.set.write_image(self.start + i, norm, out);
    }
}

/// A dataset: train and test images, their shape, classes and default
/// normalisation.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Short name (`"mnist"`, `"cifar10"`, ...).
    pub name: String,
    /// Per-image shape `[C, H, W]`.
    pub shape: Shape,
    /// One name per class; class `k` is `class_names[k]`.
    pub class_names: Vec<String>,
    /// Training split (validation is carved out of it by
    /// [`split`](crate::split::split)).
    pub train: Arc<ImageSet>,
    /// Test split (may be empty, e.g. for a folder without `test/`).
    pub test: Arc<ImageSet>,
    /// Per-channel normalisation loaders apply by default.
    pub normalization: Normalization,
}

impl Dataset {
    /// Build a dataset, checking that both splits have `shape`, labels are
    /// below the number of classes and the normalisation has one entry per
    /// channel.
    pub fn new(
        name: impl Into<String>,
        class_names: Vec<String>,
        train: ImageSet,
        test: ImageSet,
        normalization: Normalization,
    ) -> Result<Self> {
        let shape = train.shape().clone();
        if test.shape() != &shape {
            return Err(DataError::value(
                "test",
                format!(
                    "test images are {} but train images are {shape}",
                    test.shape()
                ),
            ));
        }
        if normalization.channels() != shape.dims()[0] {
            return Err(DataError::value(
                "normalization",
                format!(
                    "{} channels given for images of shape {shape}",
                    normalization.channels()
                ),
            ));
        }
        let classes = class_names.len();
        for (which, set) in [("train", &train), ("test", &test)] {
            if let Some(i) = set.labels().iter().position(|&l| l as usize >= classes) {
                return Err(DataError::value(
                    which,
                    format!(
                        "label {} at index {i} is out of range for {classes} classes",
                        set.labels()[i]
                    ),
                ));
            }
        }
        Ok(Dataset {
            name: name.into(),
            shape,
            class_names,
            train: Arc::new(train),
            test: Arc::new(test),
            normalization,
        })
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Replace the default normalisation (checked against the channels).
    pub fn with_normalization(mut self, norm: Normalization) -> Result<Self> {
        if norm.channels() != self.shape.dims()[0] {
            return Err(DataError::value(
                "normalization",
                format!(
                    "{} channels given for images of shape {}",
                    norm.channels(),
                    self.shape
                ),
            ));
        }
        self.normalization = norm;
        Ok(self)
    }
}
