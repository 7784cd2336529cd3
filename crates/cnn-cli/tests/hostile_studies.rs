//! `cnn compare`, `cnn curve` and `cnn report` under hostile input: a
//! diverged variant, plans too large to start, `--vary` typos, interrupted
//! studies and damaged run files.
mod common;
use common::{cnn, stderr};

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
