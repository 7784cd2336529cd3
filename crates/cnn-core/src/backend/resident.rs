//! A training set resident in device memory, and the op that gathers one
//! training batch from it (`ResidentOps::gather_batch`): for each slot of
//! the batch, the sample the epoch's order puts there, its crop offsets,
//! flip and cutout square drawn by the same hash as `cnn_data::augment`,
//! its pixels normalised with the same f32 operations in the same order,
//! written into the step's input buffer; its label into a class-target
//! buffer. Nothing crosses from the host per step: the set is uploaded
//! once ([`ResidentSet::upload`]), the epoch's order once per epoch
//! ([`ResidentSet::set_order`], `n` u32), and a batch is named by
//! [`GatherParams`] (kernel arguments).
//!
//! [`gather_reference`] is the op's definition, written once in Rust: the
//! per-slot draws ([`slot_draw`], a port of `cnn_data`'s `hash4` and
//! `Augment::draw`/`draw_cutout`, integer arithmetic only) and the
//! per-element source ([`element_source`]) that the CUDA kernel
//! (`cnn-cuda`'s `gather_batch` in `memory.cu`) implements line for line.
//! Tests hold it to the host loader's batches bit for bit.
//!
//! Storage: `u8` pixels stay bytes, packed four to a `u32` word of an
//! index buffer (little endian, as the device reads them); `f32` pixels
//! are stored as their bits. Labels and the order are `u32`. The
//! per-channel constants (multiplier, offset, padding value) are computed
//! on the host exactly as `cnn_data` computes them.
//!
//! Backends that keep no resident sets (the CPU backend, whose training
//! set already lies in the memory it computes from) keep the defaults:
//! no free device memory to report, and `gather_batch` unsupported.

use std::fmt;

use crate::backend::memory::MemoryOps;
use crate::error::{CnnError, Result, check_len};

/// `cnn_data::shuffle::STREAM_AUGMENT`: the stream of crop and flip draws.
pub const STREAM_AUGMENT: u64 = 0x4155_474d;
/// `cnn_data::shuffle::STREAM_CUTOUT`: the stream of cutout draws.
pub const STREAM_CUTOUT: u64 = 0x4355_544f;

/// How a resident set stores its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelKind {
    /// Bytes, four to a word; a value `v` means `v / 255`.
    U8 = 0,
    /// f32 bits, already on the `[0, 1]` scale.
    F32 = 1,
}

/// A set's pixels on the host, images one after another, each `[C, H, W]`.
#[derive(Debug, Clone, Copy)]
pub enum HostPixels<'a> {
    U8(&'a [u8]),
    F32(&'a [f32]),
}

impl HostPixels<'_> {
    /// The storage kind.
    pub fn kind(&self) -> PixelKind {
        match self {
            HostPixels::U8(_) => PixelKind::U8,
            HostPixels::F32(_) => PixelKind::F32,
        }
    }

    /// Number of pixel values.
    pub fn len(&self) -> usize {
        match self {
            HostPixels::U8(v) => v.len(),
            HostPixels::F32(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pixel `i` as the op reads it (before normalisation).
    fn value(&self, i: usize) -> f32 {
        match self {
            HostPixels::U8(v) => f32::from(v[i]),
            HostPixels::F32(v) => v[i],
        }
    }
}

/// The per-channel constants of the gather, three per channel:
/// `[mul, offset, fill]`, computed as `cnn_data` computes them:
/// `inv_std = 1 / std`, `offset = -mean * inv_std`, `mul = inv_std / 255`
/// for bytes (`inv_std` for f32 pixels), and the padding value of a black
/// pixel `fill = -mean / std`. A pixel `p` becomes `p * mul + offset`.
pub fn channel_constants(kind: PixelKind, mean: &[f32], std: &[f32]) -> Result<Vec<f32>> {
    check_len("channel_constants", "std", std.len(), mean.len())?;
    let mut out = Vec::with_capacity(3 * mean.len());
    for (&m, &s) in mean.iter().zip(std) {
        let inv_std = 1.0 / s;
        let offset = -m * inv_std;
        let mul = match kind {
            PixelKind::U8 => inv_std / 255.0,
            PixelKind::F32 => inv_std,
        };
        out.extend([mul, offset, -m / s]);
    }
    Ok(out)
}

/// Which batch to gather, and how it is augmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatherParams {
    /// Samples in the resident set (the length of its order).
    pub samples: usize,
    /// The position in the epoch's order of the batch's first slot
    /// (batch index times batch size).
    pub first: usize,
    /// Slots in the batch (the last one of an epoch may be short).
    pub n: usize,
    /// Per-sample `[C, H, W]`.
    pub dims: [usize; 3],
    /// Random crop after padding each side by this many pixels (0: none).
    pub pad: usize,
    /// Random horizontal flip.
    pub flip: bool,
    /// Cutout square side (0: none).
    pub cutout: usize,
    /// The run's seed.
    pub seed: u64,
    /// The loader's epoch (0-based).
    pub epoch: u64,
    /// How the set stores its pixels.
    pub kind: PixelKind,
}

impl GatherParams {
    /// Values per sample.
    pub fn numel(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    /// Pixel words a set of `samples` images of `dims` takes when stored
    /// as `kind`.
    pub fn pixel_words(kind: PixelKind, samples: usize, dims: [usize; 3]) -> usize {
        let values = samples * dims[0] * dims[1] * dims[2];
        match kind {
            PixelKind::U8 => values.div_ceil(4),
            PixelKind::F32 => values,
        }
    }

    /// Device bytes a set of `samples` images of `dims` takes as `kind`:
    /// the pixel words, labels and order (4 bytes each), and the
    /// per-channel constants.
    pub fn set_bytes(kind: PixelKind, samples: usize, dims: [usize; 3]) -> u64 {
        let words = Self::pixel_words(kind, samples, dims) as u64;
        4 * (words + 2 * samples as u64 + 3 * dims[0] as u64)
    }

    /// Validate the geometry against the set and the output buffers'
    /// lengths (`images`: `n * C * H * W`, `labels`: `n`).
    pub fn check<B: MemoryOps + ?Sized>(
        &self,
        b: &B,
        set: &ResidentSet<B>,
        images: &B::Buffer,
        labels: &B::IndexBuffer,
    ) -> Result<()> {
        let op = "gather_batch";
        if self.n == 0 || self.numel() == 0 {
            return Err(CnnError::value(op, "an empty batch or sample shape"));
        }
        if self
            .first
            .checked_add(self.n)
            .is_none_or(|end| end > self.samples)
        {
            return Err(CnnError::value(
                op,
                format!(
                    "slots {}..{} past the {} samples of the order",
                    self.first,
                    self.first.saturating_add(self.n),
                    self.samples
                ),
            ));
        }
        if self.dims != set.dims || self.samples != set.samples || self.kind != set.kind {
            return Err(CnnError::value(
                op,
                format!(
                    "params for {} samples of {:?} ({:?}), the set holds {} of {:?} ({:?})",
                    self.samples, self.dims, self.kind, set.samples, set.dims, set.kind
                ),
            ));
        }
        let words = Self::pixel_words(self.kind, self.samples, self.dims);
        check_len(op, "pixels", b.index_buffer_len(&set.pixels), words)?;
        check_len(op, "labels", b.index_buffer_len(&set.labels), self.samples)?;
        check_len(op, "order", b.index_buffer_len(&set.order), self.samples)?;
        check_len(
            op,
            "channels",
            b.buffer_len(&set.channels),
            3 * self.dims[0],
        )?;
        check_len(op, "images", b.buffer_len(images), self.n * self.numel())?;
        check_len(op, "batch_labels", b.index_buffer_len(labels), self.n)?;
        Ok(())
    }
}

/// A training set in device memory: pixels, labels, the current epoch's
/// order and the per-channel constants.
pub struct ResidentSet<B: MemoryOps + ?Sized> {
    /// Bytes packed four to a word (little endian) or f32 bits.
    pub pixels: B::IndexBuffer,
    pub kind: PixelKind,
    /// One class per sample.
    pub labels: B::IndexBuffer,
    /// The epoch's order: `order[k]` is the sample in position `k`.
    pub order: B::IndexBuffer,
    /// [`channel_constants`].
    pub channels: B::Buffer,
    pub samples: usize,
    pub dims: [usize; 3],
}

impl<B: MemoryOps + ?Sized> fmt::Debug for ResidentSet<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResidentSet")
            .field("kind", &self.kind)
            .field("samples", &self.samples)
            .field("dims", &self.dims)
            .finish_non_exhaustive()
    }
}

impl<B: MemoryOps> ResidentSet<B> {
    /// Upload `pixels` (`labels.len()` images of `dims`), their labels and
    /// the constants of the normalisation `mean`/`std`; the order starts
    /// as `0..n` ([`set_order`](Self::set_order) replaces it).
    pub fn upload(
        b: &B,
        pixels: HostPixels<'_>,
        labels: &[u32],
        dims: [usize; 3],
        mean: &[f32],
        std: &[f32],
    ) -> Result<Self> {
        let numel = dims[0] * dims[1] * dims[2];
        check_len(
            "resident upload",
            "pixels",
            pixels.len(),
            labels.len() * numel,
        )?;
        check_len("resident upload", "mean", mean.len(), dims[0])?;
        let kind = pixels.kind();
        let words: Vec<u32> = match pixels {
            HostPixels::U8(v) => v
                .chunks(4)
                .map(|c| {
                    let mut w = [0u8; 4];
                    w[..c.len()].copy_from_slice(c);
                    u32::from_le_bytes(w)
                })
                .collect(),
            HostPixels::F32(v) => v.iter().map(|p| p.to_bits()).collect(),
        };
        let order: Vec<u32> = (0..labels.len() as u32).collect();
        Ok(ResidentSet {
            pixels: b.upload_indices(&words)?,
            kind,
            labels: b.upload_indices(labels)?,
            order: b.upload_indices(&order)?,
            channels: b.upload(&channel_constants(kind, mean, std)?)?,
            samples: labels.len(),
            dims,
        })
    }

    /// Upload the epoch's order (a permutation of `0..samples`).
    pub fn set_order(&mut self, b: &B, order: &[u32]) -> Result<()> {
        if let Some(&bad) = order.iter().find(|&&i| i as usize >= self.samples) {
            return Err(CnnError::value(
                "resident order",
                format!("sample {bad} of {}", self.samples),
            ));
        }
        b.upload_indices_into(order, &mut self.order)
    }
}

/// Gathering training batches from a [`ResidentSet`] in device memory.
pub trait ResidentOps: MemoryOps {
    /// The device memory free now, in bytes, on a backend that gathers
    /// batches from resident sets; `None` (the default) on one that does
    /// not.
    fn resident_free_memory(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Write batch `p` of `set` into `images` (`[n, C, H, W]`, as
    /// [`gather_reference`] defines it) and its labels into `labels`. The
    /// default: unsupported.
    fn gather_batch(
        &self,
        p: &GatherParams,
        set: &ResidentSet<Self>,
        images: &mut Self::Buffer,
        labels: &mut Self::IndexBuffer,
    ) -> Result<()> {
        let _ = (p, set, images, labels);
        Err(CnnError::value(
            "gather_batch",
            "this backend keeps no resident training sets",
        ))
    }
}

/// `cnn_data::shuffle::hash4`: SplitMix64's finaliser chained over four
/// words.
pub fn hash4(seed: u64, stream: u64, a: u64, b: u64) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64;
    for v in [seed, stream, a, b] {
        h = mix(h ^ v);
    }
    h
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One slot's draws: the crop offsets, the flip, and the cutout square
/// (rows `y0..y1`, columns `x0..x1`; empty without cutout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotDraw {
    pub dy: i64,
    pub dx: i64,
    pub flip: bool,
    pub cut: [u64; 4],
}

/// The draws of `sample` (its index in the set) in `p`'s epoch: the
/// kernel's thread 0 of each slot computes exactly this.
pub fn slot_draw(p: &GatherParams, sample: u64) -> SlotDraw {
    let (pad, h, w) = (p.pad as u64, p.dims[1] as u64, p.dims[2] as u64);
    let r = hash4(p.seed, STREAM_AUGMENT, p.epoch, sample);
    let span = 2 * pad + 1;
    let dy = ((r & 0xffff_ffff) % span) as i64 - pad as i64;
    let dx = (((r >> 32) & 0x7fff_ffff) % span) as i64 - pad as i64;
    let flip = p.flip && (r >> 63) == 1;
    let mut cut = [0u64; 4];
    if p.cutout > 0 {
        let q = hash4(p.seed, STREAM_CUTOUT, p.epoch, sample);
        let (cy, cx) = ((q & 0xffff_ffff) % h, (q >> 32) % w);
        let half = p.cutout as u64 / 2;
        cut = [
            cy.saturating_sub(half),
            (cy + half).min(h),
            cx.saturating_sub(half),
            (cx + half).min(w),
        ];
    }
    SlotDraw { dy, dx, flip, cut }
}

/// Where output element `(c, y, x)` of a slot comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatherSource {
    /// Inside the cutout square: 0.
    Cut,
    /// Outside the image after the crop: the channel's padding value.
    Pad,
    /// This value (`c * H * W + sy * W + sx`) of the sample, normalised.
    Pixel(u64),
}

/// The source of output element `(c, y, x)` under `d`: the kernel's
/// per-element arithmetic.
pub fn element_source(dims: [usize; 3], d: &SlotDraw, c: u64, y: u64, x: u64) -> GatherSource {
    let (h, w) = (dims[1] as u64, dims[2] as u64);
    if y >= d.cut[0] && y < d.cut[1] && x >= d.cut[2] && x < d.cut[3] {
        return GatherSource::Cut;
    }
    let sy = y as i64 + d.dy;
    let xx = if d.flip { (w - 1 - x) as i64 } else { x as i64 };
    let sx = xx + d.dx;
    if sy < 0 || sy >= h as i64 || sx < 0 || sx >= w as i64 {
        return GatherSource::Pad;
    }
    GatherSource::Pixel(c * h * w + sy as u64 * w + sx as u64)
}

/// The op on the host: batch `p` of a set whose pixels, labels, order and
/// constants ([`channel_constants`]) are given, into `images` and
/// `labels`, as [`ResidentOps::gather_batch`] computes it on a device.
pub fn gather_reference(
    p: &GatherParams,
    pixels: HostPixels<'_>,
    set_labels: &[u32],
    order: &[u32],
    channels: &[f32],
    images: &mut [f32],
    labels: &mut [u32],
) -> Result<()> {
    let numel = p.numel();
    let op = "gather_reference";
    check_len(op, "pixels", pixels.len(), p.samples * numel)?;
    check_len(op, "labels", set_labels.len(), p.samples)?;
    check_len(op, "order", order.len(), p.samples)?;
    check_len(op, "channels", channels.len(), 3 * p.dims[0])?;
    check_len(op, "images", images.len(), p.n * numel)?;
    check_len(op, "batch_labels", labels.len(), p.n)?;
    if p.first + p.n > p.samples {
        return Err(CnnError::value(op, "slots past the order"));
    }
    let plane = (p.dims[1] * p.dims[2]) as u64;
    for slot in 0..p.n {
        let sample = order[p.first + slot] as u64;
        let d = slot_draw(p, sample);
        labels[slot] = set_labels[sample as usize];
        let out = &mut images[slot * numel..(slot + 1) * numel];
        for (e, o) in out.iter_mut().enumerate() {
            let e = e as u64;
            let c = e / plane;
            let rem = e - c * plane;
            let (y, x) = (rem / p.dims[2] as u64, rem % p.dims[2] as u64);
            let k = 3 * c as usize;
            *o = match element_source(p.dims, &d, c, y, x) {
                GatherSource::Cut => 0.0,
                GatherSource::Pad => channels[k + 2],
                GatherSource::Pixel(i) => {
                    pixels.value((sample * numel as u64 + i) as usize) * channels[k]
                        + channels[k + 1]
                }
            };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(c: usize, h: usize, w: usize) -> GatherParams {
        GatherParams {
            samples: 3,
            first: 0,
            n: 3,
            dims: [c, h, w],
            pad: 0,
            flip: false,
            cutout: 0,
            seed: 1,
            epoch: 0,
            kind: PixelKind::U8,
        }
    }

    #[test]
    fn without_augmentation_each_slot_is_its_sample_normalised() {
        let pixels: Vec<u8> = (0..12).map(|v| v * 20).collect();
        let consts = channel_constants(PixelKind::U8, &[0.5], &[0.25]).unwrap();
        let (mut images, mut labels) = (vec![0.0; 12], vec![0; 3]);
        let p = params(1, 2, 2);
        gather_reference(
            &p,
            HostPixels::U8(&pixels),
            &[7, 8, 9],
            &[2, 0, 1],
            &consts,
            &mut images,
            &mut labels,
        )
        .unwrap();
        assert_eq!(labels, [9, 7, 8]);
        let inv = 1.0f32 / 0.25;
        let want = |v: u8| f32::from(v) * (inv / 255.0) + (-0.5 * inv);
        assert_eq!(images[0], want(160));
        assert_eq!(images[4], want(0));
        assert_eq!(images[11], want(140));
        assert_eq!(consts[2], -0.5 / 0.25);
    }

    #[test]
    fn draws_stay_in_range_and_sources_follow_them() {
        let mut p = params(2, 6, 5);
        p.pad = 2;
        p.flip = true;
        p.cutout = 3;
        let draws: Vec<_> = (0..300).map(|i| slot_draw(&p, i)).collect();
        assert!(draws.iter().all(|d| d.dy.abs() <= 2 && d.dx.abs() <= 2));
        assert!(draws.iter().any(|d| d.flip) && draws.iter().any(|d| !d.flip));
        assert!(draws.iter().all(|d| d.cut[1] <= 6 && d.cut[3] <= 5));
        let d = SlotDraw {
            dy: 1,
            dx: -1,
            flip: true,
            cut: [0, 1, 0, 1],
        };
        assert_eq!(element_source(p.dims, &d, 0, 0, 0), GatherSource::Cut);
        // Row 5 reads row 6: padding. (1, 2, 4): flipped column 0, minus 1.
        assert_eq!(element_source(p.dims, &d, 0, 5, 2), GatherSource::Pad);
        assert_eq!(element_source(p.dims, &d, 0, 2, 4), GatherSource::Pad);
        assert_eq!(
            element_source(p.dims, &d, 1, 2, 0),
            GatherSource::Pixel(30 + 15 + 3)
        );
    }

    #[test]
    fn bad_geometry_is_an_error() {
        let mut p = params(1, 2, 2);
        p.first = 2;
        let r = gather_reference(
            &p,
            HostPixels::U8(&[0; 12]),
            &[0; 3],
            &[0, 1, 2],
            &[1.0, 0.0, 0.0],
            &mut [0.0; 12],
            &mut [0; 3],
        );
        assert!(r.is_err());
        assert!(channel_constants(PixelKind::F32, &[0.5], &[]).is_err());
    }
}
