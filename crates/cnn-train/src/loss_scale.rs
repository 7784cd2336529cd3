//! Dynamic loss scaling with the rules of PyTorch's `torch.amp.GradScaler`
//! (Keras's `LossScaleOptimizer`): the loss gradient is multiplied by a
//! scale before backward so that small gradients survive f16's narrow
//! exponent range; before anything reads them (regularizers, clipping,
//! the optimizer) the gradients are multiplied by `1 / scale`, and when
//! any of them is then NaN or infinite the optimizer step is skipped.
//!
//! The scale's rules, as `torch._amp_update_scale_` applies them after
//! every step:
//!
//! - a step with a non-finite gradient: `scale *= backoff_factor` (0.5),
//!   the growth counter back to 0, the weights and the optimizer's state
//!   untouched;
//! - a clean step: the counter grows by one; when it reaches
//!   `growth_interval` (2000), `scale *= growth_factor` (2) when the
//!   product is finite in f32, and the counter is back to 0.
//!
//! The scale starts at 65536 (2^16). It is an f32, as torch keeps it, and
//! a power of two as long as the factors are: then scaling and unscaling
//! are exact in f32 (each product only moves the exponent) unless a value
//! overflows or falls below f32's normal range, so a run with dynamic
//! scaling and no overflow trains bit for bit as the run without.
//!
//! [`LossScaleMode`] is the setting (`loss_scale = "dynamic" | "none"`,
//! `--loss-scale`); unset, a run scales when its precision needs it
//! ([`cnn_core::Precision::needs_loss_scaling`]: f16). The scaler's state
//! is part of the trainer's state, so checkpoints keep it and a resumed
//! run continues the same sequence of scales.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Whether a run scales its loss (`loss_scale`, `--loss-scale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossScaleMode {
    /// GradScaler's dynamic scaling (`GradScaler(enabled=True)`).
    Dynamic,
    /// No scaling (`GradScaler(enabled=False)`), whatever the precision.
    None,
}

impl LossScaleMode {
    /// The name the flag and the config key take.
    pub fn name(self) -> &'static str {
        match self {
            LossScaleMode::Dynamic => "dynamic",
            LossScaleMode::None => "none",
        }
    }

    /// Whether a run with this setting (`None`: unset) in `precision`
    /// scales its loss: as set, else when the precision needs it.
    pub fn enabled(mode: Option<Self>, precision: cnn_core::Precision) -> bool {
        match mode {
            Some(m) => m == LossScaleMode::Dynamic,
            None => precision.needs_loss_scaling(),
        }
    }
}

impl FromStr for LossScaleMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "dynamic" => Ok(LossScaleMode::Dynamic),
            "none" => Ok(LossScaleMode::None),
            other => Err(format!("`{other}` is not a loss scaling: dynamic or none")),
        }
    }
}

impl std::fmt::Display for LossScaleMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// GradScaler's initial scale, 2^16.
pub const INIT_SCALE: f32 = 65536.0;
/// GradScaler's growth factor.
pub const GROWTH_FACTOR: f32 = 2.0;
/// GradScaler's backoff factor.
pub const BACKOFF_FACTOR: f32 = 0.5;
/// GradScaler's growth interval: clean steps before the scale grows.
pub const GROWTH_INTERVAL: u64 = 2000;

/// The dynamic loss scale and its growth counter (GradScaler's `_scale`
/// and `_growth_tracker`) with its factors. Saved in checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossScaler {
    /// The scale the next step's loss gradient is multiplied by.
    pub scale: f32,
    /// Clean steps since the scale last changed.
    pub growth_tracker: u64,
    pub growth_factor: f32,
    pub backoff_factor: f32,
    pub growth_interval: u64,
}

impl Default for LossScaler {
    /// GradScaler's defaults: 65536, x2 after 2000 clean steps, x0.5 on
    /// an overflow.
    fn default() -> Self {
        LossScaler {
            scale: INIT_SCALE,
            growth_tracker: 0,
            growth_factor: GROWTH_FACTOR,
            backoff_factor: BACKOFF_FACTOR,
            growth_interval: GROWTH_INTERVAL,
        }
    }
}

impl LossScaler {
    /// A scaler starting at `init_scale` that grows after
    /// `growth_interval` clean steps, with GradScaler's factors.
    pub fn new(init_scale: f32, growth_interval: u64) -> Self {
        LossScaler {
            scale: init_scale,
            growth_interval,
            ..LossScaler::default()
        }
    }

    /// What multiplies the gradients back: `1 / scale`, rounded to f32 as
    /// torch's `inv_scale` (exact for a power of two).
    pub fn inv_scale(&self) -> f32 {
        (1.0 / f64::from(self.scale)) as f32
    }

    /// After a step whose unscaled gradients were all finite
    /// (`found_inf = false`) or not: the next scale and counter
    /// (`torch._amp_update_scale_`).
    pub fn update(&mut self, found_inf: bool) {
        if found_inf {
            self.scale *= self.backoff_factor;
            self.growth_tracker = 0;
            return;
        }
        let successful = self.growth_tracker + 1;
        if successful >= self.growth_interval {
            let grown = self.scale * self.growth_factor;
            if grown.is_finite() {
                self.scale = grown;
            }
            self.growth_tracker = 0;
        } else {
            self.growth_tracker = successful;
        }
    }

    /// Check the values a config or a checkpoint gave: a positive finite
    /// scale, factors above and below 1, a growth interval of at least 1.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(format!(
                "the loss scale {} must be a positive number",
                self.scale
            ));
        }
        if !(self.growth_factor.is_finite() && self.growth_factor > 1.0) {
            return Err(format!(
                "the loss scale's growth factor {} must be above 1",
                self.growth_factor
            ));
        }
        if !(self.backoff_factor > 0.0 && self.backoff_factor < 1.0) {
            return Err(format!(
                "the loss scale's backoff factor {} must be in (0, 1)",
                self.backoff_factor
            ));
        }
        if self.growth_interval == 0 {
            return Err("the loss scale's growth interval must be at least 1 step".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnn_core::Precision;

    /// The scales after each step of `overflows` (true: a non-finite
    /// gradient), starting from `scaler`.
    fn sequence(mut scaler: LossScaler, overflows: &[bool]) -> Vec<(f32, u64)> {
        overflows
            .iter()
            .map(|&inf| {
                scaler.update(inf);
                (scaler.scale, scaler.growth_tracker)
            })
            .collect()
    }

    #[test]
    fn defaults_are_grad_scalers() {
        let s = LossScaler::default();
        assert_eq!(s.scale, 65536.0);
        assert_eq!(
            (s.growth_factor, s.backoff_factor, s.growth_interval),
            (2.0, 0.5, 2000)
        );
        assert_eq!(s.inv_scale(), 1.0 / 65536.0);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn an_injected_pattern_follows_grad_scalers_rules() {
        // Growth interval 3: two overflows back to back halve twice; three
        // clean steps in a row double once and restart the count; an
        // overflow resets a count under way.
        let (o, c) = (true, false);
        let got = sequence(
            LossScaler::new(1024.0, 3),
            &[o, o, c, c, c, c, c, o, c, c, c],
        );
        let want = [
            (512.0, 0),
            (256.0, 0),
            (256.0, 1),
            (256.0, 2),
            (512.0, 0),
            (512.0, 1),
            (512.0, 2),
            (256.0, 0),
            (256.0, 1),
            (256.0, 2),
            (512.0, 0),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn the_default_interval_grows_after_2000_clean_steps() {
        let mut steps = vec![false; 1999];
        let got = sequence(LossScaler::default(), &steps);
        assert_eq!(got.last(), Some(&(65536.0, 1999)));
        steps.push(false);
        let got = sequence(LossScaler::default(), &steps);
        assert_eq!(got.last(), Some(&(131072.0, 0)));
        // An overflow at step 1999 starts the count again.
        steps[1998] = true;
        let got = sequence(LossScaler::default(), &steps);
        assert_eq!(got[1998], (32768.0, 0));
        assert_eq!(got.last(), Some(&(32768.0, 1)));
    }

    #[test]
    fn growth_stops_below_f32_overflow() {
        let mut s = LossScaler::new(2f32.powi(127), 1);
        s.update(false);
        assert_eq!((s.scale, s.growth_tracker), (2f32.powi(127), 0));
    }

    #[test]
    fn the_mode_follows_the_precision_unless_set() {
        assert!(LossScaleMode::enabled(None, Precision::F16));
        assert!(!LossScaleMode::enabled(None, Precision::Bf16));
        assert!(!LossScaleMode::enabled(None, Precision::F32));
        assert!(LossScaleMode::enabled(
            Some(LossScaleMode::Dynamic),
            Precision::F32
        ));
        assert!(!LossScaleMode::enabled(
            Some(LossScaleMode::None),
            Precision::F16
        ));
        assert_eq!("dynamic".parse(), Ok(LossScaleMode::Dynamic));
        assert_eq!("none".parse(), Ok(LossScaleMode::None));
        let err = "static".parse::<LossScaleMode>().unwrap_err();
        assert!(err.contains("`static`"), "{err}");
    }

    #[test]
    fn bad_settings_are_refused() {
        for bad in [
            LossScaler::new(0.0, 5),
            LossScaler::new(f32::INFINITY, 5),
            LossScaler::new(8.0, 0),
            LossScaler {
                backoff_factor: 1.0,
                ..LossScaler::default()
            },
            LossScaler {
                growth_factor: 0.5,
                ..LossScaler::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
