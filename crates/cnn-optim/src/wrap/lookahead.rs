//! Lookahead (Zhang et al. 2019, "Lookahead Optimizer: k steps forward,
//! 1 step back"; reference: `pytorch_optimizer.Lookahead` with
//! `pullback_momentum='none'`).
//!
//! The inner optimizer moves the (fast) weights `w`; every `k`-th step,
//! after the inner update:
//!
//! ```text
//! slow = slow + alpha (w - slow)      (here: slow = (1 - alpha) slow + alpha w)
//! w    = slow
//! ```
//!
//! The slow weights start as the weights before the first step.

use std::collections::{BTreeMap, HashMap};

use cnn_core::Backend;
use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result};

/// Lookahead's hyperparameters, the reference's names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LookaheadConfig {
    /// Inner steps between synchronisations, >= 1 (default 5).
    pub k: u64,
    /// How far the slow weights move toward the fast ones, in [0, 1]
    /// (default 0.5).
    pub alpha: f64,
}

impl Default for LookaheadConfig {
    fn default() -> Self {
        LookaheadConfig { k: 5, alpha: 0.5 }
    }
}

impl LookaheadConfig {
    /// Check `k` and `alpha`.
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 {
            return Err(OptimError::hyper("k", self.k, "must be at least 1"));
        }
        crate::error::check::unit_closed("alpha", self.alpha)
    }
}

/// Lookahead's state in a checkpoint.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LookaheadState {
    /// Inner steps since the last synchronisation.
    pub counter: u64,
    /// The slow weights by parameter name.
    pub slow: BTreeMap<String, Vec<f32>>,
}

/// The slow weights (device memory) and the step counter.
pub struct Lookahead<B: Backend> {
    config: LookaheadConfig,
    counter: u64,
    slow: HashMap<String, B::Buffer>,
}

impl<B: Backend> std::fmt::Debug for Lookahead<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookahead")
            .field("config", &self.config)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Lookahead<B> {
    /// Validate `config`; no slow weights until the first step.
    pub fn new(config: LookaheadConfig) -> Result<Self> {
        config.validate()?;
        Ok(Lookahead {
            config,
            counter: 0,
            slow: HashMap::new(),
        })
    }

    pub fn config(&self) -> &LookaheadConfig {
        &self.config
    }

    /// Whether the step under way ends with a synchronisation.
    pub(crate) fn syncs_now(&self) -> bool {
        self.counter + 1 >= self.config.k
    }

    /// Before the inner update of parameter `name`: its slow weights start
    /// as its current weights.
    pub(crate) fn before(&mut self, backend: &B, name: &str, w: &B::Buffer) -> Result<()> {
        if !self.slow.contains_key(name) {
            let mut s = backend.alloc_zeros(backend.buffer_len(w))?;
            backend.copy(w, &mut s)?;
            self.slow.insert(name.to_string(), s);
        }
        Ok(())
    }

    /// After the inner update of parameter `name`, when the step syncs.
    pub(crate) fn sync(&mut self, backend: &B, name: &str, w: &mut B::Buffer) -> Result<()> {
        let slow = self
            .slow
            .get_mut(name)
            .ok_or_else(|| OptimError::State(format!("lookahead: no slow weights for `{name}`")))?;
        if backend.buffer_len(slow) != backend.buffer_len(w) {
            return Err(OptimError::State(format!(
                "lookahead: the slow weights of `{name}` have another length than the parameter"
            )));
        }
        let alpha = self.config.alpha;
        backend.scale((1.0 - alpha) as f32, slow)?;
        backend.axpy(alpha as f32, w, slow)?;
        backend.copy(slow, w)?;
        Ok(())
    }

    /// After a whole step: count it.
    pub(crate) fn end_step(&mut self, synced: bool) {
        self.counter = if synced { 0 } else { self.counter + 1 };
    }

    /// A host copy of the state.
    pub fn export(&self, backend: &B) -> Result<LookaheadState> {
        let mut slow = BTreeMap::new();
        for (name, buf) in &self.slow {
            slow.insert(name.clone(), backend.download(buf)?);
        }
        Ok(LookaheadState {
            counter: self.counter,
            slow,
        })
    }

    /// Replace the state with `state`.
    pub fn import(&mut self, backend: &B, state: &LookaheadState) -> Result<()> {
        if state.counter >= self.config.k {
            return Err(OptimError::State(format!(
                "lookahead counter {} is not below k = {}",
                state.counter, self.config.k
            )));
        }
        let mut slow = HashMap::new();
        for (name, v) in &state.slow {
            slow.insert(name.clone(), backend.upload(v)?);
        }
        self.slow = slow;
        self.counter = state.counter;
        Ok(())
    }
}
