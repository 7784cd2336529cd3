//! The device-resident training set (`data_on_device`, `--data-on-device
//! auto|on|off`), as airbench's loader keeps CIFAR-10 on the GPU.
//!
//! When the backend keeps resident sets (CUDA) and the training subset
//! fits, it is uploaded once (bytes stay bytes: MNIST's 54,000 training
//! images take 42.8 MB, CIFAR-10's 45,000 138.6 MB; f32 sources 4 bytes a
//! value), each epoch's order once per epoch (`n` u32), and each step's
//! batch, with its crop, flip and cutout, is gathered on the device
//! straight into a batch tensor the graph's input is copied from on the
//! device (`cnn_core::ResidentOps::gather_batch`); its labels go straight
//! into the loss's class-target buffer. The loop still walks the host
//! loader's order, with the labels read on the host from it (for the
//! training confusion counts), so the batches are the host loader's bits
//! and a run's numbers do not depend on the switch.
//!
//! The rule "fits": the set's device bytes (pixels, labels, order, the
//! per-channel constants) at most half the device memory free when the
//! trainer is made, leaving the other half for the model's workspaces.
//!
//! `auto` (the default) uses the resident set where it can and the host
//! loader otherwise; `on` makes every "cannot" a configuration error
//! (exit status 2): a backend without resident sets (the CPU, whose
//! training set already lies in the memory it computes from), a set that
//! does not fit, mixup or CutMix (they mix batches on the host), a batch
//! split across workers, f32 pixels that are not finite after
//! normalisation (the host loader reports those); `off` keeps the host
//! loader.
//!
//! Here: the setting and the fit rule. The trainer's side (the upload,
//! the epoch's batches, the gather) is `trainer/resident.rs`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Whether the training set is kept in device memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataOnDevice {
    /// Where the backend keeps resident sets and the set fits.
    #[default]
    Auto,
    /// Always; a run that cannot is refused.
    On,
    /// Never: the host loader.
    Off,
}

impl DataOnDevice {
    /// The name the flag and the config key take.
    pub fn name(self) -> &'static str {
        match self {
            DataOnDevice::Auto => "auto",
            DataOnDevice::On => "on",
            DataOnDevice::Off => "off",
        }
    }

    /// Whether this is the default (`auto`, left out of `config.toml`).
    pub fn is_auto(&self) -> bool {
        *self == DataOnDevice::Auto
    }
}

impl fmt::Display for DataOnDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DataOnDevice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "auto" => Ok(DataOnDevice::Auto),
            "on" => Ok(DataOnDevice::On),
            "off" => Ok(DataOnDevice::Off),
            other => Err(format!("expected auto, on or off, got `{other}`")),
        }
    }
}

/// Whether a set of `bytes` fits in device memory with `free` bytes free
/// (at most half of it); if not, why, in words.
pub fn fits(bytes: u64, free: u64) -> std::result::Result<(), String> {
    if bytes <= free / 2 {
        return Ok(());
    }
    let megabytes = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
    Err(format!(
        "the training set takes {} of device memory, more than half of the {} free",
        megabytes(bytes),
        megabytes(free)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnn_core::{GatherParams, PixelKind};

    #[test]
    fn the_setting_parses_prints_and_defaults_to_auto() {
        for s in [DataOnDevice::Auto, DataOnDevice::On, DataOnDevice::Off] {
            assert_eq!(s.name().parse::<DataOnDevice>(), Ok(s));
            assert_eq!(s.to_string(), s.name());
        }
        assert_eq!(DataOnDevice::default(), DataOnDevice::Auto);
        let err = "yes".parse::<DataOnDevice>().unwrap_err();
        assert!(
            err.contains("auto, on or off") && err.contains("yes"),
            "{err}"
        );
    }

    #[test]
    fn a_set_fits_in_half_the_free_memory() {
        assert_eq!(fits(500, 1000), Ok(()));
        assert!(fits(1, 0).is_err());
        let why = fits(153_600_000, 300_000_000).unwrap_err();
        assert_eq!(
            why,
            "the training set takes 153.6 MB of device memory, more than half of the \
             300.0 MB free"
        );
        // CIFAR-10's 50,000 training images as bytes: 153.6 MB of pixels.
        let bytes = GatherParams::set_bytes(PixelKind::U8, 50_000, [3, 32, 32]);
        assert_eq!(bytes, 50_000 * 3072 + 8 * 50_000 + 36);
    }
}
