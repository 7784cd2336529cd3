//! `cnn compare`, `cnn curve` and `cnn report` under hostile input: a
//! diverged variant, plans too large to start, `--vary` typos, interrupted
//! studies and damaged run files.

use std::time::{Duration, Instant};

mod common;
use common::{assert_one_line_error, cnn, stderr};

const SMALL: &[&str] = &[
    "--epochs",
    "2",
    "--limit-train",
    "128",
    "--batch-size",
    "32",
    "--quiet",
];

fn with_small<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend_from_slice(SMALL);
    v
}

#[test]
fn a_diverged_variant_is_a_result_like_any_other() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cnn(
        &with_small(&["compare", "--out", "cdiv", "--vary", "lr=0.05,1e6"]),
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let root = tmp.path().join("cdiv");
    let history = std::fs::read_to_string(root.join("lr-1e6/history.jsonl")).unwrap();
    assert!(!history.contains("null"), "{history}");
    for f in ["summary.md", "summary.csv", "overlay.png", "report.html"] {
        assert!(root.join(f).is_file(), "missing {f}");
    }
    let summary = std::fs::read_to_string(root.join("summary.md")).unwrap();
    assert!(
        summary.contains("lr=1e6") && summary.contains("divergence"),
        "{summary}"
    );
    let report = cnn(&["report", "cdiv"], tmp.path());
    assert!(report.status.success(), "{}", stderr(&report));
    let report = cnn(&["report", "cdiv/lr-1e6"], tmp.path());
    assert!(report.status.success(), "{}", stderr(&report));
}

/// A refusal that takes no time, exits 2 and leaves nothing behind.
fn assert_refused_at_once(args: &[&str], needle: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = cnn(args, tmp.path());
    let took = started.elapsed();
    assert_one_line_error(&out, needle);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "a refused command left {left:?}");
}

#[test]
fn plans_too_large_are_refused_before_anything_is_made() {
    assert_refused_at_once(
        &[
            "compare",
            "--out",
            "c",
            "--vary",
            "lr=0.1,0.2",
            "--repeats",
            "99999999999",
        ],
        "more than the 100000",
    );
    let values: Vec<String> = (1..=1000).map(|i| format!("{i}")).collect();
    let lr = format!("epochs={}", values.join(","));
    let batch = format!("batch_size={}", values.join(","));
    assert_refused_at_once(
        &["compare", "--out", "c", "--vary", &lr, "--vary", &batch],
        "1000000 runs",
    );
    // Above 256 runs a comparison asks for --yes, without making a variant.
    let grid = format!("epochs={}", values[..300].join(","));
    assert_refused_at_once(&["compare", "--out", "c", "--vary", &grid], "--yes");
    assert_refused_at_once(&["curve", "--out", "c", "--repeats", "99999999999"], "fits");
    // A model whose memory is far over the limit, in a curve, before the
    // curve directory is made.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("big.toml"), BIG_MODEL).unwrap();
    for command in ["train", "curve", "compare"] {
        let mut args = vec![
            command,
            "--model",
            "big.toml",
            "--max-memory",
            "1G",
            "--out",
            "big",
        ];
        if command == "compare" {
            args.extend(["--vary", "lr=0.1,0.2"]);
        }
        let started = Instant::now();
        let out = cnn(&with_small(&args), tmp.path());
        assert_one_line_error(&out, "training needs about");
        assert!(started.elapsed() < Duration::from_secs(10), "{command}");
        assert!(
            !tmp.path().join("big").exists(),
            "{command} left its directory"
        );
    }
}

const BIG_MODEL: &str = "[[nodes]]\nname = \"conv1\"\ntype = \"conv2d\"\nout_channels = 100000\n\
kernel = [3, 3]\nstride = [1, 1]\npadding = [1, 1]\ndilation = [1, 1]\ngroups = 1\n\
[[nodes]]\nname = \"flat\"\ntype = \"flatten\"\n\
[[nodes]]\nname = \"fc\"\ntype = \"linear\"\nout_features = 10\n";

#[test]
fn a_vary_key_or_value_given_twice_or_empty_is_an_error() {
    assert_refused_at_once(
        &["compare", "--vary", "lr=0.1,0.2", "--vary", "lr=0.3"],
        "--vary lr is given twice",
    );
    assert_refused_at_once(
        &[
            "compare",
            "--vary",
            "lr=0.1,0.2",
            "--vary",
            "dropout=0",
            "--vary",
            "lr=0.3",
        ],
        "given twice",
    );
    assert_refused_at_once(&["compare", "--vary", "lr=0.1,0.1"], "0.1 is given twice");
    assert_refused_at_once(
        &["compare", "--vary", "lr=0.1,1e-1"],
        "1e-1 is given twice (as 0.1)",
    );
    assert_refused_at_once(
        &["compare", "--vary", "lr=0.1,,0.2"],
        "value 2 of 3 is empty",
    );
    assert_refused_at_once(&["compare", "--vary", "lr=0.1,"], "is empty");
}

/// The checkpoint step of a run directory, once it has one.
fn latest_step(run: &std::path::Path) -> Option<u64> {
    let name = std::fs::read_to_string(run.join("checkpoint/LATEST")).ok()?;
    name.trim()
        .strip_prefix("step-")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Start `args`, send SIGINT once `run` has a checkpoint of step 2, and
/// return the output.
fn interrupt_at_a_checkpoint(
    args: &[&str],
    cwd: &std::path::Path,
    run: &std::path::Path,
) -> std::process::Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args(args)
        .current_dir(cwd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while latest_step(run).is_none_or(|s| s < 2) {
        assert!(
            Instant::now() < deadline,
            "no checkpoint in {}",
            run.display()
        );
        assert!(child.try_wait().unwrap().is_none(), "it ended first");
        std::thread::sleep(Duration::from_millis(2));
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a valid signal on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    child.wait_with_output().unwrap()
}

const LONG: &[&str] = &[
    "--epochs",
    "2",
    "--limit-train",
    "600",
    "--batch-size",
    "16",
    "--checkpoint-every",
    "1",
    "--threads",
    "1",
    "--quiet",
];

#[test]
fn an_interrupted_comparison_says_how_to_continue_and_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["compare", "--out", "cmp", "--vary", "lr=0.05,0.02,0.01"];
    args.extend_from_slice(LONG);
    let run = tmp.path().join("cmp/lr-0.05");
    let out = interrupt_at_a_checkpoint(&args, tmp.path(), &run);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(
        line.contains("0 of 3 runs are over") && line.contains("cnn compare --resume cmp"),
        "{line}"
    );
    // The message is true: that command finishes the comparison.
    let out = cnn(&["compare", "--resume", "cmp", "--quiet"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = std::fs::read_to_string(tmp.path().join("cmp/compare.json")).unwrap();
    assert_eq!(manifest.matches("\"completed\"").count(), 3, "{manifest}");
    assert!(tmp.path().join("cmp/summary.md").is_file());
    let steps = std::fs::read_to_string(run.join("steps.csv")).unwrap();
    assert_eq!(steps.lines().count(), 1 + 2 * 600_usize.div_ceil(16));
    // A resumed comparison is its own: no other flags.
    assert_one_line_error(
        &cnn(&["compare", "--resume", "cmp", "--lr", "0.1"], tmp.path()),
        "only --jobs and --quiet",
    );
}

#[test]
fn an_interrupted_curve_says_how_to_continue_and_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec![
        "curve",
        "--out",
        "lc",
        "--fractions",
        "0.5,1",
        "--repeats",
        "1",
    ];
    args.extend_from_slice(LONG);
    let out = interrupt_at_a_checkpoint(&args, tmp.path(), &tmp.path().join("lc/n300-seed0"));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("0 of 2 fits are over") && err.contains("cnn curve --resume lc"),
        "{err}"
    );
    let out = cnn(&["curve", "--resume", "lc", "--quiet"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let points = std::fs::read_to_string(tmp.path().join("lc/learning_curve.csv")).unwrap();
    assert_eq!(points.lines().count(), 3, "{points}");
    assert!(!points.contains("failed"), "{points}");
}

#[test]
fn a_report_states_what_it_could_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cnn(&with_small(&["train", "--out", "run"]), tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let history = tmp.path().join("run/history.jsonl");
    let text = std::fs::read_to_string(&history).unwrap();
    // Cut in the middle of the second line, as a crash or a full disk would.
    let cut = text.lines().next().unwrap().len() + 1 + 40;
    std::fs::write(&history, &text[..cut]).unwrap();
    let out = cnn(&["report", "run"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(tmp.path().join("run/report.html")).unwrap();
    assert!(html.contains("Could not be read"), "no damage section");
    assert!(
        html.contains("history.jsonl line 2 could not be read"),
        "line not named"
    );
    assert!(
        html.contains("records 2 completed epochs but only 1 could be read"),
        "epoch count not flagged"
    );
    assert!(
        html.contains("<td class=\"text\">2 (1 readable)</td>"),
        "epochs row"
    );
    // A comparison with a damaged run says so instead of failing.
    let out = cnn(
        &with_small(&["compare", "--out", "cmp", "--vary", "lr=0.05,0.01"]),
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(
        tmp.path().join("cmp/lr-0.01/history.jsonl"),
        "{\"epoch\":1,",
    )
    .unwrap();
    let out = cnn(&["report", "cmp"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(tmp.path().join("cmp/report.html")).unwrap();
    assert!(
        html.contains("its files could not be read"),
        "damage not stated"
    );
    assert!(html.contains("unreadable files"), "summary row not marked");
}

#[test]
fn smaller_things_say_what_they_mean() {
    let tmp = tempfile::tempdir().unwrap();
    // A label that cannot name a directory.
    std::fs::write(
        tmp.path().join("dots.toml"),
        "[[run]]\nlabel = \"..\"\nlr = 0.1\n",
    )
    .unwrap();
    let out = cnn(
        &["compare", "--runs", "dots.toml", "--overwrite"],
        tmp.path(),
    );
    assert_one_line_error(&out, "cannot name its run directory");
    // Bad arguments exit 2, like clap's own.
    let out = cnn(&["compare", "--vary", "optimizer=lbfgs"], tmp.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = cnn(&["train", "--lr", "-1"], tmp.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A spec node with both `type` and `add` is named with what is wrong.
    std::fs::write(
        tmp.path().join("both.toml"),
        "[[nodes]]\nname = \"flat\"\ntype = \"flatten\"\n\
         [[nodes]]\nname = \"c2\"\ntype = \"flatten\"\nadd = \"flat\"\n",
    )
    .unwrap();
    let out = cnn(&["train", "--model", "both.toml"], tmp.path());
    assert_one_line_error(&out, "node `c2`: both `type` and `add` given");
    // A [base] of a runs file yields to the flags given.
    std::fs::write(
        tmp.path().join("runs.toml"),
        "[base]\nlr = 0.5\nepochs = 1\n[[run]]\nlabel = \"a\"\n",
    )
    .unwrap();
    let out = cnn(
        &with_small(&[
            "compare",
            "--runs",
            "runs.toml",
            "--lr",
            "0.01",
            "--out",
            "b",
        ]),
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let config = std::fs::read_to_string(tmp.path().join("b/a/config.toml")).unwrap();
    assert!(config.contains("lr = 0.01"), "{config}");
    assert!(
        config.contains("epochs = 2"),
        "the flag's 2 epochs: {config}"
    );
    // Another dataset than the run's takes no data directory from it.
    write_mnist(&tmp.path().join("digits"), 40);
    let out = cnn(
        &with_small(&[
            "train",
            "--data",
            "mnist",
            "--data-dir",
            "digits",
            "--out",
            "mn",
        ]),
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // (The synthetic set's images have 3 channels, MNIST's 1: the error is
    // about the weights, not about a directory the user did not give.)
    let out = cnn(
        &[
            "eval",
            "--weights",
            "mn/model.safetensors",
            "--data",
            "synthetic",
        ],
        tmp.path(),
    );
    assert_one_line_error(&out, "the model expects [6, 3, 3, 3]");
    assert!(!stderr(&out).contains("digits"), "{}", stderr(&out));
}

/// A valid MNIST directory of `n` 28x28 images per split.
fn write_mnist(dir: &std::path::Path, n: u8) {
    std::fs::create_dir_all(dir).unwrap();
    for split in ["train", "t10k"] {
        let mut labels = vec![0, 0, 8, 1, 0, 0, 0, n];
        labels.extend((0..n).map(|i| i % 10));
        let mut images = vec![0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 28, 0, 0, 0, 28];
        images.extend((0..n as usize * 784).map(|i| (i % 251) as u8));
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), labels).unwrap();
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte")), images).unwrap();
    }
}
