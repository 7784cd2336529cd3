//! A built-in synthetic image set: 3x32x32, 10 classes, no files.
//!
//! Each class has a smooth random prototype: two oriented colour gratings
//! (class-specific frequency, orientation, phase and colour) and two
//! Gaussian colour blobs. A sample is its class prototype seen through a
//! random shift (±6 px), scale (0.85–1.15) and contrast/brightness jitter,
//! with a copy of another class's prototype mixed in at weight 0–0.9 (so
//! some samples are genuinely ambiguous), heavy approximately-Gaussian
//! pixel noise (std 0.4 on the `[0, 1]` scale by default, clipped), and
//! label noise (by default 8% of labels replaced by a different class, in
//! train and test alike). Test accuracy therefore saturates well below
//! 100% (a nearest-class-mean classifier gets about 60%, a perfect one at
//! most ~92%), while the noise makes every training image unique, so a
//! small CNN can memorise a small training set and overfit.
//!
//! Everything is a pure function of [`SyntheticConfig`]: sample `i` of a
//! split is drawn from a generator seeded by `(seed, split, i)`, so the set
//! is the same whatever the thread count. Pixels are stored as `u8`;
//! normalisation uses statistics computed on the training split.

use std::f32::consts::PI;

use cnn_core::Shape;
use rand::{Rng, RngCore};

use crate::dataset::{Dataset, ImageSet, Pixels};
use crate::error::{DataError, Result};
use crate::normalize::Normalization;
use crate::shuffle::{below, rng_for, shuffle};

/// Classes of the synthetic set.
pub const SYNTH_CLASSES: usize = 10;
/// Image side of the synthetic set.
pub const SYNTH_SIDE: usize = 32;
/// Channels of the synthetic set.
pub const SYNTH_CHANNELS: usize = 3;

const STREAM_PROTO: u64 = 0x5052_4f54; // "PROT"
const STREAM_LABELS: u64 = 0x4c41_4245; // "LABE"
const STREAM_SAMPLE: u64 = 0x5341_4d50; // "SAMP"
/// Prototype grid: the 32x32 image plus a margin for shifts and zoom-out.
const MARGIN: usize = 10;
const GRID: usize = SYNTH_SIDE + 2 * MARGIN;
/// Largest shift of a sample's view, in pixels.
const MAX_SHIFT: f32 = 6.0;
/// Largest weight of the other class's prototype mixed into a sample.
const MAX_OTHER_WEIGHT: f32 = 0.9;
/// Pixel amplitude of a unit-variance prototype (before jitter).
const CONTRAST: f32 = 0.1;

/// Parameters of the synthetic set.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// Seed of everything (prototypes, samples, labels).
    pub seed: u64,
    /// Training images.
    pub train: usize,
    /// Test images.
    pub test: usize,
    /// Standard deviation of the pixel noise on the `[0, 1]` scale.
    pub noise: f32,
    /// Fraction of labels replaced by a different class (0..1).
    pub label_noise: f32,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            seed: 0,
            train: 5000,
            test: 1000,
            noise: 0.4,
            label_noise: 0.08,
        }
    }
}

/// Generate the synthetic dataset.
pub fn synthetic(config: &SyntheticConfig) -> Result<Dataset> {
    if !(config.noise.is_finite() && config.noise >= 0.0) {
        return Err(DataError::value(
            "noise",
            format!("{} is not >= 0", config.noise),
        ));
    }
    if !(0.0..=1.0).contains(&config.label_noise) {
        return Err(DataError::value(
            "label_noise",
            format!("{} is not in [0, 1]", config.label_noise),
        ));
    }
    let protos: Vec<Prototype> = (0..SYNTH_CLASSES as u64)
        .map(|c| Prototype::new(&mut rng_for(config.seed, STREAM_PROTO, c, 0)))
        .collect();
    let train = generate_split(config, &protos, 0, config.train)?;
    let test = generate_split(config, &protos, 1, config.test)?;
    let norm = Normalization::compute(&train);
    let names = (0..SYNTH_CLASSES).map(|c| format!("class{c}")).collect();
    Dataset::new("synthetic", names, train, test, norm)
}

/// One class prototype on a `GRID x GRID` grid, 3 planes, values roughly
/// in [-1, 1] (unit standard deviation over the grid).
struct Prototype {
    planes: Vec<f32>,
}

impl Prototype {
    fn new(rng: &mut impl RngCore) -> Self {
        let mut planes = vec![0f32; SYNTH_CHANNELS * GRID * GRID];
        let colour = |rng: &mut dyn RngCore| -> [f32; 3] {
            [
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
            ]
        };
        let plane = GRID * GRID;
        for _ in 0..2 {
            let cycles: f32 = rng.random_range(1.5..5.0);
            let theta: f32 = rng.random_range(0.0..PI);
            let phase: f32 = rng.random_range(0.0..2.0 * PI);
            let col = colour(rng);
            let k = 2.0 * PI * cycles / SYNTH_SIDE as f32;
            let (kx, ky) = (k * theta.cos(), k * theta.sin());
            for y in 0..GRID {
                for x in 0..GRID {
                    let v = (kx * x as f32 + ky * y as f32 + phase).sin();
                    for (c, a) in col.iter().enumerate() {
                        planes[c * plane + y * GRID + x] += a * v;
                    }
                }
            }
        }
        for _ in 0..2 {
            let cx: f32 = rng.random_range(6.0..26.0) + MARGIN as f32;
            let cy: f32 = rng.random_range(6.0..26.0) + MARGIN as f32;
            let sigma: f32 = rng.random_range(3.0..7.0);
            let col = colour(rng);
            for y in 0..GRID {
                for x in 0..GRID {
                    let d2 = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2);
                    let v = 2.0 * (-d2 / (2.0 * sigma * sigma)).exp();
                    for (c, a) in col.iter().enumerate() {
                        planes[c * plane + y * GRID + x] += a * v;
                    }
                }
            }
        }
        let n = planes.len() as f32;
        let mean = planes.iter().sum::<f32>() / n;
        let var = planes.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n;
        let inv = 1.0 / var.sqrt().max(1e-3);
        for v in &mut planes {
            *v = (*v - mean) * inv;
        }
        Prototype { planes }
    }
}

/// A view of a prototype: shift, scale and weight, as precomputed
/// bilinear sampling positions along each axis (no rotation, so x and y
/// are independent).
struct View {
    /// Per output column: left grid index and fraction.
    xs: [(usize, f32); SYNTH_SIDE],
    /// Per output row: top grid index and fraction.
    ys: [(usize, f32); SYNTH_SIDE],
    weight: f32,
}

impl View {
    fn draw(rng: &mut impl RngCore, weight: f32) -> Self {
        let dx: f32 = rng.random_range(-MAX_SHIFT..MAX_SHIFT);
        let dy: f32 = rng.random_range(-MAX_SHIFT..MAX_SHIFT);
        let inv_scale = 1.0 / rng.random_range(0.85f32..1.15);
        let axis = |shift: f32| {
            let centre = (SYNTH_SIDE as f32 - 1.0) / 2.0;
            let max = (GRID - 1) as f32 - 1e-3;
            std::array::from_fn(|i| {
                let g = (centre + (i as f32 - centre) * inv_scale - shift + MARGIN as f32)
                    .clamp(0.0, max);
                (g as usize, g - g.floor())
            })
        };
        View {
            xs: axis(dx),
            ys: axis(dy),
            weight,
        }
    }

    /// Add `weight * proto` seen through this view to `acc` (`[3, 32, 32]`).
    /// Separable bilinear: blend two grid rows, then sample along x.
    fn add_to(&self, proto: &Prototype, acc: &mut [f32]) {
        let mut row = [0f32; GRID];
        for c in 0..SYNTH_CHANNELS {
            let p = &proto.planes[c * GRID * GRID..(c + 1) * GRID * GRID];
            for (y, &(y0, fy)) in self.ys.iter().enumerate() {
                let top = &p[y0 * GRID..(y0 + 1) * GRID];
                let bottom = &p[(y0 + 1) * GRID..(y0 + 2) * GRID];
                for ((r, &t), &b) in row.iter_mut().zip(top).zip(bottom) {
                    *r = self.weight * (t + (b - t) * fy);
                }
                let out = &mut acc[(c * SYNTH_SIDE + y) * SYNTH_SIDE..][..SYNTH_SIDE];
                for (a, &(x0, fx)) in out.iter_mut().zip(&self.xs) {
                    *a += row[x0] + (row[x0 + 1] - row[x0]) * fx;
                }
            }
        }
    }
}

fn generate_split(
    config: &SyntheticConfig,
    protos: &[Prototype],
    split: u64,
    n: usize,
) -> Result<ImageSet> {
    let numel = SYNTH_CHANNELS * SYNTH_SIDE * SYNTH_SIDE;
    // Balanced true classes in a seeded order.
    let mut classes: Vec<u32> = (0..n).map(|i| (i % SYNTH_CLASSES) as u32).collect();
    shuffle(
        &mut classes,
        &mut rng_for(config.seed, STREAM_LABELS, split, 0),
    );
    let mut pixels = vec![0u8; n * numel];
    let mut labels = vec![0u32; n];
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, 8);
    let chunk = n.div_ceil(threads).max(64);
    std::thread::scope(|s| {
        for ((px, lb), (ci, start)) in pixels
            .chunks_mut(chunk * numel)
            .zip(labels.chunks_mut(chunk))
            .zip(classes.chunks(chunk).zip((0..).step_by(chunk)))
        {
            s.spawn(move || {
                for (k, (img, label)) in px.chunks_exact_mut(numel).zip(lb.iter_mut()).enumerate() {
                    let i = (start + k) as u64;
                    *label = draw_sample(config, protos, split, i, ci[k], img);
                }
            });
        }
    });
    ImageSet::new(
        Shape::from([SYNTH_CHANNELS, SYNTH_SIDE, SYNTH_SIDE]),
        Pixels::U8(pixels),
        labels,
    )
}

/// Draw sample `i` of class `class` into `out` (`[3, 32, 32]` bytes) and
/// return its (possibly noisy) label.
fn draw_sample(
    config: &SyntheticConfig,
    protos: &[Prototype],
    split: u64,
    i: u64,
    class: u32,
    out: &mut [u8],
) -> u32 {
    let mut rng = rng_for(config.seed, STREAM_SAMPLE, split, i);
    let main = View::draw(&mut rng, 1.0);
    let other_class =
        (class as usize + 1 + below(&mut rng, SYNTH_CLASSES as u64 - 1) as usize) % SYNTH_CLASSES;
    let other_weight = rng.random_range(0.0..MAX_OTHER_WEIGHT);
    let other = View::draw(&mut rng, other_weight);
    let contrast: f32 = CONTRAST * rng.random_range(0.6f32..1.4);
    let brightness: f32 = 0.5 + rng.random_range(-0.1f32..0.1);
    let mut noise = WyRand(rng.next_u64());
    let mut signal = [0f32; SYNTH_CHANNELS * SYNTH_SIDE * SYNTH_SIDE];
    main.add_to(&protos[class as usize], &mut signal);
    other.add_to(&protos[other_class], &mut signal);
    let sd = config.noise;
    for (o, s) in out.iter_mut().zip(signal) {
        let v = brightness + contrast * s + sd * noise.normal();
        // Round half up; negatives clamp to 0 either way.
        *o = (v * 255.0 + 0.5).clamp(0.0, 255.0) as u8;
    }
    if rng.random::<f32>() < config.label_noise {
        (class + 1 + below(&mut rng, SYNTH_CLASSES as u64 - 1) as u32) % SYNTH_CLASSES as u32
    } else {
        class
    }
}

/// A small fast generator for pixel noise (wyrand), seeded per sample.
struct WyRand(u64);

impl WyRand {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Approximately standard normal: the sum of four 16-bit uniforms
    /// (Irwin–Hall), centred and scaled to unit variance.
    fn normal(&mut self) -> f32 {
        let r = self.next();
        let sum = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48);
        (sum as f32 * (1.0 / 65536.0) - 2.0) * 1.732_050_8
    }
}
