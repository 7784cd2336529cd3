//! One entry point for the CLI: [`load`] a [`DatasetKind`] from an optional
//! directory.
//!
//! Directories: MNIST uses `dir`, else the environment variable
//! `CNN_MNIST_DIR`; Fashion-MNIST, CIFAR-10 and folders need `dir`; the
//! synthetic set ignores it.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::cifar::load_cifar10_dir;
use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::folder::{FolderOptions, load_folder};
use crate::mnist::{IdxFlavor, load_mnist_dir, resolve_mnist_dir};
use crate::normalize::Normalization;
use crate::synthetic::{SyntheticConfig, synthetic};

/// The datasets [`load`] knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    /// MNIST digits (IDX files).
    Mnist,
    /// Fashion-MNIST (IDX files).
    FashionMnist,
    /// CIFAR-10 binary batches.
    Cifar10,
    /// A folder with one subfolder of images per class.
    Folder,
    /// The built-in synthetic set.
    Synthetic,
}

impl DatasetKind {
    /// Every kind, in a stable order.
    pub const ALL: [DatasetKind; 5] = [
        DatasetKind::Mnist,
        DatasetKind::FashionMnist,
        DatasetKind::Cifar10,
        DatasetKind::Folder,
        DatasetKind::Synthetic,
    ];

    /// The canonical name (`"mnist"`, `"fashion-mnist"`, `"cifar10"`,
    /// `"folder"`, `"synthetic"`).
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Folder => "folder",
            DatasetKind::Synthetic => "synthetic",
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = DataError;

    /// Canonical names plus `fashion_mnist`, `fashion`, `cifar-10`,
    /// `cifar_10`, `synth`; case-insensitive.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mnist" => Ok(DatasetKind::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fashion" => Ok(DatasetKind::FashionMnist),
            "cifar10" | "cifar-10" | "cifar_10" => Ok(DatasetKind::Cifar10),
            "folder" => Ok(DatasetKind::Folder),
            "synthetic" | "synth" => Ok(DatasetKind::Synthetic),
            _ => Err(DataError::value(
                "dataset",
                format!(
                    "unknown dataset `{s}`; expected one of {}",
                    DatasetKind::ALL.map(DatasetKind::name).join(", ")
                ),
            )),
        }
    }
}

/// Options of [`load`]; the defaults suit every kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// Replace the dataset's default normalisation.
    pub normalization: Option<Normalization>,
    /// Folder only: channels and target size.
    pub folder: FolderOptions,
    /// Synthetic only: seed, sizes, noise.
    pub synthetic: SyntheticConfig,
}

/// Load a dataset of `kind` from `dir` (see the module docs for which
/// directory each kind uses).
pub fn load(kind: DatasetKind, dir: Option<&Path>, options: &LoadOptions) -> Result<Dataset> {
    let need_dir = || {
        dir.ok_or_else(|| DataError::NoDirectory {
            kind: kind.name().into(),
            hint: String::new(),
        })
    };
    let dataset = match kind {
        DatasetKind::Mnist => load_mnist_dir(&resolve_mnist_dir(dir)?, IdxFlavor::Mnist)?,
        DatasetKind::FashionMnist => load_mnist_dir(need_dir()?, IdxFlavor::FashionMnist)?,
        DatasetKind::Cifar10 => load_cifar10_dir(need_dir()?)?,
        DatasetKind::Folder => load_folder(need_dir()?, &options.folder)?,
        DatasetKind::Synthetic => synthetic(&options.synthetic)?,
    };
    match &options.normalization {
        Some(norm) => dataset.with_normalization(norm.clone()),
        None => Ok(dataset),
    }
}
