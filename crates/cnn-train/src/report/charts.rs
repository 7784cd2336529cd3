//! The interactive charts of `report.html` as data: each [`Chart`] is an
//! x axis and its series, serialized into the page as JSON and drawn by
//! the page's chart script (uPlot). A run has its per-step training loss
//! (smoothable) and learning rate, and its per-epoch loss and accuracy; a
//! comparison one series per variant (the mean over its repeats); a
//! learning curve the training and validation accuracy against the
//! training-set size. Non-finite values are gaps (`null` in the JSON).

use serde::Serialize;

use crate::history::{EpochRecord, History, StepRecord};
use crate::plot::{OverlaySeries, ScoreVsSize};
use crate::stats::mean_std;

/// One series of a chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub label: String,
    /// One value per x; NaN and infinities are gaps.
    pub values: Vec<f64>,
    /// A per-step curve: drawn raw (faint) and smoothed, with the chart's
    /// smoothing slider.
    pub smooth: bool,
}

/// One chart: a shared x axis and its series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chart {
    /// Unique on the page; names the chart's element (`chart-<id>`).
    pub id: String,
    pub x_label: String,
    pub y_label: String,
    pub x: Vec<f64>,
    pub series: Vec<Series>,
    /// Start with a logarithmic y axis (the user can switch).
    pub log_y: bool,
    /// Offer a log/linear switch for x too (training-set sizes).
    pub log_x_option: bool,
}

impl Chart {
    fn new(id: &str, x_label: &str, y_label: &str, x: Vec<f64>) -> Self {
        Chart {
            id: id.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x,
            series: Vec::new(),
            log_y: false,
            log_x_option: false,
        }
    }

    fn with(mut self, label: &str, values: Vec<f64>, smooth: bool) -> Self {
        self.series.push(Series {
            label: label.into(),
            values,
            smooth,
        });
        self
    }
}

/// A run's charts: training loss and learning rate per step, loss and
/// accuracy per epoch. Captions beside each.
pub fn run_charts(steps: &[StepRecord], epochs: &[EpochRecord]) -> Vec<(Chart, &'static str)> {
    let step_x: Vec<f64> = steps.iter().map(|s| s.step as f64).collect();
    let epoch_x: Vec<f64> = epochs.iter().map(|e| e.epoch as f64).collect();
    let val = |f: fn(&crate::history::SplitMetrics) -> f64| -> Vec<f64> {
        epochs
            .iter()
            .map(|e| e.val.as_ref().map_or(f64::NAN, f))
            .collect()
    };
    let has_val = epochs.iter().any(|e| e.val.is_some());
    let mut loss = Chart::new("epoch-loss", "epoch", "loss", epoch_x.clone()).with(
        "training loss",
        epochs.iter().map(|e| e.train.loss).collect(),
        false,
    );
    let mut acc = Chart::new("epoch-accuracy", "epoch", "accuracy", epoch_x).with(
        "training accuracy",
        epochs.iter().map(|e| e.train.accuracy).collect(),
        false,
    );
    if has_val {
        loss = loss.with("validation loss", val(|m| m.loss), false);
        acc = acc.with("validation accuracy", val(|m| m.accuracy), false);
    }
    vec![
        (
            Chart::new("step-loss", "step", "loss", step_x.clone()).with(
                "training loss",
                steps.iter().map(|s| s.loss).collect(),
                true,
            ),
            "Training loss per optimizer step (mini-batch), raw and smoothed.",
        ),
        (
            Chart::new("step-lr", "step", "learning rate", step_x).with(
                "learning rate",
                steps.iter().map(|s| s.lr).collect(),
                false,
            ),
            "Learning rate per optimizer step.",
        ),
        (loss, "Loss per epoch (validation after each epoch)."),
        (acc, "Accuracy per epoch."),
    ]
}

/// A comparison's charts: per epoch, the validation and training loss and
/// accuracy of each variant (mean over its repeats, as in `overlay.png`);
/// per step, each variant's training loss (mean over the repeats that
/// reached the step).
pub fn comparison_charts(
    overlay: &[OverlaySeries],
    step_histories: &[(String, Vec<&History>)],
) -> Vec<(Chart, &'static str)> {
    let epochs = overlay.iter().map(|s| s.epochs.len()).max().unwrap_or(0);
    let x: Vec<f64> = (1..=epochs).map(|e| e as f64).collect();
    let padded = |v: &[f64]| -> Vec<f64> {
        (0..epochs)
            .map(|i| v.get(i).copied().unwrap_or(f64::NAN))
            .collect()
    };
    let per_variant = |id: &str, y: &str, f: fn(&OverlaySeries) -> &Vec<f64>| {
        overlay
            .iter()
            .fold(Chart::new(id, "epoch", y, x.clone()), |c, s| {
                c.with(&s.label, padded(f(s)), false)
            })
    };
    let steps = step_histories
        .iter()
        .flat_map(|(_, hs)| hs.iter().filter_map(|h| h.steps.last().map(|s| s.step)))
        .max()
        .unwrap_or(0);
    let step_x: Vec<f64> = (1..=steps).map(|s| s as f64).collect();
    let step_loss = step_histories.iter().fold(
        Chart::new("step-loss", "step", "training loss", step_x),
        |c, (label, hs)| {
            let mut sums: Vec<Vec<f64>> = vec![Vec::new(); steps as usize];
            for h in hs {
                for s in &h.steps {
                    if let Some(slot) = s.step.checked_sub(1).and_then(|i| sums.get_mut(i as usize))
                    {
                        slot.push(s.loss);
                    }
                }
            }
            let mean = sums.into_iter().map(|v| mean_std(v).0).collect();
            c.with(label, mean, true)
        },
    );
    vec![
        (
            per_variant("val-accuracy", "validation accuracy", |s| &s.val_acc_mean),
            "Validation accuracy per epoch, one line per variant (mean over repeats).",
        ),
        (
            per_variant("val-loss", "validation loss", |s| &s.val_loss_mean),
            "Validation loss per epoch (mean over repeats).",
        ),
        (
            per_variant("train-loss", "training loss", |s| &s.train_loss_mean),
            "Training loss per epoch (mean over repeats).",
        ),
        (
            step_loss,
            "Training loss per optimizer step, one line per variant (mean over the repeats that reached the step), raw and smoothed.",
        ),
    ]
}

/// A learning curve's chart: training and validation accuracy (mean over
/// repeats) against the number of training images; x can switch to log.
pub fn curve_chart(points: &ScoreVsSize) -> (Chart, &'static str) {
    let mut c = Chart::new(
        "score-vs-size",
        "training images",
        &points.score_label,
        points.train_sizes.clone(),
    )
    .with("training", points.train_mean.clone(), false)
    .with("validation", points.val_mean.clone(), false);
    c.log_x_option = true;
    (
        c,
        "Training and validation accuracy of the final model against the number of training images (mean over repeats).",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: u64, loss: f64) -> StepRecord {
        StepRecord {
            step,
            epoch: 1,
            loss,
            lr: 0.1,
            scaling: None,
        }
    }

    #[test]
    fn comparison_step_loss_is_the_mean_over_repeats_with_gaps_past_a_short_run() {
        let a = History {
            steps: vec![step(1, 1.0), step(2, 3.0)],
            epochs: Vec::new(),
        };
        let b = History {
            steps: vec![step(1, 2.0)],
            epochs: Vec::new(),
        };
        let c = History {
            steps: vec![step(1, 5.0)],
            epochs: Vec::new(),
        };
        let charts = comparison_charts(&[], &[("v".into(), vec![&a, &b]), ("w".into(), vec![&c])]);
        let (chart, _) = &charts[3];
        assert_eq!(chart.x, vec![1.0, 2.0]);
        assert_eq!(chart.series[0].values, vec![1.5, 3.0]);
        assert_eq!(chart.series[1].values[0], 5.0);
        assert!(chart.series[1].values[1].is_nan());
        assert!(chart.series.iter().all(|s| s.smooth));
    }

    #[test]
    fn run_charts_have_validation_only_when_the_run_had_it() {
        let charts = run_charts(&[step(1, 2.0), step(2, 1.0)], &[]);
        assert_eq!(charts.len(), 4);
        assert_eq!(charts[0].0.series[0].values, vec![2.0, 1.0]);
        assert!(charts[0].0.series[0].smooth && !charts[1].0.series[0].smooth);
        assert_eq!(
            charts[2].0.series.len(),
            1,
            "no validation series without validation"
        );
    }
}
