//! Mixup and CutMix through the `cnn` command: the flags train and are
//! recorded in `config.toml` (and read back from a config file), a run
//! cut by a failed write and continued with `--resume` ends with the
//! uninterrupted run's `model.safetensors` and `steps.csv` bit for bit, a
//! run without the flags is untouched by them, bad values are one error
//! line with exit code 2, and `cnn compare --vary mixup=...` plans a run
//! per value.

mod common;

use std::path::Path;

use common::{assert_one_line_error, cnn, cnn_with_env, read, short_run as args, stderr};

fn text(p: &Path) -> String {
    String::from_utf8(read(p)).unwrap()
}

#[test]
fn mixup_and_cutmix_train_are_recorded_and_resume_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mix = [
        "--mixup",
        "0.4",
        "--cutmix",
        "1",
        "--mix-prob",
        "0.9",
        "--mix-switch-prob",
        "0.3",
        "--label-smoothing",
        "0.1",
        "--cutout",
        "8",
    ];
    let out = cnn(&args(&mix, "straight"), t);
    assert!(out.status.success(), "{}", stderr(&out));
    let straight = t.join("straight");
    let config = text(&straight.join("config.toml"));
    for line in [
        "mixup = 0.4",
        "cutmix = 1.0",
        "mix_prob = 0.9",
        "mix_switch_prob = 0.3",
    ] {
        assert!(config.contains(line), "{line} not in {config}");
    }
    assert_eq!(text(&straight.join("steps.csv")).lines().count(), 13);

    // Cut after the step-4 checkpoint (its rename is the 10th), resumed.
    let cut = cnn_with_env(
        &args(&mix, "cut"),
        t,
        &[("CNN_FAULT_INJECT", Path::new("rename:10"))],
    );
    assert!(!cut.status.success(), "the injected failure stops the run");
    assert!(t.join("cut/checkpoint/step-4").is_dir());
    let resumed = cnn(&["train", "--resume", "cut", "--quiet"], t);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    for file in ["model.safetensors", "steps.csv"] {
        assert!(
            read(&straight.join(file)) == read(&t.join("cut").join(file)),
            "{file} differs after resuming"
        );
    }

    // The recorded config trains the same run again.
    let again = cnn(
        &[
            "train",
            "--config",
            "straight/config.toml",
            "--quiet",
            "--out",
            "again",
        ],
        t,
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(read(&straight.join("steps.csv")) == read(&t.join("again/steps.csv")));

    // Without the flags: another curve, and nothing about mixing written.
    let plain = cnn(&args(&mix[8..], "plain"), t);
    assert!(plain.status.success(), "{}", stderr(&plain));
    assert!(read(&straight.join("steps.csv")) != read(&t.join("plain/steps.csv")));
    let config = text(&t.join("plain/config.toml"));
    assert!(!config.contains("mix"), "{config}");
    // --mix-prob 0 mixes no batch: the plain run's bits.
    let mut never = mix[8..].to_vec();
    never.extend_from_slice(&["--mixup", "0.4", "--mix-prob", "0"]);
    let never_out = cnn(&args(&never, "never"), t);
    assert!(never_out.status.success(), "{}", stderr(&never_out));
    for file in ["model.safetensors", "steps.csv"] {
        assert!(
            read(&t.join("plain").join(file)) == read(&t.join("never").join(file)),
            "{file}: a run that mixes no batch differs from the plain run"
        );
    }
}

#[test]
fn bad_mixing_values_are_one_error_line() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for (extra, needle) in [
        (&["--mixup", "-0.2"][..], "mixup"),
        (&["--cutmix", "nan"], "cutmix"),
        (&["--mixup", "0.2", "--mix-prob", "1.5"], "mix_prob"),
        (
            &["--cutmix", "1", "--mix-switch-prob", "-1"],
            "mix_switch_prob",
        ),
        (&["--mixup", "x"], "--mixup"),
    ] {
        let out = cnn(&args(extra, "bad"), t);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert_one_line_error(&out, needle);
        assert!(!t.join("bad").exists(), "{extra:?} made a run directory");
    }
}

#[test]
fn compare_varies_mixup() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cnn(
        &[
            "compare",
            "--vary",
            "mixup=0,0.2",
            "--vary",
            "cutmix=0,1",
            "--limit-train",
            "64",
            "--epochs",
            "1",
            "--threads",
            "1",
            "--quiet",
            "--out",
            "cmp",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = text(&tmp.path().join("cmp/compare.json"));
    for label in ["mixup=0.2, cutmix=1", "mixup=0, cutmix=0"] {
        assert!(manifest.contains(label), "{label} not in {manifest}");
    }
    let dirs: Vec<_> = std::fs::read_dir(tmp.path().join("cmp"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("config.toml").is_file())
        .map(|e| text(&e.path().join("config.toml")))
        .collect();
    assert_eq!(dirs.len(), 4, "one run per combination");
    assert_eq!(
        dirs.iter()
            .filter(|c| c.contains("mixup = 0.2") && c.contains("cutmix = 1.0"))
            .count(),
        1
    );
}
