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
    /// The loss, a gradient or a weight became NaN or infinite.
    #[error("training diverged at step {step} (epoch {epoch}): {}", diverged_detail(*.loss, .location))]
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

/// What went non-finite: the loss when it did; otherwise where (a
/// gradient or a weight), with the loss said to be still finite, so that a
/// finite loss is never shown as the culprit.
fn diverged_detail(loss: f64, location: &Option<String>) -> String {
    let loss_text = crate::display::Loss(loss);
    match location {
        Some(l) if loss.is_finite() => format!("{l}; the loss ({loss_text}) was still finite"),
        Some(l) => format!("the loss is {loss_text} ({l})"),
        None => format!("the loss is {loss_text}"),
    }
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

#[cfg(test)]
mod tests {
    use super::TrainError;

    fn diverged(loss: f64, location: Option<&str>) -> String {
        TrainError::Diverged {
            step: 7,
            epoch: 2,
            loss,
            location: location.map(str::to_owned),
        }
        .to_string()
    }

    #[test]
    fn a_finite_loss_is_not_named_as_the_non_finite_value() {
        // `--detect-anomaly` found a non-finite gradient while the loss was
        // finite: the message names the gradient and says the loss was fine.
        assert_eq!(
            diverged(1.234_567, Some("gradient of `fc1.weight`")),
            "training diverged at step 7 (epoch 2): gradient of `fc1.weight`; \
             the loss (1.2346) was still finite"
        );
    }

    #[test]
    fn a_non_finite_loss_is_named_with_where_it_first_appeared() {
        assert_eq!(
            diverged(f64::NAN, Some("first non-finite output at layer `fc3`")),
            "training diverged at step 7 (epoch 2): the loss is NaN \
             (first non-finite output at layer `fc3`)"
        );
        assert_eq!(
            diverged(f64::INFINITY, None),
            "training diverged at step 7 (epoch 2): the loss is inf"
        );
    }
}
