//! A panel's chart and what goes on it: the palette, lines broken at
//! non-finite values, mean lines with ±std bands, legends placed off the
//! data, and the grey "no data" note.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::plot::axis::{fmt_tick, y_label_area};
use crate::plot::render::{Ctx, DrawResult};
use crate::plot::text::FONT;

/// Matplotlib's "tab10" colours, one per series.
pub(super) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
pub(super) const TRAIN_COLOR: RGBColor = PALETTE[0];
pub(super) const VAL_COLOR: RGBColor = PALETTE[1];
pub(super) const GRID: RGBColor = RGBColor(232, 232, 232);

/// Runs of consecutive finite points.
pub(super) fn segments(points: impl IntoIterator<Item = (f64, f64)>) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for (x, y) in points {
        if x.is_finite() && y.is_finite() {
            out.last_mut().expect("non-empty").push((x, y));
        } else if !out.last().expect("non-empty").is_empty() {
            out.push(Vec::new());
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// `v[i]`, or 0 past the end (empty std vectors mean zero).
fn std_at(v: &[f64], i: usize) -> f64 {
    v.get(i).copied().unwrap_or(0.0)
}

/// (x, mean, std) triples of one curve, as long as the shortest of `xs`
/// and `mean`.
pub(super) fn triples(xs: &[f64], mean: &[f64], std: &[f64]) -> Vec<(f64, f64, f64)> {
    xs.iter()
        .zip(mean)
        .enumerate()
        .map(|(i, (&x, &m))| (x, m, std_at(std, i)))
        .collect()
}

/// Values an axis must show for a curve with a band.
pub(super) fn band_extent(t: &[(f64, f64, f64)]) -> impl Iterator<Item = f64> + '_ {
    t.iter().flat_map(|&(_, m, s)| {
        let s = if s.is_finite() { s.abs() } else { 0.0 };
        [m - s, m + s]
    })
}

pub(super) type Chart<'a, DB> = ChartX<'a, DB, plotters::coord::types::RangedCoordf64>;

/// A chart with a linear y axis over an x axis of any kind (a log axis:
/// `plotters::coord::combinators::LogCoord<f64>`).
pub(super) type ChartX<'a, DB, X> =
    ChartContext<'a, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>;

/// A line (broken at non-finite values) with circle markers, labelled in
/// the legend.
pub(super) fn draw_line<DB: DrawingBackend, X: Ranged<ValueType = f64>>(
    chart: &mut ChartX<'_, DB, X>,
    points: &[(f64, f64)],
    color: RGBColor,
    label: &str,
) -> DrawResult {
    let style = color.stroke_width(2);
    chart
        .draw_series(
            segments(points.iter().copied())
                .into_iter()
                .map(move |s| PathElement::new(s, style)),
        )
        .ctx()?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    chart
        .draw_series(
            points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(move |&p| Circle::new(p, 3, color.filled())),
        )
        .ctx()?;
    Ok(())
}

/// Mean line with markers and, where the std is non-zero, a ±std band.
pub(super) fn draw_band_line<DB: DrawingBackend, X: Ranged<ValueType = f64>>(
    chart: &mut ChartX<'_, DB, X>,
    t: &[(f64, f64, f64)],
    color: RGBColor,
    label: &str,
) -> DrawResult {
    let finite: Vec<Option<(f64, f64, f64)>> = t
        .iter()
        .map(|&(x, m, s)| {
            let s = if s.is_finite() { s.abs() } else { 0.0 };
            (x.is_finite() && m.is_finite()).then_some((x, m, s))
        })
        .collect();
    let mut polygons = Vec::new();
    for run in finite.split(|p| p.is_none()) {
        let run: Vec<(f64, f64, f64)> = run.iter().flatten().copied().collect();
        if run.len() < 2 || run.iter().all(|&(_, _, s)| s == 0.0) {
            continue;
        }
        let mut poly: Vec<(f64, f64)> = run.iter().map(|&(x, m, s)| (x, m + s)).collect();
        poly.extend(run.iter().rev().map(|&(x, m, s)| (x, m - s)));
        polygons.push(poly);
    }
    chart
        .draw_series(
            polygons
                .into_iter()
                .map(|p| Polygon::new(p, color.mix(0.2).filled())),
        )
        .ctx()?;
    let points: Vec<(f64, f64)> = t.iter().map(|&(x, m, _)| (x, m)).collect();
    draw_line(chart, &points, color, label)
}

/// The corner for a legend: `preferred` unless data points lie under it
/// and another corner has fewer (a one-epoch run puts its train and
/// validation points in both right-hand corners). A corner is the outer
/// 40% of the x range by the outer 30% of the y range.
pub(super) fn quiet_corner(
    points: impl IntoIterator<Item = (f64, f64)>,
    x: &Range<f64>,
    y: &Range<f64>,
    preferred: SeriesLabelPosition,
) -> SeriesLabelPosition {
    use SeriesLabelPosition::{LowerLeft, LowerRight, UpperLeft, UpperRight};
    let mut order = vec![preferred];
    for c in [UpperRight, LowerRight, UpperLeft, LowerLeft] {
        if !order.contains(&c) {
            order.push(c);
        }
    }
    let mut counts = vec![0usize; order.len()];
    let (w, h) = (x.end - x.start, y.end - y.start);
    for (px, py) in points {
        if !(px.is_finite() && py.is_finite() && w > 0.0 && h > 0.0) {
            continue;
        }
        let (fx, fy) = ((px - x.start) / w, (py - y.start) / h);
        for (c, n) in order.iter().zip(counts.iter_mut()) {
            let in_x = match c {
                UpperRight | LowerRight => fx >= 0.6,
                _ => fx <= 0.4,
            };
            let in_y = match c {
                UpperRight | UpperLeft => fy >= 0.7,
                _ => fy <= 0.3,
            };
            *n += usize::from(in_x && in_y);
        }
    }
    let fewest = counts.iter().copied().min().unwrap_or(0);
    let i = counts.iter().position(|&n| n == fewest).unwrap_or(0);
    order.swap_remove(i)
}

pub(super) fn legend<'a, DB: DrawingBackend + 'a, X: Ranged<ValueType = f64>>(
    chart: &mut ChartX<'a, DB, X>,
    position: SeriesLabelPosition,
) -> DrawResult {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FONT, 14))
        .draw()
        .ctx()
}

/// A chart with a caption, axis labels and a light grid.
pub(super) fn chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    x: Range<f64>,
    y: Range<f64>,
    x_desc: &str,
    y_desc: &str,
) -> DrawResult<Chart<'a, DB>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(y_label_area(area, &y))
        .build_cartesian_2d(x, y)
        .ctx()?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&fmt_tick)
        .y_label_formatter(&fmt_tick)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .light_line_style(GRID)
        .max_light_lines(2)
        .draw()
        .ctx()?;
    Ok(chart)
}

/// A grey note in the middle of an empty panel.
pub(super) fn no_data<DB: DrawingBackend, X: Ranged<ValueType = f64>>(
    chart: &ChartX<'_, DB, X>,
    what: &str,
) -> DrawResult {
    let area = chart.plotting_area();
    let (w, h) = area.dim_in_pixel();
    let style = TextStyle::from((FONT, 16).into_font())
        .color(&RGBColor(150, 150, 150))
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.strip_coord_spec()
        .draw(&Text::new(
            what.to_string(),
            (w as i32 / 2, h as i32 / 2),
            style,
        ))
        .ctx()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legend_moves_off_the_points() {
        use SeriesLabelPosition::*;
        let (x, y) = (0.0..1.03, 0.9..1.0);
        // One epoch: train low and validation high, both at the right edge.
        let one_epoch = [(1.0, 0.92), (1.0, 0.98)];
        assert_eq!(quiet_corner(one_epoch, &x, &y, LowerRight), UpperLeft);
        // A rising accuracy curve leaves the lower right free.
        let (x, y) = (0.0..10.3, 0.5..1.0);
        let rising: Vec<(f64, f64)> = (1..=10).map(|e| (e as f64, 1.0 - 0.5 / e as f64)).collect();
        assert_eq!(quiet_corner(rising.clone(), &x, &y, LowerRight), LowerRight);
        // The preferred corner stays when nothing is anywhere near it.
        assert_eq!(quiet_corner([], &x, &y, UpperRight), UpperRight);
        assert_eq!(
            quiet_corner([(f64::NAN, 0.7)], &x, &y, UpperRight),
            UpperRight
        );
    }

    #[test]
    fn segments_break_at_nan() {
        let s = segments([(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0), (3.0, 4.0)]);
        assert_eq!(s, vec![vec![(0.0, 1.0)], vec![(2.0, 3.0), (3.0, 4.0)]]);
    }
}
