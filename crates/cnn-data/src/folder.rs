//! Image folders: one subfolder per class, PNG or JPEG files inside.
//!
//! Layout: either `dir/<class>/<image>` (everything is training data, the
//! test split is empty) or `dir/train/<class>/<image>` plus an optional
//! `dir/test/<class>/<image>`. Class `k` is the `k`-th class subfolder of
//! the training folder in sorted name order; a test class folder must name
//! one of them. Within a class, files load in sorted name order; the
//! training images are then put in one fixed pseudo-random order (the same
//! on every load, whatever the run's seed), as Keras's
//! `image_dataset_from_directory` shuffles before its validation split. So
//! the validation tail and `--limit-train` take images of every class, not
//! the last class alone. Test images keep the sorted order.
//!
//! Entries whose names start with `.` are skipped, as are loose files next
//! to the class folders and folders nested inside a class folder. Any other
//! file in a class folder must decode as an image (the content decides, not
//! the extension), else [`DataError::NotAnImage`] names it.
//!
//! Size: without a target size every image must have the size of the first
//! one (else [`DataError::SizeMismatch`]); with [`FolderOptions::size`] every
//! image is resized (bilinear) to it. Channels: 1 (luma) or 3 (RGB, alpha
//! dropped), from [`FolderOptions::channels`] or else from the first image's
//! colour type. Normalisation: statistics computed on the training images.

use std::path::{Path, PathBuf};

use cnn_core::Shape;
use image::DynamicImage;

use crate::dataset::{Dataset, ImageSet, Pixels};
use crate::error::{DataError, Result};
use crate::files::require_dir;
use crate::normalize::Normalization;

/// Options for [`load_folder`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderOptions {
    /// 1 (grayscale) or 3 (RGB); `None` infers it from the first image.
    pub channels: Option<usize>,
    /// Resize every image to `(height, width)`; `None` requires one size.
    pub size: Option<(usize, usize)>,
}

/// Load an image folder (see the module docs for the layout).
pub fn load_folder(dir: &Path, options: &FolderOptions) -> Result<Dataset> {
    require_dir(dir)?;
    if let Some(c) = options.channels.filter(|&c| c != 1 && c != 3) {
        return Err(DataError::value("channels", format!("{c}: must be 1 or 3")));
    }
    let max = u32::MAX as usize;
    if let Some((h, w)) = options
        .size
        .filter(|&(h, w)| h == 0 || w == 0 || h > max || w > max)
    {
        return Err(DataError::value(
            "size",
            format!("{h}x{w} is not a valid image size"),
        ));
    }
    let (train_dir, test_dir) = if dir.join("train").is_dir() {
        let test = dir.join("test");
        (dir.join("train"), test.is_dir().then_some(test))
    } else {
        (dir.to_path_buf(), None)
    };
    let classes = subfolders(&train_dir)?;
    if classes.is_empty() {
        return Err(DataError::Empty {
            path: train_dir,
            message: "no class subfolders".into(),
        });
    }
    let class_names: Vec<String> = classes.iter().map(|(n, _)| n.clone()).collect();
    let mut decoder = Decoder {
        channels: options.channels,
        size: options.size.map(|(h, w)| (w as u32, h as u32)),
        first: None,
    };
    let mut train = Collected::default();
    for (k, (_, path)) in classes.iter().enumerate() {
        decoder.read_class(path, k as u32, &mut train)?;
    }
    let mut test = Collected::default();
    if let Some(test_dir) = &test_dir {
        for (name, path) in subfolders(test_dir)? {
            let k =
                class_names
                    .iter()
                    .position(|n| *n == name)
                    .ok_or_else(|| DataError::Empty {
                        path: path.clone(),
                        message: format!(
                            "test class `{name}` has no training folder in {}",
                            train_dir.display()
                        ),
                    })?;
            decoder.read_class(&path, k as u32, &mut test)?;
        }
    }
    let shape = decoder.shape();
    let train = train.mixed();
    let train = ImageSet::new(shape.clone(), Pixels::U8(train.pixels), train.labels)?;
    let test = ImageSet::new(shape, Pixels::U8(test.pixels), test.labels)?;
    let norm = Normalization::compute(&train);
    Dataset::new("folder", class_names, train, test, norm)
}

#[derive(Default)]
struct Collected {
    pixels: Vec<u8>,
    labels: Vec<u32>,
}

/// The seed of the fixed order of a folder's training images.
const FOLDER_ORDER_SEED: u64 = 0x666f_6c64_6572; // "folder"

impl Collected {
    /// The images in the fixed pseudo-random order of the module docs,
    /// permuted in place (one image of scratch, not a second copy of the
    /// set).
    fn mixed(mut self) -> Collected {
        let n = self.labels.len();
        let image = self.pixels.len().checked_div(n).unwrap_or(0);
        // Image `i` of the result is image `order[i]` of the files.
        let order = crate::shuffle::epoch_order(FOLDER_ORDER_SEED, 0, n);
        let mut placed = vec![false; n];
        let mut saved = vec![0u8; image];
        for start in 0..n {
            if placed[start] {
                continue;
            }
            // Follow the cycle through `start`, moving each image once.
            saved.copy_from_slice(&self.pixels[start * image..(start + 1) * image]);
            let mut to = start;
            loop {
                placed[to] = true;
                let from = order[to];
                if from == start {
                    self.pixels[to * image..(to + 1) * image].copy_from_slice(&saved);
                    break;
                }
                self.pixels
                    .copy_within(from * image..(from + 1) * image, to * image);
                to = from;
            }
        }
        self.labels = order.iter().map(|&i| self.labels[i]).collect();
        self
    }
}

struct Decoder {
    channels: Option<usize>,
    /// Target (width, height).
    size: Option<(u32, u32)>,
    /// The first image decoded and its (width, height).
    first: Option<(PathBuf, (u32, u32))>,
}

impl Decoder {
    fn shape(&self) -> Shape {
        let (w, h) = self.first.as_ref().map_or((1, 1), |f| f.1);
        Shape::from([self.channels.unwrap_or(1), h as usize, w as usize])
    }

    fn read_class(&mut self, class_dir: &Path, label: u32, out: &mut Collected) -> Result<()> {
        let files = entries(class_dir)?
            .into_iter()
            .filter(|p| !p.is_dir())
            .collect::<Vec<_>>();
        if files.is_empty() {
            return Err(DataError::Empty {
                path: class_dir.to_path_buf(),
                message: "class folder holds no images".into(),
            });
        }
        for file in files {
            self.decode_into(&file, &mut out.pixels)?;
            out.labels.push(label);
        }
        Ok(())
    }

    /// Decode `path` and append it as `[C, H, W]` bytes.
    fn decode_into(&mut self, path: &Path, out: &mut Vec<u8>) -> Result<()> {
        let reader = image::ImageReader::open(path)
            .map_err(|e| DataError::io(path, e))?
            .with_guessed_format()
            .map_err(|e| DataError::io(path, e))?;
        let img = decode_limited(reader, path)?;
        self.convert_into(img, path, out)
    }

    /// Check `img` against the folder's size, convert and resize it, and
    /// append it as `[C, H, W]` bytes; `path` names it in errors.
    fn convert_into(
        &mut self,
        mut img: DynamicImage,
        path: &Path,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let channels = *self
            .channels
            .get_or_insert(if img.color().has_color() { 3 } else { 1 });
        let found = (img.width(), img.height());
        match (self.size, &self.first) {
            (Some((w, h)), _) => {
                if found != (w, h) {
                    img = img.resize_exact(w, h, image::imageops::FilterType::Triangle);
                }
            }
            (None, Some((first, expected))) => {
                if found != *expected {
                    return Err(DataError::SizeMismatch {
                        path: path.to_path_buf(),
                        first: first.clone(),
                        expected: *expected,
                        found,
                    });
                }
            }
            (None, None) => {}
        }
        if self.first.is_none() {
            self.first = Some((path.to_path_buf(), (img.width(), img.height())));
        }
        append_chw(&img, channels, out);
        Ok(())
    }
}

/// Largest width or height accepted from an image file.
pub const MAX_IMAGE_SIDE: u32 = 1 << 14;
/// Most bytes the decoder may allocate for one image (256 MiB): a small
/// file whose header claims a huge image is refused, not allocated.
pub const MAX_IMAGE_ALLOC: u64 = 256 << 20;

/// Decode with [`MAX_IMAGE_SIDE`] and [`MAX_IMAGE_ALLOC`] as limits. The
/// size is read from the header first: an image beyond the limits is
/// [`DataError::ImageTooLarge`], with its size, before any pixel is
/// decoded; an unknown format or a decoding failure is
/// [`DataError::NotAnImage`].
fn decode_limited<R: std::io::BufRead + std::io::Seek>(
    mut reader: image::ImageReader<R>,
    path: &Path,
) -> Result<DynamicImage> {
    use image::ImageDecoder;
    let not_image = |reason: String| DataError::NotAnImage {
        path: path.to_path_buf(),
        reason,
    };
    if reader.format().is_none() {
        return Err(not_image(
            "unrecognised format; PNG and JPEG are supported".into(),
        ));
    }
    // The header is read under the allocation limit alone, so that the side
    // limit does not refuse the image before its size is known.
    let mut header_limits = image::Limits::default();
    header_limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(header_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| not_image(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    let bytes = decoder.total_bytes();
    let too_large = || DataError::ImageTooLarge {
        path: path.to_path_buf(),
        width,
        height,
        // `total_bytes` saturates.
        decoded_bytes: (bytes < u64::MAX).then_some(bytes),
        max_side: MAX_IMAGE_SIDE,
        max_bytes: MAX_IMAGE_ALLOC,
    };
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE || bytes > MAX_IMAGE_ALLOC {
        return Err(too_large());
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    // As `ImageReader::decode` does: the image itself counts against the
    // allocation limit, what remains bounds the decoder's own buffers.
    limits.reserve(bytes).map_err(|_| too_large())?;
    let limited = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => too_large(),
        e => not_image(e.to_string()),
    };
    decoder.set_limits(limits).map_err(limited)?;
    DynamicImage::from_decoder(decoder).map_err(limited)
}

/// Append `img` as `channels` planes of bytes.
fn append_chw(img: &DynamicImage, channels: usize, out: &mut Vec<u8>) {
    if channels == 1 {
        out.extend_from_slice(img.to_luma8().as_raw());
    } else {
        let rgb = img.to_rgb8();
        let raw = rgb.as_raw();
        for c in 0..3 {
            out.extend(raw.iter().skip(c).step_by(3));
        }
    }
}

/// Non-hidden entries of `dir`, sorted by file name.
fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let read = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

/// Subfolders of `dir` as (name, path), sorted by name.
fn subfolders(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    Ok(entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, p)
        })
        .collect())
}

/// Decode one image file into normalised `[C, H, W]` f32 values for a model
/// whose input is `shape`: converted to `shape`'s channel count (1 = gray,
/// 3 = RGB) and resized to its height and width when they differ.
pub fn load_image(path: &Path, shape: &Shape, norm: &Normalization) -> Result<Vec<f32>> {
    let mut decoder = image_decoder(shape)?;
    let mut bytes = Vec::with_capacity(shape.numel());
    decoder.decode_into(path, &mut bytes)?;
    to_normalized(bytes, shape, norm)
}

/// [`load_image`] for bytes already in memory (PNG or JPEG, detected by
/// content); `origin` names them in errors. Never panics, whatever the
/// bytes, and never allocates more than [`MAX_IMAGE_ALLOC`] per image.
pub fn decode_image_bytes(
    bytes: &[u8],
    origin: &Path,
    shape: &Shape,
    norm: &Normalization,
) -> Result<Vec<f32>> {
    let mut decoder = image_decoder(shape)?;
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DataError::io(origin, e))?;
    let img = decode_limited(reader, origin)?;
    let mut pixels = Vec::with_capacity(shape.numel());
    decoder.convert_into(img, origin, &mut pixels)?;
    to_normalized(pixels, shape, norm)
}

/// A decoder producing images of `shape` (`[C, H, W]`, C = 1 or 3).
fn image_decoder(shape: &Shape) -> Result<Decoder> {
    let &[c, h, w] = shape.dims() else {
        return Err(DataError::value(
            "image shape",
            format!("expected [C, H, W], got {shape}"),
        ));
    };
    if c != 1 && c != 3 {
        return Err(DataError::value(
            "image shape",
            format!("{c} channels: only 1 and 3 are images"),
        ));
    }
    let (w32, h32) = (
        u32::try_from(w).map_err(|_| DataError::value("image width", w.to_string()))?,
        u32::try_from(h).map_err(|_| DataError::value("image height", h.to_string()))?,
    );
    Ok(Decoder {
        channels: Some(c),
        size: Some((w32, h32)),
        first: None,
    })
}

/// One image's `[C, H, W]` bytes to normalised f32 values.
fn to_normalized(bytes: Vec<u8>, shape: &Shape, norm: &Normalization) -> Result<Vec<f32>> {
    let set = ImageSet::new(shape.clone(), Pixels::U8(bytes), vec![0])?;
    let mut out = vec![0.0; shape.numel()];
    set.write_image(0, norm, &mut out);
    Ok(out)
}
