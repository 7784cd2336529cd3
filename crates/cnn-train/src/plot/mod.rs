//! Figures of a run and of comparisons between runs, as PNG and SVG.
//!
//! This module is the one call site of `plotters`. Text uses DejaVu Sans,
//! embedded in the binary and registered once, so plots render on machines
//! without system fonts; bitmaps get their text from `text::Typeset`,
//! which places each glyph itself (plotters crowds them: "ep och"). Every
//! figure is drawn by one generic function for both backends
//! (`Figure::draw`), rendered in memory and written with
//! [`write_atomic`](crate::io::write_atomic). Non-finite values are skipped
//! (lines break there), axis ranges are always finite and non-empty, and a
//! panic inside plotters becomes a [`TrainError::Plot`](crate::TrainError::Plot):
//! a plot never stops a run.
//!
//! Files: `render` (the `Figure` trait, PNG and SVG output), `text` (font
//! and the glyph-placing backend), `axis` (ranges and tick labels), `chart`
//! (a panel's chart, lines, bands, legends), one file per figure
//! (`curves`, `confusion`, `overlay`, `score`, `lr_find`, `validation`), and
//! `tests`, which
//! measures where chart text's glyphs land in a bitmap.

mod axis;
mod chart;
mod confusion;
mod curves;
mod lr_find;
mod overlay;
mod render;
mod score;
mod text;
mod validation;

#[cfg(test)]
mod tests;

use std::path::Path;

use crate::error::Result;
use crate::history::History;
use crate::metrics::ConfusionMatrix;
use crate::plot::confusion::ConfusionFigure;
use crate::plot::curves::CurvesFigure;
use crate::plot::lr_find::LrFindFigure;
use crate::plot::overlay::OverlayFigure;
use crate::plot::render::{plot_error, save_png, save_svg};
use crate::plot::score::ScoreFigure;
use crate::plot::validation::ValidationFigure;

pub use crate::plot::lr_find::LrFindCurve;
pub use crate::plot::overlay::OverlaySeries;
pub use crate::plot::score::ScoreVsSize;
pub use crate::plot::validation::{Band, ValidationCurve};

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

/// Compare configurations (1200x900): training loss, validation loss,
/// training accuracy and validation accuracy per epoch, one colour per
/// series, the mean as a line and ±1 std as a shaded band.
pub fn draw_overlay(series: &[OverlaySeries], png: &Path, svg: &Path) -> Result<()> {
    let fig = OverlayFigure { series };
    save_png(&fig, png)?;
    save_svg(&fig, svg)
}

/// Draw a [`ScoreVsSize`] learning curve (900x600): training and
/// validation score with ±1 std bands.
pub fn draw_score_vs_size(points: &ScoreVsSize, png: &Path, svg: &Path) -> Result<()> {
    let fig = ScoreFigure { points };
    save_png(&fig, png)?;
    save_svg(&fig, svg)
}

/// Draw an LR range test's curve (900x600): loss against learning rate on
/// a log axis, raw and smoothed, the suggestions marked.
pub fn draw_lr_find(curve: &LrFindCurve<'_>, png: &Path, svg: &Path) -> Result<()> {
    let fig = LrFindFigure { curve };
    save_png(&fig, png)?;
    save_svg(&fig, svg)
}

/// Draw a [`ValidationCurve`] (1200x900): final and best accuracy, final
/// and lowest loss, training and validation, against the setting's value
/// (mean ± std bands; a log axis when [`ValidationCurve::log_x`]).
pub fn draw_validation_curve(curve: &ValidationCurve, png: &Path, svg: &Path) -> Result<()> {
    let fig = ValidationFigure { curve };
    save_png(&fig, png)?;
    save_svg(&fig, svg)
}
