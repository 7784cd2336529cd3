//! `TrainError`: everything that can stop a run, each naming what and where.

use std::path::PathBuf;

/// Errors of the training crate.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// From the core (shapes, geometry, backend).
    #[error(transparent)]
    Core(#[from] cnn_core::CnnError),
    /// From an optimizer or schedule.
    #[error(transparent)]
    Optim(#[from] cnn_optim::OptimError),
    /// From loading data.
    #[error(transparent)]
    Data(#[from] cnn_data::DataError),
    /// Reading or writing a file.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file whose contents are wrong (checkpoint, config, history).
    #[error("{}: {message}", path.display())]
    BadFile { path: PathBuf, message: String },
    /// An invalid configuration value.
    #[error("config: {0}")]
    Config(String),
    /// The loss became NaN or infinite.
    #[error("training diverged at step {step} (epoch {epoch}): the loss is {loss}{}", where_suffix(.location))]
    Diverged {
        step: u64,
        epoch: usize,
        loss: f64,
        location: Option<String>,
    },
    /// Plotting failed.
    #[error("plot {}: {message}", path.display())]
    Plot { path: PathBuf, message: String },
    /// `report.html` could not be put together (its template or data).
    #[error("report: {0}")]
    Report(String),
    /// The run directory exists and `--overwrite` was not given.
    #[error("{} already exists; pass --overwrite to replace it or --resume to continue it", .0.display())]
    RunDirExists(PathBuf),
    /// Stopped by the user (Ctrl-C) after a checkpoint was written.
    #[error("interrupted at step {step}; resume with: cnn train --resume {}", dir.display())]
    Interrupted { step: u64, dir: PathBuf },
}

fn where_suffix(location: &Option<String>) -> String {
    location
        .as_ref()
        .map(|l| format!(" ({l})"))
        .unwrap_or_default()
}

impl TrainError {
    /// Wrap an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }

    /// A bad file with a message.
    pub fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        TrainError::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Result alias of the training crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
