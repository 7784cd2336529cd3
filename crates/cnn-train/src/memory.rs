//! Memory estimate of a training run, checked before training starts so a
//! run that cannot fit is refused with one clear line instead of being
//! killed by the operating system halfway through.
//!
//! The estimate (bytes, f32 everywhere):
//! - parameters: `params x 4 x 5` (value, gradient and up to three
//!   optimizer slots: Adam's two moments plus AMSGrad's maximum);
//! - activations: `activation_elements_per_sample x 4 x 2` (values and
//!   gradients) for each batch size the graph keeps a workspace for: the
//!   training batch and the evaluation batch (`max(batch, 256)`), plus the
//!   loader's prefetched input batches;
//! - convolution workspace: the largest im2col buffer (`c_in/groups x kh x
//!   kw` rows by `max(h_out w_out, 1024)` columns, forward and backward) per
//!   worker thread;
//! - the dataset's pixels in memory (only when the limit was given: the
//!   default limit is the memory available *after* loading the data).
//!
//! The limit is `max_memory` (`--max-memory 2G`), else `MemAvailable` from
//! `/proc/meminfo`, else none.

use std::sync::Arc;

use cnn_core::graph::NodeOp;
use cnn_core::{GraphSpec, LayerSpec};
use cnn_data::{ImageSet, Pixels};

use crate::error::{Result, TrainError};
use crate::setup::DataSplits;

/// Optimizer slots counted per parameter besides value and gradient.
const OPTIMIZER_SLOTS: u64 = 3;
/// Batches the loader prepares ahead of the training loop (upper bound).
const PREFETCH_BATCHES: u64 = 4;

/// The parts of a run's memory estimate, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Parameters, gradients and optimizer state (and the data-parallel
    /// replicas' weights and gradients, one per thread).
    pub params: u64,
    /// Activations and their gradients for the kept workspaces, plus
    /// prefetched input batches.
    pub activations: u64,
    /// im2col buffers of the convolutions, all threads.
    pub conv_workspace: u64,
    /// Pixels of the loaded dataset.
    pub data: u64,
}

impl MemoryEstimate {
    /// Everything but the data.
    pub fn model_total(&self) -> u64 {
        self.params
            .saturating_add(self.activations)
            .saturating_add(self.conv_workspace)
    }

    /// Everything, data included.
    pub fn total(&self) -> u64 {
        self.model_total().saturating_add(self.data)
    }
}

/// Estimate the memory of training `spec` at `batch_size` on `data` with
/// `threads` worker threads (0 = all cores).
pub fn estimate(
    spec: &GraphSpec,
    batch_size: usize,
    data: &DataSplits,
    threads: usize,
) -> Result<MemoryEstimate> {
    let resolved = spec.resolve()?;
    let f32_bytes = 4u64;
    let params = (spec.num_params()? as u64).saturating_mul(f32_bytes * (2 + OPTIMIZER_SLOTS));
    let per_sample = spec.activation_elements_per_sample()? as u64;
    // A batch never holds more images than the data has.
    let largest = [data.train.len(), data.val.len(), data.test.len()]
        .into_iter()
        .max()
        .unwrap_or(0)
        .max(1) as u64;
    let batch = (batch_size as u64).min(data.train.len().max(1) as u64);
    let eval_batch = (batch_size as u64).max(256).min(largest);
    let activations = per_sample
        .saturating_mul(f32_bytes * 2)
        .saturating_mul(batch.saturating_add(eval_batch))
        .saturating_add(
            (spec.input.numel() as u64)
                .saturating_mul(f32_bytes)
                .saturating_mul(batch)
                .saturating_mul(PREFETCH_BATCHES),
        );
    let mut largest_col = 0u64;
    for (i, node) in spec.nodes.iter().enumerate() {
        let NodeOp::Layer(LayerSpec::Conv2d { geometry, .. }) = &node.op else {
            continue;
        };
        let in_shape = resolved.inputs[i].map_or(&spec.input, |j| &resolved.shapes[j]);
        let c_in = in_shape.dim(0).unwrap_or(1) as u64;
        let out = resolved.shapes[i].dims();
        let positions = out.get(1..).map_or(1, |hw| hw.iter().product::<usize>()) as u64;
        let rows = (c_in / geometry.groups.max(1) as u64)
            .saturating_mul(geometry.kernel[0] as u64)
            .saturating_mul(geometry.kernel[1] as u64);
        largest_col = largest_col.max(rows.saturating_mul(positions.max(1024)));
    }
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    } as u64;
    let conv_workspace = largest_col
        .saturating_mul(f32_bytes * 2)
        .saturating_mul(threads);
    // A data-parallel step (sample-independent graphs on several threads)
    // keeps one replica per thread: its weights and gradients. Its
    // activations replace the full-batch training workspace (the parts add
    // up to the batch), so those are counted already.
    let replicas = if threads > 1 && cnn_core::graph::samples_independent(spec) {
        (spec.num_params()? as u64)
            .saturating_mul(f32_bytes * 2)
            .saturating_mul(threads)
    } else {
        0
    };
    let params = params.saturating_add(replicas);
    Ok(MemoryEstimate {
        params,
        activations,
        conv_workspace,
        data: data_bytes(data),
    })
}

/// Bytes of pixels held by the data's image sets (each set counted once).
fn data_bytes(data: &DataSplits) -> u64 {
    let mut seen: Vec<&Arc<ImageSet>> = Vec::new();
    for set in [data.train.set(), data.val.set(), data.test.set()] {
        if !seen.iter().any(|s| Arc::ptr_eq(s, set)) {
            seen.push(set);
        }
    }
    seen.iter()
        .map(|s| match s.pixels() {
            Pixels::U8(v) => v.len() as u64,
            Pixels::F32(v) => v.len() as u64 * 4,
        })
        .sum()
}

/// `MemAvailable` of `/proc/meminfo` in bytes; `None` where it cannot be read.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line
        .trim_start_matches("MemAvailable:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// Bytes as a short human-readable size (`1.5 GiB`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Refuse a run whose estimate exceeds `max_memory` (bytes), or, when that
/// is `None`, the memory available now (the data is loaded already, so it
/// is not counted again). No limit when neither is known.
pub fn check(estimate: &MemoryEstimate, max_memory: Option<u64>) -> Result<()> {
    let (needed, limit, source) = match max_memory {
        Some(limit) => (estimate.total(), limit, "--max-memory"),
        None => match available_memory() {
            Some(available) => (estimate.model_total(), available, "available memory"),
            None => return Ok(()),
        },
    };
    if needed <= limit {
        return Ok(());
    }
    Err(TrainError::Config(format!(
        "training needs about {} of memory (parameters and optimizer state {}, activations {}, \
         convolution workspace {}, data {}) but the limit ({source}) is {}; lower --batch-size \
         or --threads, or raise --max-memory",
        human(needed),
        human(estimate.params),
        human(estimate.activations),
        human(estimate.conv_workspace),
        human(estimate.data),
        human(limit),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On several threads, a sample-independent model counts one replica
    /// (weights and gradients) per thread; a model with batch norm does not.
    #[test]
    fn data_parallel_replicas_are_counted() {
        use cnn_core::models::{ModelOptions, lenet5, resnet20};
        let options = cnn_data::LoadOptions {
            synthetic: cnn_data::SyntheticConfig {
                train: 40,
                test: 10,
                ..cnn_data::SyntheticConfig::default()
            },
            ..cnn_data::LoadOptions::default()
        };
        let dataset = cnn_data::load(cnn_data::DatasetKind::Synthetic, None, &options).unwrap();
        let data = crate::setup::splits(dataset, 0.0, 0).unwrap();
        let lenet = lenet5(&ModelOptions::new([3, 32, 32], 10)).unwrap();
        let params = lenet.num_params().unwrap() as u64;
        let one = estimate(&lenet, 64, &data, 1).unwrap();
        let two = estimate(&lenet, 64, &data, 2).unwrap();
        assert_eq!(two.params - one.params, params * 4 * 2 * 2);
        assert_eq!(two.activations, one.activations);
        let resnet = resnet20(&ModelOptions::new([3, 32, 32], 10)).unwrap();
        let one = estimate(&resnet, 64, &data, 1).unwrap();
        let two = estimate(&resnet, 64, &data, 2).unwrap();
        assert_eq!(two.params, one.params);
        // A batch larger than the data (40 training images) holds only the
        // data: the estimate is the same as for a batch of 40.
        let huge = estimate(&lenet, 100_000, &data, 1).unwrap();
        let forty = estimate(&lenet, 40, &data, 1).unwrap();
        assert_eq!(huge.activations, forty.activations);
        let smaller = estimate(&lenet, 39, &data, 1).unwrap();
        assert!(smaller.activations < forty.activations);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
