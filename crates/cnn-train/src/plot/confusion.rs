//! The confusion matrix as a heat map (PNG only).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::metrics::ConfusionMatrix;
use crate::plot::render::{Ctx, DrawResult, Figure};
use crate::plot::text::text_style;

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
        label(root, self.title, (w as i32 / 2, 24), 22.0, &BLACK, center)?;
        label(
            root,
            "predicted class",
            (left + grid / 2, top + grid + 55),
            16.0,
            &BLACK,
            center,
        )?;
        label(
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
                    label(
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
                label(
                    root,
                    &self.name(c, 18),
                    (left - 8, y0 + cell / 2),
                    label_size,
                    &BLACK,
                    Pos::new(HPos::Right, VPos::Center),
                )?;
                let max_chars = ((cell as f64 / (label_size * 0.6)).floor() as usize).max(1);
                label(
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

/// Draw `text` anchored at `at` in the embedded font.
fn label<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    at: (i32, i32),
    size: f64,
    color: &RGBColor,
    anchor: Pos,
) -> DrawResult {
    let style = text_style(size, color).pos(anchor);
    area.draw(&Text::new(text.to_string(), at, style)).ctx()
}
