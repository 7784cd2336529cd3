//! Comparisons between configurations: four panels of per-epoch mean
//! curves with ±std bands, one colour per configuration.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::plot::axis::{axis, clamp_unit, epoch_axis};
use crate::plot::chart::{
    PALETTE, band_extent, chart, draw_band_line, legend, no_data, quiet_corner, triples,
};
use crate::plot::render::{Ctx, DrawResult, Figure};
use crate::plot::text::FONT;

/// Per-epoch curves of one configuration (mean and standard deviation
/// over its runs), for [`draw_overlay`](crate::plot::draw_overlay). Vectors are indexed like `epochs`;
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

pub(super) struct OverlayFigure<'a> {
    pub(super) series: &'a [OverlaySeries],
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
