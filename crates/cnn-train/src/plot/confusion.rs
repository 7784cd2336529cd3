//! The confusion matrix as a heat map (PNG only), its text placed glyph by
//! glyph at each glyph's left side bearing (plotters crowds glyphs, see
//! `Bearings`).

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::metrics::ConfusionMatrix;
use crate::plot::render::{Ctx, DrawResult, Figure};
use crate::plot::text::{FONT_BYTES, text_style};

/// Left side bearings of the embedded font's glyphs, read with `ab_glyph`
/// (the library plotters rasterizes with).
///
/// plotters 0.3.7 draws a string's glyphs (through `ab_glyph`) at the pen
/// position without their left side bearing (it drops the outline's
/// `px_bounds().min.x`), so a glyph with a wide bearing crowds the one
/// before it: at 14 px "class0" reads "dass0", "epoch" reads "ep och".
/// [`draw_glyphs`] puts each glyph back at pen + bearing.
struct Bearings {
    font: ab_glyph::FontRef<'static>,
    /// Ascender - descender, the height `ab_glyph` scales to the font size
    /// in pixels.
    height: f64,
}

impl Bearings {
    fn parse(font: &'static [u8]) -> Option<Self> {
        use ab_glyph::Font as _;
        let font = ab_glyph::FontRef::try_from_slice(font).ok()?;
        let height = f64::from(font.height_unscaled());
        Some(Bearings { font, height }).filter(|b| b.height > 0.0)
    }

    /// The left side bearing of `c` in font units (0 when unknown).
    fn units(&self, c: char) -> f64 {
        use ab_glyph::Font as _;
        match self.font.glyph_id(c) {
            ab_glyph::GlyphId(0) => 0.0,
            glyph => f64::from(self.font.h_side_bearing_unscaled(glyph)),
        }
    }

    /// The left side bearing of `c` in pixels at `size`, as `ab_glyph`
    /// rasterizes it (the outline's pixel bounds start at its floor).
    fn pixels(&self, c: char, size: f64) -> i32 {
        (self.units(c) * size / self.height).floor() as i32
    }
}

fn bearings() -> Option<&'static Bearings> {
    static BEARINGS: OnceLock<Option<Bearings>> = OnceLock::new();
    BEARINGS
        .get_or_init(|| Bearings::parse(FONT_BYTES))
        .as_ref()
}

/// Draw horizontal `text` anchored at `pos` like a [`Text`] element, one
/// glyph at a time at its left side bearing (see [`Bearings`]). For
/// bitmaps only: an SVG viewer lays text out itself and needs no help.
fn draw_glyphs<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    (x, y): (i32, i32),
    size: f64,
    color: &RGBColor,
    anchor: Pos,
) -> DrawResult {
    let Some(bearings) = bearings() else {
        let style = text_style(size, color).pos(anchor);
        return area.draw(&Text::new(text.to_string(), (x, y), style)).ctx();
    };
    let style = text_style(size, color).pos(Pos::new(HPos::Left, anchor.v_pos));
    let width = |s: &str| area.estimate_text_size(s, &style).map(|(w, _)| w as i32);
    let total = width(text).ctx()?;
    let left = match anchor.h_pos {
        HPos::Left => x,
        HPos::Center => x - total / 2,
        HPos::Right => x - total,
    };
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            continue;
        }
        // The prefix's width is the pen position, kerning included.
        let pen = width(&text[..i]).ctx()?;
        let at = (left + pen + bearings.pixels(c, size), y);
        area.draw(&Text::new(c.to_string(), at, style.clone()))
            .ctx()?;
    }
    Ok(())
}

pub(super) struct ConfusionFigure<'a> {
    pub(super) matrix: &'a ConfusionMatrix,
    pub(super) class_names: &'a [String],
    pub(super) title: &'a str,
}

const CM_LEFT: u32 = 150;
const CM_TOP: u32 = 90;
const CM_RIGHT: u32 = 40;
const CM_BOTTOM: u32 = 80;

impl ConfusionFigure<'_> {
    fn cell(&self) -> u32 {
        (720 / self.matrix.classes() as u32).clamp(1, 64)
    }

    fn name(&self, c: usize, max_chars: usize) -> String {
        let name = if self.class_names.len() == self.matrix.classes() {
            self.class_names[c].clone()
        } else {
            c.to_string()
        };
        if name.chars().count() > max_chars {
            let mut s: String = name.chars().take(max_chars.saturating_sub(1)).collect();
            s.push('…');
            s
        } else {
            name
        }
    }
}

/// White to dark blue ("Blues").
fn blues(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let lerp = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * t).round() as u8;
    RGBColor(lerp(247, 8), lerp(251, 48), lerp(255, 107))
}

impl Figure for ConfusionFigure<'_> {
    fn size(&self) -> (u32, u32) {
        let k = self.matrix.classes() as u32;
        let grid = k * self.cell();
        (
            (CM_LEFT + grid + CM_RIGHT).max(420),
            CM_TOP + grid + CM_BOTTOM,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let k = self.matrix.classes();
        let cell = self.cell() as i32;
        let (left, top) = (CM_LEFT as i32, CM_TOP as i32);
        let grid = k as i32 * cell;
        let (w, _) = root.dim_in_pixel();
        let center = Pos::new(HPos::Center, VPos::Center);
        // This figure is only ever a PNG: text goes glyph by glyph.
        draw_glyphs(root, self.title, (w as i32 / 2, 24), 22.0, &BLACK, center)?;
        draw_glyphs(
            root,
            "predicted class",
            (left + grid / 2, top + grid + 55),
            16.0,
            &BLACK,
            center,
        )?;
        draw_glyphs(
            root,
            "true class ↓",
            (left - 10, top - 30),
            16.0,
            &BLACK,
            Pos::new(HPos::Right, VPos::Center),
        )?;

        let label_size = (cell as f64 * 0.45).clamp(8.0, 14.0);
        for c in 0..k {
            let row_total: u64 = (0..k).map(|p| self.matrix.count(c, p)).sum();
            let y0 = top + c as i32 * cell;
            for p in 0..k {
                let x0 = left + p as i32 * cell;
                let n = self.matrix.count(c, p);
                let frac = if row_total == 0 {
                    0.0
                } else {
                    n as f64 / row_total as f64
                };
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell, y0 + cell)],
                    blues(frac).filled(),
                ))
                .ctx()?;
                if cell >= 20 {
                    let digits = n.to_string();
                    let size = (cell as f64 * 0.36)
                        .min(16.0)
                        .min(cell as f64 * 1.6 / digits.len() as f64);
                    let color = if frac > 0.5 { WHITE } else { BLACK };
                    draw_glyphs(
                        root,
                        &digits,
                        (x0 + cell / 2, y0 + cell / 2),
                        size,
                        &color,
                        center,
                    )?;
                }
            }
            if cell >= 10 {
                draw_glyphs(
                    root,
                    &self.name(c, 18),
                    (left - 8, y0 + cell / 2),
                    label_size,
                    &BLACK,
                    Pos::new(HPos::Right, VPos::Center),
                )?;
                let max_chars = ((cell as f64 / (label_size * 0.6)).floor() as usize).max(1);
                draw_glyphs(
                    root,
                    &self.name(c, max_chars),
                    (left + c as i32 * cell + cell / 2, top + grid + 8),
                    label_size,
                    &BLACK,
                    Pos::new(HPos::Center, VPos::Top),
                )?;
            }
        }
        root.draw(&Rectangle::new(
            [(left, top), (left + grid, top + grid)],
            RGBColor(120, 120, 120).stroke_width(1),
        ))
        .ctx()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::text::ensure_font;

    /// Columns with ink of `text` drawn by `draw` on a small bitmap, as
    /// runs of consecutive inked columns: one run per glyph when glyphs
    /// do not touch.
    fn ink_runs(draw: impl Fn(&DrawingArea<BitMapBackend<'_>, Shift>)) -> usize {
        ensure_font();
        let (w, h) = (120u32, 30u32);
        let mut rgb = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            draw(&root);
            root.present().unwrap();
        }
        let inked = |x: u32| (0..h).any(|y| rgb[((y * w + x) * 3) as usize] < 128);
        (0..w)
            .filter(|&x| inked(x) && (x == 0 || !inked(x - 1)))
            .count()
    }

    #[test]
    fn glyphs_keep_their_side_bearings() {
        let b = bearings().expect("the embedded font parses");
        assert_eq!(b.units('c'), 113.0);
        assert_eq!(b.units('l'), 193.0);
        assert_eq!(b.units(' '), 0.0);
        assert_eq!(b.units('\u{10FFFF}'), 0.0);
        let anchor = Pos::new(HPos::Left, VPos::Center);
        for text in ["class0", "epoch"] {
            let fixed = ink_runs(|a| draw_glyphs(a, text, (5, 15), 14.0, &BLACK, anchor).unwrap());
            assert_eq!(fixed, text.len(), "{text}");
        }
        // plotters draws "cl" touching ("dass"). Should a release place
        // bearings itself, this fails: `draw_glyphs` would then add them
        // twice and can go.
        let naive = ink_runs(|a| {
            let style = text_style(14.0, &BLACK).pos(anchor);
            a.draw(&Text::new("cl", (5, 15), style)).unwrap();
        });
        assert_eq!(naive, 1);
    }
}
