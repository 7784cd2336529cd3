//! `cnn train --tensorboard`: the event files read back with TensorBoard's
//! own reader (`EventAccumulator`, in the Python of
//! `CNN_TENSORBOARD_PYTHON`) hold every value of `steps.csv` and
//! `metrics.csv`, as f32, and the validation confusion matrix as an image.
//! Skips without that Python; `CNN_REQUIRE_TENSORBOARD=1` (CI) makes the
//! skip a failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{cnn, stderr};

const REQUIRE: &str = "CNN_REQUIRE_TENSORBOARD";

/// Tag -> (step, value) pairs, as TensorBoard read them.
type Scalars = BTreeMap<String, Vec<(u64, f64)>>;

/// The Python that has the `tensorboard` package, or `None` after a skip.
fn python(test: &str) -> Option<PathBuf> {
    let Some(python) = std::env::var_os("CNN_TENSORBOARD_PYTHON") else {
        cnn_testing::skip(
            test,
            REQUIRE,
            "CNN_TENSORBOARD_PYTHON does not name a Python with the tensorboard package",
        );
        return None;
    };
    Some(PathBuf::from(python))
}

/// Every scalar and image of the event files in `dir`, read by TensorBoard.
fn read_events(python: &Path, dir: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tensorboard/read_events.py");
    let out = Command::new(python)
        .arg(script)
        .arg(dir)
        .output()
        .expect("the tensorboard Python runs");
    assert!(
        out.status.success(),
        "reading the events failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn scalars(events: &serde_json::Value) -> Scalars {
    let mut out = Scalars::new();
    for (tag, points) in events["scalars"].as_object().unwrap() {
        let points = points
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
            .collect();
        out.insert(tag.clone(), points);
    }
    out
}

/// The tag each `metrics.csv` column is written under.
fn tag_of(column: &str) -> String {
    if let Some(metric) = column.strip_prefix("train_") {
        format!("train/{metric}")
    } else if let Some(metric) = column.strip_prefix("val_") {
        format!("val/{metric}")
    } else {
        format!("epoch/{column}")
    }
}

/// What the event files must hold: every value of `steps.csv` (x = step)
/// and `metrics.csv` (x = epoch), as f32.
fn expected(run: &Path) -> Scalars {
    let mut want = Scalars::new();
    let steps = std::fs::read_to_string(run.join("steps.csv")).unwrap();
    for line in steps.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let step: u64 = cells[0].parse().unwrap();
        for (tag, cell) in [("step/loss", cells[2]), ("step/lr", cells[3])] {
            want.entry(tag.into())
                .or_default()
                .push((step, cell.parse().unwrap()));
        }
    }
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut lines = metrics.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let epoch: u64 = cells[0].parse().unwrap();
        for (column, cell) in header.iter().zip(&cells).skip(1) {
            want.entry(tag_of(column))
                .or_default()
                .push((epoch, cell.parse().unwrap()));
        }
    }
    want
}

fn assert_same(got: &Scalars, want: &Scalars) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "tags"
    );
    for (tag, points) in want {
        let read = &got[tag];
        assert_eq!(read.len(), points.len(), "{tag}: number of events");
        for (&(step, value), &(want_step, want_value)) in read.iter().zip(points) {
            assert_eq!(step, want_step, "{tag}");
            // TensorBoard keeps scalars as f32: the CSV's f64, rounded.
            assert_eq!(
                value as f32, want_value as f32,
                "{tag} at {step}: {value} read, {want_value} in the CSV"
            );
        }
    }
}

#[test]
fn tensorboard_reads_every_value_of_the_csv_files() {
    let test = "tensorboard_reads_every_value_of_the_csv_files";
    let Some(python) = python(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let small = [
        "train",
        "--limit-train",
        "256",
        "--batch-size",
        "32",
        "--quiet",
        "--out",
    ];
    let out = cnn(
        &[&small[..], &["run", "--epochs", "3", "--tensorboard"]].concat(),
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let run = tmp.path().join("run");
    let events = read_events(&python, &run);
    let got = scalars(&events);
    let want = expected(&run);
    // 256 images in batches of 32: 8 steps an epoch, 3 epochs.
    assert_eq!(want["step/loss"].len(), 24);
    assert_eq!(want["val/f1_macro"].len(), 3);
    assert_same(&got, &want);
    // The validation confusion matrix, one picture per epoch (the last
    // one is the run's confusion.png).
    let images = events["images"]["val/confusion_matrix"].as_array().unwrap();
    let steps: Vec<u64> = images.iter().map(|i| i[0].as_u64().unwrap()).collect();
    assert_eq!(steps, [1, 2, 3]);
    let png = image::open(run.join("confusion.png")).unwrap();
    let last = &images[2];
    assert_eq!(last[1].as_u64().unwrap(), u64::from(png.width()));
    assert_eq!(last[2].as_u64().unwrap(), u64::from(png.height()));
    let size = std::fs::metadata(run.join("confusion.png")).unwrap().len();
    assert_eq!(last[3].as_u64().unwrap(), size);

    // A resumed run writes its whole history again into a newer file; its
    // session start makes TensorBoard drop the older file's events, so
    // every value is still there once. (The same file under a later name
    // stands for it here.)
    let file = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|name| name.starts_with("events.out.tfevents."))
        .unwrap();
    let seconds: u64 = file.split('.').nth(3).unwrap().parse().unwrap();
    std::fs::copy(
        run.join(&file),
        run.join(format!("events.out.tfevents.{}.cnn.1", seconds + 5)),
    )
    .unwrap();
    assert_same(&scalars(&read_events(&python, &run)), &want);

    // Into a directory of its own, given on the command line.
    let out = cnn(
        &[
            &small[..],
            &["run2", "--epochs", "1", "--tensorboard", "tb/run2"],
        ]
        .concat(),
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let events = read_events(&python, &tmp.path().join("tb/run2"));
    assert_same(&scalars(&events), &expected(&tmp.path().join("run2")));
    let in_run = std::fs::read_dir(tmp.path().join("run2"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("tfevents")
        })
        .count();
    assert_eq!(in_run, 0, "no event file in the run directory itself");
}

/// `cnn compare --tensorboard`: every run's scalars, and the HParams
/// plugin's summaries as TensorBoard's own protos parse them: the
/// experiment (the varied key with its values, the metrics) at the
/// comparison directory, and per run its session start (its value, its
/// variant as the group) and end (success), beside its scalars, whose last
/// values are the metrics the HParams tab shows.
#[test]
fn compare_writes_the_hparams_plugins_summaries() {
    let test = "compare_writes_the_hparams_plugins_summaries";
    let Some(python) = python(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = cnn(
        &[
            "compare",
            "--vary",
            "lr=0.05,0.2",
            "--vary",
            "optimizer=sgd,adam",
            "--epochs",
            "2",
            "--limit-train",
            "128",
            "--batch-size",
            "32",
            "--quiet",
            "--out",
            "cmp",
            "--tensorboard",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let root = tmp.path().join("cmp");
    let events = read_events(&python, &root);
    let experiment = &events["hparams"]["_hparams_/experiment"]["experiment"];
    let infos = experiment["hparamInfos"].as_array().unwrap();
    let names: Vec<&str> = infos.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["lr", "optimizer"]);
    assert_eq!(infos[0]["type"], "DATA_TYPE_FLOAT64");
    assert_eq!(
        infos[0]["domainDiscrete"],
        serde_json::json!([0.05, 0.2]),
        "{experiment}"
    );
    assert_eq!(infos[1]["type"], "DATA_TYPE_STRING");
    assert_eq!(
        infos[1]["domainDiscrete"],
        serde_json::json!(["sgd", "adam"])
    );
    let metrics: Vec<&str> = experiment["metricInfos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"]["tag"].as_str().unwrap())
        .collect();
    assert_eq!(
        metrics,
        [
            "val/accuracy",
            "val/loss",
            "val/f1_macro",
            "train/accuracy",
            "train/loss"
        ]
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("compare.json")).unwrap()).unwrap();
    let runs = manifest["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    let mut seen = Vec::new();
    for run in runs {
        let dir = root.join(run["dir"].as_str().unwrap());
        let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        let config: toml::Table = toml::from_str(&config).unwrap();
        let events = read_events(&python, &dir);
        let start = &events["hparams"]["_hparams_/session_start_info"]["sessionStartInfo"];
        let lr = start["hparams"]["lr"].as_f64().unwrap();
        let optimizer = start["hparams"]["optimizer"].as_str().unwrap();
        assert_eq!(lr, config["lr"].as_float().unwrap());
        assert_eq!(optimizer, config["optimizer"].as_str().unwrap());
        assert_eq!(
            start["groupName"].as_str().unwrap(),
            manifest["variants"][run["variant"].as_u64().unwrap() as usize]["label"]
                .as_str()
                .unwrap()
        );
        let end = &events["hparams"]["_hparams_/session_end_info"]["sessionEndInfo"];
        assert_eq!(end["status"], "STATUS_SUCCESS");
        // The metrics are the run's scalars, all of them there.
        assert_same(&scalars(&events), &expected(&dir));
        seen.push((lr.to_string(), optimizer.to_string()));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("0.05", "adam"),
            ("0.05", "sgd"),
            ("0.2", "adam"),
            ("0.2", "sgd")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
}
