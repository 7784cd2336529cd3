//! The training loop: epochs of optimizer steps, evaluation after each
//! epoch, the history, callbacks (early stopping, reduce-on-plateau,
//! checkpoints) and resume. A [`Trainer`] trains from a [`RunPlan`], which
//! has checked and resolved everything before.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use cnn_core::{Backend, DataParallel, Graph, Mode, SoftmaxCrossEntropy, Tensor};
use cnn_data::Subset;
use cnn_optim::{Optimizer, Regularizer, ScheduleConfig, Scheduler};
use serde::{Deserialize, Serialize};

use crate::accumulation::{Pending, scale_grads};
use crate::averaging::Averages;
use crate::checkpoint::{load_safetensors, save_safetensors};
use crate::config::{SchedulePer, TrainConfig};
use crate::early_stopping::EarlyStopping;
use crate::error::{Result, TrainError};
use crate::history::{EpochRecord, History, SplitMetrics, StepRecord};
use crate::metrics::ConfusionMatrix;
use crate::plan::RunPlan;
use crate::progress::Progress;
use crate::run_dir::RunDir;
use crate::setup::DataSplits;

mod evaluate;
mod finite;
mod mixed;
mod persist;
mod resident;
mod resume;
mod scaling;
mod wrapped;
pub use evaluate::evaluate;
use resident::{ResidentTraining, epoch_batches};
pub use resume::Restored;

/// Where a run stands: what a checkpoint must hold besides weights and
/// optimizer state to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Epochs fully completed.
    pub epochs_done: usize,
    /// Batches of the current epoch already trained.
    pub batch_in_epoch: usize,
    /// Optimizer steps taken.
    pub step: u64,
    /// The graph's training-forward counter (keys dropout masks).
    pub graph_step: u64,
    pub early_stopping: EarlyStopping,
    pub schedule: Option<cnn_optim::ScheduleState>,
    /// Running sums of the current epoch's training metrics.
    pub epoch_loss_sum: f64,
    pub epoch_seen: usize,
    pub epoch_confusion: Vec<u64>,
    pub epoch_seconds: f64,
    /// Best validation loss's epoch (for `restore_best`).
    pub best_epoch: usize,
    /// The dynamic loss scale, when the run scales its loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<crate::loss_scale::LossScaler>,
}

/// Device buffers for the loss of one batch size: class targets, the loss
/// gradient and the predicted classes.
struct LossScratch<B: Backend> {
    targets: B::IndexBuffer,
    /// A mixed batch's partner targets (mixup, CutMix).
    partners: B::IndexBuffer,
    dlogits: Tensor<B>,
    preds: B::IndexBuffer,
}

impl<B: Backend> LossScratch<B> {
    /// The buffers for batch size `n`, allocated on first use.
    fn for_batch<'a>(
        cache: &'a mut HashMap<usize, Self>,
        b: &B,
        n: usize,
        classes: usize,
    ) -> Result<&'a mut Self> {
        if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(n) {
            slot.insert(LossScratch {
                targets: b.alloc_indices(n)?,
                partners: b.alloc_indices(n)?,
                dlogits: Tensor::zeros(b, [n, classes])?,
                preds: b.alloc_indices(n)?,
            });
        }
        Ok(cache.get_mut(&n).expect("inserted above"))
    }
}

/// How a `fit` ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// All epochs (or the step budget) done.
    Completed,
    /// Early stopping triggered after this epoch.
    EarlyStopped { epoch: usize, best_epoch: usize },
    /// The epoch gate (a study's pruner) stopped the run after an epoch.
    Pruned(crate::prune::Pruning),
}

/// Trains one model on one dataset.
pub struct Trainer<B: Backend> {
    backend: B,
    config: TrainConfig,
    graph: Graph<B>,
    /// Splits each training batch across the backend's workers when the
    /// graph allows it (see `cnn_core::graph::DataParallel`).
    parallel: Option<DataParallel<B>>,
    optimizer: Optimizer<B>,
    scheduler: Option<Scheduler>,
    /// L1 and L2 through the gradients.
    regularizer: Regularizer,
    /// The L1 term alone, added to the reported loss.
    penalty: Regularizer,
    data: DataSplits,
    /// Optimizer steps per epoch.
    steps_per_epoch: usize,
    /// Batches per epoch (`accumulate` of them to a step).
    batches_per_epoch: usize,
    /// The batches of the optimizer step under way.
    pending: Pending,
    loss: SoftmaxCrossEntropy,
    history: History,
    state: TrainerState,
    run_dir: Option<RunDir>,
    interrupt: Option<Arc<AtomicBool>>,
    quiet: bool,
    /// Print each epoch's summary line on stderr when it ends.
    log_epochs: bool,
    /// Per batch size: targets and loss-gradient buffers.
    scratch: HashMap<usize, LossScratch<B>>,
    /// The last step's predicted classes, kept for reuse.
    host_preds: Vec<u32>,
    /// TensorBoard's event file, appended to with the records each time
    /// they are written (`write_files` takes `&self`, hence the lock).
    tensorboard: Option<std::sync::Mutex<crate::tensorboard::EventWriter>>,
    /// Asked after each epoch whether to stop the run as pruned.
    gate: Option<Arc<dyn crate::prune::EpochGate>>,
    /// The weight averages (`--ema`, `--swa-start`).
    averages: Option<Averages<B>>,
    /// The mixup/CutMix weight of the batch under way (`None`: unmixed).
    batch_mix: Option<f64>,
    /// The training set in device memory (`data_on_device`), or `None`
    /// for the host loader.
    resident: Option<ResidentTraining<B>>,
}

impl<B: Backend> std::fmt::Debug for Trainer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Trainer<B> {
    /// A trainer for `graph` on `data` as `config` says: the plan of
    /// [`RunPlan::for_model`] (every check of a run but its output
    /// directory), then [`from_plan`](Self::from_plan).
    pub fn new(backend: B, config: TrainConfig, graph: Graph<B>, data: DataSplits) -> Result<Self> {
        let plan = RunPlan::for_model(&config, graph.spec().clone(), data)?;
        Self::from_plan(backend, &plan, graph)
    }

    /// A trainer for the run `plan` describes, on `graph`, the model built
    /// from the plan's spec ([`RunPlan::build_graph`]). Parameters with
    /// `ParamKind::decays_by_default() == false` (biases, norm parameters)
    /// get no weight decay.
    pub fn from_plan(backend: B, plan: &RunPlan, mut graph: Graph<B>) -> Result<Self> {
        if graph.spec() != plan.spec() {
            return Err(TrainError::Config(
                "the graph was not built from the plan's model spec".into(),
            ));
        }
        let config = plan.config().clone();
        if config.detect_anomaly {
            graph.set_keep_gradients(true); // every node's, for locate_non_finite_grad
        }
        let data = plan.data().clone();
        let classes = data.num_classes();
        let (la, sam) = (config.lookahead.as_ref(), config.sam.as_ref());
        let mut optimizer = crate::optim_wrap::build(plan.optimizer(), la, sam, config.accumulate)?;
        let no_decay = cnn_optim::ParamGroup::no_decay(
            graph
                .params()
                .into_iter()
                .filter(|p| !p.kind.decays_by_default()),
        );
        optimizer.add_group(no_decay.with_weight_decay(0.0))?;
        let scheduler = plan.schedule().cloned().map(Scheduler::new).transpose()?;
        let regularizer = plan.regularizer();
        let parallel = DataParallel::for_graph(&graph)?;
        let averages = Averages::new(&config.averaging, &graph)?;
        let resident = ResidentTraining::choose(
            &backend,
            &config,
            &data,
            graph.input_shape(),
            parallel.is_some(),
        )?;
        let state = TrainerState {
            epochs_done: 0,
            batch_in_epoch: 0,
            step: 0,
            graph_step: 0,
            early_stopping: EarlyStopping::new(config.early_stopping, config.min_delta),
            schedule: None,
            epoch_loss_sum: 0.0,
            epoch_seen: 0,
            epoch_confusion: vec![0; classes * classes],
            epoch_seconds: 0.0,
            best_epoch: 0,
            loss_scale: crate::loss_scale::LossScaleMode::enabled(
                config.loss_scale,
                config.precision,
            )
            .then(crate::loss_scale::LossScaler::default),
        };
        Ok(Trainer {
            loss: SoftmaxCrossEntropy {
                label_smoothing: config.label_smoothing,
            },
            backend,
            config,
            graph,
            parallel,
            optimizer,
            scheduler,
            regularizer,
            penalty: Regularizer {
                l2: 0.0,
                ..regularizer
            },
            data,
            steps_per_epoch: plan.steps_per_epoch() as usize,
            batches_per_epoch: plan.batches_per_epoch() as usize,
            pending: Pending::default(),
            history: History::default(),
            state,
            run_dir: None,
            interrupt: None,
            quiet: true,
            log_epochs: false,
            scratch: HashMap::new(),
            host_preds: Vec::new(),
            tensorboard: None,
            gate: None,
            averages,
            batch_mix: None,
            resident,
        })
    }

    /// Replace the learning-rate schedule with `scheduler` (any function
    /// of the step and the base rate: [`Scheduler::from_fn`]), as the LR
    /// range test does.
    pub fn with_scheduler(mut self, scheduler: Scheduler) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    /// Write files and checkpoints into `dir` as training goes.
    pub fn with_run_dir(mut self, dir: RunDir) -> Self {
        self.run_dir = Some(dir);
        self
    }

    /// Also write the records to TensorBoard's event file `writer` each
    /// time the run's files are written.
    pub fn with_tensorboard(mut self, writer: crate::tensorboard::EventWriter) -> Self {
        self.tensorboard = Some(std::sync::Mutex::new(writer));
        self
    }

    /// Ask `gate` after each epoch (once its files and checkpoint are
    /// written) whether to stop the run as pruned.
    pub fn with_epoch_gate(mut self, gate: Arc<dyn crate::prune::EpochGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Stop cleanly (after the current step, with a checkpoint) when `flag` is set.
    pub fn with_interrupt(mut self, flag: Arc<AtomicBool>) -> Self {
        self.interrupt = Some(flag);
        self
    }

    /// Show progress bars (when stderr is a terminal).
    pub fn with_progress(mut self, show: bool) -> Self {
        self.quiet = !show;
        self
    }

    /// Print each epoch's [`EpochRecord::summary_line`] on stderr as the
    /// epoch ends (not only once training is over), so that a log shows
    /// progress and an interrupted run's finished epochs.
    pub fn with_epoch_log(mut self, log: bool) -> Self {
        self.log_epochs = log;
        self
    }

    /// Into how many parts each training batch is split across the
    /// backend's threads (see `cnn_core::DataParallel`), or `None` when
    /// steps run unsplit (one thread, batch norm or dropout in the model,
    /// `detect_anomaly` or loss scaling).
    pub fn data_parallel_parts(&self) -> Option<usize> {
        self.parallel
            .as_ref()
            .filter(|_| !self.config.detect_anomaly && !self.scales_loss())
            .map(DataParallel::parts)
    }

    /// The device bytes of the training set when it is resident
    /// (`data_on_device`, see [`crate::resident`]); `None` with the host
    /// loader.
    pub fn resident_bytes(&self) -> Option<u64> {
        self.resident.as_ref().map(ResidentTraining::device_bytes)
    }

    pub fn graph(&self) -> &Graph<B> {
        &self.graph
    }
    /// Drop the graph's workspaces ([`Graph::release_workspaces`]), e.g.
    /// before a final evaluation at other batch sizes.
    pub fn release_workspaces(&mut self) {
        self.graph.release_workspaces();
    }
    pub fn history(&self) -> &History {
        &self.history
    }
    pub fn state(&self) -> &TrainerState {
        &self.state
    }
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }
    pub fn data(&self) -> &DataSplits {
        &self.data
    }

    fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    /// The rate of the next step: the schedule's at its current step for
    /// the optimizer's base rate.
    fn current_lr(&self) -> f64 {
        let base = self.optimizer.config().lr();
        let lr = match &self.scheduler {
            Some(s) => s.lr(base),
            None => base,
        };
        match &self.averages {
            // SWALR from `swa_start` on (the schedule stands still there).
            Some(a) => a.lr(self.state.epochs_done + 1, lr),
            None => lr,
        }
    }

    /// Whether the schedule stands still in `epoch` (SWA's epochs).
    fn swa_epoch(&self, epoch: usize) -> bool {
        self.averages.as_ref().is_some_and(|a| a.swa_active(epoch))
    }

    /// Train until the configured epochs or step budget are done, early
    /// stopping triggers, or the interrupt flag is set.
    pub fn fit(&mut self) -> Result<Outcome> {
        let steps_per_epoch = self.steps_per_epoch();
        let epochs = self.config.planned_epochs(steps_per_epoch as u64);
        // A run resumed from the checkpoint of the epoch that stopped it
        // (killed before its results were written) stays stopped.
        if self.state.epochs_done > 0 && self.state.early_stopping.should_stop() {
            return self.stop_early(self.state.epochs_done);
        }
        while self.state.epochs_done < epochs {
            if self.config.max_steps > 0 && self.state.step >= self.config.max_steps {
                break;
            }
            let epoch = self.state.epochs_done + 1;
            let batches = self.batches_per_epoch;
            let mut progress = Progress::new(!self.quiet, epoch, epochs, batches as u64);
            progress.set_position(self.state.batch_in_epoch as u64);
            let loader = cnn_data::Loader::new(
                self.data.train.clone(),
                self.data.normalization.clone(),
                self.loader_config(),
            )?;
            // The whole batch loop inside one `run`: the CPU backend's
            // workers then stay a team across steps (no wake-up per step).
            let backend = self.backend.clone();
            backend.run(|| self.train_batches(epoch, &loader, &mut progress))?;
            progress.finish();
            let budget_done = self.config.max_steps > 0 && self.state.step >= self.config.max_steps;
            if self.state.batch_in_epoch < batches && !budget_done {
                continue;
            }
            let stop = self.end_epoch(epoch)?;
            if let Some(outcome) = stop {
                self.eval_point(true)?;
                return Ok(outcome);
            }
        }
        self.eval_point(true)?;
        Ok(Outcome::Completed)
    }

    /// The batches of `epoch` from where the run stands: an optimizer step
    /// every `accumulate` batches (and on the epoch's last), then, after a
    /// step, the step budget, an interrupt, periodic checkpoints; so a
    /// checkpoint, an interruption's included, always falls between steps.
    fn train_batches(
        &mut self,
        epoch: usize,
        loader: &cnn_data::Loader,
        progress: &mut Progress,
    ) -> Result<()> {
        let started = Instant::now();
        let seconds_before = self.state.epoch_seconds;
        let (b, start) = (self.backend.clone(), self.state.batch_in_epoch);
        let batches = epoch_batches(self.resident.as_mut(), &b, loader, epoch as u64 - 1, start)?;
        for mut batch in batches {
            if let Some(r) = self.resident.as_mut() {
                r.select(&batch); // its images are gathered on the device
            }
            self.batch_mix = self.mix_batch(epoch, &mut batch);
            let closes = self.state.batch_in_epoch + 1 >= self.batches_per_epoch;
            let (_, stepped) =
                self.train_batch_here(epoch, &batch.images, &batch.labels, closes)?;
            loader.recycle(batch);
            self.state.batch_in_epoch += 1;
            self.state.epoch_seconds = seconds_before + started.elapsed().as_secs_f64();
            progress.step(
                self.history.steps.last().map_or(f64::NAN, |s| s.loss),
                self.running_accuracy(),
            );
            if stepped.is_none() {
                continue;
            }
            let budget_done = self.config.max_steps > 0 && self.state.step >= self.config.max_steps;
            if budget_done {
                break;
            }
            if self.interrupted() {
                progress.finish();
                self.checkpoint()?;
                let dir = self
                    .run_dir
                    .as_ref()
                    .map(|d| d.root().to_path_buf())
                    .unwrap_or_default();
                return Err(TrainError::Interrupted {
                    step: self.state.step,
                    dir,
                });
            }
            if self.config.checkpoint_every > 0
                && self.state.step.is_multiple_of(self.config.checkpoint_every)
            {
                self.checkpoint()?;
            }
        }
        Ok(())
    }

    /// The training loader's settings: batch size, shuffling, seed, augmentation.
    pub(crate) fn loader_config(&self) -> cnn_data::LoaderConfig {
        cnn_data::LoaderConfig {
            shuffle: self.config.shuffle,
            seed: self.config.seed,
            augment: cnn_data::Augment {
                cutout: self.config.cutout,
                ..if self.config.augment {
                    cnn_data::Augment::standard()
                } else {
                    cnn_data::Augment::none()
                }
            },
            ..cnn_data::LoaderConfig::train(self.config.batch_size)
        }
    }

    fn interrupted(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
    }

    fn running_accuracy(&self) -> f64 {
        let classes = self.data.num_classes();
        let correct: u64 = (0..classes)
            .map(|c| self.state.epoch_confusion[c * classes + c])
            .sum();
        correct as f64 / self.state.epoch_seen.max(1) as f64
    }

    /// One batch of normalised images and labels: an optimizer step, or
    /// with `accumulate` N, one on every N-th batch (see
    /// [`train_batch`](Self::train_batch)). Returns the batch's loss (with
    /// the L1 penalty).
    pub fn train_step(&mut self, epoch: usize, images: &[f32], labels: &[u32]) -> Result<f64> {
        let backend = self.backend.clone();
        self.batch_mix = None;
        backend
            .run(|| self.train_batch_here(epoch, images, labels, false))
            .map(|(loss, _)| loss)
    }

    /// One batch: forward and backward, its gradient added to those of the
    /// step's batches before it; then, once `accumulate` batches are in or
    /// when `closes` (an epoch's last batch), the optimizer step on their
    /// images' mean gradient. Returns the step's record when it stepped.
    pub fn train_batch(
        &mut self,
        epoch: usize,
        images: &[f32],
        labels: &[u32],
        closes: bool,
    ) -> Result<Option<StepRecord>> {
        let backend = self.backend.clone();
        self.batch_mix = None;
        backend
            .run(|| self.train_batch_here(epoch, images, labels, closes))
            .map(|(_, step)| step)
    }

    /// [`train_batch`](Self::train_batch), also giving the batch's loss.
    fn train_batch_here(
        &mut self,
        epoch: usize,
        images: &[f32],
        labels: &[u32],
        closes: bool,
    ) -> Result<(f64, Option<StepRecord>)> {
        let n = labels.len();
        let classes = self.data.num_classes();
        let b = self.backend.clone();
        let step = self.state.step + 1;
        self.eval_point(false)?;
        if let Some(i) = images.iter().position(|v| !v.is_finite()) {
            return Err(TrainError::Diverged {
                step,
                epoch,
                loss: f64::NAN,
                location: Some(format!(
                    "non-finite value {} in the input batch, element {i}",
                    images[i]
                )),
            });
        }
        // Anomaly detection inspects every layer's output and gradient,
        // which only the unsplit step keeps.
        let split = self.parallel.is_some() && !self.config.detect_anomaly && !self.scales_loss();
        let graph_step_before = self.graph.step();
        if let Some(factor) = self.pending.rescale_before(n) {
            scale_grads(&b, &mut self.graph, factor)?;
        }
        let mut preds = std::mem::take(&mut self.host_preds);
        preds.resize(n, 0);
        let data_loss = match self.parallel.as_mut().filter(|_| split) {
            Some(parallel) => {
                // (The unsplit step's `forward_loss` makes its own.)
                let partners = self
                    .batch_mix
                    .map(|lam| (crate::mixing::partners(labels), lam));
                f64::from(parallel.forward_backward_mixed(
                    &mut self.graph,
                    images,
                    labels,
                    partners.as_ref().map(|(p, lam)| (p.as_slice(), *lam)),
                    &self.loss,
                    Some(&mut preds),
                )?)
            }
            None => self.forward_loss(images, labels, &mut preds)?,
        };
        // The L1 penalty is part of the reported loss; L2 acts through the
        // gradient only. The weights stay put within a step.
        let penalty = match self.pending.penalty() {
            Some(p) => p,
            None if self.penalty.l1 > 0.0 => self.penalty.penalty(&b, self.graph.params_iter())?,
            None => 0.0,
        };
        let loss = data_loss + penalty;
        self.state.graph_step = self.graph.step();
        if !loss.is_finite() || self.config.detect_anomaly {
            if split || !self.graph.keeps_gradients() {
                self.replay_keeping_all(images, labels, graph_step_before, false)?;
            }
            let location = self.locate_non_finite()?;
            if !loss.is_finite() || location.is_some() {
                return Err(TrainError::Diverged {
                    step,
                    epoch,
                    loss,
                    location,
                });
            }
        }
        if !split {
            self.scale_loss_gradient(n)?;
            self.graph.backward(&self.scratch[&n].dlogits)?;
        }
        // Non-finite gradients stop the run before they reach the weights
        // (with loss scaling, they skip the step instead).
        let scaled = self.scales_loss();
        let bad_param = if scaled {
            None
        } else {
            self.first_non_finite_param_grad()?
        };
        if bad_param.is_some() || (self.config.detect_anomaly && !scaled) {
            if split || !self.graph.keeps_gradients() {
                self.replay_keeping_all(images, labels, graph_step_before, true)?;
            }
            let layer = self.locate_non_finite_grad()?;
            if bad_param.is_some() || layer.is_some() {
                let location = [layer, bad_param.map(|p| format!("gradient of `{p}`"))]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(TrainError::Diverged {
                    step,
                    epoch,
                    loss,
                    location: Some(location),
                });
            }
        }
        self.pending.add(n, data_loss, penalty);
        self.state.epoch_seen += n;
        let counted = crate::mixing::counted_labels(labels, self.batch_mix);
        for (&t, &p) in counted.iter().zip(&preds) {
            if (t as usize) < classes && (p as usize) < classes {
                self.state.epoch_confusion[t as usize * classes + p as usize] += 1;
            }
        }
        self.host_preds = preds;
        if self.pending.batches() < self.config.accumulate && !closes {
            return Ok((loss, None));
        }
        let record = self.optimizer_step(epoch, images, labels)?;
        Ok((loss, Some(record)))
    }

    /// The optimizer step on the pending batches' mean gradient: the
    /// regularizers and clipping, the update at the schedule's rate, the
    /// schedule's step and the step's record.
    fn optimizer_step(
        &mut self,
        epoch: usize,
        images: &[f32],
        labels: &[u32],
    ) -> Result<StepRecord> {
        let b = self.backend.clone();
        let step = self.state.step + 1;
        let closed = self.pending.close();
        if let Some(factor) = closed.factor {
            scale_grads(&b, &mut self.graph, factor)?;
        }
        let loss = closed.loss;
        let lr = self.current_lr();
        let scaling = self.unscale_gradients(&b)?;
        if !scaling.is_some_and(|s| s.skipped) {
            self.adjust_gradients(&b)?;
            self.optimizer.set_lr(lr)?;
            self.wrapped_step(&b, epoch, images, labels)?;
        }
        self.graph.zero_grad()?;
        if self.config.detect_anomaly
            && let Some(name) = self.first_non_finite_weight()?
        {
            return Err(TrainError::Diverged {
                step,
                epoch,
                loss,
                location: Some(format!(
                    "the optimizer step made `{name}` non-finite (learning rate {lr})"
                )),
            });
        }
        let swa_epoch = self.swa_epoch(epoch);
        if let (Some(s), SchedulePer::Step) = (self.scheduler.as_mut(), self.config.schedule_per)
            && !needs_metric(s)
            && !swa_epoch
        {
            s.step();
        }
        self.state.step += 1;
        if let Some(a) = &mut self.averages {
            a.after_step(&self.graph, self.state.step)?;
        }
        self.state.epoch_loss_sum += loss * closed.images as f64;
        let record = StepRecord {
            step: self.state.step,
            epoch,
            loss,
            lr,
            scaling,
        };
        self.history.steps.push(record.clone());
        Ok(record)
    }

    /// The unsplit forward and loss of a batch: returns the mean loss and
    /// writes each sample's predicted class into `host_preds` (length n).
    /// The loss gradient waits in `scratch`.
    fn forward_loss(
        &mut self,
        images: &[f32],
        labels: &[u32],
        host_preds: &mut [u32],
    ) -> Result<f64> {
        let n = labels.len();
        let classes = self.data.num_classes();
        let b = self.backend.clone();
        let LossScratch {
            targets,
            partners,
            dlogits,
            preds,
        } = LossScratch::for_batch(&mut self.scratch, &b, n, classes)?;
        // A resident set's batch comes without host images.
        let logits = match self.resident.as_mut().filter(|_| images.is_empty()) {
            Some(r) => self.graph.forward(r.gather(&b, n, targets)?, Mode::Train)?,
            None => {
                b.upload_indices_into(labels, targets)?;
                self.graph.forward_host(images, n, Mode::Train)?
            }
        };
        let (loss, mix) = (&self.loss, self.batch_mix);
        let data_loss = f64::from(mixed::batch_loss(
            &b, loss, logits, labels, targets, partners, mix, dlogits,
        )?);
        b.argmax_rows(n, classes, logits.buffer(), preds)?;
        b.download_indices_into(preds, host_preds)?;
        Ok(data_loss)
    }

    /// After a split step went wrong: run it again unsplit from the same
    /// weights and step counter, so that the graph holds every layer's
    /// output (and, with `backward`, gradient) for the locators. The run
    /// stops with an error afterwards, so the gradients it adds are moot.
    fn replay_unsplit(
        &mut self,
        images: &[f32],
        labels: &[u32],
        graph_step: u64,
        backward: bool,
    ) -> Result<()> {
        let after = self.graph.step();
        self.graph.set_step(graph_step);
        let mut preds = vec![0; labels.len()];
        self.forward_loss(images, labels, &mut preds)?;
        if backward {
            self.graph.backward(&self.scratch[&labels.len()].dlogits)?;
        }
        self.graph.set_step(after);
        Ok(())
    }

    /// Between backward and the optimizer step: the regularizers' gradients,
    /// then clipping by value, then by norm, as configured.
    fn adjust_gradients(&mut self, b: &B) -> Result<()> {
        let (clip_value, clip_norm) = (self.config.clip_value, self.config.clip_grad_norm);
        if self.regularizer.is_active() {
            self.regularizer.add_gradients_graph(b, &mut self.graph)?;
        }
        if clip_value > 0.0 {
            cnn_optim::regularize::clip_grad_value_graph(b, &mut self.graph, clip_value)?;
        }
        if clip_norm > 0.0 {
            cnn_optim::regularize::clip_grad_norm_graph(b, &mut self.graph, clip_norm)?;
        }
        Ok(())
    }

    /// Evaluate on a subset: mean loss (without penalties) and the confusion matrix.
    pub fn evaluate(&mut self, subset: &Subset) -> Result<(SplitMetrics, ConfusionMatrix)> {
        self.eval_point(true)?;
        evaluate(
            &mut self.graph,
            subset,
            &self.data.normalization,
            self.config.batch_size.max(256),
            self.loss,
        )
    }

    fn end_epoch(&mut self, epoch: usize) -> Result<Option<Outcome>> {
        self.ensure_finite_weights()?;
        let classes = self.data.num_classes();
        let train_cm = ConfusionMatrix::from_counts(classes, self.state.epoch_confusion.clone())
            .ok_or_else(|| {
                TrainError::Config("the epoch's confusion counts do not match the classes".into())
            })?;
        let train =
            train_cm.split_metrics(self.state.epoch_loss_sum / self.state.epoch_seen.max(1) as f64);
        let val_subset = self.data.val.clone();
        let (val, val_cm) = if val_subset.is_empty() {
            (None, None)
        } else {
            let (m, cm) = self.evaluate(&val_subset)?;
            (Some(m), Some(cm))
        };
        let averaged = self.end_epoch_averages(epoch)?;
        let seconds = self.state.epoch_seconds;
        let record = EpochRecord {
            epoch,
            train,
            // The rate the epoch's last step used (not the next step's, which
            // a per-step schedule has already moved on to).
            lr: self
                .history
                .steps
                .last()
                .map_or_else(|| self.current_lr(), |s| s.lr),
            seconds,
            images_per_sec: self.state.epoch_seen as f64 / seconds.max(1e-9),
            val_per_class: val_cm.as_ref().map(|c| c.per_class()).unwrap_or_default(),
            val: val.clone(),
            ema_val: averaged.ema,
            swa_val: averaged.swa,
        };
        if self.log_epochs {
            crate::io::log_line(format_args!("{}", record.summary_line()));
        }
        self.history.epochs.push(record);
        // Callbacks: schedule per epoch / on plateau, early stopping, best weights.
        let monitored = val
            .as_ref()
            .map_or(self.history.epochs[epoch - 1].train.loss, |v| v.loss);
        let swa_epoch = self.swa_epoch(epoch);
        if let Some(s) = self.scheduler.as_mut().filter(|_| !swa_epoch) {
            if needs_metric(s) {
                s.step_with_metric(monitored);
            } else if self.config.schedule_per == SchedulePer::Epoch {
                s.step();
            }
        }
        let improved = self.state.early_stopping.observe(epoch, monitored);
        if improved {
            self.state.best_epoch = epoch;
        }
        self.state.epochs_done = epoch;
        self.state.batch_in_epoch = 0;
        self.state.epoch_loss_sum = 0.0;
        self.state.epoch_seen = 0;
        self.state.epoch_confusion.iter_mut().for_each(|c| *c = 0);
        self.state.epoch_seconds = 0.0;
        if let Some(dir) = self.run_dir.clone() {
            if improved {
                self.eval_point(true)?;
                save_safetensors(
                    &dir.best_model(),
                    &self.graph.state_dict()?,
                    &HashMap::new(),
                )?;
            }
            self.write_files(&dir, val_cm.as_ref())?;
        }
        self.checkpoint()?;
        if let Some(p) = self
            .gate
            .as_ref()
            .and_then(|g| g.check(&self.history.epochs))
        {
            return Ok(Some(Outcome::Pruned(p)));
        }
        if self.state.early_stopping.should_stop() {
            return self.stop_early(epoch).map(Some);
        }
        Ok(None)
    }

    /// End the run after `epoch` by early stopping: the best weights back
    /// in the graph and in `model.safetensors` when `restore_best`.
    fn stop_early(&mut self, epoch: usize) -> Result<Outcome> {
        if self.config.restore_best
            && let Some(dir) = &self.run_dir
        {
            let (best, _) = load_safetensors(&dir.best_model())?;
            self.graph.load_state_dict(&best)?;
            save_safetensors(&dir.model(), &best, &HashMap::new())?;
        }
        Ok(Outcome::EarlyStopped {
            epoch,
            best_epoch: self.state.early_stopping.best_epoch,
        })
    }
}

fn needs_metric(s: &Scheduler) -> bool {
    matches!(s.config(), Some(ScheduleConfig::ReduceOnPlateau(_)))
}
