//! Nothing lost, ever (issue 25): `--resume` verifies the checkpoint it
//! uses and falls back to the previous one (a bogus `LATEST`, a truncated
//! `steps.csv`, a flipped bit), deleting nothing first; a second process
//! on a live run or comparison is refused naming the first; SIGTERM and
//! SIGHUP checkpoint like SIGINT; a diverged run keeps weights that
//! evaluate; an impossible `--image-size` is refused before the images are
//! read.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod common;
use common::{assert_one_line_error, stderr};

/// 256 images in batches of 32: 8 steps per epoch, 2 epochs.
const RUN: &[&str] = &[
    "train",
    "--limit-train",
    "256",
    "--batch-size",
    "32",
    "--epochs",
    "2",
    "--threads",
    "1",
    "--seed",
    "7",
    "--checkpoint-every",
    "1",
    "--quiet",
];

fn cnn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cnn"));
    c.env_remove("CNN_MNIST_DIR").env_remove("CNN_FAULT_INJECT");
    c
}

fn spawn(args: &[&str], out: &Path) -> Child {
    cnn()
        .args(args)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn resume(run: &Path) -> Output {
    cnn()
        .args(["train", "--quiet", "--resume"])
        .arg(run)
        .output()
        .unwrap()
}

fn latest(run: &Path) -> Option<String> {
    let name = std::fs::read_to_string(run.join("checkpoint/LATEST")).ok()?;
    Some(name.trim().to_string())
}

fn latest_step(run: &Path) -> Option<u64> {
    latest(run)?
        .strip_prefix("step-")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Wait until the run's newest checkpoint is of `step` or later.
fn wait_for_step(child: &mut Child, run: &Path, step: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while latest_step(run).is_none_or(|s| s < step) {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(Instant::now() < deadline, "no checkpoint of step {step}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

fn bits(run: &Path) -> (Vec<u8>, String) {
    (
        std::fs::read(run.join("model.safetensors")).unwrap(),
        std::fs::read_to_string(run.join("steps.csv")).unwrap(),
    )
}

/// The uninterrupted run's weights and steps.csv.
fn reference() -> &'static (Vec<u8>, String) {
    static REF: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    REF.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("straight");
        let o = spawn(RUN, &out).wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        bits(&out)
    })
}

/// A run stopped by SIGINT after its checkpoint of step 3 or later (so
/// that it keeps two checkpoints), shared by the tests that copy it.
fn interrupted() -> &'static Path {
    static TPL: OnceLock<PathBuf> = OnceLock::new();
    TPL.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap().keep();
        let out = tmp.join("tpl");
        let mut child = spawn(RUN, &out);
        wait_for_step(&mut child, &out, 3);
        signal(&child, libc::SIGINT);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
        out
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn copy_of_interrupted(tmp: &Path, name: &str) -> PathBuf {
    let run = tmp.join(name);
    copy_dir(interrupted(), &run);
    run
}

#[test]
fn a_latest_naming_an_incomplete_or_foreign_checkpoint_falls_back() {
    let tmp = tempfile::tempdir().unwrap();
    // Finding 1: LATEST names a step-N+1 holding only weights.
    let run = copy_of_interrupted(tmp.path(), "incomplete");
    let good = latest(&run).unwrap();
    let next = format!("step-{}", latest_step(&run).unwrap() + 1);
    let bogus = run.join("checkpoint").join(&next);
    std::fs::create_dir(&bogus).unwrap();
    std::fs::copy(
        run.join("checkpoint").join(&good).join("model.safetensors"),
        bogus.join("model.safetensors"),
    )
    .unwrap();
    std::fs::write(run.join("checkpoint/LATEST"), &next).unwrap();
    let o = resume(&run);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("checkpoint/{next} cannot be used")),
        "{err}"
    );
    assert!(err.contains("optimizer.json"), "{err}");
    assert_eq!(&bits(&run), reference());

    // LATEST pointing out of the run: the other run is left alone.
    let other = tmp.path().join("other-run");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("mine.txt"), b"keep me").unwrap();
    let run = copy_of_interrupted(tmp.path(), "foreign");
    std::fs::write(run.join("checkpoint/LATEST"), "../../other-run").unwrap();
    let o = resume(&run);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not a checkpoint of this run"),
        "{}",
        stderr(&o)
    );
    assert_eq!(&bits(&run), reference());
    assert_eq!(std::fs::read(other.join("mine.txt")).unwrap(), b"keep me");
}

#[test]
fn a_damaged_checkpoint_file_is_found_and_the_previous_checkpoint_used() {
    let tmp = tempfile::tempdir().unwrap();
    type Damage = fn(&Path);
    let damages: [(&str, &str, Damage); 3] = [
        ("truncated", "steps.csv", |p| {
            let text = std::fs::read(p).unwrap();
            std::fs::write(p, &text[..text.len() * 2 / 5]).unwrap();
        }),
        ("flip-model", "model.safetensors", |p| {
            let mut b = std::fs::read(p).unwrap();
            let i = b.len() - 7;
            b[i] ^= 0x10;
            std::fs::write(p, b).unwrap();
        }),
        ("flip-optimizer", "optimizer.json", |p| {
            let mut b = std::fs::read(p).unwrap();
            let i = b
                .iter()
                .rposition(|c| c.is_ascii_digit() && *c != b'9')
                .unwrap();
            b[i] += 1;
            std::fs::write(p, b).unwrap();
        }),
    ];
    for (name, file, damage) in damages {
        let run = copy_of_interrupted(tmp.path(), name);
        let newest = latest(&run).unwrap();
        damage(&run.join("checkpoint").join(&newest).join(file));
        let o = resume(&run);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("checkpoint/{newest} cannot be used")) && err.contains(file),
            "{name}: {err}"
        );
        assert_eq!(&bits(&run), reference(), "{name}");
    }
}

#[test]
fn a_second_process_on_a_live_run_is_refused_and_names_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("live");
    let mut long = RUN.to_vec();
    long[6] = "50";
    let mut first = spawn(&long, &out);
    wait_for_step(&mut first, &out, 1);
    let config = std::fs::read(out.join("config.toml")).unwrap();
    let pid = format!("pid {}", first.id());

    let mut args = RUN.to_vec();
    args[10] = "8";
    args.extend(["--overwrite", "--out", out.to_str().unwrap()]);
    let o = cnn().args(&args).output().unwrap();
    assert_one_line_error(&o, &pid);
    assert!(stderr(&o).contains("is in use by cnn"), "{}", stderr(&o));
    let mut plain = RUN.to_vec();
    plain.extend(["--out", out.to_str().unwrap()]);
    let o = cnn().args(&plain).output().unwrap();
    assert_one_line_error(&o, &pid);
    assert_one_line_error(&resume(&out), &pid);
    assert_eq!(std::fs::read(out.join("config.toml")).unwrap(), config);
    first.kill().unwrap();
    first.wait().unwrap();
    // Killed: the OS released the lock, and the run resumes.
    let o = cnn()
        .args(["train", "--quiet", "--resume"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(o.id() as i32, libc::SIGINT) };
    let o = o.wait_with_output().unwrap();
    assert!(matches!(o.status.code(), Some(0 | 130)), "{}", stderr(&o));
}

#[test]
fn a_second_comparison_into_a_live_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    let args = [
        "compare",
        "--vary",
        "lr=0.1,0.01",
        "--epochs",
        "50",
        "--limit-train",
        "256",
        "--batch-size",
        "32",
        "--threads",
        "1",
        "--quiet",
        "--overwrite",
    ];
    let mut first = cnn()
        .args(args)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !out.join("compare.json").is_file() {
        assert!(first.try_wait().unwrap().is_none(), "the comparison ended");
        assert!(Instant::now() < deadline, "no compare.json");
        std::thread::sleep(Duration::from_millis(5));
    }
    let manifest = std::fs::read(out.join("compare.json")).unwrap();
    let o = cnn().args(args).arg("--out").arg(&out).output().unwrap();
    assert_one_line_error(&o, &format!("pid {}", first.id()));
    assert_eq!(std::fs::read(out.join("compare.json")).unwrap(), manifest);
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn sigterm_and_sighup_checkpoint_and_exit_like_sigint() {
    for (name, sig) in [("term", libc::SIGTERM), ("hup", libc::SIGHUP)] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join(name);
        let mut child = spawn(RUN, &out);
        wait_for_step(&mut child, &out, 2);
        signal(&child, sig);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(130), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains("cnn train --resume"), "{}", stderr(&o));
        let o = resume(&out);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_eq!(&bits(&out), reference(), "{name}");
    }
}

#[test]
fn a_diverged_run_keeps_weights_that_evaluate() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "train",
        "--limit-train",
        "128",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--quiet",
        "--lr",
        "1e6",
        "--checkpoint-every",
        "2",
        "--out",
        "d",
    ];
    let o = cnn().args(args).current_dir(tmp.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = cnn()
        .args(["eval", "--weights", "d/model.safetensors", "--json"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(json["loss"].as_f64().is_some_and(f64::is_finite), "{json}");
}

#[test]
fn an_impossible_image_size_is_refused_before_the_images_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        let dir = tmp.path().join("imgs").join(class);
        std::fs::create_dir_all(&dir).unwrap();
        // Not an image: reading the folder would fail on it.
        std::fs::write(dir.join("x.png"), b"not a png").unwrap();
    }
    let started = Instant::now();
    let o = cnn()
        .args([
            "train",
            "--data",
            "folder",
            "--data-dir",
            "imgs",
            "--image-size",
            "100000x100000",
            "--quiet",
            "--out",
            "r",
        ])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_one_line_error(&o, "memory");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!tmp.path().join("r").exists());
}
