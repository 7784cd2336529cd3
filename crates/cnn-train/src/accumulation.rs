//! Gradient accumulation (`accumulate` N): the bookkeeping of an optimizer
//! step put together from up to N batches, so that it steps on the mean
//! gradient of all their images, as one batch of them would.
//!
//! The parameter gradients add up batch by batch (backward accumulates).
//! Each batch's gradient is the mean over its own images, so they are kept
//! as `(1 / unit) * sum n_i g_i` (g_i the mean gradient of batch i, n_i its
//! images): batches of the unit's size add up as they come; a batch of
//! another size (an epoch's short last batch) first rescales the sum to its
//! own size; the step scales the sum by `unit / images`. A step of one
//! batch, or of batches of one size whose count is a power of two, scales
//! exactly (by 1, or by a power of two); a one-batch step is the step
//! without accumulation, bit for bit.

use cnn_core::{Backend, Graph};

use crate::error::Result;

/// The optimizer step being put together from its batches.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    batches: usize,
    images: usize,
    unit: usize,
    /// sum n_i * (data loss of batch i).
    loss_sum: f64,
    /// The last batch's data loss (a one-batch step reports it as it is).
    last_loss: f64,
    /// The L1 penalty of the step's weights, taken on its first batch.
    penalty: f64,
}

/// A step's batches, closed: what the optimizer step needs of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Closed {
    /// Scale the summed gradients by this before the update (`None`: 1).
    pub factor: Option<f32>,
    /// The step's loss: the images' mean data loss plus the L1 penalty.
    pub loss: f64,
    /// The images of the step.
    pub images: usize,
}

impl Pending {
    /// Batches added since the last step.
    pub(crate) fn batches(&self) -> usize {
        self.batches
    }

    /// The L1 penalty taken on the step's first batch, if one is in (the
    /// weights do not move within a step).
    pub(crate) fn penalty(&self) -> Option<f64> {
        (self.batches > 0).then_some(self.penalty)
    }

    /// Before the backward of a batch of `n` images: the factor to scale
    /// the gradients so far by, when their unit is another size.
    pub(crate) fn rescale_before(&mut self, n: usize) -> Option<f32> {
        if self.batches == 0 || self.unit == n {
            return None;
        }
        let factor = (self.unit as f64 / n as f64) as f32;
        self.unit = n;
        Some(factor)
    }

    /// A batch of `n` images and mean data loss `data_loss` is in the
    /// gradients; `penalty` is the L1 penalty (kept from the first batch).
    pub(crate) fn add(&mut self, n: usize, data_loss: f64, penalty: f64) {
        if self.batches == 0 {
            self.unit = n;
            self.penalty = penalty;
        }
        self.batches += 1;
        self.images += n;
        self.loss_sum += data_loss * n as f64;
        self.last_loss = data_loss;
    }

    /// Close the step: its scale factor, loss and images; empty again.
    pub(crate) fn close(&mut self) -> Closed {
        let p = std::mem::take(self);
        let data_loss = if p.batches == 1 {
            p.last_loss
        } else {
            p.loss_sum / p.images.max(1) as f64
        };
        Closed {
            factor: (p.unit != p.images).then(|| (p.unit as f64 / p.images as f64) as f32),
            loss: data_loss + p.penalty,
            images: p.images,
        }
    }
}

/// Multiply every parameter gradient of `graph` by `factor`.
pub(crate) fn scale_grads<B: Backend>(b: &B, graph: &mut Graph<B>, factor: f32) -> Result<()> {
    for p in graph.params_iter_mut() {
        b.scale(factor, p.grad.buffer_mut())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `sizes` through the bookkeeping on scalar "gradients": each
    /// batch's mean gradient is `g[i]`, added as backward adds it. Gives
    /// the stepped gradient and the closed step.
    fn accumulate(sizes: &[usize], g: &[f64], losses: &[f64]) -> (f64, Closed) {
        let mut p = Pending::default();
        let mut grad = 0.0f64;
        for ((&n, &gi), &li) in sizes.iter().zip(g).zip(losses) {
            if let Some(f) = p.rescale_before(n) {
                grad *= f64::from(f);
            }
            grad += gi;
            p.add(n, li, 0.5);
        }
        let closed = p.close();
        if let Some(f) = closed.factor {
            grad *= f64::from(f);
        }
        assert_eq!(p.batches(), 0, "closing empties the step");
        (grad, closed)
    }

    #[test]
    fn equal_batches_step_on_their_mean() {
        let (grad, c) = accumulate(&[64; 4], &[1.0, 2.0, 3.0, 6.0], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(c.factor, Some(0.25));
        assert_eq!(grad, 3.0);
        assert_eq!(c.images, 256);
        assert_eq!(c.loss, 2.5 + 0.5);
    }

    #[test]
    fn a_short_last_batch_counts_by_its_images() {
        // 64 + 64 + 32 images: weights 0.4, 0.4, 0.2.
        let (grad, c) = accumulate(&[64, 64, 32], &[1.0, 2.0, 4.0], &[1.0, 1.0, 4.0]);
        let expected = (64.0 * 1.0 + 64.0 * 2.0 + 32.0 * 4.0) / 160.0;
        assert!((grad - expected).abs() < 1e-6, "{grad} vs {expected}");
        assert_eq!(c.images, 160);
        assert!((c.loss - (64.0 + 64.0 + 128.0) / 160.0 - 0.5).abs() < 1e-12);
    }

    #[test]
    fn one_batch_is_left_as_it_is() {
        let (grad, c) = accumulate(&[37], &[1.25], &[0.1 + 0.2]);
        assert_eq!(c.factor, None);
        assert_eq!(grad, 1.25);
        // The batch's own loss, not a round trip through the sum.
        assert_eq!(c.loss.to_bits(), ((0.1 + 0.2) + 0.5f64).to_bits());
    }

    #[test]
    fn the_penalty_is_the_first_batchs() {
        let mut p = Pending::default();
        assert_eq!(p.penalty(), None);
        p.add(8, 1.0, 0.25);
        assert_eq!(p.penalty(), Some(0.25));
        p.add(8, 1.0, 9.0);
        assert_eq!(p.close().loss, 1.25);
        assert_eq!(p.penalty(), None);
    }
}
