//! `--data-on-device auto|on|off` of `cnn train`, `compare`, `curve` and
//! `lr-find` (config key `data_on_device`, see `cnn_train::resident`), and
//! the check, made before anything is written, that `on` names a backend
//! that keeps training sets in device memory.

use clap::Args;
use cnn::backends::{WithBackend, with_backend_in};
use cnn::core::{Backend, Precision};
use cnn::train::resident::DataOnDevice;
use cnn::train::{TrainConfig, TrainError};

use crate::error::CliResult;

/// Where the training set lives.
#[derive(Debug, Clone, Default, Args)]
pub struct DataOnDeviceArgs {
    /// Keep the training set in device memory, uploaded once, and gather
    /// each batch with its shuffle, crop, flip and cutout there (as
    /// airbench's loader): auto where the backend can (cuda) and the set
    /// takes at most half the free device memory, else the host loader;
    /// on refuses a run that cannot (the cpu backend, a set that does not
    /// fit, --mixup/--cutmix); off keeps the host loader. The batches are
    /// the same bits either way [default: auto].
    #[arg(long, value_name = "auto|on|off", value_parser = parse_setting)]
    pub data_on_device: Option<DataOnDevice>,
}

fn parse_setting(s: &str) -> Result<DataOnDevice, String> {
    s.parse()
}

impl DataOnDeviceArgs {
    /// Put the flag, if given, over `c`'s setting.
    pub fn apply(&self, c: &mut TrainConfig) {
        if let Some(d) = self.data_on_device {
            c.data_on_device = d;
        }
    }

    /// The configuration keys the flag sets.
    pub fn keys_given(&self) -> impl Iterator<Item = &'static str> {
        self.data_on_device.map(|_| "data_on_device").into_iter()
    }
}

/// With `data_on_device = on`: that `config`'s backend keeps resident
/// training sets, else one line naming the backend (exit status 2),
/// before anything is written. Whether the set fits is known once the
/// data is loaded: the trainer refuses it then, also with status 2.
pub fn check(config: &TrainConfig) -> CliResult {
    if config.data_on_device != DataOnDevice::On {
        return Ok(());
    }
    struct Probe;
    impl WithBackend for Probe {
        type Output = cnn::core::Result<bool>;
        fn run<B: Backend>(self, b: B) -> Self::Output {
            Ok(b.resident_free_memory()?.is_some())
        }
    }
    let backend = &config.backend;
    if !with_backend_in(backend, 1, Precision::F32, Probe)?? {
        return Err(TrainError::Config(format!(
            "--data-on-device on: the {backend} backend keeps no training set in device \
             memory (its batches are built where it computes); use auto or off"
        ))
        .into());
    }
    Ok(())
}
