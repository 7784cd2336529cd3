//! `--data-on-device` and the `data_on_device` key through the `cnn`
//! binary on the cpu backend: `on` is one line and exit 2 before anything
//! is written (train, compare, curve, lr-find, a config file's key), an
//! unknown value is a clear error, and `auto` and `off` train from the
//! host loader with the default run's files.

mod common;

use common::{assert_one_line_error, cnn, read, short_run, stderr};

/// Exit 2 with one line saying the cpu backend keeps no resident set.
fn refused(o: &std::process::Output) {
    assert_eq!(o.status.code(), Some(2), "{}", stderr(o));
    assert_one_line_error(
        o,
        "--data-on-device on: the cpu backend keeps no training set in device memory",
    );
}

#[test]
fn on_with_the_cpu_backend_is_one_line_and_exit_2_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let on = ["--data-on-device", "on", "--epochs", "1"];
    let with = |cmd: &'static str, out: &'static str| -> Vec<&'static str> {
        let mut a = vec![cmd];
        a.extend(on);
        a.extend(["--out", out]);
        a
    };
    refused(&cnn(&with("train", "run"), dir));
    let mut compare = with("compare", "cmp");
    compare.extend(["--vary", "lr=0.1,0.2"]);
    refused(&cnn(&compare, dir));
    refused(&cnn(&with("curve", "lc"), dir));
    refused(&cnn(
        &["lr-find", "--data-on-device", "on", "--out", "lr"],
        dir,
    ));
    // The config key, as the flag.
    std::fs::write(
        dir.join("run.toml"),
        "epochs = 1\ndata_on_device = \"on\"\n",
    )
    .unwrap();
    refused(&cnn(
        &["train", "--config", "run.toml", "--out", "run"],
        dir,
    ));
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["run.toml"], "nothing but the config file");
}

#[test]
fn unknown_values_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = cnn(&["train", "--data-on-device", "yes"], dir);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("expected auto, on or off, got `yes`"),
        "{}",
        stderr(&out)
    );
    std::fs::write(dir.join("run.toml"), "data_on_device = \"gpu\"\n").unwrap();
    let out = cnn(&["train", "--config", "run.toml"], dir);
    assert_one_line_error(&out, "run.toml");
    assert!(stderr(&out).contains("gpu"), "{}", stderr(&out));
    assert!(!dir.join("runs").exists());
}

#[test]
fn auto_and_off_train_from_the_host_loader_with_the_default_runs_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (flags, out) in [
        (&[][..], "plain"),
        (&["--data-on-device", "auto"][..], "auto"),
        (&["--data-on-device", "off"][..], "off"),
    ] {
        let o = cnn(&short_run(flags, out), dir);
        assert!(o.status.success(), "{out}: {}", stderr(&o));
    }
    for name in ["model.safetensors", "steps.csv"] {
        for other in ["auto", "off"] {
            assert_eq!(
                read(&dir.join("plain").join(name)),
                read(&dir.join(other).join(name)),
                "{other}/{name}"
            );
        }
    }
    // auto is the default: not recorded; off is.
    let config = |run: &str| String::from_utf8(read(&dir.join(run).join("config.toml"))).unwrap();
    assert_eq!(config("plain"), config("auto"));
    assert!(!config("plain").contains("data_on_device"));
    assert!(
        config("off").contains("data_on_device = \"off\""),
        "{}",
        config("off")
    );
}
