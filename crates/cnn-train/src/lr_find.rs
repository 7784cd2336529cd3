//! The LR range test (Smith, "Cyclical Learning Rates", 2015), as fastai's
//! `Learner.lr_find` and Lightning's `Tuner.lr_find` run it: train a copy
//! of the model for up to `steps` optimizer steps while the learning rate
//! grows exponentially from `start_lr` to `end_lr`, smooth the loss, stop
//! once it has clearly diverged, and suggest a rate from the curve.
//!
//! What each part follows:
//! - the rates: step k of N (from 0) uses `start * (end / start)^(k / (N -
//!   1))`, a constant ratio from `start_lr` to exactly `end_lr`. (fastai's
//!   step k uses `k / N`, ending one ratio short of `end_lr`; Lightning's
//!   reaches `end_lr` but jumps from exponent 0 to 2/N at its second step.)
//! - the smoothing: an exponential moving average of the step losses with
//!   beta 0.98, bias-corrected: `avg_k = beta avg_(k-1) + (1 - beta) loss_k`
//!   (avg_0 = 0), smoothed `avg_k / (1 - beta^k)` for step k counted from 1
//!   (fastai's `AvgSmoothLoss`; Lightning divides by `1 - beta^(k+1)`, one
//!   power too many, which halves its first smoothed loss).
//! - the stop: after a step whose smoothed loss exceeds 4 times the lowest
//!   smoothed loss so far (never on the first step); that step is recorded.
//!   A step whose loss or gradients are not finite ends the test too (cnn's
//!   training refuses it), recorded with its loss.
//! - the steepest descent (Lightning's `_LRFinder.suggestion(skip_begin=10,
//!   skip_end=1)`): drop the first 10 and the last point, then the
//!   non-finite ones; with fewer than 2 left there is no suggestion; else
//!   the gradient of the smoothed loss as `torch.gradient` takes it
//!   (second-order central differences on an uneven grid, one-sided at the
//!   two ends), and the first point of the most negative one (f64 here
//!   where torch uses f32). The gradient is taken with respect to the
//!   logarithm of the rate, the axis the sweep is even on and the plot
//!   shows, as Lightning's fix for exponential mode does
//!   (Lightning-AI/pytorch-lightning#21141, PR #21171). Lightning 2.x
//!   releases pass the rates themselves as `spacing`, which weighs each
//!   loss change by 1 / lr and so picks the noise of the first steps (on
//!   LeNet-5 and MNIST, 7.7e-7 instead of 9.5e-2); on an unbroken sweep
//!   the log-rate gradient is Lightning 1.x's `np.gradient(losses)` on
//!   the step index.
//! - the minimum (fastai's `minimum`): drop the first `steps / 10` points
//!   (of the configured steps) and the last 5, cut at the first non-finite
//!   one; the rate of the lowest smoothed loss (the first, on ties),
//!   suggested divided by 10.
//!
//! The model being tuned is never touched: the test trains a copy (the
//! same weights and dropout step counter), with an optimizer of its own
//! (the configured one, its state fresh), so weights, optimizer and history
//! are as they were before. The configured schedule, epochs, step budget,
//! early stopping and checkpoints do not apply; batch size, `accumulate`,
//! regularizers, clipping, shuffling and augmentation do. The training
//! data is run through as many epochs as the steps need.

use std::path::Path;

use cnn_core::{Backend, Graph};
use cnn_optim::Scheduler;
use serde::{Deserialize, Serialize};

use crate::config::{LrFindSettings, SchedulePer, TrainConfig};
use crate::error::{Result, TrainError};
use crate::io::write_atomic;
use crate::plan::RunPlan;
use crate::plot::{LrFindCurve, draw_lr_find};
use crate::run_dir::{RunTarget, lr_find};
use crate::setup;
use crate::trainer::Trainer;

/// The smoothing's beta (fastai's and Lightning's).
pub const BETA: f64 = 0.98;
/// The test stops once the smoothed loss exceeds this many times its minimum.
pub const STOP_FACTOR: f64 = 4.0;
/// Points the steepest-descent rule skips at the start (Lightning's `skip_begin`).
pub const STEEPEST_SKIP_BEGIN: usize = 10;
/// Points the steepest-descent rule skips at the end (Lightning's `skip_end`).
pub const STEEPEST_SKIP_END: usize = 1;
/// Points the minimum rule skips at the end (fastai's `[num_it//10:-5]`).
pub const MINIMUM_SKIP_END: usize = 5;

/// The rate of step `k` (from 0) of the sweep: `start_lr` at the first,
/// `end_lr` at the last, a constant ratio in between.
pub fn sweep_lr(settings: &LrFindSettings, k: usize) -> f64 {
    let last = settings.steps.saturating_sub(1).max(1);
    if k == 0 {
        return settings.start_lr;
    }
    if k >= last {
        return settings.end_lr;
    }
    let ratio = settings.end_lr / settings.start_lr;
    settings.start_lr * ratio.powf(k as f64 / last as f64)
}

/// The bias-corrected exponential moving average of the losses.
#[derive(Debug, Clone, PartialEq)]
pub struct Smoother {
    beta: f64,
    avg: f64,
    count: i32,
}

impl Smoother {
    pub fn new(beta: f64) -> Self {
        Smoother {
            beta,
            avg: 0.0,
            count: 0,
        }
    }

    /// Add the next loss; gives the smoothed loss so far.
    pub fn push(&mut self, loss: f64) -> f64 {
        self.count = self.count.saturating_add(1);
        self.avg = self.beta * self.avg + (1.0 - self.beta) * loss;
        self.avg / (1.0 - self.beta.powi(self.count))
    }
}

/// The smoothing and the stop rule, step by step: the test stops after a
/// step whose smoothed loss exceeds [`STOP_FACTOR`] times the lowest
/// smoothed loss of the steps before it (never after the first step).
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    smoother: Smoother,
    lowest: f64,
    steps: usize,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            smoother: Smoother::new(BETA),
            lowest: f64::INFINITY,
            steps: 0,
        }
    }
}

impl Watch {
    /// The next step's loss: its smoothed loss, and whether to stop.
    pub fn observe(&mut self, loss: f64) -> (f64, bool) {
        let smoothed = self.smoother.push(loss);
        self.steps += 1;
        let stop = self.steps > 1 && smoothed > STOP_FACTOR * self.lowest;
        self.lowest = self.lowest.min(smoothed);
        (smoothed, stop)
    }
}

/// One step of the test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrFindPoint {
    /// Counting from 1.
    pub step: usize,
    pub lr: f64,
    /// The step's loss (the mean over its images, with the L1 penalty).
    pub loss: f64,
    pub smoothed_loss: f64,
}

/// Why the test ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum LrFindStop {
    /// All the steps ran.
    Completed,
    /// The smoothed loss exceeded [`STOP_FACTOR`] times its minimum.
    Diverged,
    /// A loss, input or gradient was not finite.
    NonFinite { location: Option<String> },
}

/// A suggested rate and the point of the curve it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrSuggestion {
    /// The step of the point, counting from 1.
    pub step: usize,
    /// The point's rate.
    pub lr: f64,
    pub smoothed_loss: f64,
}

/// The outcome of a test: its curve and what it suggests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrFinding {
    pub start_lr: f64,
    pub end_lr: f64,
    /// The steps asked for; `points` holds those that ran.
    pub steps: usize,
    pub stop: LrFindStop,
    /// The steepest descent of the smoothed loss (Lightning's rule): the
    /// suggestion `cnn train --lr find` trains with.
    pub steepest: Option<LrSuggestion>,
    /// The lowest smoothed loss (fastai's `minimum`); its rate divided by
    /// 10 is [`min_over_10`](Self::min_over_10).
    pub minimum: Option<LrSuggestion>,
    pub points: Vec<LrFindPoint>,
}

impl LrFinding {
    /// The suggestion: the rate of the steepest descent.
    pub fn suggestion(&self) -> Option<f64> {
        self.steepest.as_ref().map(|s| s.lr)
    }

    /// fastai's `minimum` suggestion: the rate of the lowest smoothed loss
    /// divided by 10.
    pub fn min_over_10(&self) -> Option<f64> {
        self.minimum.as_ref().map(|s| s.lr / 10.0)
    }

    /// The text of `lr_find.csv`: `step,lr,loss,smoothed_loss`, floats as
    /// Rust's shortest round-trip text.
    pub fn csv(&self) -> String {
        crate::csv_table::csv_text(
            "step,lr,loss,smoothed_loss",
            self.points.iter().map(|p| {
                [
                    p.step.to_string(),
                    p.lr.to_string(),
                    p.loss.to_string(),
                    p.smoothed_loss.to_string(),
                ]
            }),
        )
    }

    /// One line per suggestion, for people.
    pub fn summary(&self) -> String {
        let ran = format!(
            "{} of {} steps from {:e} to {:e}, {}",
            self.points.len(),
            self.steps,
            self.start_lr,
            self.end_lr,
            match &self.stop {
                LrFindStop::Completed => "all ran".to_string(),
                LrFindStop::Diverged =>
                    format!("stopped at {STOP_FACTOR}x the lowest smoothed loss"),
                LrFindStop::NonFinite { location } => format!(
                    "stopped at a non-finite value{}",
                    location
                        .as_deref()
                        .map(|l| format!(" ({l})"))
                        .unwrap_or_default()
                ),
            }
        );
        let steepest = match &self.steepest {
            Some(s) => format!(
                "steepest descent: lr {:.3e} (step {}, smoothed loss {:.4})",
                s.lr, s.step, s.smoothed_loss
            ),
            None => "steepest descent: none (too few steps past the first 10)".into(),
        };
        let minimum = match &self.minimum {
            Some(m) => format!(
                "minimum / 10: lr {:.3e} (minimum at lr {:.3e}, step {}, smoothed loss {:.4})",
                m.lr / 10.0,
                m.lr,
                m.step,
                m.smoothed_loss
            ),
            None => "minimum / 10: none (too few steps)".into(),
        };
        format!("LR range test: {ran}\n{steepest}\n{minimum}")
    }

    /// Write `lr_find.csv`, `lr_find.png` and `lr_find.svg` into `dir`.
    pub fn write_files(&self, dir: &Path, title: &str) -> Result<()> {
        write_atomic(&dir.join(lr_find::CSV), self.csv().as_bytes())?;
        let lrs: Vec<f64> = self.points.iter().map(|p| p.lr).collect();
        let losses: Vec<f64> = self.points.iter().map(|p| p.loss).collect();
        let smoothed: Vec<f64> = self.points.iter().map(|p| p.smoothed_loss).collect();
        let index = |s: &Option<LrSuggestion>| s.as_ref().map(|s| s.step - 1);
        let curve = LrFindCurve {
            title,
            lrs: &lrs,
            losses: &losses,
            smoothed: &smoothed,
            steepest: index(&self.steepest),
            minimum: index(&self.minimum),
        };
        draw_lr_find(&curve, &dir.join(lr_find::PNG), &dir.join(lr_find::SVG))
    }
}

/// The gradient of `y` over the points `x` (increasing), as
/// `numpy.gradient(y, x)` and `torch.gradient(y, spacing=[x])` take it:
/// second-order central differences inside, first-order at the ends.
/// Needs at least 2 points (else empty).
pub fn gradient(x: &[f64], y: &[f64]) -> Vec<f64> {
    let n = x.len().min(y.len());
    if n < 2 {
        return Vec::new();
    }
    let mut g = vec![0.0; n];
    g[0] = (y[1] - y[0]) / (x[1] - x[0]);
    g[n - 1] = (y[n - 1] - y[n - 2]) / (x[n - 1] - x[n - 2]);
    for i in 1..n - 1 {
        let (h1, h2) = (x[i] - x[i - 1], x[i + 1] - x[i]);
        let a = -h2 / (h1 * (h1 + h2));
        let b = (h2 - h1) / (h1 * h2);
        let c = h1 / (h2 * (h1 + h2));
        g[i] = a * y[i - 1] + b * y[i] + c * y[i + 1];
    }
    g
}

/// The index of the first smallest value, skipping NaN.
fn argmin(v: impl IntoIterator<Item = f64>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, x) in v.into_iter().enumerate() {
        if !x.is_nan() && best.is_none_or(|(_, b)| x < b) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| i)
}

/// Lightning's steepest-descent rule (see the module docs), the gradient
/// taken against the logarithm of the rate: the index into
/// `lrs`/`smoothed` of the suggestion, `None` with fewer than 2 usable
/// points.
pub fn steepest_index(lrs: &[f64], smoothed: &[f64]) -> Option<usize> {
    let n = lrs.len().min(smoothed.len());
    let end = n.checked_sub(STEEPEST_SKIP_END)?;
    let kept: Vec<usize> = (STEEPEST_SKIP_BEGIN..end)
        .filter(|&i| smoothed[i].is_finite())
        .collect();
    if kept.len() < 2 {
        return None;
    }
    let x: Vec<f64> = kept.iter().map(|&i| lrs[i].ln()).collect();
    let y: Vec<f64> = kept.iter().map(|&i| smoothed[i]).collect();
    argmin(gradient(&x, &y)).map(|k| kept[k])
}

/// fastai's `minimum` rule (see the module docs) for a test of `steps`
/// configured steps: the index of the lowest smoothed loss, `None` when
/// nothing is left after the skips.
pub fn minimum_index(smoothed: &[f64], steps: usize) -> Option<usize> {
    let begin = steps / 10;
    let end = smoothed.len().checked_sub(MINIMUM_SKIP_END)?;
    let window = smoothed.get(begin..end)?;
    let finite = window
        .iter()
        .position(|v| !v.is_finite())
        .unwrap_or(window.len());
    argmin(window[..finite].iter().copied()).map(|i| begin + i)
}

/// The configuration the sweep trains with: `config`'s model, data,
/// optimizer, batches and regularizers; its own rates and length.
fn sweep_config(config: &TrainConfig, settings: &LrFindSettings) -> TrainConfig {
    TrainConfig {
        lr: Some(settings.start_lr),
        schedule: "none".into(),
        schedule_per: SchedulePer::Step,
        schedule_params: toml::Table::new(),
        epochs: 0,
        max_steps: settings.steps as u64,
        early_stopping: 0,
        checkpoint_every: 0,
        init_from: None,
        lr_find: None,
        averaging: Default::default(),
        ..config.clone()
    }
}

/// Run the test on a copy of `start` (a model of `plan`'s spec), with
/// `plan`'s data, optimizer and batches (see the module docs).
pub fn range_test<B: Backend>(
    backend: B,
    plan: &RunPlan,
    start: &Graph<B>,
    settings: &LrFindSettings,
) -> Result<LrFinding> {
    settings.validate()?;
    let config = sweep_config(plan.config(), settings);
    let sweep = RunPlan::for_model(&config, start.spec().clone(), plan.data().clone())?;
    let mut graph = sweep.build_graph(&backend)?;
    graph.load_state_dict(&start.state_dict()?)?;
    graph.set_step(start.step());
    let rates = settings.clone();
    let mut trainer = Trainer::from_plan(backend, &sweep, graph)?
        .with_scheduler(Scheduler::from_fn(move |t, _| sweep_lr(&rates, t as usize)));
    let data = plan.data();
    let loader = cnn_data::Loader::new(
        data.train.clone(),
        data.normalization.clone(),
        trainer.loader_config(),
    )?;
    let batches = loader.batches_per_epoch();
    if batches == 0 {
        return Err(TrainError::Config(
            "the LR range test needs training images".into(),
        ));
    }
    let mut points: Vec<LrFindPoint> = Vec::with_capacity(settings.steps);
    let mut watch = Watch::default();
    let mut stop = LrFindStop::Completed;
    let mut epoch = 0u64;
    'sweep: while points.len() < settings.steps {
        for (i, batch) in loader.epoch(epoch).enumerate() {
            let stepped = trainer.train_batch(
                epoch as usize + 1,
                &batch.images,
                &batch.labels,
                i + 1 == batches,
            );
            loader.recycle(batch);
            let (lr, loss) = match stepped {
                Ok(None) => continue,
                Ok(Some(record)) => (record.lr, record.loss),
                Err(TrainError::Diverged { loss, location, .. }) => {
                    stop = LrFindStop::NonFinite { location };
                    (sweep_lr(settings, points.len()), loss)
                }
                Err(e) => return Err(e),
            };
            let (smoothed_loss, diverged) = watch.observe(loss);
            points.push(LrFindPoint {
                step: points.len() + 1,
                lr,
                loss,
                smoothed_loss,
            });
            if stop != LrFindStop::Completed {
                break 'sweep;
            }
            if diverged {
                stop = LrFindStop::Diverged;
                break 'sweep;
            }
            if points.len() == settings.steps {
                break 'sweep;
            }
        }
        epoch += 1;
    }
    let lrs: Vec<f64> = points.iter().map(|p| p.lr).collect();
    let smoothed: Vec<f64> = points.iter().map(|p| p.smoothed_loss).collect();
    let suggestion = |i: usize| LrSuggestion {
        step: points[i].step,
        lr: points[i].lr,
        smoothed_loss: points[i].smoothed_loss,
    };
    Ok(LrFinding {
        start_lr: settings.start_lr,
        end_lr: settings.end_lr,
        steps: settings.steps,
        stop,
        steepest: steepest_index(&lrs, &smoothed).map(suggestion),
        minimum: minimum_index(&smoothed, settings.steps).map(suggestion),
        points,
    })
}

impl<B: Backend> Trainer<B> {
    /// The LR range test on a copy of this trainer's model as it stands;
    /// the trainer (weights, optimizer, schedule, history) is left as it
    /// was.
    pub fn lr_find(&self, settings: &LrFindSettings) -> Result<LrFinding> {
        let plan = RunPlan::for_model(
            self.config(),
            self.graph().spec().clone(),
            self.data().clone(),
        )?;
        range_test(
            self.graph().backend().clone(),
            &plan,
            self.graph(),
            settings,
        )
    }
}

/// The test a fresh run of `plan` asks for first (`lr_find` set without a
/// suggestion), on the run's initial weights: gives the plan to train
/// with, its configuration's `lr` the suggestion and `lr_find` the test's
/// record, and the finding. Any other run's plan comes back as it is.
pub fn before_training<B: Backend>(
    backend: &B,
    plan: RunPlan,
    target: &RunTarget,
) -> Result<(RunPlan, Option<LrFinding>)> {
    let settings = match (&plan.config().lr_find, target) {
        (Some(s), RunTarget::Fresh { .. }) if s.suggestion.is_none() => s.clone(),
        _ => return Ok((plan, None)),
    };
    let mut graph = plan.build_graph(backend)?;
    if let (Some(weights), Some(path)) = (plan.init_weights(), &plan.config().init_from) {
        setup::apply_weights(&mut graph, weights, path)?;
    }
    let finding = range_test(backend.clone(), &plan, &graph, &settings)?;
    drop(graph);
    let Some(lr) = finding.suggestion() else {
        return Err(TrainError::Config(format!(
            "the LR range test gave no suggestion: {} of its {} steps ran, and the steepest \
             descent needs {} or more; give --lr, or more steps",
            finding.points.len(),
            settings.steps,
            STEEPEST_SKIP_BEGIN + STEEPEST_SKIP_END + 2
        )));
    };
    let config = TrainConfig {
        lr: Some(lr),
        lr_find: Some(LrFindSettings {
            suggestion: Some(lr),
            ..settings
        }),
        ..plan.config().clone()
    };
    let plan = RunPlan::new(&config, Some(target), Some(plan.data().clone()))?;
    Ok((plan, Some(finding)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smoothing_is_bias_corrected() {
        // By hand: avg1 = 0.02 * 2 = 0.04, / (1 - 0.98) = 2;
        // avg2 = 0.98 * 0.04 + 0.02 * 1 = 0.0592, / (1 - 0.9604) = 1.494949...;
        // avg3 = 0.98 * 0.0592 + 0.02 * 4 = 0.138016, / (1 - 0.941192) = 2.346892...
        let mut s = Smoother::new(0.98);
        let got = [s.push(2.0), s.push(1.0), s.push(4.0)];
        let want = [2.0, 0.0592 / 0.0396, 0.138016 / 0.058808];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
        // A constant loss smooths to itself from the first step.
        let mut s = Smoother::new(0.98);
        for _ in 0..50 {
            assert!((s.push(3.0) - 3.0).abs() < 1e-12);
        }
    }

    #[test]
    fn the_test_stops_past_four_times_the_lowest_smoothed_loss() {
        // After a first loss of 1, a second loss L smooths to
        // (0.98 * 0.02 + 0.02 L) / (1 - 0.98^2), over 4 once L > 6.94.
        let mut w = Watch::default();
        assert_eq!(w.observe(1.0), (1.0, false));
        let (s, stop) = w.observe(6.9);
        assert!(!stop && s < 4.0 && s > 3.9, "{s}");
        let mut w = Watch::default();
        w.observe(1.0);
        let (s, stop) = w.observe(7.0);
        assert!(stop && s > 4.0, "{s}");
        // Never after the first step, however large its loss.
        assert!(!Watch::default().observe(1e30).1);
        // The lowest so far counts, not the first: 1, then 0.5 (smoothed
        // 0.747...), then the bar is 4 * 0.747.
        let mut w = Watch::default();
        w.observe(1.0);
        let (low, _) = w.observe(0.5);
        let (s, stop) = w.observe(60.0);
        assert!(s > 4.0 * low && stop, "{s} vs {low}");
    }

    #[test]
    fn the_gradient_matches_numpys() {
        // numpy.gradient([1, 4, 9, 25], [1, 2, 3, 5]) = [3, 4, 6, 8].
        let g = gradient(&[1.0, 2.0, 3.0, 5.0], &[1.0, 4.0, 9.0, 25.0]);
        let want = [3.0, 4.0, 6.0, 8.0];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{g:?}");
        }
        // Exact on a parabola inside, on an uneven grid: d(x^2) = 2x.
        let x = [0.1, 0.3, 0.4, 1.0, 2.5];
        let y: Vec<f64> = x.iter().map(|v| v * v).collect();
        let g = gradient(&x, &y);
        for i in 1..4 {
            assert!((g[i] - 2.0 * x[i]).abs() < 1e-12, "{g:?}");
        }
        assert!(gradient(&[1.0], &[1.0]).is_empty());
    }

    #[test]
    fn argmin_takes_the_first_and_skips_nan() {
        assert_eq!(argmin([3.0, 1.0, 2.0, 1.0]), Some(1));
        assert_eq!(argmin([f64::NAN, 2.0, f64::NAN, 1.5]), Some(3));
        assert_eq!(argmin([f64::NAN]), None);
        assert_eq!(argmin([]), None);
    }

    #[test]
    fn minimum_skips_a_tenth_and_five_and_stops_at_nan() {
        // 100 configured steps: the first 10 and the last 5 do not count.
        let mut s: Vec<f64> = (0..40).map(|i| 10.0 - 0.1 * i as f64).collect();
        s[3] = 0.0; // skipped: within the first 10
        s[39] = -1.0; // skipped: within the last 5
        assert_eq!(minimum_index(&s, 100), Some(34));
        s[20] = f64::NAN; // cut there
        assert_eq!(minimum_index(&s, 100), Some(19));
        assert_eq!(minimum_index(&s[..14], 100), None);
        assert_eq!(minimum_index(&[], 100), None);
    }
}
