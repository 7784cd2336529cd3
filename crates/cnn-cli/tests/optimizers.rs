//! `--optimizer` with the optimizers beyond torch.optim's classic nine and
//! `--optimizer-param KEY=VALUE`: values reach the run and its
//! `config.toml`; a bad key or value is one error line and exit 2.

use std::path::Path;

mod common;
use common::{assert_one_line_error, cnn, stderr};

fn train(extra: &[&str], out: &str, cwd: &Path) -> std::process::Output {
    let mut args = vec![
        "train",
        "--max-steps",
        "2",
        "--limit-train",
        "128",
        "--out",
        out,
        "--quiet",
    ];
    args.extend_from_slice(extra);
    cnn(&args, cwd)
}

#[test]
fn optimizer_params_reach_the_run_and_its_record() {
    let tmp = tempfile::tempdir().unwrap();
    let out = train(
        &[
            "--optimizer",
            "muon",
            "--lr",
            "0.02",
            "--optimizer-param",
            "adjust_lr_fn=match_rms_adamw",
            "--optimizer-param",
            "ns_coefficients=[3.4445, -4.775, 2.0315]",
            "--optimizer-param",
            "adamw_lr=3e-4",
        ],
        "muon",
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let config = std::fs::read_to_string(tmp.path().join("muon/config.toml")).unwrap();
    for line in [
        "optimizer = \"muon\"",
        "[optimizer_params]",
        "adjust_lr_fn = \"match_rms_adamw\"",
        "adamw_lr = 0.0003",
    ] {
        assert!(config.contains(line), "`{line}` not in:\n{config}");
    }
    // The record runs again as it is.
    let out = cnn(
        &[
            "train",
            "--config",
            "muon/config.toml",
            "--out",
            "again",
            "--quiet",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let steps = |d: &str| std::fs::read_to_string(tmp.path().join(d).join("steps.csv")).unwrap();
    assert_eq!(steps("muon"), steps("again"));
}

#[test]
fn a_bad_optimizer_param_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    for (extra, needle) in [
        (
            &["--optimizer", "adam", "--optimizer-param", "momentum=0.9"][..],
            "adam has no parameter `momentum` (it is a parameter of sgd, rmsprop, muon, lars, schedule_free_sgd)",
        ),
        (
            &[
                "--optimizer",
                "lion",
                "--optimizer-param",
                "betas=[0.9, 1.5]",
            ][..],
            "invalid value for `betas[1]` = 1.5",
        ),
        (
            &["--optimizer", "lamb", "--optimizer-param", "adam=maybe"][..],
            "optimizer_params for `lamb`",
        ),
        (
            &["--optimizer", "rprop", "--weight-decay", "0.1"][..],
            "rprop has no weight decay",
        ),
    ] {
        let out = train(extra, "bad", tmp.path());
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert_one_line_error(&out, needle);
    }
    let out = train(&["--optimizer-param", "eps"], "bad", tmp.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("expected KEY=VALUE like eps=1e-6"));
}
