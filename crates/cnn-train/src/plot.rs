//! Figures of a run and of comparisons between runs, as PNG and SVG.
//!
//! This module is the one call site of `plotters`. Text uses DejaVu Sans,
//! embedded in the binary and registered once, so plots render on machines
//! without system fonts; the PNG-only confusion matrix places its glyphs
//! itself (plotters crowds them, see `Bearings`). Every figure is drawn by
//! one generic function for both backends (`Figure::draw`), rendered in
//! memory and written with [`write_atomic`]. Non-finite values are skipped
//! (lines break there), axis ranges are always finite and non-empty, and a
//! panic inside plotters becomes a [`TrainError::Plot`]: a plot never stops
//! a run.

use std::fmt::Display;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Once, OnceLock};

use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Result, TrainError};
use crate::history::History;
use crate::io::write_atomic;
use crate::metrics::ConfusionMatrix;

/// DejaVu Sans (see `assets/LICENSE-DejaVu.txt`).
const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FONT: &str = "sans-serif";

fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is known to parse; were it not, text would be
        // missing and drawing would report an error.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

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

/// A text style in the embedded font.
fn text_style(size: f64, color: &RGBColor) -> TextStyle<'static> {
    let mut style = TextStyle::from((FONT, size).into_font());
    style.color = color.to_backend_color();
    style
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

/// Matplotlib's "tab10" colours, one per series.
const PALETTE: [RGBColor; 10] = [
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
const TRAIN_COLOR: RGBColor = PALETTE[0];
const VAL_COLOR: RGBColor = PALETTE[1];
const GRID: RGBColor = RGBColor(232, 232, 232);

// ---------------------------------------------------------------------------
// Public figures
// ---------------------------------------------------------------------------

/// Learning curves of one run (1200x900): loss per epoch (train, validation
/// and the per-step training loss, faint, against fractional epoch),
/// accuracy per epoch, and learning rate per step (log scale when it spans
/// more than 10x). An empty history gives empty panels.
///
/// The k-th step of an epoch sits at epoch - 1 + k / n, n being the steps
/// of a full epoch: the most steps any epoch of `history` has (a partial
/// last epoch, cut short by a step budget, covers only part of its epoch).
/// A history whose only epoch is partial cannot tell n; see
/// [`draw_curves_with_steps_per_epoch`].
pub fn draw_curves(history: &History, title: &str, png: &Path, svg: &Path) -> Result<()> {
    draw_curves_with_steps_per_epoch(history, 0, title, png, svg)
}

/// [`draw_curves`] with the number of steps of a full epoch when the
/// caller knows it (0 when not), for a run stopped within its first epoch.
pub fn draw_curves_with_steps_per_epoch(
    history: &History,
    steps_per_epoch: usize,
    title: &str,
    png: &Path,
    svg: &Path,
) -> Result<()> {
    let fig = CurvesFigure {
        history,
        title,
        steps_per_epoch,
    };
    save_png(&fig, png)?;
    save_svg(&fig, svg)
}

/// Confusion matrix as a heat map (rows: true class, columns: predicted),
/// counts in the cells, colour by the fraction of the row. `class_names`
/// label the classes when there is one per class, otherwise indices do.
pub fn draw_confusion(
    matrix: &ConfusionMatrix,
    class_names: &[String],
    title: &str,
    png: &Path,
) -> Result<()> {
    if matrix.classes() == 0 {
        return Err(plot_error(png, "the confusion matrix has no classes"));
    }
    save_png(
        &ConfusionFigure {
            matrix,
            class_names,
            title,
        },
        png,
    )
}

/// Per-epoch curves of one configuration (mean and standard deviation
/// over its runs), for [`draw_overlay`]. Vectors are indexed like `epochs`;
/// an empty `*_std` means zero; NaN marks a missing value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OverlaySeries {
    pub label: String,
    pub epochs: Vec<f64>,
    pub train_loss_mean: Vec<f64>,
    pub train_loss_std: Vec<f64>,
    pub val_loss_mean: Vec<f64>,
    pub val_loss_std: Vec<f64>,
    pub train_acc_mean: Vec<f64>,
    pub train_acc_std: Vec<f64>,
    pub val_acc_mean: Vec<f64>,
    pub val_acc_std: Vec<f64>,
}

/// Compare configurations (1200x900): training loss, validation loss,
/// training accuracy and validation accuracy per epoch, one colour per
/// series, the mean as a line and ±1 std as a shaded band.
pub fn draw_overlay(series: &[OverlaySeries], png: &Path, svg: &Path) -> Result<()> {
    let fig = OverlayFigure { series };
    save_png(&fig, png)?;
    save_svg(&fig, svg)
}

/// A learning curve in scikit-learn's sense (`learning_curve`): score
/// against the number of training examples, mean and std over folds or
/// seeds. Vectors are indexed like `train_sizes`; an empty `*_std` means
/// zero.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreVsSize {
    pub title: String,
    /// Y axis label, e.g. "accuracy".
    pub score_label: String,
    pub train_sizes: Vec<f64>,
    pub train_mean: Vec<f64>,
    pub train_std: Vec<f64>,
    pub val_mean: Vec<f64>,
    pub val_std: Vec<f64>,
}

/// Draw a [`ScoreVsSize`] learning curve (900x600): training and
/// validation score with ±1 std bands.
pub fn draw_score_vs_size(points: &ScoreVsSize, png: &Path, svg: &Path) -> Result<()> {
    let fig = ScoreFigure { points };
    save_png(&fig, png)?;
    save_svg(&fig, svg)
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

type DrawResult<T = ()> = std::result::Result<T, String>;

/// Drawing errors as text (backend error types differ).
trait Ctx<T> {
    fn ctx(self) -> DrawResult<T>;
}

impl<T, E: Display> Ctx<T> for std::result::Result<T, E> {
    fn ctx(self) -> DrawResult<T> {
        self.map_err(|e| e.to_string())
    }
}

/// A figure drawable on any backend.
trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

fn plot_error(path: &Path, message: impl Into<String>) -> TrainError {
    TrainError::Plot {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Run `f`, turning a panic into an error message.
fn guarded<T>(f: impl FnOnce() -> DrawResult<T>) -> DrawResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!("plotting panicked: {msg}"))
        }
    }
}

fn save_png(fig: &impl Figure, path: &Path) -> Result<()> {
    ensure_font();
    let (w, h) = fig.size();
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    guarded(|| {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).ctx()?;
        fig.draw(&root)?;
        root.present().ctx()
    })
    .map_err(|m| plot_error(path, m))?;
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(&rgb, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| plot_error(path, format!("PNG encoding: {e}")))?;
    write_atomic(path, &bytes)
}

fn save_svg(fig: &impl Figure, path: &Path) -> Result<()> {
    ensure_font();
    let mut text = String::new();
    guarded(|| {
        let root = SVGBackend::with_string(&mut text, fig.size()).into_drawing_area();
        root.fill(&WHITE).ctx()?;
        fig.draw(&root)?;
        root.present().ctx()
    })
    .map_err(|m| plot_error(path, m))?;
    write_atomic(path, text.as_bytes())
}

// ---------------------------------------------------------------------------
// Helpers: ranges, ticks, lines, bands
// ---------------------------------------------------------------------------

/// A finite, non-empty axis range covering the finite `values` with a
/// margin of `pad` of the span; `fallback` when there are none.
fn axis(values: impl IntoIterator<Item = f64>, pad: f64, fallback: Range<f64>) -> Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return fallback;
    }
    let span = hi - lo;
    let (lo, hi) = if span > 0.0 && span.is_finite() {
        (lo - pad * span, hi + pad * span)
    } else {
        let d = if lo != 0.0 { lo.abs() * 0.1 } else { 1.0 };
        (lo - d, hi + d)
    };
    if lo.is_finite() && hi.is_finite() && lo < hi {
        lo..hi
    } else {
        fallback
    }
}

/// Clamp an accuracy axis to [0, 1] (with room for markers at 1).
fn clamp_unit(r: Range<f64>) -> Range<f64> {
    let lo = r.start.max(0.0);
    let hi = r.end.min(1.02);
    if lo < hi { lo..hi } else { 0.0..1.02 }
}

/// Tick labels: integers below 1e5 as integers, small or large numbers in
/// scientific notation with up to 4 significant digits ("1.08e6", so that
/// neighbouring ticks stay distinct and the label stays narrow), the rest
/// with up to 4 decimals.
fn fmt_tick(v: &f64) -> String {
    let v = *v;
    let a = v.abs();
    // Ticks near zero come out as rounding noise like -2.2e-16.
    if a < 1e-12 {
        return "0".into();
    }
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.3e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if mantissa.contains('.') => {
                let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
                format!("{mantissa}e{exp}")
            }
            _ => s,
        }
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Width of the y label area: room for the widest tick label of `y` (as
/// [`chart`]'s mesh places them), the tick marks and the rotated axis
/// title, at least 65 pixels.
fn y_label_area<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, y: &Range<f64>) -> u32 {
    use plotters::coord::ranged1d::BoldPoints;
    use plotters::coord::types::RangedCoordf64;
    let style = TextStyle::from((FONT, 13).into_font());
    let widest = RangedCoordf64::from(y.clone())
        .key_points(BoldPoints(11))
        .iter()
        .filter_map(|v| area.estimate_text_size(&fmt_tick(v), &style).ok())
        .map(|(w, _)| w)
        .max()
        .unwrap_or(0);
    (widest + 30).max(65)
}

/// Runs of consecutive finite points.
fn segments(points: impl IntoIterator<Item = (f64, f64)>) -> Vec<Vec<(f64, f64)>> {
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
fn triples(xs: &[f64], mean: &[f64], std: &[f64]) -> Vec<(f64, f64, f64)> {
    xs.iter()
        .zip(mean)
        .enumerate()
        .map(|(i, (&x, &m))| (x, m, std_at(std, i)))
        .collect()
}

/// Values an axis must show for a curve with a band.
fn band_extent(t: &[(f64, f64, f64)]) -> impl Iterator<Item = f64> + '_ {
    t.iter().flat_map(|&(_, m, s)| {
        let s = if s.is_finite() { s.abs() } else { 0.0 };
        [m - s, m + s]
    })
}

type Chart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A line (broken at non-finite values) with circle markers, labelled in
/// the legend.
fn draw_line<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
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
fn draw_band_line<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
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
fn quiet_corner(
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

fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
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
fn chart<'a, DB: DrawingBackend>(
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
fn no_data<DB: DrawingBackend>(chart: &Chart<'_, DB>, what: &str) -> DrawResult {
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

// ---------------------------------------------------------------------------
// Learning curves of one run
// ---------------------------------------------------------------------------

struct CurvesFigure<'a> {
    history: &'a History,
    title: &'a str,
    /// Steps of a full epoch, 0 when unknown.
    steps_per_epoch: usize,
}

impl CurvesFigure<'_> {
    /// Per-step losses at fractional epochs: the k-th step of epoch e sits
    /// at e - 1 + k / n, so the last step of a full epoch meets its epoch
    /// point and a partial epoch's steps cover only its part. n, the steps
    /// of a full epoch, is the given count or else the most steps of any
    /// epoch (only the last epoch of a run can be partial).
    fn step_losses(&self) -> Vec<(f64, f64)> {
        let steps = &self.history.steps;
        let runs: Vec<&[crate::history::StepRecord]> =
            steps.chunk_by(|a, b| a.epoch == b.epoch).collect();
        let full = runs
            .iter()
            .map(|r| r.len())
            .fold(self.steps_per_epoch, usize::max);
        runs.iter()
            .flat_map(|run| {
                run.iter().enumerate().map(move |(k, s)| {
                    let x = s.epoch as f64 - 1.0 + (k + 1) as f64 / full as f64;
                    (x, s.loss)
                })
            })
            .collect()
    }

    fn loss_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult {
        let epochs = &self.history.epochs;
        let steps = self.step_losses();
        let train: Vec<(f64, f64)> = epochs
            .iter()
            .map(|e| (e.epoch as f64, e.train.loss))
            .collect();
        let val: Vec<(f64, f64)> = epochs
            .iter()
            .filter_map(|e| e.val.as_ref().map(|v| (e.epoch as f64, v.loss)))
            .collect();
        let x = epoch_axis(
            epochs
                .iter()
                .map(|e| e.epoch as f64)
                .chain(steps.iter().map(|p| p.0)),
        );
        let y = axis(
            train.iter().chain(&val).chain(&steps).map(|p| p.1),
            0.05,
            0.0..1.0,
        );
        let mut chart = chart(area, "Loss", x.clone(), y.clone(), "epoch", "loss")?;
        if !steps.is_empty() {
            let faint = TRAIN_COLOR.mix(0.3).stroke_width(1);
            chart
                .draw_series(
                    segments(steps.iter().copied())
                        .into_iter()
                        .map(move |s| PathElement::new(s, faint)),
                )
                .ctx()?
                .label("train (per step)")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], faint));
        }
        if train.is_empty() && steps.is_empty() {
            return no_data(&chart, "no data yet");
        }
        // A run that diverged in its first epoch has steps only.
        if !train.is_empty() {
            draw_line(&mut chart, &train, TRAIN_COLOR, "train")?;
        }
        if !val.is_empty() {
            draw_line(&mut chart, &val, VAL_COLOR, "validation")?;
        }
        let all = train.iter().chain(&val).chain(&steps).copied();
        legend(
            &mut chart,
            quiet_corner(all, &x, &y, SeriesLabelPosition::UpperRight),
        )
    }

    fn accuracy_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult {
        let epochs = &self.history.epochs;
        let train: Vec<(f64, f64)> = epochs
            .iter()
            .map(|e| (e.epoch as f64, e.train.accuracy))
            .collect();
        let val: Vec<(f64, f64)> = epochs
            .iter()
            .filter_map(|e| e.val.as_ref().map(|v| (e.epoch as f64, v.accuracy)))
            .collect();
        let x = epoch_axis(epochs.iter().map(|e| e.epoch as f64));
        let y = clamp_unit(axis(train.iter().chain(&val).map(|p| p.1), 0.05, 0.0..1.0));
        let mut chart = chart(area, "Accuracy", x.clone(), y.clone(), "epoch", "accuracy")?;
        if train.is_empty() {
            return no_data(&chart, "no data yet");
        }
        draw_line(&mut chart, &train, TRAIN_COLOR, "train")?;
        if !val.is_empty() {
            draw_line(&mut chart, &val, VAL_COLOR, "validation")?;
        }
        let all = train.iter().chain(&val).copied();
        legend(
            &mut chart,
            quiet_corner(all, &x, &y, SeriesLabelPosition::LowerRight),
        )
    }

    fn lr_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult {
        let h = self.history;
        // Per step when steps were recorded, else per epoch.
        let (points, x_desc): (Vec<(f64, f64)>, &str) = if h.steps.is_empty() {
            (
                h.epochs.iter().map(|e| (e.epoch as f64, e.lr)).collect(),
                "epoch",
            )
        } else {
            (
                h.steps.iter().map(|s| (s.step as f64, s.lr)).collect(),
                "step",
            )
        };
        let x = axis(points.iter().map(|p| p.0), 0.01, 0.0..1.0);
        let positive: Vec<f64> = points
            .iter()
            .map(|p| p.1)
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        let (lo, hi) = positive
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let log = !positive.is_empty() && hi / lo > 10.0;
        if log {
            // Log scale: only positive values can be placed.
            let y = (lo / 1.5)..(hi * 1.5);
            let mut chart = ChartBuilder::on(area)
                .caption("Learning rate (log scale)", (FONT, 18))
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(65)
                .build_cartesian_2d(x, y.log_scale())
                .ctx()?;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc("learning rate")
                .x_label_formatter(&fmt_tick)
                .y_label_formatter(&|v| format!("{v:.0e}"))
                .label_style((FONT, 13))
                .axis_desc_style((FONT, 15))
                .light_line_style(GRID)
                .max_light_lines(2)
                .draw()
                .ctx()?;
            let style = PALETTE[2].stroke_width(2);
            let pts = points.iter().copied().filter(|&(_, y)| y > 0.0);
            chart
                .draw_series(
                    segments(pts)
                        .into_iter()
                        .map(move |s| PathElement::new(s, style)),
                )
                .ctx()?;
            Ok(())
        } else {
            let y = axis(points.iter().map(|p| p.1), 0.05, 0.0..1.0);
            let mut chart = chart(area, "Learning rate", x, y, x_desc, "learning rate")?;
            if points.is_empty() {
                return no_data(&chart, "no data yet");
            }
            let style = PALETTE[2].stroke_width(2);
            chart
                .draw_series(
                    segments(points.iter().copied())
                        .into_iter()
                        .map(move |s| PathElement::new(s, style)),
                )
                .ctx()?;
            if points.len() == 1 {
                chart
                    .draw_series(
                        points
                            .iter()
                            .map(|&p| Circle::new(p, 3, PALETTE[2].filled())),
                    )
                    .ctx()?;
            }
            Ok(())
        }
    }
}

/// Epoch axis from 0 to the last epoch (at least 1), with room for markers.
fn epoch_axis(epochs: impl Iterator<Item = f64>) -> Range<f64> {
    let last = epochs.filter(|v| v.is_finite()).fold(1.0f64, f64::max);
    0.0..last * 1.03
}

impl Figure for CurvesFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (1200, 900)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let body = root
            .margin(8, 0, 0, 0)
            .titled(self.title, (FONT, 24))
            .ctx()?;
        let (_, h) = body.dim_in_pixel();
        let (top, bottom) = body.split_vertically(h * 56 / 100);
        let (w, _) = top.dim_in_pixel();
        let (loss, acc) = top.split_horizontally(w / 2);
        self.loss_panel(&loss)?;
        self.accuracy_panel(&acc)?;
        self.lr_panel(&bottom)
    }
}

// ---------------------------------------------------------------------------
// Confusion matrix
// ---------------------------------------------------------------------------

struct ConfusionFigure<'a> {
    matrix: &'a ConfusionMatrix,
    class_names: &'a [String],
    title: &'a str,
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

// ---------------------------------------------------------------------------
// Comparisons
// ---------------------------------------------------------------------------

struct OverlayFigure<'a> {
    series: &'a [OverlaySeries],
}

type Pick = fn(&OverlaySeries) -> (&[f64], &[f64]);

impl OverlayFigure<'_> {
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        caption: &str,
        y_desc: &str,
        pick: Pick,
        accuracy: bool,
    ) -> DrawResult {
        let curves: Vec<Vec<(f64, f64, f64)>> = self
            .series
            .iter()
            .map(|s| {
                let (mean, std) = pick(s);
                triples(&s.epochs, mean, std)
            })
            .collect();
        let x = epoch_axis(curves.iter().flatten().map(|t| t.0));
        let y = axis(curves.iter().flat_map(|c| band_extent(c)), 0.05, 0.0..1.0);
        let y = if accuracy { clamp_unit(y) } else { y };
        let mut chart = chart(area, caption, x.clone(), y.clone(), "epoch", y_desc)?;
        if curves.iter().all(|c| c.iter().all(|t| !t.1.is_finite())) {
            return no_data(&chart, "no data");
        }
        for (i, (s, c)) in self.series.iter().zip(&curves).enumerate() {
            draw_band_line(&mut chart, c, PALETTE[i % PALETTE.len()], &s.label)?;
        }
        let pos = if accuracy {
            SeriesLabelPosition::LowerRight
        } else {
            SeriesLabelPosition::UpperRight
        };
        let all = curves.iter().flatten().map(|t| (t.0, t.1));
        legend(&mut chart, quiet_corner(all, &x, &y, pos))
    }
}

impl Figure for OverlayFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (1200, 900)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let body = root
            .margin(8, 0, 0, 0)
            .titled("Comparison: mean ± std over runs", (FONT, 24))
            .ctx()?;
        let panels = body.split_evenly((2, 2));
        self.panel(
            &panels[0],
            "Training loss",
            "loss",
            |s| (&s.train_loss_mean, &s.train_loss_std),
            false,
        )?;
        self.panel(
            &panels[1],
            "Validation loss",
            "loss",
            |s| (&s.val_loss_mean, &s.val_loss_std),
            false,
        )?;
        self.panel(
            &panels[2],
            "Training accuracy",
            "accuracy",
            |s| (&s.train_acc_mean, &s.train_acc_std),
            true,
        )?;
        self.panel(
            &panels[3],
            "Validation accuracy",
            "accuracy",
            |s| (&s.val_acc_mean, &s.val_acc_std),
            true,
        )
    }
}

struct ScoreFigure<'a> {
    points: &'a ScoreVsSize,
}

impl Figure for ScoreFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let p = self.points;
        let train = triples(&p.train_sizes, &p.train_mean, &p.train_std);
        let val = triples(&p.train_sizes, &p.val_mean, &p.val_std);
        let x = axis(p.train_sizes.iter().copied(), 0.04, 0.0..1.0);
        let y = axis(band_extent(&train).chain(band_extent(&val)), 0.05, 0.0..1.0);
        let title = if p.title.is_empty() {
            "Learning curve"
        } else {
            &p.title
        };
        let y_desc = if p.score_label.is_empty() {
            "score"
        } else {
            &p.score_label
        };
        let mut chart = chart(root, title, x, y, "training examples", y_desc)?;
        if train.iter().chain(&val).all(|t| !t.1.is_finite()) {
            return no_data(&chart, "no data");
        }
        draw_band_line(&mut chart, &train, PALETTE[3], "training score")?;
        draw_band_line(&mut chart, &val, PALETTE[2], "validation score")?;
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    }
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
    fn axis_is_finite_and_non_empty() {
        assert_eq!(axis([], 0.1, 0.0..1.0), 0.0..1.0);
        assert_eq!(axis([f64::NAN, f64::INFINITY], 0.1, 0.0..1.0), 0.0..1.0);
        let r = axis([2.0, 2.0], 0.1, 0.0..1.0);
        assert!(r.start < 2.0 && r.end > 2.0);
        let r = axis([0.0], 0.1, 0.0..1.0);
        assert!(r.start < 0.0 && r.end > 0.0);
        assert_eq!(axis([-f64::MAX, f64::MAX], 0.1, 0.0..1.0), 0.0..1.0);
    }

    #[test]
    fn segments_break_at_nan() {
        let s = segments([(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0), (3.0, 4.0)]);
        assert_eq!(s, vec![vec![(0.0, 1.0)], vec![(2.0, 3.0), (3.0, 4.0)]]);
    }

    #[test]
    fn ticks() {
        assert_eq!(fmt_tick(&3.0), "3");
        assert_eq!(fmt_tick(&0.25), "0.25");
        assert_eq!(fmt_tick(&0.0001), "1e-4");
        assert_eq!(fmt_tick(&0.000125), "1.25e-4");
        assert_eq!(fmt_tick(&-2.2e-16), "0");
        assert_eq!(fmt_tick(&20000.0), "20000");
        // A diverged run's learning rate of 1e6 (ticks 20000 apart).
        assert_eq!(fmt_tick(&1_000_000.0), "1e6");
        assert_eq!(fmt_tick(&1_080_000.0), "1.08e6");
        assert_eq!(fmt_tick(&1_100_000.0), "1.1e6");
        assert_eq!(fmt_tick(&-6e20), "-6e20");
    }

    fn steps(epochs: &[usize]) -> History {
        let steps = epochs
            .iter()
            .enumerate()
            .map(|(i, &epoch)| crate::history::StepRecord {
                step: i as u64 + 1,
                epoch,
                loss: 1.0,
                lr: 0.1,
            })
            .collect();
        History {
            steps,
            epochs: vec![],
        }
    }

    fn step_xs(history: &History, steps_per_epoch: usize) -> Vec<f64> {
        let fig = CurvesFigure {
            history,
            title: "",
            steps_per_epoch,
        };
        fig.step_losses().iter().map(|p| p.0).collect()
    }

    #[test]
    fn partial_epoch_steps_sit_at_their_fraction() {
        // 4 steps per epoch, the third stopped after 2 (`--max-steps 10`).
        let h = steps(&[1, 1, 1, 1, 2, 2, 2, 2, 3, 3]);
        let xs = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5];
        assert_eq!(step_xs(&h, 0), xs);
        assert_eq!(step_xs(&h, 4), xs);
        // A lone partial epoch needs the count: 2 of 4 steps.
        let h = steps(&[1, 1]);
        assert_eq!(step_xs(&h, 4), [0.25, 0.5]);
        // Without it the steps fill the epoch.
        assert_eq!(step_xs(&h, 0), [0.5, 1.0]);
        // Full epochs only (and a resumed history starting at epoch 2).
        assert_eq!(step_xs(&steps(&[2, 2, 3, 3]), 0), [1.5, 2.0, 2.5, 3.0]);
        assert!(step_xs(&History::default(), 0).is_empty());
    }

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
