//! The batch script `--executor slurm` submits: one `sbatch --array` job
//! whose task `i` runs `cnn study run DIR i`, every option an `#SBATCH`
//! line so that the script, written into the study directory, can be read
//! and resubmitted as it is. Pure text, tested without Slurm.

use std::fmt::Write as _;
use std::path::Path;

use super::{SlurmArgs, SlurmError};

/// Seconds before the time limit at which a `--slurm-requeue` task is
/// told to checkpoint (`--signal=B:USR1@90`). Slurm delivers such signals
/// with a resolution of up to a minute, so 90 s leaves a step and a
/// checkpoint at least 30 s, and KillWait (30 s by default) more after
/// the limit's own SIGTERM.
pub const REQUEUE_WARNING_S: u32 = 90;

/// What one submission runs: the `cnn` binary, the study and its runs.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    /// The absolute path of the `cnn` binary the tasks run.
    pub cnn: &'a Path,
    /// The study directory (absolute; on a filesystem every node sees).
    pub study: &'a Path,
    /// The indices of the runs to train (not empty), ascending.
    pub runs: &'a [usize],
    /// The job's name (`--job-name`).
    pub name: &'a str,
    /// The task's output file pattern (`%A` the array job, `%a` the task).
    pub output: &'a Path,
}

/// `0-3,5,7-8` for runs 0, 1, 2, 3, 5, 7, 8, with `%M` for at most M tasks
/// at once.
pub fn array_spec(runs: &[usize], max_parallel: Option<usize>) -> String {
    let mut spec = String::new();
    let mut i = 0;
    while i < runs.len() {
        let start = runs[i];
        let mut end = start;
        while i + 1 < runs.len() && runs[i + 1] == end + 1 {
            end += 1;
            i += 1;
        }
        if !spec.is_empty() {
            spec.push(',');
        }
        if end == start {
            let _ = write!(spec, "{start}");
        } else {
            let _ = write!(spec, "{start}-{end}");
        }
        i += 1;
    }
    if let Some(m) = max_parallel {
        let _ = write!(spec, "%{m}");
    }
    spec
}

/// A word for the shell, in single quotes unless it needs none.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The value of an `#SBATCH` line: sbatch reads those lines word by word
/// and expands `%` patterns in file names, so a value with white space,
/// quotes, `%` or `\` is refused (the option names it).
fn sbatch_value(option: &str, value: &str) -> Result<(), SlurmError> {
    let bad = value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'\\%#".contains(c));
    if bad {
        return Err(SlurmError::Option {
            option: option.to_string(),
            value: value.to_string(),
            why: "an #SBATCH line takes no empty value, white space, quote, backslash, % or #"
                .into(),
        });
    }
    Ok(())
}

/// The `#SBATCH` options of a submission, in the order of the script.
pub fn sbatch_options(sub: &Submission<'_>, args: &SlurmArgs) -> Result<Vec<String>, SlurmError> {
    if sub.runs.is_empty() {
        return Err(SlurmError::NothingToRun);
    }
    let mut options = Vec::new();
    sbatch_value("--job-name", sub.name)?;
    options.push(format!("--job-name={}", sub.name));
    if args.slurm_max_parallel == Some(0) {
        return Err(SlurmError::Option {
            option: "--slurm-max-parallel".into(),
            value: "0".into(),
            why: "at least one task must run at once".into(),
        });
    }
    options.push(format!(
        "--array={}",
        array_spec(sub.runs, args.slurm_max_parallel)
    ));
    let output = sub.output.to_str().ok_or_else(|| SlurmError::Option {
        option: "--output".into(),
        value: sub.output.display().to_string(),
        why: "the study directory's path is not UTF-8".into(),
    })?;
    // The file name's own %A_%a are Slurm's; the directory may hold none.
    let dir = sub
        .output
        .parent()
        .map(|p| p.to_string_lossy().into_owned());
    if let Some(dir) = dir {
        sbatch_value("the study directory", &dir)?;
    }
    options.push(format!("--output={output}"));
    if let Some(p) = &args.slurm_partition {
        sbatch_value("--slurm-partition", p)?;
        options.push(format!("--partition={p}"));
    }
    if let Some(t) = &args.slurm_time {
        sbatch_value("--slurm-time", t)?;
        options.push(format!("--time={t}"));
    }
    if let Some(g) = &args.slurm_gres {
        sbatch_value("--slurm-gres", g)?;
        options.push(format!("--gres={g}"));
    }
    if let Some(c) = args.slurm_cpus {
        if c == 0 {
            return Err(SlurmError::Option {
                option: "--slurm-cpus".into(),
                value: "0".into(),
                why: "a task needs at least one CPU".into(),
            });
        }
        options.push(format!("--cpus-per-task={c}"));
    }
    if args.slurm_requeue {
        options.push("--requeue".into());
        options.push(format!("--signal=B:USR1@{REQUEUE_WARNING_S}"));
    }
    for extra in &args.slurm_arg {
        sbatch_value("--slurm-arg", extra)?;
        if !extra.starts_with('-') {
            return Err(SlurmError::Option {
                option: "--slurm-arg".into(),
                value: extra.clone(),
                why: "each --slurm-arg is one sbatch option, e.g. --slurm-arg=--mem=8G".into(),
            });
        }
        options.push(extra.clone());
    }
    Ok(options)
}

/// The batch script: `#SBATCH` lines, then the task's `cnn study run`
/// with signals handled as `docs/studies.md` describes.
pub fn batch_script(sub: &Submission<'_>, args: &SlurmArgs) -> Result<String, SlurmError> {
    let options = sbatch_options(sub, args)?;
    let cnn = sub.cnn.to_str().ok_or(SlurmError::NotUtf8)?;
    let study = sub.study.to_str().ok_or(SlurmError::NotUtf8)?;
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    let _ = writeln!(
        s,
        "# Written by cnn (--executor slurm): array task i trains run i of the study\n\
         # {study}.\n\
         # Resubmit as it is with `sbatch <this file>`; `cnn study status {study}`\n\
         # shows the runs' states, and a task whose run is over does nothing."
    );
    for o in &options {
        let _ = writeln!(s, "#SBATCH {o}");
    }
    s.push('\n');
    s.push_str(
        "# Slurm sends SIGTERM to every process of a task it cancels, preempts or\n\
         # stops at its time limit: cnn finishes its step, checkpoints and exits\n\
         # with 130, and the run resumes from that checkpoint when it runs again.\n\
         # This shell waits for it (a bare trap, so that the shell lives on).\n\
         trap 'true' TERM\n",
    );
    if args.slurm_requeue {
        let _ = writeln!(
            s,
            "# --requeue: {REQUEUE_WARNING_S} s before the time limit Slurm sends USR1 to this shell,\n\
             # which asks cnn to checkpoint and then requeues the task, which resumes.\n\
             requeue=0\n\
             trap 'requeue=1; kill -TERM \"$run\" 2>/dev/null' USR1"
        );
    }
    let _ = writeln!(
        s,
        "\n{} study run {} \"$SLURM_ARRAY_TASK_ID\" &\n\
         run=$!\n\
         while kill -0 \"$run\" 2>/dev/null; do wait \"$run\"; done\n\
         wait \"$run\"\n\
         status=$?",
        shell_quote(cnn),
        shell_quote(study)
    );
    if args.slurm_requeue {
        s.push_str(
            "if [ \"$requeue\" = 1 ] && [ \"$status\" = 130 ]; then\n\
             \x20 scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n\
             fi\n",
        );
    }
    s.push_str("exit \"$status\"\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn sub<'a>(runs: &'a [usize], study: &'a Path, output: &'a Path) -> Submission<'a> {
        Submission {
            cnn: Path::new("/opt/cnn/bin/cnn"),
            study,
            runs,
            name: "cnn-compare",
            output,
        }
    }

    #[test]
    fn array_specs_compress_runs_into_ranges() {
        assert_eq!(array_spec(&[0, 1, 2, 3], None), "0-3");
        assert_eq!(array_spec(&[0, 1, 2, 3], Some(2)), "0-3%2");
        assert_eq!(array_spec(&[1, 3, 4, 5, 9], None), "1,3-5,9");
        assert_eq!(array_spec(&[7], Some(1)), "7%1");
    }

    #[test]
    fn shell_words_are_quoted_when_they_need_it() {
        assert_eq!(shell_quote("/a/b-c_d.e"), "/a/b-c_d.e");
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn every_flag_becomes_its_sbatch_line() {
        let study = PathBuf::from("/shared/study");
        let out = study.join("slurm/%A_%a.out");
        let args = SlurmArgs {
            slurm_partition: Some("gpu".into()),
            slurm_time: Some("04:00:00".into()),
            slurm_gres: Some("gpu:1".into()),
            slurm_cpus: Some(8),
            slurm_max_parallel: Some(2),
            slurm_arg: vec!["--mem=16G".into(), "--account=lab".into()],
            slurm_requeue: true,
            ..SlurmArgs::default()
        };
        let options = sbatch_options(&sub(&[0, 1, 3], &study, &out), &args).unwrap();
        assert_eq!(
            options,
            [
                "--job-name=cnn-compare",
                "--array=0-1,3%2",
                "--output=/shared/study/slurm/%A_%a.out",
                "--partition=gpu",
                "--time=04:00:00",
                "--gres=gpu:1",
                "--cpus-per-task=8",
                "--requeue",
                "--signal=B:USR1@90",
                "--mem=16G",
                "--account=lab",
            ]
        );
    }

    #[test]
    fn the_script_runs_the_task_index_and_requeues_only_when_asked() {
        let study = PathBuf::from("/shared/my study");
        let out = PathBuf::from("/shared/out/%A_%a.out");
        let plain = batch_script(&sub(&[0, 1, 2, 3], &study, &out), &SlurmArgs::default()).unwrap();
        assert!(plain.starts_with("#!/bin/bash\n"), "{plain}");
        assert!(plain.contains("#SBATCH --array=0-3\n"), "{plain}");
        assert!(
            plain.contains(
                "/opt/cnn/bin/cnn study run '/shared/my study' \"$SLURM_ARRAY_TASK_ID\" &\n"
            ),
            "{plain}"
        );
        assert!(plain.contains("trap 'true' TERM\n"), "{plain}");
        assert!(!plain.contains("requeue"), "{plain}");
        assert!(plain.ends_with("exit \"$status\"\n"), "{plain}");
        let args = SlurmArgs {
            slurm_requeue: true,
            ..SlurmArgs::default()
        };
        let requeue = batch_script(&sub(&[2], &study, &out), &args).unwrap();
        assert!(requeue.contains("#SBATCH --requeue\n#SBATCH --signal=B:USR1@90\n"));
        assert!(
            requeue.contains("scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"")
        );
        // The #SBATCH lines come before the first command, or sbatch
        // ignores them.
        let first_command = requeue
            .lines()
            .position(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap();
        let lines: Vec<&str> = requeue.lines().collect();
        let last_option = lines
            .iter()
            .rposition(|l| l.starts_with("#SBATCH"))
            .unwrap();
        assert!(last_option < first_command, "{requeue}");
    }

    #[test]
    fn values_an_sbatch_line_cannot_hold_are_refused_by_name() {
        let study = PathBuf::from("/s");
        let out = PathBuf::from("/s/slurm/%A_%a.out");
        let cases = [
            (
                SlurmArgs {
                    slurm_partition: Some("gpu main".into()),
                    ..SlurmArgs::default()
                },
                "--slurm-partition",
            ),
            (
                SlurmArgs {
                    slurm_arg: vec!["mem=4G".into()],
                    ..SlurmArgs::default()
                },
                "--slurm-arg",
            ),
            (
                SlurmArgs {
                    slurm_max_parallel: Some(0),
                    ..SlurmArgs::default()
                },
                "--slurm-max-parallel",
            ),
            (
                SlurmArgs {
                    slurm_cpus: Some(0),
                    ..SlurmArgs::default()
                },
                "--slurm-cpus",
            ),
        ];
        for (args, option) in cases {
            let e = batch_script(&sub(&[0], &study, &out), &args).unwrap_err();
            assert!(e.to_string().starts_with(option), "{e}");
        }
        let odd = PathBuf::from("/s 1/slurm/%A_%a.out");
        let e = batch_script(&sub(&[0], &study, &odd), &SlurmArgs::default()).unwrap_err();
        assert!(e.to_string().contains("study directory"), "{e}");
        let e = batch_script(&sub(&[], &study, &out), &SlurmArgs::default()).unwrap_err();
        assert!(matches!(e, SlurmError::NothingToRun), "{e}");
    }
}
