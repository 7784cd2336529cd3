//! # cnn-data
//!
//! Datasets and loaders for the `cnn` framework: everything between files
//! on disk and batches of normalised `f32` images on the host.
//!
//! Where things live:
//! - [`source`]: [`DatasetKind`] and [`load`], the one entry point the CLI
//!   uses (`mnist`, `fashion-mnist`, `cifar10`, `folder`, `synthetic`). MNIST
//!   is found through `dir` or the environment variable `CNN_MNIST_DIR`.
//! - Formats, each a byte-level parser plus a directory loader:
//!   [`idx`] (IDX bytes: [`parse_idx_images`], [`parse_idx_labels`]),
//!   [`mnist`] (MNIST / Fashion-MNIST file names, raw or gzip),
//!   [`cifar`] (CIFAR-10 binary batches: [`parse_cifar_batch`]),
//!   [`folder`] (one subfolder of PNG/JPEG images per class; one image from
//!   bytes: [`decode_image_bytes`]),
//!   [`synthetic`](mod@synthetic) (a seeded 3x32x32, 10-class set built in memory).
//! - [`dataset`]: [`Dataset`] (train and test [`ImageSet`]s, shape `[C, H,
//!   W]`, class names, default normalisation) and [`Subset`], a cheap view.
//! - [`split`](mod@split): [`Splits`] (train, val, test): validation is the last
//!   fraction of the training data (Keras's `validation_split`), fraction 0
//!   validates on test; [`Splits::limit_train`] keeps the first N images.
//! - [`normalize`]: per-channel [`Normalization`] and the standard
//!   statistics; `stats.rs` computes a set's own
//!   ([`Normalization::compute`]).
//! - [`shuffle`]: seeded generators and [`epoch_order`].
//! - [`augment`]: random crop with zero padding and horizontal flip.
//! - [`mix`]: mixup and CutMix of a whole batch ([`Mix`], [`MixDraw`]),
//!   drawn per (seed, epoch, batch), as timm's `Mixup` does them.
//! - [`loader`]: [`Loader`], which prepares [`Batch`]es on a background
//!   thread and can start at any (epoch, batch).
//! - [`files`]: reading files (gzip detected by content, decompression
//!   bounded: [`decode_maybe_gzip`]) and name lookup; the only user of `flate2`.
//! - [`error`]: [`DataError`] (names the file and the problem) and
//!   [`ParseError`] (what a byte-level parser found).
//!
//! Invariants:
//! - No allocation is sized from an untrusted header count: parsers compare
//!   the header with the bytes actually present first.
//! - Randomness is a pure function of a seed and counters: epoch `e`'s order
//!   depends only on `(seed, e)`, sample `i`'s augmentation only on
//!   `(seed, e, i)`, the synthetic set only on its config. Resuming at
//!   (epoch, batch) reproduces the run exactly.
//! - Library code returns errors rather than panicking on bad files.
//!
//! ```
//! use cnn_data::{load, split, DatasetKind, LoadOptions, Loader, LoaderConfig};
//! let mut options = LoadOptions::default();
//! options.synthetic.train = 200;
//! options.synthetic.test = 50;
//! let data = load(DatasetKind::Synthetic, None, &options).unwrap();
//! let splits = split(&data, 0.1).unwrap().limit_train(100);
//! let loader = Loader::new(splits.train, data.normalization.clone(), LoaderConfig::train(32)).unwrap();
//! for batch in loader.epoch(0) {
//!     assert_eq!(batch.shape.dims()[1..], [3, 32, 32]);
//!     loader.recycle(batch);
//! }
//! ```

pub mod augment;
pub mod cifar;
pub mod dataset;
pub mod error;
pub mod files;
pub mod folder;
pub mod idx;
pub mod loader;
pub mod mix;
pub mod mnist;
pub mod normalize;
pub mod shuffle;
pub mod source;
pub mod split;
mod stats;
pub mod synthetic;

pub use augment::{Augment, AugmentParams, CutoutBox};
pub use cifar::{CifarBatch, load_cifar10_dir, parse_cifar_batch};
pub use dataset::{Dataset, ImageSet, Pixels, Subset};
pub use error::{DataError, ParseError, Result};
pub use files::decode_maybe_gzip;
pub use folder::{FolderOptions, decode_image_bytes, load_folder, load_image};
pub use idx::{IdxImages, parse_idx_images, parse_idx_labels};
pub use loader::{Batch, EpochIter, Loader, LoaderConfig};
pub use mix::{CutBox, Mix, MixDraw};
pub use mnist::{IdxFlavor, MNIST_DIR_ENV, load_mnist_dir};
pub use normalize::Normalization;
pub use shuffle::epoch_order;
pub use source::{DatasetKind, LoadOptions, load};
pub use split::{Splits, split};
pub use synthetic::{SyntheticConfig, synthetic};
