//! The output directory of `cnn inspect`: the PNGs (file names from
//! [`crate::run_dir::inspect`]), `inspect.json` (what was predicted and
//! drawn, for scripts) and the self-contained `inspect.html`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cnn_data::Normalization;
use serde::Serialize;

use super::cam::min_max_normalized;
use super::picture::{Canvas, grey, grid, hot, jet, scale_for};
use super::{Filters, Inspection};
use crate::error::{Result, TrainError};
use crate::io::write_atomic;
use crate::run_dir::inspect as names;

/// The longer side of the input-sized pictures (input, Grad-CAM, saliency).
const IMAGE_PX: usize = 224;
/// The longer side of one feature-map or filter tile.
const TILE_PX: usize = 48;
/// How many classes the page and `inspect.json` rank.
const TOP: usize = 5;

/// One inspected image: where it came from, its pixels (normalised, as the
/// model saw them) and what [`super::inspect_image`] found.
#[derive(Debug, Clone)]
pub struct InspectedImage {
    /// An image file's path, or `test[3]` for a dataset image.
    pub source: String,
    /// The dataset's label, for a dataset image.
    pub label: Option<usize>,
    pub pixels: Vec<f32>,
    pub inspection: Inspection,
}

#[derive(Debug, Serialize)]
struct Ranked {
    class: usize,
    name: String,
    probability: f32,
    /// For the page: the probability in per cent, and its bar's width.
    percent: String,
    bar_px: u32,
}

#[derive(Debug, Serialize)]
struct GradCamRecord {
    class: usize,
    class_name: String,
    layer: String,
    layer_shape: [usize; 3],
    file: String,
}

#[derive(Debug, Serialize)]
struct MapRecord {
    node: String,
    kind: &'static str,
    shape: [usize; 3],
    file: String,
}

#[derive(Debug, Serialize)]
struct ImageRecord {
    source: String,
    label: Option<usize>,
    label_name: Option<String>,
    predicted: usize,
    predicted_name: String,
    top: Vec<Ranked>,
    probabilities: Vec<f32>,
    input: String,
    gradcam: GradCamRecord,
    saliency: String,
    feature_maps: Vec<MapRecord>,
}

/// What `inspect.json` holds (and the page shows).
#[derive(Debug, Serialize)]
pub(super) struct Record {
    title: String,
    weights: String,
    classes: Vec<String>,
    filters: Option<String>,
    images: Vec<ImageRecord>,
}

/// The image as the model's input shows it: the normalisation undone, grey
/// for one channel, RGB for three (the first channel's grey otherwise).
fn input_canvas(
    pixels: &[f32],
    [c, h, w]: [usize; 3],
    norm: &Normalization,
    scale: usize,
) -> Canvas {
    let plane = h * w;
    let value = |k: usize, p: usize| {
        let (mean, std) = (
            norm.mean.get(k).copied().unwrap_or(0.0),
            norm.std.get(k).copied().unwrap_or(1.0),
        );
        (pixels[k * plane + p] * std + mean).clamp(0.0, 1.0)
    };
    let rgb: Vec<[u8; 3]> = (0..plane)
        .map(|p| {
            if c == 3 {
                [0, 1, 2].map(|k| (value(k, p) * 255.0).round() as u8)
            } else {
                grey(value(0, p))
            }
        })
        .collect();
    Canvas::from_pixels(&rgb, h, w, scale)
}

/// One tile per channel, each scaled to [0, 1] on its own.
fn channel_grid(values: &[f32], [c, h, w]: [usize; 3]) -> Canvas {
    let scale = scale_for(h, w, TILE_PX);
    let tiles: Vec<Canvas> = values
        .chunks_exact((h * w).max(1))
        .take(c)
        .map(|plane| Canvas::from_map(&min_max_normalized(plane), h, w, scale, grey))
        .collect();
    grid(&tiles, (c as f64).sqrt().ceil() as usize, 2)
}

/// The first layer's filters: RGB for three input channels, else the mean
/// over the input channels in grey; each filter scaled to [0, 1] on its own.
fn filters_canvas(f: &Filters) -> Canvas {
    let [o, c, kh, kw] = f.shape;
    let plane = kh * kw;
    let scale = scale_for(kh, kw, TILE_PX);
    let tiles: Vec<Canvas> = f
        .values
        .chunks_exact((c * plane).max(1))
        .take(o)
        .map(|filter| {
            let unit = min_max_normalized(filter);
            let pixels: Vec<[u8; 3]> = (0..plane)
                .map(|p| {
                    if c == 3 {
                        [0, 1, 2].map(|k| (unit[k * plane + p] * 255.0).round() as u8)
                    } else {
                        grey((0..c).map(|k| unit[k * plane + p]).sum::<f32>() / c as f32)
                    }
                })
                .collect();
            Canvas::from_pixels(&pixels, kh, kw, scale)
        })
        .collect();
    grid(&tiles, (o as f64).sqrt().ceil() as usize, 2)
}

fn save(
    out: &Path,
    name: &str,
    canvas: &Canvas,
    data: &mut BTreeMap<String, Vec<u8>>,
) -> Result<()> {
    let path = out.join(name);
    let bytes = canvas
        .png()
        .map_err(|e| TrainError::bad_file(&path, format!("PNG encoding: {e}")))?;
    write_atomic(&path, &bytes)?;
    data.insert(name.to_string(), bytes);
    Ok(())
}

/// What the pictures and the page need besides the inspections.
#[derive(Debug, Clone, Copy)]
pub struct PageInfo<'a> {
    /// The page's heading.
    pub title: &'a str,
    /// The weights inspected (named on the page).
    pub weights: &'a Path,
    pub class_names: &'a [String],
    /// The data's normalisation (undone to show the input).
    pub normalization: &'a Normalization,
    /// The model's input, `[C, H, W]`.
    pub input_shape: [usize; 3],
}

/// Write the inspection of `images` into `out` (an existing directory):
/// the PNGs, `inspect.json` and `inspect.html`. Returns the page's path.
pub fn write_inspection(
    out: &Path,
    info: &PageInfo<'_>,
    images: &[InspectedImage],
    filters: Option<&Filters>,
) -> Result<PathBuf> {
    let PageInfo {
        title,
        weights,
        class_names,
        normalization: norm,
        input_shape,
    } = *info;
    let mut data = BTreeMap::new();
    let filters_file = match filters {
        Some(f) => {
            save(out, names::FILTERS_PNG, &filters_canvas(f), &mut data)?;
            Some(names::FILTERS_PNG.to_string())
        }
        None => None,
    };
    let class_name = |k: usize| class_names.get(k).cloned().unwrap_or_else(|| k.to_string());
    let [_, h, w] = input_shape;
    let scale = scale_for(h, w, IMAGE_PX);
    let mut records = Vec::new();
    for (i, im) in images.iter().enumerate() {
        let ins = &im.inspection;
        let input = input_canvas(&im.pixels, input_shape, norm, scale);
        let input_file = names::image_file(i, "input");
        save(out, &input_file, &input, &mut data)?;
        let heat = Canvas::from_map(&min_max_normalized(&ins.cam_upsampled), h, w, scale, jet);
        let cam_file = names::image_file(i, "gradcam");
        // pytorch-grad-cam's show_cam_on_image: half heat map, half image.
        save(out, &cam_file, &heat.blend(&input, 0.5), &mut data)?;
        let saliency_file = names::image_file(i, "saliency");
        let sal = Canvas::from_map(&min_max_normalized(&ins.saliency), h, w, scale, hot);
        save(out, &saliency_file, &sal, &mut data)?;
        let mut maps = Vec::new();
        for m in &ins.feature_maps {
            let file = names::image_file(i, &format!("map-{}", names::file_safe(&m.node)));
            save(out, &file, &channel_grid(&m.values, m.shape), &mut data)?;
            maps.push(MapRecord {
                node: m.node.clone(),
                kind: m.kind,
                shape: m.shape,
                file,
            });
        }
        let mut order: Vec<usize> = (0..ins.probabilities.len()).collect();
        order.sort_by(|&a, &b| ins.probabilities[b].total_cmp(&ins.probabilities[a]));
        let top = order
            .iter()
            .take(TOP)
            .map(|&k| Ranked {
                class: k,
                name: class_name(k),
                probability: ins.probabilities[k],
                percent: format!("{:.2}%", ins.probabilities[k] * 100.0),
                bar_px: (ins.probabilities[k].clamp(0.0, 1.0) * 200.0).round() as u32,
            })
            .collect();
        records.push(ImageRecord {
            source: im.source.clone(),
            label: im.label,
            label_name: im.label.map(class_name),
            predicted: ins.predicted,
            predicted_name: class_name(ins.predicted),
            top,
            probabilities: ins.probabilities.clone(),
            input: input_file,
            gradcam: GradCamRecord {
                class: ins.class,
                class_name: class_name(ins.class),
                layer: ins.layer.clone(),
                layer_shape: ins.layer_shape,
                file: cam_file,
            },
            saliency: saliency_file,
            feature_maps: maps,
        });
    }
    let record = Record {
        title: title.to_string(),
        weights: weights.display().to_string(),
        classes: class_names.to_vec(),
        filters: filters_file,
        images: records,
    };
    let json_path = out.join(names::JSON);
    let json = serde_json::to_string_pretty(&record)
        .map_err(|e| TrainError::bad_file(&json_path, e.to_string()))?;
    write_atomic(&json_path, json.as_bytes())?;
    let html_path = out.join(names::HTML);
    let html = super::page::render(&record, &data)
        .map_err(|e| TrainError::bad_file(&html_path, e.to_string()))?;
    write_atomic(&html_path, html.as_bytes())?;
    Ok(html_path)
}
