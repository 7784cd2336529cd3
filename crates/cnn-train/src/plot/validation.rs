//! A validation curve in scikit-learn's sense (`validation_curve`):
//! training and validation score against the value of one setting, mean
//! ± std over repeats, on four panels (final and best accuracy, final and
//! lowest loss), the x axis logarithmic when the values span more than
//! 10x ([`ValidationCurve::log_x`]).

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::plot::axis::{axis, clamp_unit, fmt_tick, y_label_area};
use crate::plot::chart::{
    ChartX, GRID, TRAIN_COLOR, VAL_COLOR, band_extent, chart, draw_band_line, legend, no_data,
    quiet_corner, triples,
};
use crate::plot::render::{Ctx, DrawResult, Figure};
use crate::plot::text::FONT;

/// Mean and standard deviation over repeats, one entry per value of a
/// [`ValidationCurve`] (NaN where no run gives one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Band {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// Scores against the value of one setting. Vectors are indexed like
/// `values` (ascending).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValidationCurve {
    pub title: String,
    /// The setting, e.g. `lr`.
    pub key: String,
    pub values: Vec<f64>,
    /// Runs behind each value.
    pub runs: Vec<usize>,
    /// Whether the x axis is logarithmic ([`ValidationCurve::wants_log_x`]).
    pub log_x: bool,
    /// Accuracy after the last epoch.
    pub final_train_accuracy: Band,
    pub final_val_accuracy: Band,
    /// The highest accuracy of any epoch.
    pub best_train_accuracy: Band,
    pub best_val_accuracy: Band,
    /// Loss after the last epoch.
    pub final_train_loss: Band,
    pub final_val_loss: Band,
    /// The lowest loss of any epoch.
    pub best_train_loss: Band,
    pub best_val_loss: Band,
}

impl ValidationCurve {
    /// The axis rule: logarithmic when every value is positive and the
    /// largest is more than 10 times the smallest.
    pub fn wants_log_x(values: &[f64]) -> bool {
        let finite = values.iter().copied().filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        lo > 0.0 && hi.is_finite() && hi / lo > 10.0
    }
}

pub(super) struct ValidationFigure<'a> {
    pub(super) curve: &'a ValidationCurve,
}

type Pick = fn(&ValidationCurve) -> (&Band, &Band);

impl ValidationFigure<'_> {
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        caption: &str,
        pick: Pick,
        accuracy: bool,
    ) -> DrawResult {
        let c = self.curve;
        let (train, val) = pick(c);
        let train = triples(&c.values, &train.mean, &train.std);
        let val = triples(&c.values, &val.mean, &val.std);
        let y = axis(band_extent(&train).chain(band_extent(&val)), 0.05, 0.0..1.0);
        let y = if accuracy { clamp_unit(y) } else { y };
        let y_desc = if accuracy { "accuracy" } else { "loss" };
        let preferred = if accuracy {
            SeriesLabelPosition::LowerRight
        } else {
            SeriesLabelPosition::UpperRight
        };
        if c.log_x {
            let x = log_axis(&c.values);
            let mut chart = ChartBuilder::on(area)
                .caption(caption, (FONT, 18))
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(y_label_area(area, &y))
                .build_cartesian_2d(x.clone().log_scale(), y.clone())
                .ctx()?;
            chart
                .configure_mesh()
                .x_desc(format!("{} (log scale)", c.key))
                .y_desc(y_desc)
                .x_label_formatter(&fmt_tick)
                .y_label_formatter(&fmt_tick)
                .label_style((FONT, 13))
                .axis_desc_style((FONT, 15))
                .light_line_style(GRID)
                .max_light_lines(2)
                .draw()
                .ctx()?;
            // The legend's corner as the eye sees it: by log10 of x.
            let log = |t: &(f64, f64, f64)| (t.0.log10(), t.1);
            let corner = quiet_corner(
                train.iter().chain(&val).map(log),
                &(x.start.log10()..x.end.log10()),
                &y,
                preferred,
            );
            lines(&mut chart, &train, &val, corner)
        } else {
            let x = axis(c.values.iter().copied(), 0.05, 0.0..1.0);
            let mut chart = chart(area, caption, x.clone(), y.clone(), &c.key, y_desc)?;
            let corner = quiet_corner(
                train.iter().chain(&val).map(|t| (t.0, t.1)),
                &x,
                &y,
                preferred,
            );
            lines(&mut chart, &train, &val, corner)
        }
    }
}

/// The training and validation bands of a panel and its legend.
fn lines<'a, DB: DrawingBackend + 'a, X: Ranged<ValueType = f64>>(
    chart: &mut ChartX<'a, DB, X>,
    train: &[(f64, f64, f64)],
    val: &[(f64, f64, f64)],
    corner: SeriesLabelPosition,
) -> DrawResult {
    if train.iter().chain(val).all(|t| !t.1.is_finite()) {
        return no_data(chart, "no data");
    }
    draw_band_line(chart, train, TRAIN_COLOR, "training")?;
    draw_band_line(chart, val, VAL_COLOR, "validation")?;
    legend(chart, corner)
}

/// A log axis's range: the positive finite values with a margin of a
/// fifth of a decade each side.
fn log_axis(values: &[f64]) -> Range<f64> {
    let (lo, hi) = values
        .iter()
        .copied()
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo <= hi {
        let pad = 10f64.powf(0.2);
        (lo / pad)..(hi * pad)
    } else {
        1e-3..1.0
    }
}

impl Figure for ValidationFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (1200, 900)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let title = if self.curve.title.is_empty() {
            "Validation curve: mean ± std over runs"
        } else {
            &self.curve.title
        };
        let body = root.margin(8, 0, 0, 0).titled(title, (FONT, 24)).ctx()?;
        let panels = body.split_evenly((2, 2));
        self.panel(
            &panels[0],
            "Final accuracy (last epoch)",
            |c| (&c.final_train_accuracy, &c.final_val_accuracy),
            true,
        )?;
        self.panel(
            &panels[1],
            "Best accuracy (any epoch)",
            |c| (&c.best_train_accuracy, &c.best_val_accuracy),
            true,
        )?;
        self.panel(
            &panels[2],
            "Final loss (last epoch)",
            |c| (&c.final_train_loss, &c.final_val_loss),
            false,
        )?;
        self.panel(
            &panels[3],
            "Lowest loss (any epoch)",
            |c| (&c.best_train_loss, &c.best_val_loss),
            false,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axis_when_positive_values_span_more_than_ten_times() {
        assert!(ValidationCurve::wants_log_x(&[1e-3, 1e-2, 1e-1]));
        assert!(ValidationCurve::wants_log_x(&[0.01, 0.1001]));
        // Exactly 10x is not more than 10x.
        assert!(!ValidationCurve::wants_log_x(&[0.01, 0.1]));
        assert!(!ValidationCurve::wants_log_x(&[0.1, 0.3, 0.5]));
        // A zero or a negative value cannot go on a log axis.
        assert!(!ValidationCurve::wants_log_x(&[0.0, 1e-4, 1e-2]));
        assert!(!ValidationCurve::wants_log_x(&[-1.0, 100.0]));
        assert!(!ValidationCurve::wants_log_x(&[32.0]));
        assert!(!ValidationCurve::wants_log_x(&[]));
        assert!(ValidationCurve::wants_log_x(&[16.0, 512.0, f64::NAN]));
        let r = log_axis(&[1e-3, 1e-1]);
        assert!(r.start < 1e-3 && r.end > 1e-1 && r.start > 0.0);
    }
}
