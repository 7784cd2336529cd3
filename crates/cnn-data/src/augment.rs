//! Training-time augmentation: random crop with zero padding, horizontal
//! flip and cutout, each drawn deterministically from `(seed, epoch,
//! index)`.
//!
//! Cutout (DeVries & Taylor 2017, `--cutout SIZE`) zeroes one square of
//! side `SIZE` per image, after the crop and flip: its centre `(cy, cx)`
//! is uniform over the image's pixels and the square, rows
//! `cy - SIZE/2 .. cy + SIZE/2` and the same columns (integer halves, as
//! the authors' code has it), is clipped at the borders, so a square near
//! an edge zeroes less. As in their code, which multiplies the
//! normalised tensor by the mask, the square is 0 after normalisation
//! (the channel's mean pixel).
//!
//! `index` is the sample's index in the subset being loaded (not its place
//! in the batch), so a sample gets the same augmentation in epoch `e` however
//! the epoch is batched or resumed. Padding is "zero" in pixel space (a
//! black pixel, as torchvision's `RandomCrop(padding=4)` before `Normalize`):
//! after normalisation it is [`Normalization::zero_value`] of the channel.

use crate::normalize::Normalization;
use crate::shuffle::{STREAM_AUGMENT, STREAM_CUTOUT, hash4};

/// Which augmentations to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Augment {
    /// Random crop after padding each side with this many black pixels
    /// (0: no crop).
    pub pad: usize,
    /// Random horizontal flip with probability 1/2.
    pub flip: bool,
    /// Cutout: zero one square of this side per image (0: none).
    pub cutout: usize,
}

impl Augment {
    /// No augmentation.
    pub fn none() -> Self {
        Augment::default()
    }

    /// The usual CIFAR recipe: pad 4 and crop, random horizontal flip.
    pub fn standard() -> Self {
        Augment {
            pad: 4,
            flip: true,
            cutout: 0,
        }
    }

    /// Whether this changes anything.
    pub fn is_identity(&self) -> bool {
        self.pad == 0 && !self.flip && self.cutout == 0
    }

    /// Whether a crop or flip is drawn (cutout aside).
    pub fn moves_pixels(&self) -> bool {
        self.pad > 0 || self.flip
    }

    /// The cutout square of sample `index` of epoch `epoch` in an image of
    /// `h x w` pixels, clipped at the borders; `None` without cutout.
    pub fn draw_cutout(
        &self,
        seed: u64,
        epoch: u64,
        index: u64,
        h: usize,
        w: usize,
    ) -> Option<CutoutBox> {
        if self.cutout == 0 || h == 0 || w == 0 {
            return None;
        }
        let r = hash4(seed, STREAM_CUTOUT, epoch, index);
        let (cy, cx) = (
            ((r & 0xffff_ffff) % h as u64) as usize,
            ((r >> 32) % w as u64) as usize,
        );
        let half = self.cutout / 2;
        Some(CutoutBox {
            y0: cy.saturating_sub(half),
            y1: (cy + half).min(h),
            x0: cx.saturating_sub(half),
            x1: (cx + half).min(w),
        })
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

/// One cutout square: rows `y0..y1`, columns `x0..x1` (clipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutoutBox {
    pub y0: usize,
    pub y1: usize,
    pub x0: usize,
    pub x1: usize,
}

impl CutoutBox {
    /// Zero the square in every channel of a normalised image `img`
    /// (`[C, H, W]`).
    pub fn apply(&self, img: &mut [f32], dims: [usize; 3]) {
        let [c_n, h, w] = dims;
        for c in 0..c_n {
            for y in self.y0..self.y1.min(h) {
                let row = (c * h + y) * w;
                img[row + self.x0.min(w)..row + self.x1.min(w)].fill(0.0);
            }
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
    fn cutout_squares_are_reproducible_clipped_and_zeroed() {
        let a = Augment {
            cutout: 4,
            ..Augment::none()
        };
        assert!(!a.is_identity() && !a.moves_pixels());
        assert_eq!(Augment::none().draw_cutout(1, 2, 3, 8, 8), None);
        let boxes: Vec<_> = (0..400)
            .map(|i| a.draw_cutout(1, 2, i, 8, 8).unwrap())
            .collect();
        assert_eq!(a.draw_cutout(1, 2, 5, 8, 8), Some(boxes[5]));
        assert_ne!(a.draw_cutout(1, 3, 5, 8, 8), a.draw_cutout(1, 2, 5, 8, 8));
        for b in &boxes {
            assert!(
                b.y0 < b.y1 && b.y1 <= 8 && b.x0 < b.x1 && b.x1 <= 8,
                "{b:?}"
            );
            assert!(b.y1 - b.y0 <= 4 && b.x1 - b.x0 <= 4);
        }
        // Centres cover the image: whole squares and ones clipped at each border.
        assert!(boxes.iter().any(|b| b.y1 - b.y0 == 4 && b.x1 - b.x0 == 4));
        assert!(boxes.iter().any(|b| b.y0 == 0 && b.y1 == 2));
        assert!(boxes.iter().any(|b| b.x1 == 8 && b.x1 - b.x0 == 3));
        // The square is zero in every channel; the rest is untouched.
        let mut img: Vec<f32> = (0..2 * 3 * 4).map(|v| v as f32 + 1.0).collect();
        CutoutBox {
            y0: 1,
            y1: 3,
            x0: 0,
            x1: 2,
        }
        .apply(&mut img, [2, 3, 4]);
        let zeroed: Vec<usize> = (0..img.len()).filter(|&i| img[i] == 0.0).collect();
        assert_eq!(zeroed, vec![4, 5, 8, 9, 16, 17, 20, 21]);
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
