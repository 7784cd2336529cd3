//! Crashes and Ctrl-C: a real `cnn train` child process is killed with
//! SIGKILL at random moments (seeded) and resumed with `--resume` until it
//! completes; its final weights and whole per-step loss curve must equal an
//! uninterrupted run's bit for bit, and after every kill every file of the
//! run directory must be complete (atomic writes). SIGINT must finish the
//! step, checkpoint, exit with code 130 and say how to resume.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A short run: 384 images in batches of 32, 12 steps per epoch, 2 epochs,
/// with dropout, Adam and a cosine schedule (state that must survive).
const TRAIN_ARGS: &[&str] = &[
    "train",
    "--limit-train",
    "384",
    "--epochs",
    "2",
    "--batch-size",
    "32",
    "--dropout",
    "0.25",
    "--optimizer",
    "adam",
    "--schedule",
    "cosine",
    "--threads",
    "2",
    "--seed",
    "5",
    "--quiet",
];
const TOTAL_STEPS: u64 = 24;

fn cnn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cnn"))
}

fn fresh(out: &Path, extra: &[&str]) -> Command {
    let mut c = cnn();
    c.args(TRAIN_ARGS)
        .args(extra)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn resume(out: &Path) -> Command {
    let mut c = cnn();
    c.args(["train", "--quiet", "--resume"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The uninterrupted run's final weights and steps.csv (computed once).
fn reference() -> &'static (Vec<u8>, String) {
    static REFERENCE: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let o = fresh(&out, &["--checkpoint-every", "1"]).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let steps = std::fs::read_to_string(out.join("steps.csv")).unwrap();
        assert_eq!(steps.lines().count() as u64, TOTAL_STEPS + 1, "{steps}");
        (std::fs::read(out.join("model.safetensors")).unwrap(), steps)
    })
}

/// The step of the newest complete checkpoint, if any.
fn latest_step(run: &Path) -> Option<u64> {
    let name = std::fs::read_to_string(run.join("checkpoint/LATEST")).ok()?;
    let name = name.trim().strip_prefix("step-")?;
    name.split('.').next()?.parse().ok()
}

/// Wait until the checkpoint of `step` (or later) exists or the child exits.
fn wait_for_step(child: &mut Child, run: &Path, step: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if latest_step(run).is_some_and(|s| s >= step) {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("no checkpoint of step {step} within 60 s");
}

/// A small seeded generator for kill points (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % bound
    }
}

/// Temporary files of unfinished atomic writes and temporary directories
/// of unfinished checkpoints (`.<name>.tmp-*`), anywhere in `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().contains(".tmp-") {
            out.push(p);
        } else if p.is_dir() {
            out.extend(temp_files(&p));
        }
    }
    out
}

/// Every data file of the run directory is complete and parses; temporary
/// files (`.<name>.tmp-*`) and a checkpoint being written (its directory
/// `checkpoint/.step-N.tmp-*`) are skipped: they are never read as data.
fn assert_complete(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp-") {
            continue;
        }
        if p.is_dir() {
            assert_complete(&p);
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        let what = p.display();
        match p.extension().and_then(|x| x.to_str()).unwrap_or("") {
            "safetensors" => {
                let (arrays, _) = cnn::train::checkpoint::load_safetensors(&p)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(!arrays.is_empty(), "{what}: no tensors");
            }
            "json" => {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            "jsonl" => {
                for line in String::from_utf8(bytes).unwrap().lines() {
                    serde_json::from_str::<serde_json::Value>(line)
                        .unwrap_or_else(|e| panic!("{what}: {e}: {line}"));
                }
            }
            "csv" => {
                let text = String::from_utf8(bytes).unwrap();
                assert!(text.is_empty() || text.ends_with('\n'), "{what}: cut short");
                let mut lines = text.lines();
                let fields = lines.next().map_or(0, |h| h.split(',').count());
                for line in lines {
                    assert_eq!(line.split(',').count(), fields, "{what}: `{line}`");
                    let first = line.split(',').next().unwrap();
                    assert!(first.parse::<f64>().is_ok(), "{what}: `{line}`");
                }
            }
            "toml" => {
                let text = String::from_utf8(bytes).unwrap();
                toml::from_str::<toml::Value>(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            "png" => {
                assert!(bytes.starts_with(b"\x89PNG"), "{what}");
                assert!(
                    bytes.ends_with(b"IEND\xae\x42\x60\x82"),
                    "{what}: cut short"
                );
            }
            "svg" => assert!(
                String::from_utf8_lossy(&bytes)
                    .trim_end()
                    .ends_with("</svg>"),
                "{what}: cut short"
            ),
            "html" => assert!(
                String::from_utf8_lossy(&bytes)
                    .trim_end()
                    .ends_with("</html>"),
                "{what}: cut short"
            ),
            _ if name == "LATEST" => {
                let ckpt = dir.join(String::from_utf8(bytes).unwrap().trim());
                for f in [
                    "model.safetensors",
                    "optimizer.json",
                    "trainer.json",
                    "steps.csv",
                    "history.jsonl",
                ] {
                    assert!(ckpt.join(f).is_file(), "LATEST names {ckpt:?} without {f}");
                }
            }
            _ => {}
        }
    }
}

/// Start a run, kill it with SIGKILL at seeded random points, resume until
/// it completes; returns how many times it was killed.
fn crash_and_resume(seed: u64, run: &Path) -> usize {
    let mut rng = Rng(seed);
    let mut kills = 0;
    let mut child = fresh(run, &["--checkpoint-every", "1"]).spawn().unwrap();
    let mut target = 1 + rng.next(6);
    loop {
        let killed = if kills < 3 && wait_for_step(&mut child, run, target) {
            // Somewhere inside the next step or its checkpoint writes.
            std::thread::sleep(Duration::from_micros(rng.next(40_000)));
            child.kill().unwrap();
            true
        } else {
            false
        };
        let output = child.wait_with_output().unwrap();
        if !killed || output.status.success() {
            assert!(output.status.success(), "seed {seed}: {}", stderr(&output));
            return kills;
        }
        kills += 1;
        assert_complete(run);
        target = latest_step(run).unwrap_or(0) + 1 + rng.next(8);
        child = resume(run).spawn().unwrap();
    }
}

#[test]
fn sigkill_at_random_steps_then_resume_is_bit_identical() {
    let (weights, steps) = reference();
    for seed in [11, 12] {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        let kills = crash_and_resume(seed, &run);
        assert!(kills >= 1, "seed {seed}: the run was never killed");
        assert_complete(&run);
        assert!(
            temp_files(&run).is_empty(),
            "seed {seed}: temporary files left after the resumed run: {:?}",
            temp_files(&run)
        );
        let got_steps = std::fs::read_to_string(run.join("steps.csv")).unwrap();
        assert_eq!(&got_steps, steps, "seed {seed}: loss curves differ");
        let got = std::fs::read(run.join("model.safetensors")).unwrap();
        assert!(
            &got == weights,
            "seed {seed}: final weights differ after {kills} kills"
        );
    }
}

#[test]
fn resume_removes_temporary_files_left_by_a_killed_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut child = fresh(&run, &["--checkpoint-every", "1"]).spawn().unwrap();
    assert!(wait_for_step(&mut child, &run, 2));
    child.kill().unwrap();
    child.wait().unwrap();
    // What a writer killed between create and rename leaves behind.
    std::fs::write(run.join(".steps.csv.tmp-999-0"), b"step,epo").unwrap();
    let ckpt = run.join("checkpoint").join(
        std::fs::read_to_string(run.join("checkpoint/LATEST"))
            .unwrap()
            .trim(),
    );
    std::fs::write(ckpt.join(".model.safetensors.tmp-999-1"), b"\x10\0").unwrap();
    std::fs::create_dir_all(run.join("checkpoint/step-999")).unwrap();
    let o = resume(&run).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(temp_files(&run).is_empty(), "{:?}", temp_files(&run));
    assert!(!run.join("checkpoint/step-999").exists());
    let (_, steps) = reference();
    assert_eq!(
        &std::fs::read_to_string(run.join("steps.csv")).unwrap(),
        steps
    );
}

#[test]
fn sigint_checkpoints_exits_130_and_says_how_to_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut child = fresh(&run, &["--checkpoint-every", "1"]).spawn().unwrap();
    assert!(wait_for_step(&mut child, &run, 3), "the run ended early");
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a valid signal on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("--resume"), "no resume hint: {err}");
    let stopped = latest_step(&run).unwrap();
    assert!((3..TOTAL_STEPS).contains(&stopped), "stopped at {stopped}");
    assert_complete(&run);
    let o = resume(&run).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let (weights, steps) = reference();
    assert_eq!(
        &std::fs::read_to_string(run.join("steps.csv")).unwrap(),
        steps
    );
    assert!(&std::fs::read(run.join("model.safetensors")).unwrap() == weights);
}
