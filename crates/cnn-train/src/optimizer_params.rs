//! A configuration's `optimizer_params` (`--optimizer-param KEY=VALUE`):
//! the optimizer's hyperparameters by the reference implementation's
//! names, applied over what the other settings (`lr`, `momentum`,
//! `weight_decay`, `nesterov`) gave, checked like `schedule_params`
//! (tested in `tests/optimizer_params.rs`).

use cnn_optim::OptimizerConfig;

use crate::error::{Result, TrainError};

/// `optimizer` with `params` set; every error (a key the optimizer does
/// not have, a value of the wrong type or out of range) is a
/// [`TrainError::Config`] naming the optimizer and the key.
pub(crate) fn apply(optimizer: OptimizerConfig, params: &toml::Table) -> Result<OptimizerConfig> {
    if params.is_empty() {
        return Ok(optimizer);
    }
    let name = optimizer.name();
    let bad = |m: String| TrainError::Config(format!("optimizer_params for `{name}`: {m}"));
    let mut values = Vec::with_capacity(params.len());
    for (key, value) in params {
        let json = serde_json::to_value(value).map_err(|e| bad(format!("{key}: {e}")))?;
        values.push((key.as_str(), json));
    }
    optimizer
        .with_params(values)
        .map_err(|e| bad(e.to_string()))
}

/// A weight decay given to an optimizer that has none (Rprop) is an
/// error rather than ignored.
pub(crate) fn check_weight_decay(optimizer: &OptimizerConfig, wd: f64) -> Result<()> {
    if wd != 0.0 && !optimizer.has_weight_decay() {
        return Err(TrainError::Config(format!(
            "{} has no weight decay (weight_decay = {wd})",
            optimizer.name()
        )));
    }
    Ok(())
}
