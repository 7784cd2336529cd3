//! The optimizer wrappers a run may ask for (`lookahead`, `sam` in
//! [`TrainConfig`](crate::TrainConfig)): their checks before training and
//! the wrapped [`Optimizer`]. The trainer's side of SAM (the second
//! forward-backward) and of schedule-free's evaluation point is in
//! `trainer/wrapped.rs`.

use cnn_core::Backend;
use cnn_optim::{LookaheadConfig, Optimizer, OptimizerConfig, SamConfig};

use crate::error::{Result, TrainError};

/// Check the wrappers' parameters and what they combine with: SAM takes
/// its second gradient on the step's one batch, so no gradient
/// accumulation; Lookahead cannot wrap a schedule-free rule.
pub fn check(
    rule: &OptimizerConfig,
    lookahead: Option<&LookaheadConfig>,
    sam: Option<&SamConfig>,
    accumulate: usize,
) -> Result<()> {
    if let Some(l) = lookahead {
        l.validate()
            .map_err(|e| TrainError::Config(format!("lookahead: {e}")))?;
        if rule.has_eval_point() {
            return Err(TrainError::Config(format!(
                "lookahead cannot wrap {}: it recomputes the weights from its own averages every step",
                rule.name()
            )));
        }
    }
    if let Some(s) = sam {
        s.validate()
            .map_err(|e| TrainError::Config(format!("sam: {e}")))?;
        if accumulate > 1 {
            return Err(TrainError::Config(format!(
                "sam takes its second gradient on the step's batch, so it cannot accumulate {accumulate} batches"
            )));
        }
    }
    Ok(())
}

/// The optimizer of `rule`, wrapped as asked (checked by [`check`]).
pub fn build<B: Backend>(
    rule: &OptimizerConfig,
    lookahead: Option<&LookaheadConfig>,
    sam: Option<&SamConfig>,
    accumulate: usize,
) -> Result<Optimizer<B>> {
    check(rule, lookahead, sam, accumulate)?;
    let mut optimizer = Optimizer::new(rule.clone())?;
    if let Some(l) = lookahead {
        optimizer = optimizer.with_lookahead(l.clone())?;
    }
    if let Some(s) = sam {
        optimizer = optimizer.with_sam(s.clone())?;
    }
    Ok(optimizer)
}
