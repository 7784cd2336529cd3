//! Data options of `cnn train`: image folders of mixed sizes with
//! `--image-size` and `--channels`, and the mistakes that must be errors
//! rather than a silent change of data (a directory with the synthetic set,
//! validation on a test split that does not exist).

use std::path::Path;

mod common;
use common::{assert_one_line_error, cnn, stderr};

/// `root/<split>/<class>/<i>.png`: RGB images, `per_class` per class, of
/// the sizes given in turn.
fn write_folder(root: &Path, split: &str, sizes: &[(u32, u32)], per_class: u32) {
    for class in ["cat", "dog"] {
        let dir = root.join(split).join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let (w, h) = sizes[i as usize % sizes.len()];
            let shade = if class == "cat" { 40 } else { 200 };
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([shade, (x * 7 + y * 3 + i) as u8, shade / 2])
            });
            img.save(dir.join(format!("{i}.png"))).unwrap();
        }
    }
}

#[test]
fn image_size_and_channels_load_a_folder_of_mixed_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    write_folder(&photos, "train", &[(20, 16), (12, 12)], 10);
    write_folder(&photos, "test", &[(9, 30)], 4);
    let base = [
        "train",
        "--data",
        "folder",
        "--data-dir",
        "photos",
        "--model",
        "lenet5",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--quiet",
    ];
    assert_one_line_error(&cnn(&base, tmp.path()), "--image-size HxW");

    let args = [
        &base[..],
        &["--image-size", "28x28", "--channels", "1", "--out", "run"],
    ]
    .concat();
    let out = cnn(&args, tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let config = std::fs::read_to_string(tmp.path().join("run/config.toml")).unwrap();
    let compact: String = config.split_whitespace().collect();
    assert!(
        compact.contains("image_size=[28,28") && compact.contains("channels=1"),
        "{config}"
    );
    // The weights fit a 1x28x28 LeNet-5, so the images were resized and made gray.
    let out = cnn(
        &["eval", "--weights", "run/model.safetensors", "--json"],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["n"], 8);

    for (flag, value, needle) in [
        ("--image-size", "28by28", "expected HxW"),
        ("--image-size", "0x28", "expected HxW"),
        ("--channels", "2", "channels"),
    ] {
        let args = [&base[..], &[flag, value]].concat();
        let out = cnn(&args, tmp.path());
        assert!(
            !out.status.success() && stderr(&out).contains(needle),
            "{}",
            stderr(&out)
        );
    }
    assert_one_line_error(
        &cnn(
            &["train", "--data", "mnist", "--image-size", "32"],
            tmp.path(),
        ),
        "image_size and channels apply to image folders",
    );
}

#[test]
fn a_data_directory_with_the_synthetic_set_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    assert_one_line_error(
        &cnn(&["train", "--data-dir", "digits"], tmp.path()),
        "the synthetic set (the default data) reads no files",
    );
    assert!(!tmp.path().join("runs").exists());
}

#[test]
fn validating_on_a_missing_test_split_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    write_folder(&tmp.path().join("pets"), "train", &[(28, 28)], 6);
    // Without train/ and test/ the class folders sit at the top.
    let flat = tmp.path().join("flat");
    std::fs::rename(tmp.path().join("pets/train"), &flat).unwrap();
    let args = [
        "train",
        "--data",
        "folder",
        "--data-dir",
        "flat",
        "--val-fraction",
        "0",
    ];
    assert_one_line_error(&cnn(&args, tmp.path()), "flat: has no test images");
    assert!(!tmp.path().join("runs").exists());
}

#[test]
fn images_too_small_for_the_model_suggest_image_size() {
    // A folder of 1x1 images used to fail with a bare `max_pool2d2`
    // geometry error.
    let tmp = tempfile::tempdir().unwrap();
    write_folder(&tmp.path().join("dots"), "train", &[(1, 1)], 4);
    let args = [
        "train",
        "--data",
        "folder",
        "--data-dir",
        "dots",
        "--model",
        "lenet5",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        "run",
    ];
    let out = cnn(&args, tmp.path());
    assert_one_line_error(&out, "are too small for the built-in model `lenet5`");
    assert_one_line_error(&out, "--image-size");
    assert!(!tmp.path().join("run").exists());
}
