//! File formats: MNIST-style IDX directories, CIFAR-10 batches, image
//! folders — round trips and every corruption case, each error naming its
//! file.

mod common;

use std::path::Path;

use cnn_data::cifar::{CIFAR_RECORD_BYTES, parse_cifar_batch};
use cnn_data::idx::{encode_idx_images, encode_idx_labels};
use cnn_data::{
    DataError, DatasetKind, FolderOptions, IdxFlavor, LoadOptions, ParseError, Pixels, load,
    load_cifar10_dir, load_folder, load_mnist_dir,
};
use common::{TempDir, mnist_names, tiny_mnist, write, write_mnist};

/// The error's message, checked to mention `path`.
fn assert_names(err: &DataError, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "error `{msg}` does not name {}",
        path.display()
    );
}

// ---------------------------------------------------------------- IDX

#[test]
fn idx_round_trip_all_naming_styles() {
    for dot in [false, true] {
        for gz in [false, true] {
            let dir = TempDir::new("idx-rt");
            write_mnist(dir.path(), dot, gz, 12, 5);
            let ds = load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap();
            let (px, lb) = tiny_mnist(12, 4, 3);
            assert_eq!(ds.shape.dims(), &[1, 4, 3], "dot={dot} gz={gz}");
            assert_eq!(ds.train.len(), 12);
            assert_eq!(ds.test.len(), 5);
            assert_eq!(ds.train.pixels(), &Pixels::U8(px));
            let lb: Vec<u32> = lb.into_iter().map(u32::from).collect();
            assert_eq!(ds.train.labels(), &lb[..]);
            assert_eq!(ds.num_classes(), 10);
            assert_eq!(ds.name, "mnist");
        }
    }
}

#[test]
fn fashion_mnist_has_its_classes_and_stats() {
    let dir = TempDir::new("fashion");
    write_mnist(dir.path(), false, true, 3, 2);
    let ds = load(
        DatasetKind::FashionMnist,
        Some(dir.path()),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(ds.class_names[9], "Ankle boot");
    assert_eq!(ds.normalization.mean, vec![0.2860]);
}

#[test]
fn gzip_is_detected_by_content_not_name() {
    let dir = TempDir::new("gz-content");
    write_mnist(dir.path(), false, false, 4, 2);
    // Replace the raw train images with gzip bytes under the raw name.
    let names = mnist_names(false, false);
    let (px, _) = tiny_mnist(4, 4, 3);
    let gz = common::gzip(&encode_idx_images(4, 4, 3, &px));
    std::fs::write(dir.path().join(&names[0]), gz).unwrap();
    let ds = load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap();
    assert_eq!(ds.train.pixels(), &Pixels::U8(px));
}

/// Write a valid directory, then overwrite train images with `bytes`.
fn with_train_images(bytes: &[u8], gz: bool) -> (TempDir, std::path::PathBuf) {
    let dir = TempDir::new("idx-bad");
    write_mnist(dir.path(), false, gz, 6, 2);
    let name = &mnist_names(false, gz)[0];
    let path = write(dir.path(), name, bytes);
    (dir, path)
}

#[test]
fn idx_wrong_magic_names_the_file() {
    let (px, _) = tiny_mnist(6, 4, 3);
    let mut bytes = encode_idx_images(6, 4, 3, &px);
    bytes[2] = 0x09;
    for gz in [false, true] {
        let (dir, path) = with_train_images(&bytes, gz);
        let err = load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap_err();
        assert!(
            matches!(
                &err,
                DataError::Parse {
                    problem: ParseError::BadMagic { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert_names(&err, &path);
        assert!(err.to_string().contains("magic"), "{err}");
    }
}

#[test]
fn idx_short_data_and_wrong_count_name_the_file() {
    let (px, _) = tiny_mnist(6, 4, 3);
    let full = encode_idx_images(6, 4, 3, &px);
    // Truncated data.
    let (dir, path) = with_train_images(&full[..full.len() - 5], false);
    let err = load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap_err();
    assert!(
        matches!(
            &err,
            DataError::Parse {
                problem: ParseError::DataLength { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, &path);
    assert!(err.to_string().contains("truncated"), "{err}");
    // Header count larger than the data.
    let (dir, path) = with_train_images(&encode_idx_images(7, 4, 3, &px), true);
    let err = load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap_err();
    assert!(
        matches!(
            &err,
            DataError::Parse {
                problem: ParseError::DataLength { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, &path);
    // Trailing garbage.
    let mut long = full.clone();
    long.push(0);
    let (dir, path) = with_train_images(&long, false);
    let err = load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap_err();
    assert_names(&err, &path);
    // Truncated header.
    let (dir, path) = with_train_images(&full[..10], false);
    let err = load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap_err();
    assert!(
        matches!(
            &err,
            DataError::Parse {
                problem: ParseError::TruncatedHeader { len: 10, .. },
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, &path);
}

#[test]
fn idx_huge_header_count_is_an_error() {
    let (px, _) = tiny_mnist(6, 4, 3);
    let (dir, path) = with_train_images(&encode_idx_images(1_000_000_000, 1000, 1000, &px), true);
    let err = load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap_err();
    assert_names(&err, &path);
    assert!(err.to_string().contains("1000000000"), "{err}");
}

#[test]
fn idx_corrupt_gzip_names_the_file() {
    let dir = TempDir::new("idx-gz-bad");
    write_mnist(dir.path(), false, true, 6, 2);
    let name = &mnist_names(false, true)[1];
    let mut gz = std::fs::read(dir.path().join(name)).unwrap();
    let n = gz.len();
    gz.truncate(n / 2);
    std::fs::write(dir.path().join(name), gz).unwrap();
    let err = load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap_err();
    assert!(matches!(&err, DataError::Gzip { .. }), "{err}");
    assert_names(&err, &dir.path().join(name));
}

#[test]
fn idx_count_disagreement_names_both_files() {
    let dir = TempDir::new("idx-count");
    write_mnist(dir.path(), true, false, 6, 2);
    let names = mnist_names(true, false);
    let labels = write(dir.path(), &names[1], &encode_idx_labels(&[1, 2, 3, 4, 5]));
    let err = load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap_err();
    assert!(
        matches!(
            &err,
            DataError::CountMismatch {
                n_images: 6,
                n_labels: 5,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, &labels);
    assert_names(&err, &dir.path().join(&names[0]));
}

#[test]
fn idx_label_out_of_range_names_the_file() {
    let dir = TempDir::new("idx-label");
    write_mnist(dir.path(), false, false, 6, 3);
    let names = mnist_names(false, false);
    let labels = write(dir.path(), &names[3], &encode_idx_labels(&[1, 10, 2]));
    let err = load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap_err();
    assert!(
        matches!(
            &err,
            DataError::Parse {
                problem: ParseError::LabelOutOfRange {
                    index: 1,
                    label: 10,
                    classes: 10
                },
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, &labels);
}

#[test]
fn idx_missing_file_lists_names_tried() {
    let dir = TempDir::new("idx-missing");
    write_mnist(dir.path(), false, false, 6, 3);
    std::fs::remove_file(dir.path().join(&mnist_names(false, false)[2])).unwrap();
    let err = load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap_err();
    let DataError::NotFound { tried, .. } = &err else {
        panic!("expected NotFound, got {err}");
    };
    assert_eq!(tried.len(), 4);
    let msg = err.to_string();
    for name in ["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte.gz"] {
        assert!(msg.contains(name), "{msg}");
    }
}

#[test]
fn missing_directory_is_named() {
    let dir = TempDir::new("nodir");
    let missing = dir.path().join("nope");
    for kind in [
        DatasetKind::Mnist,
        DatasetKind::Cifar10,
        DatasetKind::Folder,
    ] {
        let err = load(kind, Some(&missing), &LoadOptions::default()).unwrap_err();
        assert!(matches!(&err, DataError::MissingDir { .. }), "{err}");
        assert_names(&err, &missing);
    }
    let err = load(DatasetKind::Cifar10, None, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::NoDirectory { .. }));
}

#[test]
fn dataset_kind_parses() {
    for kind in DatasetKind::ALL {
        assert_eq!(kind.name().parse::<DatasetKind>().unwrap(), kind);
    }
    assert_eq!(
        "CIFAR-10".parse::<DatasetKind>().unwrap(),
        DatasetKind::Cifar10
    );
    let err = "imagenet".parse::<DatasetKind>().unwrap_err();
    assert!(err.to_string().contains("synthetic"), "{err}");
}

// ---------------------------------------------------------------- CIFAR

/// `n` records with label `i % 10` and pixels `(i + j) % 256`.
fn cifar_bytes(n: usize, offset: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * CIFAR_RECORD_BYTES);
    for i in 0..n {
        out.push(((i + offset) % 10) as u8);
        out.extend((0..3072).map(|j| ((i + offset + j) % 256) as u8));
    }
    out
}

fn write_cifar(dir: &Path, per_batch: usize) {
    for b in 1..=5 {
        write(
            dir,
            &format!("data_batch_{b}.bin"),
            &cifar_bytes(per_batch, b * 100),
        );
    }
    write(dir, "test_batch.bin", &cifar_bytes(per_batch, 0));
}

#[test]
fn cifar_parses_a_small_batch() {
    let bytes = cifar_bytes(3, 0);
    let batch = parse_cifar_batch(&bytes).unwrap();
    assert_eq!(batch.labels, vec![0, 1, 2]);
    assert_eq!(batch.pixels.len(), 3 * 3072);
    // Record 1's pixel 5 (red plane, row 0, col 5) is (1 + 5) % 256.
    assert_eq!(batch.pixels[3072 + 5], 6);
    assert!(matches!(
        parse_cifar_batch(&bytes[..bytes.len() - 1]),
        Err(ParseError::RecordLength { .. })
    ));
    assert!(matches!(
        parse_cifar_batch(&[]),
        Err(ParseError::RecordLength { .. })
    ));
    let mut bad = bytes.clone();
    bad[CIFAR_RECORD_BYTES * 2] = 10;
    assert_eq!(
        parse_cifar_batch(&bad),
        Err(ParseError::LabelOutOfRange {
            index: 2,
            label: 10,
            classes: 10
        })
    );
}

#[test]
fn cifar_directory_and_subfolder() {
    for sub in [false, true] {
        let dir = TempDir::new("cifar");
        let root = if sub {
            dir.path().join("cifar-10-batches-bin")
        } else {
            dir.path().to_path_buf()
        };
        write_cifar(&root, 4);
        let ds = load(
            DatasetKind::Cifar10,
            Some(dir.path()),
            &LoadOptions::default(),
        )
        .unwrap();
        assert_eq!(ds.shape.dims(), &[3, 32, 32]);
        assert_eq!((ds.train.len(), ds.test.len()), (20, 4));
        assert_eq!(&ds.train.labels()[..4], &[0, 1, 2, 3]);
        assert_eq!(ds.train.labels()[4], 0); // batch 2 starts at offset 200
        assert_eq!(ds.class_names[0], "airplane");
    }
}

#[test]
fn cifar_errors_name_the_file() {
    let dir = TempDir::new("cifar-bad");
    write_cifar(dir.path(), 2);
    let mut bad = cifar_bytes(2, 0);
    bad[0] = 200;
    let path = write(dir.path(), "data_batch_3.bin", &bad);
    let err = load_cifar10_dir(dir.path()).unwrap_err();
    assert!(matches!(
        &err,
        DataError::Parse {
            problem: ParseError::LabelOutOfRange { .. },
            ..
        }
    ));
    assert_names(&err, &path);

    let path = write(dir.path(), "data_batch_3.bin", &cifar_bytes(2, 0)[..5000]);
    let err = load_cifar10_dir(dir.path()).unwrap_err();
    assert!(matches!(
        &err,
        DataError::Parse {
            problem: ParseError::RecordLength { .. },
            ..
        }
    ));
    assert_names(&err, &path);

    std::fs::remove_file(dir.path().join("data_batch_5.bin")).unwrap();
    let err = load_cifar10_dir(dir.path()).unwrap_err();
    assert!(matches!(&err, DataError::NotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("cifar-10-batches-bin/data_batch_5.bin"),
        "{err}"
    );
}

#[test]
fn cifar_complete_subfolder_wins_over_a_stray_top_level_file() {
    let dir = TempDir::new("cifar-stray");
    write(dir.path(), "test_batch.bin", &cifar_bytes(1, 7));
    write_cifar(&dir.path().join("cifar-10-batches-bin"), 4);
    let ds = load_cifar10_dir(dir.path()).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (20, 4));
    // Both complete: the top level is preferred.
    write_cifar(dir.path(), 2);
    let ds = load_cifar10_dir(dir.path()).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (10, 2));
}

#[test]
fn cifar_incomplete_dirs_report_the_more_complete_one() {
    let dir = TempDir::new("cifar-partial");
    let sub = dir.path().join("cifar-10-batches-bin");
    write_cifar(&sub, 1);
    std::fs::remove_file(sub.join("data_batch_3.bin")).unwrap();
    // Two files at the top, one of them the subfolder's missing one.
    write(dir.path(), "test_batch.bin", &cifar_bytes(1, 0));
    let top_copy = write(dir.path(), "data_batch_3.bin", &cifar_bytes(1, 0));
    let err = load_cifar10_dir(dir.path()).unwrap_err();
    let DataError::NotFound { what, tried, .. } = &err else {
        panic!("expected NotFound, got {err}");
    };
    assert_eq!(what, "data_batch_3.bin");
    // The top-level copy exists, so it must not be listed as tried in vain.
    assert_eq!(tried, &[sub.join("data_batch_3.bin")]);

    std::fs::remove_file(top_copy).unwrap();
    let err = load_cifar10_dir(dir.path()).unwrap_err();
    let DataError::NotFound { what, tried, .. } = &err else {
        panic!("expected NotFound, got {err}");
    };
    assert_eq!(what, "data_batch_3.bin");
    assert_eq!(
        tried,
        &[
            dir.path().join("data_batch_3.bin"),
            sub.join("data_batch_3.bin")
        ]
    );
    assert_names(&err, dir.path());
}

// ---------------------------------------------------------------- folders

/// Write a `w x h` RGB (or gray) PNG whose pixels encode `seed`.
fn png(path: &Path, w: u32, h: u32, gray: bool, seed: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let channels = if gray { 1 } else { 3 };
    let buf: Vec<u8> = (0..w * h * channels)
        .map(|i| seed.wrapping_add((i as u8).wrapping_mul(3)))
        .collect();
    let color = if gray {
        image::ColorType::L8
    } else {
        image::ColorType::Rgb8
    };
    image::save_buffer(path, &buf, w, h, color).unwrap();
}

#[test]
fn folder_two_classes() {
    let dir = TempDir::new("folder");
    let d = dir.path();
    png(&d.join("cat/b.png"), 5, 4, false, 10);
    png(&d.join("cat/a.png"), 5, 4, false, 20);
    png(&d.join("dog/x.png"), 5, 4, false, 30);
    std::fs::write(d.join(".hidden"), b"ignored").unwrap();
    std::fs::write(d.join("README.txt"), b"loose files are ignored").unwrap();
    let ds = load_folder(d, &FolderOptions::default()).unwrap();
    assert_eq!(ds.class_names, vec!["cat", "dog"]);
    assert_eq!(ds.shape.dims(), &[3, 4, 5]);
    let mut labels = ds.train.labels().to_vec();
    labels.sort_unstable();
    assert_eq!(labels, [0, 0, 1]);
    assert!(ds.test.is_empty());
    let Pixels::U8(px) = ds.train.pixels() else {
        panic!()
    };
    // a.png (seed 20), a cat: pixel (y=0, x=1) red = 20 + 3*3, green plane
    // starts at 20 (HWC index 1 -> 20 + 3).
    let a = px
        .chunks_exact(60)
        .zip(ds.train.labels())
        .find(|(img, _)| img[0] == 20)
        .expect("a.png was loaded");
    assert_eq!((a.0[1], a.0[20], *a.1), (20 + 9, 23, 0));
    assert_eq!(ds.normalization.channels(), 3);
}

#[test]
fn folder_training_order_mixes_the_classes() {
    let dir = TempDir::new("folder-mix");
    let d = dir.path();
    for class in 0..3u8 {
        for i in 0..10u8 {
            png(
                &d.join(format!("c{class}/{i:02}.png")),
                2,
                2,
                true,
                class * 10 + i,
            );
        }
    }
    let ds = load_folder(d, &FolderOptions::default()).unwrap();
    // The same fixed order on every load.
    let again = load_folder(d, &FolderOptions::default()).unwrap();
    assert_eq!(ds.train.labels(), again.train.labels());
    // Keras's validation tail (the last 20%) takes more than one class.
    let tail = &ds.train.labels()[24..];
    let classes: std::collections::BTreeSet<u32> = tail.iter().copied().collect();
    assert!(classes.len() >= 2, "validation tail {tail:?}");
    // Every image kept its label: image seed / 10 is its class.
    let Pixels::U8(px) = ds.train.pixels() else {
        panic!()
    };
    for (img, &label) in px.chunks_exact(4).zip(ds.train.labels()) {
        assert_eq!(u32::from(img[0] / 10), label);
    }
}

#[test]
fn folder_train_test_layout_gray_and_resize() {
    let dir = TempDir::new("folder-tt");
    let d = dir.path();
    png(&d.join("train/0/a.png"), 6, 6, true, 1);
    png(&d.join("train/1/a.png"), 6, 6, true, 2);
    png(&d.join("train/1/b.png"), 3, 3, true, 3);
    png(&d.join("test/1/c.png"), 6, 6, false, 4);
    let opts = FolderOptions {
        channels: None,
        size: Some((4, 5)),
    };
    let ds = load_folder(d, &opts).unwrap();
    assert_eq!(ds.shape.dims(), &[1, 4, 5]);
    let mut labels = ds.train.labels().to_vec();
    labels.sort_unstable();
    assert_eq!(labels, [0, 1, 1]);
    assert_eq!(ds.test.labels(), &[1]);
    let opts = FolderOptions {
        channels: Some(3),
        size: Some((4, 4)),
    };
    assert_eq!(load_folder(d, &opts).unwrap().shape.dims(), &[3, 4, 4]);
    // Without a target size the 3x3 image is an error naming it.
    let err = load_folder(d, &FolderOptions::default()).unwrap_err();
    assert!(matches!(&err, DataError::SizeMismatch { .. }), "{err}");
    assert_names(&err, &d.join("train/1/b.png"));
}

#[test]
fn folder_non_image_file_is_named() {
    let dir = TempDir::new("folder-bad");
    let d = dir.path();
    png(&d.join("a/1.png"), 2, 2, false, 1);
    std::fs::create_dir_all(d.join("b")).unwrap();
    std::fs::write(d.join("b/notes.txt"), b"not an image").unwrap();
    let err = load_folder(d, &FolderOptions::default()).unwrap_err();
    assert!(matches!(&err, DataError::NotAnImage { .. }), "{err}");
    assert_names(&err, &d.join("b/notes.txt"));
    // A PNG signature followed by garbage: recognised, fails to decode.
    std::fs::write(d.join("b/notes.txt"), b"\x89PNG\r\n\x1a\ngarbage").unwrap();
    let err = load_folder(d, &FolderOptions::default()).unwrap_err();
    assert!(matches!(&err, DataError::NotAnImage { .. }), "{err}");
}

#[test]
fn folder_empty_cases() {
    let dir = TempDir::new("folder-empty");
    let err = load_folder(dir.path(), &FolderOptions::default()).unwrap_err();
    assert!(matches!(&err, DataError::Empty { .. }), "{err}");
    assert_names(&err, dir.path());
    std::fs::create_dir_all(dir.path().join("cls")).unwrap();
    let err = load_folder(dir.path(), &FolderOptions::default()).unwrap_err();
    assert!(matches!(&err, DataError::Empty { .. }), "{err}");
    assert_names(&err, &dir.path().join("cls"));
    let bad = FolderOptions {
        channels: Some(2),
        size: None,
    };
    assert!(matches!(
        load_folder(dir.path(), &bad),
        Err(DataError::InvalidValue { .. })
    ));
}
