//! A learning curve in scikit-learn's sense: score against the number of
//! training examples, with ±std bands.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::plot::axis::axis;
use crate::plot::chart::{PALETTE, band_extent, chart, draw_band_line, legend, no_data, triples};
use crate::plot::render::{DrawResult, Figure};

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

pub(super) struct ScoreFigure<'a> {
    pub(super) points: &'a ScoreVsSize,
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
