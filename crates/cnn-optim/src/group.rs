//! Parameter groups: parameters, matched by name, that share a learning rate
//! and a weight decay different from the optimizer's defaults.

use cnn_core::{MemoryOps, Param};
use serde::{Deserialize, Serialize};

/// A set of parameters, chosen by state_dict name, with their own rate
/// and/or weight decay (`None`: the optimizer's). A parameter belongs to the
/// first group that matches it, else to the default group (index 0).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParamGroup {
    /// A label for logs ("no_decay").
    pub name: String,
    /// Exact parameter names (`conv1.bias`).
    pub params: Vec<String>,
    /// Name prefixes (`fc.` matches `fc.weight` and `fc.bias`).
    pub prefixes: Vec<String>,
    /// The group's base learning rate (schedules scale it like PyTorch's
    /// per-group `initial_lr`).
    pub lr: Option<f64>,
    /// The group's weight decay.
    pub weight_decay: Option<f64>,
}

impl ParamGroup {
    /// An empty group named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        ParamGroup {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Add exact parameter names.
    pub fn with_params<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.params.extend(names.into_iter().map(Into::into));
        self
    }

    /// Add a name prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefixes.push(prefix.into());
        self
    }

    /// Set the group's learning rate.
    pub fn with_lr(mut self, lr: f64) -> Self {
        self.lr = Some(lr);
        self
    }

    /// Set the group's weight decay.
    pub fn with_weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = Some(wd);
        self
    }

    /// PyTorch practice: biases and normalisation parameters (those whose
    /// [`ParamKind::decays_by_default`](cnn_core::ParamKind::decays_by_default)
    /// is false) in a group named `no_decay` with weight decay 0.
    pub fn no_decay<'a, B: MemoryOps + 'a>(params: impl IntoIterator<Item = &'a Param<B>>) -> Self {
        let names = params
            .into_iter()
            .filter(|p| !p.kind.decays_by_default())
            .map(|p| p.name.clone());
        ParamGroup::new("no_decay")
            .with_params(names)
            .with_weight_decay(0.0)
    }

    /// Whether the parameter named `name` is in this group.
    pub fn matches(&self, name: &str) -> bool {
        self.params.iter().any(|p| p == name)
            || self.prefixes.iter().any(|p| name.starts_with(p.as_str()))
    }
}
