//! The learning curves of one run: loss (per epoch and per step),
//! accuracy, and learning rate (log scale when it spans more than 10x);
//! with weight averaging, the EMA's and SWA's validation curves too.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::history::{EpochRecord, History, SplitMetrics};
use crate::plot::axis::{axis, clamp_unit, epoch_axis, fmt_tick};
use crate::plot::chart::{
    GRID, PALETTE, TRAIN_COLOR, VAL_COLOR, chart, draw_line, legend, no_data, quiet_corner,
    segments,
};
use crate::plot::render::{Ctx, DrawResult, Figure};
use crate::plot::text::FONT;

/// A curve's points, colour and label.
type Series = (Vec<(f64, f64)>, RGBColor, &'static str);

pub(super) struct CurvesFigure<'a> {
    pub(super) history: &'a History,
    pub(super) title: &'a str,
    /// Steps of a full epoch, 0 when unknown.
    pub(super) steps_per_epoch: usize,
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

    /// The weight averages' validation curves (EMA, SWA; empty without
    /// them) of the metric `f`, with their colours and labels.
    fn averaged(&self, f: impl Fn(&SplitMetrics) -> f64) -> Vec<Series> {
        let epochs = &self.history.epochs;
        let curve = |m: &dyn Fn(&EpochRecord) -> Option<&SplitMetrics>| -> Vec<(f64, f64)> {
            epochs
                .iter()
                .filter_map(|e| m(e).map(|v| (e.epoch as f64, f(v))))
                .collect()
        };
        [
            (
                curve(&|e| e.ema_val.as_ref()),
                PALETTE[3],
                "validation (EMA)",
            ),
            (
                curve(&|e| e.swa_val.as_ref()),
                PALETTE[4],
                "validation (SWA)",
            ),
        ]
        .into_iter()
        .filter(|(points, _, _)| !points.is_empty())
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
        let averaged = self.averaged(|m| m.loss);
        let averaged_points = averaged.iter().flat_map(|(p, _, _)| p.iter());
        let y = axis(
            train
                .iter()
                .chain(&val)
                .chain(&steps)
                .chain(averaged_points.clone())
                .map(|p| p.1),
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
        for (points, color, label) in &averaged {
            draw_line(&mut chart, points, *color, label)?;
        }
        let all = train
            .iter()
            .chain(&val)
            .chain(&steps)
            .chain(averaged_points)
            .copied();
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
        let averaged = self.averaged(|m| m.accuracy);
        let averaged_points = averaged.iter().flat_map(|(p, _, _)| p.iter());
        let y = clamp_unit(axis(
            train
                .iter()
                .chain(&val)
                .chain(averaged_points.clone())
                .map(|p| p.1),
            0.05,
            0.0..1.0,
        ));
        let mut chart = chart(area, "Accuracy", x.clone(), y.clone(), "epoch", "accuracy")?;
        if train.is_empty() {
            return no_data(&chart, "no data yet");
        }
        draw_line(&mut chart, &train, TRAIN_COLOR, "train")?;
        if !val.is_empty() {
            draw_line(&mut chart, &val, VAL_COLOR, "validation")?;
        }
        for (points, color, label) in &averaged {
            draw_line(&mut chart, points, *color, label)?;
        }
        let all = train.iter().chain(&val).chain(averaged_points).copied();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(epochs: &[usize]) -> History {
        let steps = epochs
            .iter()
            .enumerate()
            .map(|(i, &epoch)| crate::history::StepRecord {
                step: i as u64 + 1,
                epoch,
                loss: 1.0,
                lr: 0.1,
                scaling: None,
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
}
