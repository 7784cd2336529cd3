//! Chart text as it lands in a bitmap: glyph positions measured in
//! rendered pixels, through the charts' own path ([`chart`]'s axis titles,
//! the y one rotated) and for plain text elements in every rotation,
//! against the positions the font's advances and kerning give.

use std::ops::Range;

use ab_glyph::{Font as _, ScaleFont as _, point};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::plot::chart::chart;
use crate::plot::text::{Typeset, ensure_font, font, text_style};

/// The size [`chart`] draws axis titles at.
const AXIS_TITLE_SIZE: f32 = 15.0;

/// How far (in pixels) a glyph's ink may sit from where the font puts it,
/// relative to the first glyph. Centroids of anti-aliased ink are good to
/// about a tenth of a pixel (laid out right, these tests measure at most
/// 0.11); plotters' glyphs, which lose their left side bearing and the
/// pen's fraction, are off by 1 to 1.3 pixels at 13-15 px and 2.9 at
/// 40 px, or touch ("ep" in "ep och") and count as one.
const TOLERANCE: f64 = 0.5;

/// What a test draws.
enum Scene<'a> {
    /// A [`chart`] with these axis titles (x horizontal, y rotated).
    Chart { x_desc: &'a str, y_desc: &'a str },
    /// A text element at `size`, rotated by `rotation`.
    Text {
        text: &'a str,
        size: f32,
        rotation: FontTransform,
    },
}

const W: usize = 360;
const H: usize = 260;

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, scene: &Scene) {
    root.fill(&WHITE).unwrap();
    match scene {
        Scene::Chart { x_desc, y_desc } => {
            chart(root, "", 0.0..1.0, 0.0..1.0, x_desc, y_desc).unwrap();
        }
        Scene::Text {
            text,
            size,
            rotation,
        } => {
            let style = text_style(f64::from(*size), &BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center))
                .transform(rotation.clone());
            let at = (W as i32 / 2, H as i32 / 2);
            root.draw(&Text::new(text.to_string(), at, style)).unwrap();
        }
    }
    root.present().unwrap();
}

/// `scene` drawn on a white RGB bitmap, through [`Typeset`] or, with
/// `typeset` false, through plotters' own text drawing.
fn render(scene: &Scene, typeset: bool) -> Bitmap {
    ensure_font();
    let mut rgb = vec![255u8; W * H * 3];
    {
        let bitmap = BitMapBackend::with_buffer(&mut rgb, (W as u32, H as u32));
        if typeset {
            draw(&Typeset::new(bitmap).into_drawing_area(), scene);
        } else {
            draw(&bitmap.into_drawing_area(), scene);
        }
    }
    Bitmap { rgb }
}

struct Bitmap {
    rgb: Vec<u8>,
}

impl Bitmap {
    /// How dark the pixel is, 0 (white) to 1 (black).
    fn ink(&self, x: usize, y: usize) -> f64 {
        let i = (y * W + x) * 3;
        let min = self.rgb[i..i + 3].iter().copied().min().unwrap_or(255);
        f64::from(255 - min) / 255.0
    }

    /// Ink summed across `rows` for each column, and whether the column
    /// holds a pixel at least half inked.
    fn columns(&self, rows: Range<usize>) -> (Vec<f64>, Vec<bool>) {
        (0..W)
            .map(|x| {
                let ink = rows.clone().map(|y| self.ink(x, y));
                (ink.clone().sum::<f64>(), ink.fold(0.0, f64::max) >= 0.5)
            })
            .unzip()
    }

    /// Ink summed across `cols` for each row, and whether the row holds a
    /// pixel at least half inked.
    fn rows(&self, cols: Range<usize>) -> (Vec<f64>, Vec<bool>) {
        (0..H)
            .map(|y| {
                let ink = cols.clone().map(|x| self.ink(x, y));
                (ink.clone().sum::<f64>(), ink.fold(0.0, f64::max) >= 0.5)
            })
            .unzip()
    }
}

/// The last run of consecutive non-zero entries of `profile`.
fn last_run(profile: &[f64]) -> Range<usize> {
    let end = profile.iter().rposition(|&v| v > 0.0).expect("some ink") + 1;
    let start = profile[..end]
        .iter()
        .rposition(|&v| v == 0.0)
        .map_or(0, |i| i + 1);
    start..end
}

/// The ink centroids of the glyphs along `profile`, the ink of each
/// column (or row) of `pixels` pixels. Glyphs are told apart by their
/// cores, the runs of columns holding a pixel at least half inked (their
/// anti-aliased fringes may touch); the columns between two cores are
/// split at the middle, a middle column shared half and half.
fn centroids(profile: &[f64], core: &[bool]) -> Vec<f64> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, &c) in core.iter().enumerate() {
        match runs.last_mut() {
            Some((_, end)) if c && *end == i => *end = i + 1,
            _ if c => runs.push((i, i + 1)),
            _ => {}
        }
    }
    // Per glyph, the weight each column's ink counts with.
    let share = |g: usize, i: usize| -> f64 {
        let (start, end) = runs[g];
        let lo = if g == 0 {
            0.0
        } else {
            (runs[g - 1].1 + start) as f64 / 2.0
        };
        let hi = match runs.get(g + 1) {
            Some(&(next, _)) => (end + next) as f64 / 2.0,
            None => profile.len() as f64,
        };
        // Column i covers [i, i + 1); the glyph owns [lo, hi).
        (hi.min(i as f64 + 1.0) - lo.max(i as f64)).clamp(0.0, 1.0)
    };
    (0..runs.len())
        .map(|g| {
            let (mass, moment) = profile
                .iter()
                .enumerate()
                .fold((0.0, 0.0), |(m, s), (i, &v)| {
                    let w = v * share(g, i);
                    (m + w, s + w * (i as f64 + 0.5))
                });
            moment / mass
        })
        .collect()
}

/// The ink centroids of the glyphs of `text` at `size` along the line,
/// as the font places them: pen position (advances and kerning) plus the
/// glyph's own centroid.
fn font_centroids(text: &str, size: f32) -> Vec<f64> {
    let scaled = font().expect("the embedded font parses").as_scaled(size);
    let mut out = Vec::new();
    let (mut pen, mut prev) = (0.0f64, None);
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(prev) = prev {
            pen += f64::from(scaled.kern(prev, id));
        }
        prev = Some(id);
        let glyph = id.with_scale_and_position(size, point(0.0, 0.0));
        if let Some(outline) = scaled.outline_glyph(glyph) {
            let left = f64::from(outline.px_bounds().min.x);
            let (mut mass, mut moment) = (0.0, 0.0);
            outline.draw(|x, _, coverage| {
                mass += f64::from(coverage);
                moment += f64::from(coverage) * (left + f64::from(x) + 0.5);
            });
            out.push(pen + moment / mass);
        }
        pen += f64::from(scaled.h_advance(id));
    }
    out
}

/// How far the measured glyph centroids (along the line, in text order)
/// stray from the font's, relative to the first glyph; infinite when the
/// glyph count is off (glyphs that touch, or stray ink).
fn stray(measured: &[f64], text: &str, size: f32) -> f64 {
    let expected = font_centroids(text, size);
    if measured.len() != expected.len() {
        return f64::INFINITY;
    }
    measured
        .iter()
        .zip(&expected)
        .map(|(m, e)| ((m - measured[0]) - (e - expected[0])).abs())
        .fold(0.0, f64::max)
}

/// Centroids of a horizontal line of text: the bottom-most band of inked
/// rows (a chart's x title, or the only text).
fn horizontal(bitmap: &Bitmap) -> Vec<f64> {
    let band = last_run(&bitmap.rows(0..W).0);
    let (ink, core) = bitmap.columns(band);
    centroids(&ink, &core)
}

/// Centroids of text rotated by 270° (read bottom to top): the left-most
/// band of inked columns (a chart's y title, or the only text), in text
/// order.
fn rotated_270(bitmap: &Bitmap) -> Vec<f64> {
    let columns = bitmap.columns(0..H).0;
    let start = columns.iter().position(|&v| v > 0.0).expect("some ink");
    let len = columns[start..]
        .iter()
        .position(|&v| v == 0.0)
        .unwrap_or(W - start);
    let (mut ink, mut core) = bitmap.rows(start..start + len);
    ink.reverse();
    core.reverse();
    centroids(&ink, &core)
}

/// Centroids of text rotated by 90° (read top to bottom).
fn rotated_90(bitmap: &Bitmap) -> Vec<f64> {
    let (ink, core) = bitmap.rows(0..W);
    centroids(&ink, &core)
}

/// How far the glyphs of `scene` stray, through [`Typeset`] or not.
fn scene_stray(scene: &Scene, typeset: bool) -> Vec<f64> {
    let bitmap = render(scene, typeset);
    match scene {
        Scene::Chart { x_desc, y_desc } => vec![
            stray(&horizontal(&bitmap), x_desc, AXIS_TITLE_SIZE),
            stray(&rotated_270(&bitmap), y_desc, AXIS_TITLE_SIZE),
        ],
        Scene::Text {
            text,
            size,
            rotation,
        } => {
            let measured = match rotation {
                FontTransform::None => horizontal(&bitmap),
                FontTransform::Rotate90 => rotated_90(&bitmap),
                FontTransform::Rotate270 => rotated_270(&bitmap),
                FontTransform::Rotate180 => {
                    let mut c = horizontal(&bitmap);
                    c.reverse();
                    c.iter().map(|x| -x).collect()
                }
            };
            vec![stray(&measured, text, *size)]
        }
    }
}

#[test]
fn chart_axis_titles_keep_the_fonts_spacing() {
    for (x_desc, y_desc) in [("epoch", "epoch"), ("class0", "accuracy")] {
        let scene = Scene::Chart { x_desc, y_desc };
        let fixed = scene_stray(&scene, true);
        assert!(
            fixed.iter().all(|&s| s <= TOLERANCE),
            "{x_desc} / {y_desc}: glyphs off by {fixed:?} px (inf: glyphs touch)"
        );
        // plotters' own text drawing puts "epoch" as "ep och" (the test
        // sees it). Should a release place glyphs right, this fails and
        // `Typeset` can go.
        let plain = scene_stray(&scene, false);
        assert!(
            plain.iter().all(|&s| s > TOLERANCE),
            "{x_desc} / {y_desc}: plotters now places glyphs right ({plain:?} px)"
        );
    }
}

#[test]
fn text_keeps_the_fonts_spacing_in_every_rotation() {
    use FontTransform::{Rotate90, Rotate180, Rotate270};
    for rotation in [FontTransform::None, Rotate90, Rotate180, Rotate270] {
        for (text, size) in [("epoch", 14.0), ("epoch", 40.0), ("class0", 13.0)] {
            let scene = Scene::Text {
                text,
                size,
                rotation: rotation.clone(),
            };
            let fixed = scene_stray(&scene, true)[0];
            assert!(
                fixed <= TOLERANCE,
                "{text} at {size} px: glyphs off by {fixed} px (inf: glyphs touch)"
            );
        }
    }
    let scene = Scene::Text {
        text: "epoch",
        size: 40.0,
        rotation: FontTransform::None,
    };
    let plain = scene_stray(&scene, false)[0];
    assert!(plain > 1.0, "plotters' glyphs off by {plain} px only");
}
