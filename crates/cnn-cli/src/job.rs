//! The training job that `train`, `compare` and `curve` run on the chosen
//! backend (and the report of its run, written by the job that finishes
//! it), and the output directory of a comparison or curve.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cnn::backends::WithBackend;
use cnn::core::Backend;
use cnn::train::lock::DirLock;
use cnn::train::report::write_report;
use cnn::train::{
    RunDir, RunOptions, RunSummary, RunTarget, TrainConfig, TrainError, run_training,
};

use crate::error::{CliResult, existing_output};

/// [`RunDir::prepare_output`] for the roots of `compare` and `curve`,
/// under the directory's lock ([`DirLock`]), which this process then holds
/// until it exits: a second `compare` or `curve` into the same directory is
/// refused, naming this one, before it changes anything.
pub(crate) fn prepare_output(root: &Path, overwrite: bool) -> CliResult {
    static HELD: Mutex<Vec<DirLock>> = Mutex::new(Vec::new());
    let lock = DirLock::acquire(root)?;
    RunDir::prepare_output(root, overwrite).map_err(existing_output)?;
    HELD.lock().unwrap_or_else(|e| e.into_inner()).push(lock);
    Ok(())
}

/// One training job (`cnn::train::run_training`) on the chosen backend;
/// gives the summary and the run directory.
pub(crate) struct TrainJob {
    pub config: TrainConfig,
    pub target: RunTarget,
    pub opts: RunOptions,
    /// Write the run's `report.html` when the job ends it (not for a
    /// resumed run that was over before).
    pub report: bool,
}

impl WithBackend for TrainJob {
    type Output = Result<(RunSummary, PathBuf), TrainError>;

    fn run<B: Backend>(self, backend: B) -> Self::Output {
        // A run that was over before has its report, unless the process
        // that ended it failed to write it.
        let (root, over) = match &self.target {
            RunTarget::Fresh { out, .. } => (out.clone(), false),
            RunTarget::Resume(dir) => (
                dir.root().to_path_buf(),
                dir.is_over() && dir.report_html().is_file(),
            ),
        };
        let summary = run_training(backend, &self.config, self.target, self.opts)?;
        if self.report && !over {
            write_report(&root)?;
        }
        Ok((summary, root))
    }
}
