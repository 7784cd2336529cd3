//! Studies as plans (`cnn compare --plan-only`, `cnn study run/status/
//! collect`, `--resume`, `--devices`) end to end on small synthetic runs,
//! each checked against the same comparison run by `cnn compare` in one
//! process at the same `--threads`: per-index runs give the same bits,
//! a resume never touches a finished run, a second worker on a locked run
//! is refused naming the holder, and SIGTERM stops a run at a checkpoint
//! that resumes to the uninterrupted run's bits. `--devices` is checked
//! without a GPU (CPU runs): each run's device is recorded in study.json
//! and handed to its process; whether a CUDA run uses that GPU needs one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

mod common;
use common::{cnn, stderr};

/// Two variants of a run with state to carry across a resume (Adam,
/// dropout): 384 images in batches of 32, 3 epochs, 36 steps, a
/// checkpoint every step.
const STUDY: &[&str] = &[
    "--vary",
    "lr=0.001,0.002",
    "--epochs",
    "3",
    "--limit-train",
    "384",
    "--batch-size",
    "32",
    "--dropout",
    "0.25",
    "--optimizer",
    "adam",
    "--threads",
    "2",
    "--seed",
    "5",
    "--checkpoint-every",
    "1",
    "--quiet",
];
const RUNS: [&str; 2] = ["lr-0.001", "lr-0.002"];

/// The comparison run by `cnn compare` in one process (made once).
fn reference() -> &'static Path {
    static REFERENCE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &REFERENCE
        .get_or_init(|| {
            let tmp = tempfile::tempdir().unwrap();
            let mut args = vec!["compare", "--out", "ref"];
            args.extend_from_slice(STUDY);
            let o = cnn(&args, tmp.path());
            assert!(o.status.success(), "{}", stderr(&o));
            let out = tmp.path().join("ref");
            (tmp, out)
        })
        .1
}

/// The same comparison, planned only, in `tmp/study`.
fn plan(tmp: &Path) -> PathBuf {
    let mut args = vec!["compare", "--out", "study", "--plan-only"];
    args.extend_from_slice(STUDY);
    let o = cnn(&args, tmp);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("cnn study run study INDEX` for INDEX 0 to 1"),
        "{out}"
    );
    tmp.join("study")
}

fn study_run(dir: &Path, index: usize) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cnn"));
    c.args(["study", "run", "--quiet"])
        .arg(dir)
        .arg(index.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn status_json(dir: &Path) -> serde_json::Value {
    let o = cnn(
        &["study", "status", "--json", dir.to_str().unwrap()],
        Path::new("."),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn state(dir: &Path, index: usize) -> String {
    status_json(dir)["runs"][index]["state"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every file under `dir` with its bytes and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let mtime = p.metadata().unwrap().modified().unwrap();
                out.insert(p.clone(), (std::fs::read(&p).unwrap(), mtime));
            }
        }
    }
    out
}

/// The run's weights and per-step curve equal the reference's.
fn assert_same_bits(study: &Path, run: &str) {
    let (a, b) = (reference().join(run), study.join(run));
    for file in ["model.safetensors", "steps.csv"] {
        assert!(
            std::fs::read(a.join(file)).unwrap() == std::fs::read(b.join(file)).unwrap(),
            "{run}/{file} differs from the run of cnn compare"
        );
    }
}

/// summary.csv without its wall-clock column.
fn summary_without_time(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let seconds = header.iter().position(|c| *c == "seconds").unwrap();
    text.lines()
        .map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            cells.remove(seconds);
            cells.join(",")
        })
        .collect()
}

fn latest_step(run: &Path) -> Option<u64> {
    let name = std::fs::read_to_string(run.join("checkpoint/LATEST")).ok()?;
    name.trim()
        .strip_prefix("step-")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Wait until `run` has a checkpoint of `step` or later (false if the
/// child ended first).
fn wait_for_step(child: &mut Child, run: &Path, step: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if latest_step(run).is_some_and(|s| s >= step) {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("no checkpoint of step {step} within 120 s");
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o))
}

#[test]
fn runs_by_index_equal_cnn_compare_and_a_partial_collect_names_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let study = plan(tmp.path());
    let json = status_json(&study);
    assert_eq!(json["kind"], "compare");
    for (i, run) in RUNS.iter().enumerate() {
        assert_eq!(json["runs"][i]["dir"], *run);
        assert_eq!(json["runs"][i]["state"], "pending");
        assert!(study.join(run).join("config.toml").is_file());
    }
    let o = study_run(&study, 2).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("numbered 0 to 1"), "{}", stderr(&o));

    let o = study_run(&study, 1).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = cnn(&["study", "status", study.to_str().unwrap()], tmp.path());
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        table.contains("lr-0.002/") && table.contains("1 done, 1 pending"),
        "{table}"
    );
    let o = cnn(&["study", "collect", "study"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stderr(&o).contains("partial: 1 of 2 runs are missing: 0 (pending)"),
        "{}",
        text(&o)
    );
    let md = std::fs::read_to_string(study.join("summary.md")).unwrap();
    assert!(
        md.contains("1 of 2 runs are missing: lr-0.001/ (run 0, pending)"),
        "{md}"
    );
    let report = std::fs::read_to_string(study.join("report.html")).unwrap();
    assert!(report.contains("Missing runs"));

    let o = study_run(&study, 0).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let done = snapshot(&study.join(RUNS[0]));
    let o = study_run(&study, 0).output().unwrap();
    assert!(
        o.status.success() && text(&o).contains("is done already"),
        "{}",
        text(&o)
    );
    assert!(
        snapshot(&study.join(RUNS[0])) == done,
        "a finished run was touched"
    );

    let o = cnn(&["study", "collect", "study"], tmp.path());
    assert!(
        o.status.success() && !stderr(&o).contains("partial"),
        "{}",
        text(&o)
    );
    for run in RUNS {
        assert_same_bits(&study, run);
    }
    assert_eq!(
        summary_without_time(&study),
        summary_without_time(reference())
    );
    assert!(
        !std::fs::read_to_string(study.join("summary.md"))
            .unwrap()
            .contains("missing")
    );
    let compare: serde_json::Value =
        serde_json::from_slice(&std::fs::read(study.join("compare.json")).unwrap()).unwrap();
    assert_eq!(compare["runs"][0]["status"], "completed");
}

#[test]
fn a_resume_trains_only_the_runs_not_done_and_never_touches_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let study = plan(tmp.path());
    let o = study_run(&study, 0).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let done = snapshot(&study.join(RUNS[0]));
    // On the process-per-run executor: the run left is placed on device x.
    let o = cnn(
        &["compare", "--resume", "study", "--quiet", "--devices", "x"],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(stderr(&o).contains("1 already over"), "{}", stderr(&o));
    assert!(
        snapshot(&study.join(RUNS[0])) == done,
        "a finished run was touched"
    );
    let json = status_json(&study);
    assert_eq!(json["runs"][1]["device"], "x");
    assert!(json["runs"][0].get("device").is_none(), "{json}");
    assert_eq!(json["runs"][1]["state"], "done");
    for run in RUNS {
        assert_same_bits(&study, run);
    }
    assert_eq!(
        summary_without_time(&study),
        summary_without_time(reference())
    );
}

#[test]
fn devices_get_one_process_per_run_and_a_failing_run_leaves_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    // The `tpu` backend passes the plan's checks and fails in its process.
    let o = cnn(
        &[
            "compare",
            "--out",
            "d",
            "--vary",
            "backend=cpu,tpu",
            "--vary",
            "lr=0.05,0.1",
            "--epochs",
            "1",
            "--limit-train",
            "64",
            "--batch-size",
            "32",
            "--threads",
            "1",
            "--quiet",
            "--devices",
            "a,b",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("2 of 4 runs failed"), "{}", stderr(&o));
    let json = status_json(&tmp.path().join("d"));
    let runs = json["runs"].as_array().unwrap();
    let devices: Vec<&str> = runs.iter().map(|r| r["device"].as_str().unwrap()).collect();
    // The first two start at once, one per device; the others take the
    // device that frees first.
    assert_eq!(devices[..2], ["a", "b"], "{json}");
    assert!(devices.iter().all(|d| ["a", "b"].contains(d)), "{json}");
    for r in &runs[..2] {
        assert_eq!(r["state"], "done", "{json}");
    }
    for r in &runs[2..] {
        assert_eq!(r["state"], "failed", "{json}");
        assert!(r["error"].as_str().unwrap().contains("tpu"), "{json}");
    }
    let workers: Vec<&str> = runs.iter().map(|r| r["worker"].as_str().unwrap()).collect();
    assert!(
        workers
            .iter()
            .all(|w| !w.starts_with(&format!("{}@", std::process::id()))),
        "each run in a process of its own: {workers:?}"
    );
    assert!(tmp.path().join("d/report.html").is_file());
}

#[test]
fn a_second_worker_on_a_running_run_is_refused_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let study = plan(tmp.path());
    let run = study.join(RUNS[0]);
    let mut first = study_run(&study, 0).spawn().unwrap();
    let first_pid = first.id();
    assert!(wait_for_step(&mut first, &run, 2), "the run ended early");
    let o = study_run(&study, 0).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(err.lines().count(), 1, "{err}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    assert!(
        err.contains(&format!(
            "run 0 is locked: cnn pid {first_pid} on host {}",
            host.trim()
        )),
        "{err}"
    );
    assert_eq!(state(&study, 0), "running");
    let o = first.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let json = status_json(&study);
    assert_eq!(json["runs"][0]["state"], "done");
    let worker = json["runs"][0]["worker"].as_str().unwrap();
    assert!(worker.starts_with(&format!("{first_pid}@")), "{worker}");
    assert_same_bits(&study, RUNS[0]);
}

#[test]
fn sigterm_stops_a_run_at_a_checkpoint_and_its_resume_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let study = plan(tmp.path());
    let run = study.join(RUNS[1]);
    let mut child = study_run(&study, 1).spawn().unwrap();
    assert!(wait_for_step(&mut child, &run, 3), "the run ended early");
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a valid signal on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    assert!(stderr(&o).contains("cnn study run"), "{}", stderr(&o));
    let stopped = latest_step(&run).unwrap();
    assert!((3..36).contains(&stopped), "stopped at {stopped}");
    assert_eq!(state(&study, 1), "pending");
    let o = study_run(&study, 1).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(state(&study, 1), "done");
    assert_same_bits(&study, RUNS[1]);
}

#[test]
fn sigterm_to_the_parent_of_devices_stops_its_run_processes_at_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["compare", "--out", "study", "--devices", "a"];
    args.extend_from_slice(STUDY);
    let mut parent = Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args(&args)
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let study = tmp.path().join("study");
    let run = study.join(RUNS[0]);
    assert!(wait_for_step(&mut parent, &run, 3), "the study ended early");
    let pid = libc::pid_t::try_from(parent.id()).unwrap();
    // SAFETY: kill(2) with a valid signal on our own child's pid. Only the
    // parent gets it: its run process must hear of it from the parent.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let o = parent.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    let stopped = latest_step(&run).unwrap();
    assert!((3..36).contains(&stopped), "stopped at {stopped}");
    let json = status_json(&study);
    assert_eq!(json["runs"][0]["state"], "pending", "{json}");
    assert_eq!(json["runs"][1]["state"], "pending", "{json}");
    let o = study_run(&study, 0).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_same_bits(&study, RUNS[0]);
}

#[test]
fn a_curve_run_by_index_equals_cnn_curve() {
    let tmp = tempfile::tempdir().unwrap();
    let base = [
        "--fractions",
        "0.5,1",
        "--repeats",
        "2",
        "--epochs",
        "1",
        "--limit-train",
        "128",
        "--batch-size",
        "32",
        "--threads",
        "2",
        "--quiet",
    ];
    let mut args = vec!["curve", "--out", "whole"];
    args.extend_from_slice(&base);
    let o = cnn(&args, tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    let mut args = vec!["curve", "--out", "parts", "--plan-only"];
    args.extend_from_slice(&base);
    let o = cnn(&args, tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    let parts = tmp.path().join("parts");
    let json = status_json(&parts);
    assert_eq!(json["kind"], "curve");
    let runs = json["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 4);
    for i in (0..4).rev() {
        let o = study_run(&parts, i).output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = cnn(&["study", "collect", "parts"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    let read = |dir: &str, file: &str| std::fs::read(tmp.path().join(dir).join(file)).unwrap();
    assert_eq!(
        String::from_utf8(read("parts", "learning_curve.csv")).unwrap(),
        String::from_utf8(read("whole", "learning_curve.csv")).unwrap()
    );
    for r in &runs {
        let dir = r["dir"].as_str().unwrap();
        assert!(
            read("parts", &format!("{dir}/model.safetensors"))
                == read("whole", &format!("{dir}/model.safetensors")),
            "{dir}"
        );
    }
}
