//! `--executor slurm`: a study's runs as one Slurm job array. The plan is
//! already in the study directory; this writes the batch script
//! (`script.rs`) beside it as `slurm/study.sbatch`, submits it with
//! `sbatch --parsable`, and with `--wait` polls `squeue` until the array
//! has left the queue. Every task runs `cnn study run DIR $SLURM_ARRAY_TASK_ID`
//! with the absolute path of the running `cnn`, so the study directory and
//! the binary must be on a filesystem every node sees.

pub mod script;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Args;
use cnn::train::study::StudyManifest;

use crate::error::{CliError, CliResult, fail, failure};

pub use script::{Submission, batch_script};

/// The flags of the Slurm executor, shared by `compare` and `curve`.
#[derive(Debug, Args, Clone, Default)]
pub struct SlurmArgs {
    /// Slurm: the partition (sbatch --partition).
    #[arg(long, value_name = "NAME", help_heading = "Slurm executor")]
    pub slurm_partition: Option<String>,
    /// Slurm: each task's time limit (sbatch --time, e.g. 04:00:00).
    #[arg(long, value_name = "TIME", help_heading = "Slurm executor")]
    pub slurm_time: Option<String>,
    /// Slurm: each task's generic resources (sbatch --gres, e.g. gpu:1).
    #[arg(long, value_name = "GRES", help_heading = "Slurm executor")]
    pub slurm_gres: Option<String>,
    /// Slurm: CPUs per task (sbatch --cpus-per-task).
    #[arg(long, value_name = "N", help_heading = "Slurm executor")]
    pub slurm_cpus: Option<usize>,
    /// Slurm: at most N tasks at once (the %N of sbatch --array).
    #[arg(long, value_name = "N", help_heading = "Slurm executor")]
    pub slurm_max_parallel: Option<usize>,
    /// Slurm: one more sbatch option, as one word (repeatable), e.g.
    /// --slurm-arg=--mem=16G --slurm-arg=--account=lab.
    #[arg(
        long,
        value_name = "OPTION",
        allow_hyphen_values = true,
        help_heading = "Slurm executor"
    )]
    pub slurm_arg: Vec<String>,
    /// Slurm: requeue a task stopped by preemption, and one about to reach
    /// its time limit after it checkpoints (sbatch --requeue and
    /// --signal=B:USR1@90); the requeued task resumes the run.
    #[arg(long, help_heading = "Slurm executor")]
    pub slurm_requeue: bool,
    /// Slurm: wait until every task has left the queue, then collect the
    /// study (without it cnn returns once the job is submitted).
    #[arg(long, help_heading = "Slurm executor")]
    pub wait: bool,
}

impl SlurmArgs {
    /// The first Slurm flag given, for refusing them without
    /// `--executor slurm`.
    pub fn first_given(&self) -> Option<&'static str> {
        [
            (self.slurm_partition.is_some(), "--slurm-partition"),
            (self.slurm_time.is_some(), "--slurm-time"),
            (self.slurm_gres.is_some(), "--slurm-gres"),
            (self.slurm_cpus.is_some(), "--slurm-cpus"),
            (self.slurm_max_parallel.is_some(), "--slurm-max-parallel"),
            (!self.slurm_arg.is_empty(), "--slurm-arg"),
            (self.slurm_requeue, "--slurm-requeue"),
            (self.wait, "--wait"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
    }
}

/// Refuses flags that do not go with the executor chosen: `--slurm-*`
/// and `--wait` without `--executor slurm`, and `--jobs` or `--devices`
/// with it (each task is one run on the resources it asks Slurm for).
pub fn check_flags(
    slurm: bool,
    args: &SlurmArgs,
    jobs: usize,
    devices: bool,
) -> Result<(), CliError> {
    match (slurm, args.first_given()) {
        (false, Some(flag)) => Err(fail(format!("{flag} needs --executor slurm"))),
        (true, _) if jobs != 1 => Err(fail(
            "--jobs does not go with --executor slurm: --slurm-max-parallel limits the tasks at once",
        )),
        (true, _) if devices => Err(fail(
            "--devices does not go with --executor slurm: ask Slurm for a GPU per task with --slurm-gres gpu:1",
        )),
        _ => Ok(()),
    }
}

/// Why a study could not be handed to Slurm, or waited for.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("{option} {value}: {why}")]
    Option {
        option: String,
        value: String,
        why: String,
    },
    #[error("every run of the study is over: nothing to submit")]
    NothingToRun,
    #[error("the path of the cnn binary or of the study directory is not UTF-8")]
    NotUtf8,
    #[error("cannot find the running cnn binary: {0}")]
    Binary(std::io::Error),
    #[error("{tool} cannot run ({source}); is Slurm installed and on PATH?")]
    Missing {
        tool: &'static str,
        source: std::io::Error,
    },
    #[error("sbatch refused {}: {message}", script.display())]
    Rejected { script: PathBuf, message: String },
    #[error("sbatch answered `{0}`, not a job id")]
    NoJobId(String),
    #[error("squeue failed while waiting for job {job}: {message}")]
    Queue { job: String, message: String },
    #[error(transparent)]
    Train(#[from] cnn::train::TrainError),
}

/// The name of the batch script in the study directory.
pub const SCRIPT: &str = "slurm/study.sbatch";

/// Writes the batch script for `runs` of `study` and submits it; gives
/// the job id.
pub fn submit(
    study: &Path,
    runs: &[usize],
    name: &str,
    args: &SlurmArgs,
) -> Result<String, SlurmError> {
    submit_with(Path::new("sbatch"), study, runs, name, args)
}

/// [`submit`] through the program `sbatch`.
fn submit_with(
    sbatch: &Path,
    study: &Path,
    runs: &[usize],
    name: &str,
    args: &SlurmArgs,
) -> Result<String, SlurmError> {
    let cnn = std::env::current_exe().map_err(SlurmError::Binary)?;
    let study = std::path::absolute(study).map_err(|e| cnn::train::TrainError::io(study, e))?;
    let output = study.join("slurm").join("%A_%a.out");
    let sub = Submission {
        cnn: &cnn,
        study: &study,
        runs,
        name,
        output: &output,
    };
    let text = batch_script(&sub, args)?;
    let path = study.join(SCRIPT);
    let dir = study.join("slurm");
    std::fs::create_dir_all(&dir).map_err(|e| cnn::train::TrainError::io(&dir, e))?;
    cnn::train::io::write_atomic(&path, text.as_bytes())?;
    let out = Command::new(sbatch)
        .arg("--parsable")
        .arg(&path)
        .current_dir(&study)
        .output()
        .map_err(|source| SlurmError::Missing {
            tool: "sbatch",
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(SlurmError::Rejected {
            script: path,
            message: first_line(&String::from_utf8_lossy(&out.stderr), &out.status),
        });
    }
    parse_job_id(&stdout)
}

/// How often `--wait` asks `squeue` whether the array is still queued.
const POLL: Duration = Duration::from_secs(3);

/// `--executor slurm` for the plan in `root` (already written): submits
/// the runs that are not over as one array named `name`, says how to
/// follow it, and with `--wait` waits and then `collect`s (the study's
/// files, written and printed by the caller, who holds the study
/// directory's lock). With nothing left to run it collects at once.
pub fn execute(
    root: &Path,
    plan: &StudyManifest,
    name: &str,
    args: &SlurmArgs,
    collect: &dyn Fn() -> CliResult,
) -> CliResult {
    let runs: Vec<usize> = plan
        .runs
        .iter()
        .filter(|r| !r.state.is_over())
        .map(|r| r.index)
        .collect();
    if runs.is_empty() {
        eprintln!("every run of the study is over: nothing to submit");
    } else {
        let job = submit(root, &runs, name, args).map_err(slurm_failure)?;
        say!(
            "submitted Slurm job {job} ({} run{}, array {}) with {}",
            runs.len(),
            if runs.len() == 1 { "" } else { "s" },
            script::array_spec(&runs, args.slurm_max_parallel),
            root.join(SCRIPT).display()
        );
        say!("follow it with: cnn study status {}", root.display());
        if !args.wait {
            return Ok(());
        }
        say!("waiting for job {job} to leave the queue...");
        wait(&job, POLL).map_err(slurm_failure)?;
    }
    collect()?;
    let plan = StudyManifest::load(root)?;
    let missing: Vec<String> = plan
        .runs
        .iter()
        .filter(|r| !r.state.is_over())
        .map(|r| format!("{} ({})", r.index, r.state.name()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(failure(format!(
        "{} of {} runs are not over: {}; see cnn study status {}",
        missing.len(),
        plan.runs.len(),
        missing.join(", "),
        root.display()
    )))
}

/// A Slurm failure is not a usage error unless a flag's value is refused.
fn slurm_failure(e: SlurmError) -> CliError {
    match e {
        SlurmError::Option { .. } => fail(e.to_string()),
        SlurmError::Train(e) => e.into(),
        e => failure(e.to_string()),
    }
}

/// The job id of `sbatch --parsable`'s answer (`ID` or `ID;CLUSTER`).
pub fn parse_job_id(answer: &str) -> Result<String, SlurmError> {
    let line = answer.lines().map(str::trim).rfind(|l| !l.is_empty());
    let id = line.and_then(|l| l.split(';').next()).unwrap_or("");
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id.to_string())
    } else {
        Err(SlurmError::NoJobId(answer.trim().to_string()))
    }
}

/// The first line of a tool's complaint, with sbatch's `sbatch: error: `
/// prefix taken off.
fn first_line(stderr: &str, status: &std::process::ExitStatus) -> String {
    stderr
        .lines()
        .map(|l| l.trim().trim_start_matches("sbatch: error: ").trim())
        .find(|l| !l.is_empty())
        .map_or_else(|| format!("exit status {status}"), str::to_string)
}

/// Polls `squeue` every `every` until job `job` (all its array tasks) has
/// left the queue.
pub fn wait(job: &str, every: Duration) -> Result<(), SlurmError> {
    loop {
        let out = Command::new("squeue")
            .args(["-h", "-o", "%i", "-j", job])
            .output()
            .map_err(|source| SlurmError::Missing {
                tool: "squeue",
                source,
            })?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            // A job that ended long enough ago is forgotten.
            if stderr.contains("Invalid job id") {
                return Ok(());
            }
            return Err(SlurmError::Queue {
                job: job.to_string(),
                message: first_line(&stderr, &out.status),
            });
        }
        if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return Ok(());
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_read_from_sbatch_parsable() {
        assert_eq!(parse_job_id("1234\n").unwrap(), "1234");
        assert_eq!(parse_job_id("77;cluster\n").unwrap(), "77");
        assert!(matches!(
            parse_job_id("Submitted batch job 5"),
            Err(SlurmError::NoJobId(_))
        ));
        assert!(parse_job_id("").is_err());
    }

    #[test]
    fn only_the_flags_given_are_named() {
        assert_eq!(SlurmArgs::default().first_given(), None);
        let a = SlurmArgs {
            slurm_gres: Some("gpu:1".into()),
            wait: true,
            ..SlurmArgs::default()
        };
        assert_eq!(a.first_given(), Some("--slurm-gres"));
    }

    #[test]
    fn sbatch_missing_or_refusing_is_one_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let study = dir.path().join("study");
        std::fs::create_dir(&study).unwrap();
        let args = SlurmArgs::default();
        let e = submit_with(
            Path::new("/nonexistent/sbatch"),
            &study,
            &[0, 1],
            "t",
            &args,
        )
        .unwrap_err();
        let line = e.to_string();
        assert!(line.starts_with("sbatch cannot run ("), "{line}");
        assert!(line.ends_with("is Slurm installed and on PATH?"), "{line}");
        // The script was written before sbatch was tried, to be read.
        let script = std::fs::read_to_string(study.join(SCRIPT)).unwrap();
        assert!(script.contains("#SBATCH --array=0-1\n"), "{script}");

        // An sbatch that refuses: its first complaint, without its prefix.
        let fake = dir.path().join("sbatch");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho 'sbatch: error: Invalid partition name specified' >&2\n\
             echo 'sbatch: error: Batch job submission failed' >&2\nexit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = submit_with(&fake, &study, &[0], "t", &args).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "sbatch refused {}: Invalid partition name specified",
                study.join(SCRIPT).display()
            )
        );

        // One that accepts: the job id.
        std::fs::write(&fake, "#!/bin/sh\necho '4242;main'\n").unwrap();
        assert_eq!(
            submit_with(&fake, &study, &[3], "t", &args).unwrap(),
            "4242"
        );
    }
}
