//! Weight averaging: an exponential moving average of the weights
//! ([`ema`], timm's `ModelEmaV2`) and stochastic weight averaging
//! ([`swa`], `torch.optim.swa_utils`). Each keeps its own copy of the
//! model, updated on the backend, validated after every epoch as its own
//! curve (`ema_val` and `swa_val` in `history.jsonl`, `ema_val_*` and
//! `swa_val_*` columns of `metrics.csv`, a line each in `curves.png`),
//! and saved as `ema.safetensors` / `swa.safetensors` beside
//! `model.safetensors` and in every checkpoint, so a resumed run continues
//! the same averages.
//!
//! The [`Trainer`](crate::Trainer) calls in at four points:
//! [`Averages::after_step`], [`Averages::lr`] (SWALR replaces the
//! schedule from `swa_start` on), [`Averages::end_epoch`] and the
//! checkpoint files.

pub mod ema;
pub mod settings;
pub mod swa;

use std::collections::HashMap;
use std::path::Path;

use cnn_core::{Backend, Graph};
use cnn_data::{Normalization, Subset};

use crate::checkpoint::{Metadata, parse_safetensors, serialize_safetensors};
use crate::error::{Result, TrainError};
use crate::history::SplitMetrics;
use crate::run_dir::{EMA_SAFETENSORS, SWA_SAFETENSORS};
pub use ema::Ema;
pub use settings::AveragingSettings;
pub use swa::{Anneal, Swa};

/// The averaged metrics of an epoch on the validation split.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Averaged {
    pub ema: Option<SplitMetrics>,
    pub swa: Option<SplitMetrics>,
}

/// A run's weight averages.
pub struct Averages<B: Backend> {
    settings: AveragingSettings,
    ema: Option<Ema<B>>,
    swa: Option<Swa<B>>,
}

impl<B: Backend> std::fmt::Debug for Averages<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Averages")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Averages<B> {
    /// The averages `settings` ask for, of `model` as training starts;
    /// `None` when both are off.
    pub fn new(settings: &AveragingSettings, model: &Graph<B>) -> Result<Option<Self>> {
        settings.validate()?;
        if settings.ema.is_none() && settings.swa_start.is_none() {
            return Ok(None);
        }
        let ema = settings
            .ema
            .map(|d| Ema::new(model, d, settings.ema_warmup))
            .transpose()?;
        let swa = settings.swa_start.map(|_| Swa::new(model)).transpose()?;
        Ok(Some(Averages {
            settings: settings.clone(),
            ema,
            swa,
        }))
    }

    /// Whether `epoch` (counting from 1) trains at the SWA rate (the run's
    /// schedule then stands still).
    pub fn swa_active(&self, epoch: usize) -> bool {
        self.settings.swa_start.is_some_and(|s| epoch >= s)
    }

    /// The rate of a step of `epoch`: SWALR's from `swa_start` on, else
    /// `lr` (the schedule's).
    pub fn lr(&self, epoch: usize, lr: f64) -> f64 {
        match (self.settings.swa_start, self.settings.swa_lr) {
            (Some(start), Some(target)) => swa::swa_lr(
                epoch,
                start,
                target,
                self.settings.swa_anneal_epochs,
                self.settings.swa_anneal,
                lr,
            )
            .unwrap_or(lr),
            _ => lr,
        }
    }

    /// After optimizer step `step` (counting from 1): the EMA update.
    pub fn after_step(&mut self, model: &Graph<B>, step: u64) -> Result<()> {
        if let Some(ema) = &mut self.ema {
            ema.update(model, step)?;
        }
        Ok(())
    }

    /// After `epoch`: average the model into the SWA (from `swa_start` on)
    /// and recompute its batch norm statistics over `train` (in order, no
    /// augmentation, `batch_size` images a batch), then validate each
    /// average with `evaluate` (`None` without a validation split).
    pub fn end_epoch(
        &mut self,
        model: &Graph<B>,
        epoch: usize,
        train: (&Subset, &Normalization, usize),
        mut evaluate: impl FnMut(&mut Graph<B>) -> Result<Option<SplitMetrics>>,
    ) -> Result<Averaged> {
        let swa_now = self.swa_active(epoch);
        let mut out = Averaged::default();
        if let (Some(swa), true) = (self.swa.as_mut(), swa_now) {
            swa.update(model)?;
            if swa.update_bn_begin()? {
                let (subset, norm, batch_size) = train;
                let loader = cnn_data::Loader::new(
                    subset.clone(),
                    norm.clone(),
                    cnn_data::LoaderConfig::eval(batch_size),
                )?;
                let b = model.backend().clone();
                b.run(|| -> Result<()> {
                    for batch in loader.epoch(0) {
                        swa.update_bn_batch(&batch.images, batch.labels.len())?;
                        loader.recycle(batch);
                    }
                    Ok(())
                })?;
                swa.update_bn_end()?;
            }
            out.swa = evaluate(swa.graph_mut())?;
        }
        if let Some(ema) = &mut self.ema {
            out.ema = evaluate(ema.graph_mut())?;
        }
        Ok(out)
    }

    /// The files to write beside `model.safetensors` and into each
    /// checkpoint: `ema.safetensors` and, once SWA has averaged a model,
    /// `swa.safetensors` (its `n_averaged` in the metadata).
    pub fn files(&self, origin_dir: &Path) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let mut out = Vec::new();
        if let Some(ema) = &self.ema {
            let bytes = serialize_safetensors(
                &ema.state_dict()?,
                &HashMap::new(),
                &origin_dir.join(EMA_SAFETENSORS),
            )?;
            out.push((EMA_SAFETENSORS, bytes));
        }
        if let Some(swa) = self.swa.as_ref().filter(|s| s.n_averaged() > 0) {
            let metadata: Metadata =
                HashMap::from([("n_averaged".to_string(), swa.n_averaged().to_string())]);
            let bytes = serialize_safetensors(
                &swa.state_dict()?,
                &metadata,
                &origin_dir.join(SWA_SAFETENSORS),
            )?;
            out.push((SWA_SAFETENSORS, bytes));
        }
        Ok(out)
    }

    /// Continue from the averages saved in the checkpoint directory
    /// `ckpt` (a checkpoint of a run with these settings). An EMA file
    /// must be there; the SWA file when the checkpoint comes after SWA's
    /// first epoch (`epochs_done >= swa_start`).
    pub fn load(&mut self, ckpt: &Path, epochs_done: usize) -> Result<()> {
        let read = |name: &str| -> Result<Vec<u8>> {
            let p = ckpt.join(name);
            std::fs::read(&p).map_err(|e| TrainError::io(&p, e))
        };
        if let Some(ema) = &mut self.ema {
            let path = ckpt.join(EMA_SAFETENSORS);
            let (arrays, _) = parse_safetensors(&read(EMA_SAFETENSORS)?, &path)?;
            ema.load(&arrays)?;
        }
        if let Some(swa) = &mut self.swa
            && self.settings.swa_start.is_some_and(|s| epochs_done >= s)
        {
            let path = ckpt.join(SWA_SAFETENSORS);
            let (arrays, metadata) = parse_safetensors(&read(SWA_SAFETENSORS)?, &path)?;
            let n = metadata
                .get("n_averaged")
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| TrainError::bad_file(&path, "no `n_averaged` in its metadata"))?;
            swa.load(&arrays, n)?;
        }
        Ok(())
    }
}
