//! Training-time augmentation: random crop with zero padding and horizontal
//! flip, each drawn deterministically from `(seed, epoch, index)`.
//!
//! `index` is the sample's index in the subset being loaded (not its place
//! in the batch), so a sample gets the same augmentation in epoch `e` however
//! the epoch is batched or resumed. Padding is "zero" in pixel space (a
//! black pixel, as torchvision's `RandomCrop(padding=4)` before `Normalize`):
//! after normalisation it is [`Normalization::zero_value`] of the channel.

use crate::normalize::Normalization;
use crate::shuffle::{STREAM_AUGMENT, hash4};

/// Which augmentations to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Augment {
    /// Random crop after padding each side with this many black pixels
    /// (0: no crop).
    pub pad: usize,
    /// Random horizontal flip with probability 1/2.
    pub flip: bool,
}

impl Augment {
    /// No augmentation.
    pub fn none() -> Self {
        Augment::default()
    }

    /// The usual CIFAR recipe: pad 4 and crop, random horizontal flip.
    pub fn standard() -> Self {
        Augment { pad: 4, flip: true }
    }

    /// Whether this changes anything.
    pub fn is_identity(&self) -> bool {
        self.pad == 0 && !self.flip
    }

    /// The crop offsets and flip for sample `index` of epoch `epoch`.
    pub fn draw(&self, seed: u64, epoch: u64, index: u64) -> AugmentParams {
        let h = hash4(seed, STREAM_AUGMENT, epoch, index);
        let span = 2 * self.pad as u64 + 1;
        let (lo, hi) = (h & 0xffff_ffff, (h >> 32) & 0x7fff_ffff);
        AugmentParams {
            dy: (lo % span) as isize - self.pad as isize,
            dx: (hi % span) as isize - self.pad as isize,
            flip: self.flip && (h >> 63) == 1,
        }
    }
}

/// One draw of [`Augment`]: output pixel `(y, x)` reads source pixel
/// `(y + dy, x' + dx)` where `x' = W-1-x` if flipped, else `x`; reads
/// outside the image give the channel's padding value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AugmentParams {
    /// Vertical crop offset in `-pad..=pad`.
    pub dy: isize,
    /// Horizontal crop offset in `-pad..=pad`.
    pub dx: isize,
    /// Mirror left-right.
    pub flip: bool,
}

impl AugmentParams {
    /// Apply to a normalised image `src` (`[C, H, W]`) into `out` (same
    /// shape), padding with `norm`'s value of a black pixel.
    pub fn apply(&self, src: &[f32], dims: [usize; 3], norm: &Normalization, out: &mut [f32]) {
        let [c_n, h, w] = dims;
        let plane = h * w;
        for c in 0..c_n {
            let fill = norm.zero_value(c);
            let src = &src[c * plane..(c + 1) * plane];
            let out = &mut out[c * plane..(c + 1) * plane];
            for y in 0..h {
                let sy = y as isize + self.dy;
                let row = &mut out[y * w..(y + 1) * w];
                if sy < 0 || sy >= h as isize {
                    row.fill(fill);
                    continue;
                }
                let src_row = &src[sy as usize * w..(sy as usize + 1) * w];
                for (x, o) in row.iter_mut().enumerate() {
                    let xx = if self.flip { w - 1 - x } else { x };
                    let sx = xx as isize + self.dx;
                    *o = if sx < 0 || sx >= w as isize {
                        fill
                    } else {
                        src_row[sx as usize]
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_params_copy() {
        let src: Vec<f32> = (0..2 * 3 * 4).map(|v| v as f32).collect();
        let mut out = vec![0.0; src.len()];
        let p = AugmentParams {
            dy: 0,
            dx: 0,
            flip: false,
        };
        p.apply(&src, [2, 3, 4], &Normalization::unit(2), &mut out);
        assert_eq!(out, src);
    }

    #[test]
    fn shift_and_flip() {
        // One channel 2x3: [[0,1,2],[3,4,5]].
        let src: Vec<f32> = (0..6).map(|v| v as f32 + 10.0).collect();
        let norm = Normalization::new(vec![0.5], vec![0.5]).unwrap(); // pad -> -1
        let mut out = vec![0.0; 6];
        AugmentParams {
            dy: 1,
            dx: 0,
            flip: false,
        }
        .apply(&src, [1, 2, 3], &norm, &mut out);
        assert_eq!(out, vec![13.0, 14.0, 15.0, -1.0, -1.0, -1.0]);
        AugmentParams {
            dy: 0,
            dx: -1,
            flip: true,
        }
        .apply(&src, [1, 2, 3], &norm, &mut out);
        // flip: [[2,1,0],[5,4,3]] read at x'-1: x=0 -> xx=2 -> sx=1.
        assert_eq!(out, vec![11.0, 10.0, -1.0, 14.0, 13.0, -1.0]);
    }

    #[test]
    fn draws_cover_the_range() {
        let a = Augment::standard();
        let draws: Vec<_> = (0..500).map(|i| a.draw(1, 2, i)).collect();
        assert!(draws.iter().all(|p| p.dx.abs() <= 4 && p.dy.abs() <= 4));
        assert!(draws.iter().any(|p| p.flip) && draws.iter().any(|p| !p.flip));
        assert!(draws.iter().any(|p| p.dx == -4) && draws.iter().any(|p| p.dy == 4));
        assert_eq!(a.draw(1, 2, 3), a.draw(1, 2, 3));
    }
}
