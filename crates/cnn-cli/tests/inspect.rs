//! `cnn inspect`: the output directory of a trained run's weights on
//! dataset images and an image file (PNGs, inspect.json, a self-contained
//! inspect.html that escapes what it shows), and its one-line errors.

mod common;

use common::{assert_one_line_error, cnn, stderr};
use std::path::Path;

fn train_small_run(dir: &Path) {
    let out = cnn(
        &[
            "train",
            "--epochs",
            "1",
            "--limit-train",
            "64",
            "--batch-size",
            "32",
            "--out",
            "run",
        ],
        dir,
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn inspect_writes_the_pictures_the_record_and_a_self_contained_page() {
    let tmp = tempfile::tempdir().unwrap();
    train_small_run(tmp.path());
    let out = cnn(
        &[
            "inspect",
            "--weights",
            "run/model.safetensors",
            "--index",
            "0",
            "--index",
            "5",
            "--out",
            "ins",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("test[0]: ") && stdout.contains("test[5]: "),
        "{stdout}"
    );
    assert!(
        stdout.contains("Grad-CAM for ") && stdout.contains(" at conv2"),
        "{stdout}"
    );
    let dir = tmp.path().join("ins");
    let record = json(&dir.join("inspect.json"));
    let images = record["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    let mut pngs = vec![record["filters"].as_str().unwrap().to_string()];
    for im in images {
        let p: Vec<f64> = im["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        let predicted = im["predicted"].as_u64().unwrap() as usize;
        assert!(p.iter().all(|&q| q <= p[predicted]));
        // Grad-CAM for the predicted class at the last convolution.
        assert_eq!(im["gradcam"]["class"].as_u64().unwrap() as usize, predicted);
        assert_eq!(im["gradcam"]["layer"], "conv2");
        assert!(im["label"].as_u64().is_some());
        let maps: Vec<&str> = im["feature_maps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["node"].as_str().unwrap())
            .collect();
        assert_eq!(maps, ["conv1", "max_pool2d2", "conv2", "max_pool2d4"]);
        pngs.push(im["input"].as_str().unwrap().into());
        pngs.push(im["gradcam"]["file"].as_str().unwrap().into());
        pngs.push(im["saliency"].as_str().unwrap().into());
        for m in im["feature_maps"].as_array().unwrap() {
            pngs.push(m["file"].as_str().unwrap().into());
        }
    }
    for name in &pngs {
        let img = image::open(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(img.width() >= 8 && img.height() >= 8, "{name}");
    }
    // Input-sized pictures: 32x32 enlarged 7 times.
    assert_eq!(
        image::image_dimensions(dir.join("inspect-0-gradcam.png")).unwrap(),
        (224, 224)
    );
    let html = std::fs::read_to_string(dir.join("inspect.html")).unwrap();
    assert_eq!(
        html.matches("src=\"data:image/png;base64,").count(),
        pngs.len()
    );
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));

    // An image file whose name needs escaping, a chosen class and layer.
    std::fs::copy(
        dir.join("inspect-0-input.png"),
        tmp.path().join("a<b>&c.png"),
    )
    .unwrap();
    let out = cnn(
        &[
            "inspect",
            "--weights",
            "run/model.safetensors",
            "a<b>&c.png",
            "--class",
            "1",
            "--layer",
            "conv1",
            "--out",
            "ins2",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let record = json(&tmp.path().join("ins2/inspect.json"));
    assert_eq!(record["images"][0]["gradcam"]["class"], 1);
    assert_eq!(record["images"][0]["gradcam"]["layer"], "conv1");
    assert!(record["images"][0]["label"].is_null());
    let html = std::fs::read_to_string(tmp.path().join("ins2/inspect.html")).unwrap();
    assert!(html.contains("a&lt;b&gt;&amp;c.png"), "not escaped");
    assert!(!html.contains("a<b>"));
    // The default output directory, and --overwrite of cnn's own.
    let out = cnn(
        &[
            "inspect",
            "--weights",
            "run/model.safetensors",
            "--index",
            "1",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        tmp.path()
            .join("runs/inspect-article-synthetic/inspect.html")
            .is_file()
    );
    let again = cnn(
        &[
            "inspect",
            "--weights",
            "run/model.safetensors",
            "--index",
            "2",
            "--out",
            "ins",
        ],
        tmp.path(),
    );
    assert_one_line_error(&again, "already exists; pass --overwrite");
    let again = cnn(
        &[
            "inspect",
            "--weights",
            "run/model.safetensors",
            "--index",
            "2",
            "--out",
            "ins",
            "--overwrite",
        ],
        tmp.path(),
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        json(&dir.join("inspect.json"))["images"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(!dir.join("inspect-1-input.png").exists());
}

#[test]
fn inspect_errors_are_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    train_small_run(tmp.path());
    let w = "run/model.safetensors";
    let out = cnn(&["inspect", "--weights", w], tmp.path());
    assert_one_line_error(&out, "give image files or --index N");
    assert_eq!(out.status.code(), Some(2));
    let out = cnn(
        &["inspect", "--weights", w, "--index", "0", "--layer", "nope"],
        tmp.path(),
    );
    assert_one_line_error(&out, "--layer nope: no such node");
    let out = cnn(
        &["inspect", "--weights", w, "--index", "0", "--layer", "fc1"],
        tmp.path(),
    );
    assert_one_line_error(&out, "not an image");
    let out = cnn(
        &["inspect", "--weights", w, "--index", "0", "--class", "10"],
        tmp.path(),
    );
    assert_one_line_error(&out, "--class 10: the model has 10 classes");
    let out = cnn(&["inspect", "--weights", w, "--index", "99999"], tmp.path());
    assert_one_line_error(&out, "--index 99999: the test split");
    let out = cnn(&["inspect", "--weights", w, "missing.png"], tmp.path());
    assert_one_line_error(&out, "missing.png");
    assert_eq!(out.status.code(), Some(1));
    assert!(!tmp.path().join("runs").exists());
}
