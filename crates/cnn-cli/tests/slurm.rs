//! `--executor slurm` on a real cluster (the one-node cluster of
//! `.ci/slurm-up.sh`; skipped without one, required by CI through
//! `CNN_REQUIRE_SLURM=1`): a study of 4 tiny synthetic runs submitted as a
//! job array, one task cancelled while it trains, the study resumed, and
//! every run's weights and the collected summary equal to the same study
//! run locally at the same `--threads`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{cnn, stderr};

/// 4 runs (2 learning rates × 2 seeds) of 4 epochs of 16 steps, with a
/// checkpoint after every epoch: long enough to be cancelled mid-run.
const STUDY: &[&str] = &[
    "--vary",
    "lr=0.05,0.1",
    "--repeats",
    "2",
    "--epochs",
    "4",
    "--limit-train",
    "512",
    "--batch-size",
    "32",
    "--threads",
    "1",
    "--checkpoint-every",
    "1",
    "--quiet",
];

fn args<'a>(head: &[&'a str]) -> Vec<&'a str> {
    let mut v = head.to_vec();
    v.extend_from_slice(STUDY);
    v
}

/// Polls `ok` every 200 ms for up to `limit`; panics naming `what`.
fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether `squeue` still lists `job` (an array task `J_I` or a whole
/// array `J`) in one of `states` (`None`: squeue's default, every state
/// but the ended ones).
fn queued(job: &str, states: Option<&str>) -> bool {
    let mut squeue = Command::new("squeue");
    squeue.args(["-h", "-o", "%i", "-j", job]);
    if let Some(states) = states {
        squeue.args(["-t", states]);
    }
    let o = squeue.output().expect("squeue runs");
    o.status.success() && !String::from_utf8_lossy(&o.stdout).trim().is_empty()
}

/// The runs of the study in `dir`: (directory, state) in index order.
fn runs(dir: &Path) -> Vec<(String, String)> {
    let o = cnn(&["study", "status", "--json", dir.to_str().unwrap()], dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status --json");
    let list = v
        .as_array()
        .or_else(|| v["runs"].as_array())
        .expect("a list of runs");
    list.iter()
        .map(|r| {
            (
                r["dir"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The step of the run's newest checkpoint (`checkpoint/LATEST`).
fn latest_step(run: &Path) -> Option<u64> {
    let name = std::fs::read_to_string(run.join("checkpoint/LATEST")).ok()?;
    let name = name.trim().strip_prefix("step-")?;
    name.split('.').next()?.parse().ok()
}

/// summary.csv without its `seconds` column (wall-clock time).
fn summary_without_time(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let seconds = header.iter().position(|h| *h == "seconds").unwrap();
    std::iter::once(header.iter().map(|s| s.to_string()).collect())
        .chain(lines.map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != seconds)
                .map(|(_, s)| s.to_string())
                .collect()
        }))
        .collect()
}

#[test]
fn a_study_on_slurm_cancelled_and_resumed_equals_the_local_study() {
    if !cnn_testing::skip::slurm(
        "slurm::a_study_on_slurm_cancelled_and_resumed_equals_the_local_study",
    ) {
        return;
    }
    // The nodes must see the study: on the one-node cluster, any directory.
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    let o = cnn(
        &args(&["compare", "--out", local.to_str().unwrap()]),
        tmp.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let study = tmp.path().join("slurm");
    let s = study.to_str().unwrap();
    let o = cnn(
        &args(&[
            "compare",
            "--out",
            s,
            "--executor",
            "slurm",
            "--slurm-max-parallel",
            "1",
        ]),
        tmp.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    let job = said
        .split("submitted Slurm job ")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap_or_else(|| panic!("no job id in: {said}"))
        .to_string();
    assert!(said.contains(&format!("cnn study status {s}")), "{said}");
    let script = std::fs::read_to_string(study.join("slurm/study.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-3%1\n"), "{script}");

    // Run 1 trains (task 1 running, a checkpoint after its first epoch
    // written): cancel it.
    let planned = runs(&study);
    assert_eq!(planned.len(), 4);
    let run1 = study.join(&planned[1].0);
    let task1 = format!("{job}_1");
    wait_until(
        "run 1 training under Slurm",
        Duration::from_secs(300),
        || queued(&task1, Some("R")) && latest_step(&run1).is_some_and(|s| s > 0),
    );
    let o = Command::new("scancel").arg(&task1).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    wait_until(
        "the array to leave the queue",
        Duration::from_secs(300),
        || !queued(&job, None),
    );
    let states: Vec<String> = runs(&study).into_iter().map(|(_, s)| s).collect();
    assert_eq!(states[0], "done", "{states:?}");
    assert_ne!(
        states[1], "done",
        "run 1 was cancelled while it trained: {states:?}"
    );
    assert_eq!(states[2..], ["done", "done"], "{states:?}");
    let before: Vec<Vec<u8>> = [0, 2, 3]
        .iter()
        .map(|&i| std::fs::read(study.join(&planned[i].0).join("model.safetensors")).unwrap())
        .collect();

    // Resume on Slurm, waiting: only run 1 is submitted, then collected.
    let o = cnn(
        &["compare", "--resume", s, "--executor", "slurm", "--wait"],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let script = std::fs::read_to_string(study.join("slurm/study.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=1\n"), "{script}");
    let states: Vec<String> = runs(&study).into_iter().map(|(_, s)| s).collect();
    assert_eq!(states, ["done"; 4], "{states:?}");

    // The same bits as the local study, and finished runs never retrained.
    let local_runs = runs(&local);
    for (i, (dir, _)) in planned.iter().enumerate() {
        assert_eq!(dir, &local_runs[i].0);
        let here = std::fs::read(study.join(dir).join("model.safetensors")).unwrap();
        let there = std::fs::read(local.join(dir).join("model.safetensors")).unwrap();
        assert!(
            here == there,
            "run {i} ({dir}): weights differ from the local study's"
        );
    }
    for (k, &i) in [0, 2, 3].iter().enumerate() {
        let now = std::fs::read(study.join(&planned[i].0).join("model.safetensors")).unwrap();
        assert!(now == before[k], "run {i} was trained again on resume");
    }
    assert_eq!(summary_without_time(&study), summary_without_time(&local));
}

#[test]
fn sbatch_refusing_the_job_is_one_error_line() {
    if !cnn_testing::skip::slurm("slurm::sbatch_refusing_the_job_is_one_error_line") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let o = cnn(
        &args(&[
            "compare",
            "--out",
            "s",
            "--executor",
            "slurm",
            "--slurm-partition",
            "no-such-partition",
        ]),
        tmp.path(),
    );
    common::assert_one_line_error(&o, "sbatch refused");
    assert!(stderr(&o).contains("partition"), "{}", stderr(&o));
    // The plan and the script stay, to be read, fixed and resubmitted.
    assert!(tmp.path().join("s/slurm/study.sbatch").is_file());
}
