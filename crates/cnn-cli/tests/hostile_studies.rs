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
