//! The LR range test's curve: loss against learning rate on a log axis,
//! the raw step losses faint, the smoothed loss bold, the steepest-descent
//! suggestion and the minimum marked.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::plot::axis::{axis, fmt_tick};
use crate::plot::chart::{GRID, PALETTE, segments};
use crate::plot::render::{Ctx, DrawResult, Figure};
use crate::plot::text::FONT;

/// An LR range test's points (vectors indexed alike) and the indices of
/// its suggestions.
#[derive(Debug, Clone, Copy)]
pub struct LrFindCurve<'a> {
    pub title: &'a str,
    pub lrs: &'a [f64],
    pub losses: &'a [f64],
    pub smoothed: &'a [f64],
    /// The steepest descent of the smoothed loss.
    pub steepest: Option<usize>,
    /// The lowest smoothed loss (its rate / 10 is fastai's suggestion).
    pub minimum: Option<usize>,
}

pub(super) struct LrFindFigure<'a> {
    pub(super) curve: &'a LrFindCurve<'a>,
}

impl LrFindCurve<'_> {
    /// (lr, value) pairs with a positive, finite rate.
    fn points(&self, values: &[f64]) -> Vec<(f64, f64)> {
        self.lrs
            .iter()
            .zip(values)
            .map(|(&x, &y)| (x, y))
            .filter(|&(x, _)| x.is_finite() && x > 0.0)
            .collect()
    }
}

impl Figure for LrFindFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let c = self.curve;
        let raw = c.points(c.losses);
        let smooth = c.points(c.smoothed);
        let (lo, hi) = raw
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &(x, _)| {
                (a.min(x), b.max(x))
            });
        let x = if lo <= hi {
            (lo / 1.5)..(hi * 1.5)
        } else {
            1e-7..10.0
        };
        // The smoothed curve sets the top; raw losses above it (the blow-up
        // that stopped the test) are drawn at its edge.
        let top = axis(smooth.iter().map(|p| p.1), 0.08, 0.0..1.0).end;
        let low = axis(raw.iter().chain(&smooth).map(|p| p.1), 0.04, 0.0..1.0).start;
        let y = if low < top { low..top } else { 0.0..1.0 };
        let clamp = |(x, v): (f64, f64)| {
            (
                x,
                if v.is_finite() {
                    v.clamp(y.start, y.end)
                } else {
                    v
                },
            )
        };
        let title = if c.title.is_empty() {
            "LR range test"
        } else {
            c.title
        };
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(65)
            .build_cartesian_2d(x.log_scale(), y.clone())
            .ctx()?;
        chart
            .configure_mesh()
            .x_desc("learning rate (log scale)")
            .y_desc("loss")
            .x_label_formatter(&|v| format!("{v:.0e}"))
            .y_label_formatter(&fmt_tick)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .light_line_style(GRID)
            .max_light_lines(2)
            .draw()
            .ctx()?;
        let faint = PALETTE[0].mix(0.35).stroke_width(1);
        chart
            .draw_series(
                segments(raw.iter().copied().map(clamp))
                    .into_iter()
                    .map(move |s| PathElement::new(s, faint)),
            )
            .ctx()?
            .label("loss per step")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], faint));
        let bold = PALETTE[0].stroke_width(2);
        chart
            .draw_series(
                segments(smooth.iter().copied())
                    .into_iter()
                    .map(move |s| PathElement::new(s, bold)),
            )
            .ctx()?
            .label("smoothed loss (EMA 0.98)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], bold));
        let marks = [
            (c.steepest, PALETTE[3], true),
            (c.minimum, PALETTE[2], false),
        ];
        for (index, color, steepest) in marks {
            let Some((&lr, &loss)) = index.and_then(|i| c.lrs.get(i).zip(c.smoothed.get(i))) else {
                continue;
            };
            if !(lr.is_finite() && lr > 0.0 && loss.is_finite()) {
                continue;
            }
            let label = if steepest {
                format!("steepest descent: lr {}", fmt_tick(&lr))
            } else {
                format!(
                    "minimum: lr {}, suggests lr / 10 = {}",
                    fmt_tick(&lr),
                    fmt_tick(&(lr / 10.0))
                )
            };
            chart
                .draw_series(std::iter::once(Circle::new((lr, loss), 6, color.filled())))
                .ctx()?
                .label(label)
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        }
        // The curve falls from the left and blows up on the right: the
        // lower left is free.
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font((FONT, 14))
            .draw()
            .ctx()
    }
}
