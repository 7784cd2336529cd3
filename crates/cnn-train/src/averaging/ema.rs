//! An exponential moving average of a model's weights, as timm's
//! `ModelEmaV2` keeps it: after each optimizer step, every float tensor of
//! the state_dict (parameters and batch norm's running statistics)
//! becomes
//!
//! ```text
//! ema = decay * ema + (1 - decay) * model
//! ```
//!
//! starting from a copy of the model as training begins. With warmup, the
//! decay of the t-th update is timm `ModelEmaV3`'s `get_decay(t)` with
//! `use_warmup` (gamma 1, power 2/3, no `update_after_step`):
//! `0` for the first update (a copy), then
//! `min(decay, 1 - (1 + (t - 1))^(-2/3))`. The integer counters
//! (`num_batches_tracked`) are copied, as `ModelEmaV3` copies non-float
//! tensors (`ModelEmaV2` runs them through the float formula and truncates;
//! they do not enter the forward pass either way). The arithmetic runs on
//! the backend (`scale`, then `axpy`): no weight crosses to the host.

use cnn_core::{Backend, Graph, NamedArray};

use crate::error::Result;

/// timm `ModelEmaV3`'s warmup power (its default, `warmup_power = 2/3`).
pub const WARMUP_POWER: f64 = 2.0 / 3.0;

/// The averaged copy of a model.
pub struct Ema<B: Backend> {
    graph: Graph<B>,
    decay: f64,
    warmup: bool,
}

impl<B: Backend> std::fmt::Debug for Ema<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ema")
            .field("decay", &self.decay)
            .field("warmup", &self.warmup)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Ema<B> {
    /// An average that starts as a copy of `model`.
    pub fn new(model: &Graph<B>, decay: f64, warmup: bool) -> Result<Self> {
        let mut graph = Graph::new(model.backend(), model.spec().clone(), model.seed())?;
        graph.load_state_dict(&model.state_dict()?)?;
        Ok(Ema {
            graph,
            decay,
            warmup,
        })
    }

    /// The decay of the `update`-th update (counting from 1).
    pub fn decay_at(&self, update: u64) -> f64 {
        decay_at(self.decay, self.warmup, update)
    }

    /// Average `model` in: the `update`-th update (counting from 1, the
    /// optimizer steps so far).
    pub fn update(&mut self, model: &Graph<B>, update: u64) -> Result<()> {
        let d = self.decay_at(update);
        let b = model.backend().clone();
        self.graph.zip_state_mut(model, |_, e, m| {
            if d == 0.0 {
                b.copy(m.buffer(), e.buffer_mut())
            } else {
                b.scale(d as f32, e.buffer_mut())?;
                b.axpy((1.0 - d) as f32, m.buffer(), e.buffer_mut())
            }
        })?;
        self.graph.set_counters(&model.counters());
        Ok(())
    }

    /// The averaged model (evaluated in eval mode).
    pub fn graph_mut(&mut self) -> &mut Graph<B> {
        &mut self.graph
    }

    /// The average's state_dict (`ema.safetensors`).
    pub fn state_dict(&self) -> Result<Vec<NamedArray>> {
        Ok(self.graph.state_dict()?)
    }

    /// Continue from a saved average.
    pub fn load(&mut self, state: &[NamedArray]) -> Result<()> {
        Ok(self.graph.load_state_dict(state)?)
    }
}

/// The decay of the `update`-th EMA update (counting from 1): `decay`, or
/// with `warmup` timm `ModelEmaV3.get_decay(update)` with `use_warmup`,
/// `warmup_gamma` 1 and `warmup_power` 2/3.
pub fn decay_at(decay: f64, warmup: bool, update: u64) -> f64 {
    if !warmup {
        return decay;
    }
    let step = update.saturating_sub(1);
    if step == 0 {
        return 0.0;
    }
    let warm = 1.0 - (1.0 + step as f64).powf(-WARMUP_POWER);
    warm.min(decay).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::decay_at;

    #[test]
    fn warmup_decay_follows_timm_v3() {
        // timm: step = max(0, t - 1); 0 -> 0.0; else 1 - (1 + step)^(-2/3).
        assert_eq!(decay_at(0.999, true, 1), 0.0);
        let d2 = 1.0 - 2f64.powf(-2.0 / 3.0);
        assert!((decay_at(0.999, true, 2) - d2).abs() < 1e-15);
        // Capped by the decay once the warmup passes it.
        assert_eq!(decay_at(0.9, true, 1_000_000), 0.9);
        assert_eq!(decay_at(0.9, false, 1), 0.9);
    }
}
