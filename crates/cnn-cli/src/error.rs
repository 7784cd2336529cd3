//! A command's failure: the one line it prints and its exit code (1 a
//! failure or bad input data, 2 a usage error: clap's, and every
//! configuration error, 3 a diverged run, 130 an interrupted one).

use cnn::optim::OptimError;
use cnn::train::TrainError;

/// A command failure: the one line to print and the exit code.
#[derive(Debug)]
pub struct CliError {
    message: String,
    code: i32,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // One line, always.
        f.write_str(&self.message.replace('\n', " "))
    }
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        self.code
    }
}

impl From<TrainError> for CliError {
    fn from(e: TrainError) -> Self {
        let code = match e {
            TrainError::Interrupted { .. } => 130,
            TrainError::Diverged { .. } => 3,
            // What the command was asked to do cannot be done as given
            // (a flag's value, a --vary, a plan over the memory limit):
            // a usage error, like clap's.
            TrainError::Config(_) => 2,
            // An optimizer, schedule or regularizer that cannot be built
            // from its values (`--weight-decay -1`): also the command as
            // given. These are raised only when a config is built.
            TrainError::Optim(ref o) if is_construction_error(o) => 2,
            // `--precision bf16` on a backend without the mode.
            TrainError::Core(cnn::core::CnnError::UnsupportedPrecision { .. }) => 2,
            _ => 1,
        };
        CliError {
            message: e.to_string(),
            code,
        }
    }
}

/// Whether `e` rejects the values an optimizer, schedule or regularizer
/// was asked to be built with (not a state file or a backend failure).
fn is_construction_error(e: &OptimError) -> bool {
    matches!(
        e,
        OptimError::InvalidHyperparameter { .. }
            | OptimError::InvalidCombination(_)
            | OptimError::UnknownOptimizer(_)
            | OptimError::UnknownSchedule(_)
            | OptimError::Config { .. }
    )
}

impl From<cnn::core::CnnError> for CliError {
    fn from(e: cnn::core::CnnError) -> Self {
        TrainError::from(e).into()
    }
}

pub(crate) type CliResult<T = ()> = Result<T, CliError>;

/// A refusal to replace an existing directory suggests `--resume` only
/// for a run, which is the only thing `--resume` continues.
pub(crate) fn existing_output(e: TrainError) -> CliError {
    match e {
        TrainError::RunDirExists(p) if !p.join("config.toml").is_file() => CliError {
            message: format!(
                "{} already exists; pass --overwrite to replace it",
                p.display()
            ),
            code: 1,
        },
        e => e.into(),
    }
}

pub(crate) fn fail(message: impl Into<String>) -> CliError {
    CliError {
        message: message.into(),
        code: 2,
    }
}

/// A failure that is not a usage error (exit code 1), e.g. runs of a
/// comparison that failed.
pub(crate) fn failure(message: impl Into<String>) -> CliError {
    CliError {
        message: message.into(),
        code: 1,
    }
}

/// An interrupted command (exit code 130) that says how to continue.
pub(crate) fn interrupted(message: impl Into<String>) -> CliError {
    CliError {
        message: message.into(),
        code: 130,
    }
}

#[cfg(test)]
mod tests {
    use super::{CliError, failure, interrupted};
    use cnn::optim::OptimError;
    use cnn::train::TrainError;

    #[test]
    fn a_study_with_failed_runs_is_a_plain_failure_without_a_config_prefix() {
        // "1 of 8 runs failed" used to travel as a TrainError::Config and
        // print as "config: 1 of 8 runs failed", exit 2.
        let e = failure("1 of 8 runs failed (see x/diagnosis.md)");
        assert_eq!(e.to_string(), "1 of 8 runs failed (see x/diagnosis.md)");
        assert_eq!(e.exit_code(), 1);
        let e = interrupted("interrupted: 2 of 4 runs are over");
        assert_eq!(e.exit_code(), 130);
        assert!(!e.to_string().starts_with("config:"));
    }

    #[test]
    fn exit_codes_follow_the_kind_of_error() {
        let code = |e: TrainError| CliError::from(e).exit_code();
        assert_eq!(code(TrainError::Config("bad --vary".into())), 2);
        assert_eq!(
            code(TrainError::Diverged {
                step: 1,
                epoch: 1,
                loss: f64::NAN,
                location: None
            }),
            3
        );
        assert_eq!(code(TrainError::bad_file("x.csv", "truncated")), 1);
        // `--weight-decay -1` used to exit 1, as if the data were bad.
        assert_eq!(
            code(TrainError::Optim(OptimError::hyper(
                "weight_decay",
                -1,
                "must be >= 0"
            ))),
            2
        );
        assert_eq!(
            code(TrainError::Optim(OptimError::UnknownSchedule("x".into()))),
            2
        );
        assert_eq!(
            code(TrainError::Optim(OptimError::State("bad momentum".into()))),
            1
        );
    }
}
