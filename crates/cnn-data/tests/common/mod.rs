//! Helpers shared by the integration tests: scratch directories and
//! small dataset files.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh empty directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("cnn-data-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Write `bytes` to `dir/name`, gzipped when `name` ends in `.gz`.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let data = if name.ends_with(".gz") {
        gzip(bytes)
    } else {
        bytes.to_vec()
    };
    std::fs::write(&path, data).unwrap();
    path
}

/// `n` deterministic `rows x cols` images and labels `i % 10`.
pub fn tiny_mnist(n: usize, rows: usize, cols: usize) -> (Vec<u8>, Vec<u8>) {
    let pixels = (0..n * rows * cols).map(|i| (i * 7 % 256) as u8).collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    (pixels, labels)
}

/// File names for the four MNIST files in one naming style.
pub fn mnist_names(dot_style: bool, gz: bool) -> [String; 4] {
    let ext = if gz { ".gz" } else { "" };
    let sep = if dot_style { "." } else { "-" };
    [
        format!("train-images{sep}idx3-ubyte{ext}"),
        format!("train-labels{sep}idx1-ubyte{ext}"),
        format!("t10k-images{sep}idx3-ubyte{ext}"),
        format!("t10k-labels{sep}idx1-ubyte{ext}"),
    ]
}

/// Write a complete small MNIST directory (`n_train`, `n_test` 4x3 images).
pub fn write_mnist(dir: &Path, dot_style: bool, gz: bool, n_train: usize, n_test: usize) {
    use cnn_data::idx::{encode_idx_images, encode_idx_labels};
    let names = mnist_names(dot_style, gz);
    let (tp, tl) = tiny_mnist(n_train, 4, 3);
    let (sp, sl) = tiny_mnist(n_test, 4, 3);
    write(
        dir,
        &names[0],
        &encode_idx_images(n_train as u32, 4, 3, &tp),
    );
    write(dir, &names[1], &encode_idx_labels(&tl));
    write(dir, &names[2], &encode_idx_images(n_test as u32, 4, 3, &sp));
    write(dir, &names[3], &encode_idx_labels(&sl));
}
