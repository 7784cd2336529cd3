//! Batch-level mixing: mixup (Zhang et al. 2018) and CutMix (Yun et al.
//! 2019) as timm's `Mixup` does them in its default mode, "batch".
//!
//! One draw per batch, a pure function of `(seed, epoch, batch index)` on
//! its own stream ([`STREAM_MIX`]), so a resumed run mixes alike and
//! turning mixing on leaves the shuffle, crop, flip and cutout draws as
//! they were. In timm's order (`Mixup._params_per_batch`):
//! 1. with probability `1 - prob` the batch is not mixed;
//! 2. with both mixup and CutMix on, CutMix with probability
//!    `switch_prob`, else mixup; otherwise the one that is on;
//! 3. `lam ~ Beta(alpha, alpha)` of the chosen method.
//!
//! Image `i` is mixed with its partner `n - 1 - i`, the batch reversed
//! (timm's `x.flip(0)`): mixup makes `lam x_i + (1 - lam) x_partner`;
//! CutMix pastes the partner's pixels into a box from timm's `rand_bbox`
//! (side `floor(H sqrt(1 - lam))` by `floor(W sqrt(1 - lam))`, centre
//! uniform over the image, rows `cy - cut_h / 2 .. cy + ceil(cut_h / 2)`
//! as timm 1.0 writes them, clipped at the borders) and corrects `lam` to
//! the share of the image left uncovered (`correct_lam=True`). The targets
//! are then `lam` of the image's own label and `1 - lam` of its partner's.
//! A batch of odd size mixes its middle image with itself (timm refuses
//! odd batches; a run's last batch may be one). A draw whose `lam` is
//! exactly 1 (an empty box) mixes nothing.
//!
//! The mix applies to normalised pixels, after crop, flip and cutout, as
//! timm's collate does after the per-image transforms.

use rand::Rng;
use rand_distr::{Beta, Distribution};

use crate::error::{DataError, Result};
use crate::shuffle::{STREAM_MIX, below, rng_for};

/// Which batch mixing to apply, and how often.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// Mixup's Beta parameter (0: off).
    pub mixup_alpha: f64,
    /// CutMix's Beta parameter (0: off).
    pub cutmix_alpha: f64,
    /// Probability that a batch is mixed at all (timm's `mix_prob`, 1).
    pub prob: f64,
    /// With both on, the probability of CutMix instead of mixup (timm's
    /// `switch_prob`, 0.5).
    pub switch_prob: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Mix::off()
    }
}

impl Mix {
    /// No mixing (timm's defaults for the probabilities).
    pub fn off() -> Self {
        Mix {
            mixup_alpha: 0.0,
            cutmix_alpha: 0.0,
            prob: 1.0,
            switch_prob: 0.5,
        }
    }

    /// Whether any batch can be mixed.
    pub fn is_on(&self) -> bool {
        (self.mixup_alpha > 0.0 || self.cutmix_alpha > 0.0) && self.prob > 0.0
    }

    /// Alphas finite and not negative, probabilities in `[0, 1]`; the
    /// error names the setting as a config file does.
    pub fn validate(&self) -> Result<()> {
        for (name, alpha) in [("mixup", self.mixup_alpha), ("cutmix", self.cutmix_alpha)] {
            if !(alpha.is_finite() && alpha >= 0.0) {
                return Err(DataError::value(
                    name,
                    format!("the Beta parameter {alpha} must be a number >= 0 (0 is off)"),
                ));
            }
        }
        for (name, p) in [
            ("mix_prob", self.prob),
            ("mix_switch_prob", self.switch_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(DataError::value(
                    name,
                    format!("the probability {p} is outside [0, 1]"),
                ));
            }
        }
        Ok(())
    }

    /// The mix of batch `batch` of epoch `epoch` (0-based, as the loader
    /// counts) in images of `h x w` pixels; `None` when the batch is not
    /// mixed. Invalid settings draw nothing.
    pub fn draw(&self, seed: u64, epoch: u64, batch: u64, h: usize, w: usize) -> Option<MixDraw> {
        if !self.is_on() || self.validate().is_err() || h == 0 || w == 0 {
            return None;
        }
        let mut rng = rng_for(seed, STREAM_MIX, epoch, batch);
        if rng.random::<f64>() >= self.prob {
            return None;
        }
        let cutmix = match (self.mixup_alpha > 0.0, self.cutmix_alpha > 0.0) {
            (true, true) => rng.random::<f64>() < self.switch_prob,
            (true, false) => false,
            _ => true,
        };
        let alpha = if cutmix {
            self.cutmix_alpha
        } else {
            self.mixup_alpha
        };
        let lam = Beta::new(alpha, alpha).ok()?.sample(&mut rng);
        let draw = if cutmix {
            let cy = below(&mut rng, h as u64) as usize;
            let cx = below(&mut rng, w as u64) as usize;
            let (cut, lam) = cutmix_box(h, w, lam, cy, cx);
            MixDraw {
                lam,
                cut: Some(cut),
            }
        } else {
            MixDraw { lam, cut: None }
        };
        (draw.lam < 1.0).then_some(draw)
    }
}

/// timm's `rand_bbox` with the centre `(cy, cx)` given, and
/// `cutmix_bbox_and_lam`'s correction: the box of an `h x w` image for
/// `lam`, and `1 - box area / image area`.
pub fn cutmix_box(h: usize, w: usize, lam: f64, cy: usize, cx: usize) -> (CutBox, f64) {
    let ratio = (1.0 - lam).max(0.0).sqrt();
    // `int(img_h * ratio)`: truncation, the product is not negative.
    let (cut_h, cut_w) = ((h as f64 * ratio) as usize, (w as f64 * ratio) as usize);
    let cut = CutBox {
        y0: cy.saturating_sub(cut_h / 2).min(h),
        y1: (cy + cut_h.div_ceil(2)).min(h),
        x0: cx.saturating_sub(cut_w / 2).min(w),
        x1: (cx + cut_w.div_ceil(2)).min(w),
    };
    let area = (cut.y1 - cut.y0) * (cut.x1 - cut.x0);
    (cut, 1.0 - area as f64 / (h * w) as f64)
}

/// One batch's mix: the weight of each image's own label, and the CutMix
/// box (`None`: mixup).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixDraw {
    /// Weight of the image's own label (and, for mixup, of its pixels);
    /// for CutMix the share of the image outside the box.
    pub lam: f64,
    /// CutMix's box, pasted from the partner; `None` for mixup.
    pub cut: Option<CutBox>,
}

/// The CutMix box: rows `y0..y1`, columns `x0..x1` (clipped; may be empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutBox {
    pub y0: usize,
    pub y1: usize,
    pub x0: usize,
    pub x1: usize,
}

impl MixDraw {
    /// Mix `n` normalised images `[n, C, H, W]` (`dims = [C, H, W]`) in
    /// place, each with its partner `n - 1 - i`, in f32 as timm's tensor
    /// ops do: mixup `x * lam + x_partner * (1 - lam)` (each weight
    /// rounded to f32 first), CutMix the partner's box copied in.
    pub fn apply(&self, images: &mut [f32], n: usize, dims: [usize; 3]) {
        let numel = dims.iter().product::<usize>();
        debug_assert_eq!(images.len(), n * numel);
        let (keep, take) = (self.lam as f32, (1.0 - self.lam) as f32);
        for i in 0..n / 2 {
            let j = n - 1 - i;
            let (front, back) = images.split_at_mut(j * numel);
            let a = &mut front[i * numel..(i + 1) * numel];
            let b = &mut back[..numel];
            match self.cut {
                None => {
                    for (u, v) in a.iter_mut().zip(b.iter_mut()) {
                        let (x, y) = (*u, *v);
                        *u = x * keep + y * take;
                        *v = y * keep + x * take;
                    }
                }
                Some(cut) => cut.swap(a, b, dims),
            }
        }
        if n % 2 == 1 && self.cut.is_none() {
            // The middle image is its own partner.
            let m = n / 2;
            for u in &mut images[m * numel..(m + 1) * numel] {
                *u = *u * keep + *u * take;
            }
        }
    }
}

impl CutBox {
    /// Exchange the box's pixels of two images `[C, H, W]`.
    fn swap(&self, a: &mut [f32], b: &mut [f32], dims: [usize; 3]) {
        let [c_n, h, w] = dims;
        for c in 0..c_n {
            for y in self.y0..self.y1.min(h) {
                let row = (c * h + y) * w;
                let span = row + self.x0.min(w)..row + self.x1.min(w);
                a[span.clone()].swap_with_slice(&mut b[span]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_follow_rand_bbox_and_correct_lam() {
        // lam 0.75 on 8x8: ratio 0.5, a 4x4 box centred at (4, 4).
        let (b, lam) = cutmix_box(8, 8, 0.75, 4, 4);
        assert_eq!((b.y0, b.y1, b.x0, b.x1), (2, 6, 2, 6));
        assert_eq!(lam, 0.75);
        // Clipped at the corner: rows 0..2, columns 0..2, 4 of 64 pixels.
        let (b, lam) = cutmix_box(8, 8, 0.75, 0, 0);
        assert_eq!((b.y0, b.y1, b.x0, b.x1), (0, 2, 0, 2));
        assert_eq!(lam, 1.0 - 4.0 / 64.0);
        // Truncation: 5 sqrt(0.5) = 3.5 -> 3 rows, 1 above the centre and
        // 2 from it (timm 1.0's `(cut_h + 1) // 2`): rows 1..4; 7 sqrt(0.5)
        // -> 4 columns from 4, clipped at 7.
        let (b, lam) = cutmix_box(5, 7, 0.5, 2, 6);
        assert_eq!((b.y0, b.y1, b.x0, b.x1), (1, 4, 4, 7));
        assert_eq!(lam, 1.0 - 9.0 / 35.0);
        // lam 1: an empty box, lam stays 1.
        let (b, lam) = cutmix_box(8, 8, 1.0, 3, 3);
        assert_eq!((b.y1 - b.y0) * (b.x1 - b.x0), 0);
        assert_eq!(lam, 1.0);
    }

    #[test]
    fn mixup_and_cutmix_pair_the_batch_reversed() {
        // Three 1x2x2 images: 0..4, 10..14, 20..24.
        let base: Vec<f32> = (0..3)
            .flat_map(|i| (0..4).map(move |k| (10 * i + k) as f32))
            .collect();
        let mut x = base.clone();
        MixDraw {
            lam: 0.25,
            cut: None,
        }
        .apply(&mut x, 3, [1, 2, 2]);
        for k in 0..4 {
            assert_eq!(x[k], base[k] * 0.25 + base[8 + k] * 0.75);
            assert_eq!(x[8 + k], base[8 + k] * 0.25 + base[k] * 0.75);
            assert_eq!(x[4 + k], base[4 + k]);
        }
        let mut x = base.clone();
        let cut = CutBox {
            y0: 0,
            y1: 1,
            x0: 1,
            x1: 2,
        };
        MixDraw {
            lam: 0.75,
            cut: Some(cut),
        }
        .apply(&mut x, 3, [1, 2, 2]);
        assert_eq!(
            x,
            vec![0., 21., 2., 3., 10., 11., 12., 13., 20., 1., 22., 23.]
        );
    }

    #[test]
    fn draws_are_reproducible_and_follow_the_settings() {
        let both = Mix {
            mixup_alpha: 0.4,
            cutmix_alpha: 1.0,
            ..Mix::off()
        };
        assert!(Mix::off().draw(1, 0, 0, 8, 8).is_none());
        let draws: Vec<_> = (0..400).map(|b| both.draw(7, 2, b, 8, 8)).collect();
        assert_eq!(both.draw(7, 2, 5, 8, 8), draws[5]);
        assert_ne!(both.draw(7, 3, 5, 8, 8), draws[5]);
        assert_ne!(both.draw(8, 2, 5, 8, 8), draws[5]);
        let cut = draws.iter().flatten().filter(|d| d.cut.is_some()).count();
        let mixed = draws.iter().flatten().count();
        // prob 1: (nearly) every batch mixed; about half of them CutMix.
        assert!(mixed >= 390, "{mixed}");
        assert!((150..250).contains(&cut), "{cut}");
        for d in draws.iter().flatten() {
            assert!((0.0..1.0).contains(&d.lam), "{d:?}");
            if let Some(b) = d.cut {
                let area = (b.y1 - b.y0) * (b.x1 - b.x0);
                assert_eq!(d.lam, 1.0 - area as f64 / 64.0);
            }
        }
        // Beta(0.4, 0.4) has mean 1/2 and piles up near 0 and 1.
        let lams: Vec<f64> = draws
            .iter()
            .flatten()
            .filter(|d| d.cut.is_none())
            .map(|d| d.lam)
            .collect();
        let mean = lams.iter().sum::<f64>() / lams.len() as f64;
        assert!((mean - 0.5).abs() < 0.08, "{mean}");
        assert!(lams.iter().filter(|&&l| !(0.1..=0.9).contains(&l)).count() * 3 > lams.len());
        // mix_prob 0.3: about 30% of the batches; CutMix only.
        let some = Mix {
            cutmix_alpha: 1.0,
            prob: 0.3,
            ..Mix::off()
        };
        let d: Vec<_> = (0..1000).filter_map(|b| some.draw(1, 0, b, 8, 8)).collect();
        assert!((230..370).contains(&d.len()), "{}", d.len());
        assert!(d.iter().all(|d| d.cut.is_some()));
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = |m: Mix| m.validate().unwrap_err().to_string();
        assert!(
            bad(Mix {
                mixup_alpha: -1.0,
                ..Mix::off()
            })
            .contains("mixup")
        );
        assert!(
            bad(Mix {
                cutmix_alpha: f64::NAN,
                ..Mix::off()
            })
            .contains("cutmix")
        );
        assert!(
            bad(Mix {
                prob: 1.5,
                ..Mix::off()
            })
            .contains("mix_prob")
        );
        assert!(
            bad(Mix {
                switch_prob: -0.1,
                ..Mix::off()
            })
            .contains("mix_switch_prob")
        );
        assert!(Mix::off().validate().is_ok() && !Mix::off().is_on());
    }
}
