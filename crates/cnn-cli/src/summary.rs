//! `cnn summary`: a model layer by layer, as Keras's `model.summary()` and
//! torchinfo show it: each layer's output shape, parameters, running
//! statistics, forward MACs and activation memory at `--batch-size`; the
//! totals, the training FLOPs per image and the memory estimate that
//! `cnn train` checks before it trains (`--json` for all of it as JSON).
//!
//! The model and its input shape come from the same flags (or `--config`)
//! as `cnn train`: the data is loaded to learn its image shape and classes.
//! The counts are cnn-core's `GraphSpec::counts`; the estimate is
//! cnn-train's `memory::estimate`.

use std::path::PathBuf;

use clap::Args;
use cnn::core::Shape;
use cnn::core::graph::ModelCounts;
use cnn::train::memory::{self, MemoryEstimate, human};
use cnn::train::{TrainConfig, setup};
use serde_json::json;

use crate::args::ModelDataArgs;
use crate::error::CliResult;

#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Read the configuration from a TOML file, as `cnn train --config`
    /// (flags override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub common: ModelDataArgs,
    /// Images per batch for the activation sizes and the memory estimate
    /// [default: 64].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Print everything as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What is summarised: the configuration, the model's counts and the
/// training memory estimate.
struct Summary {
    config: TrainConfig,
    data: String,
    classes: usize,
    counts: ModelCounts,
    memory: MemoryEstimate,
    threads: usize,
}

pub fn summary(args: SummaryArgs) -> CliResult {
    let mut config = match &args.config {
        Some(path) => TrainConfig::load(path)?,
        None => TrainConfig::default(),
    };
    args.common.apply(&mut config);
    if let Some(batch) = args.batch_size {
        config.batch_size = batch;
    }
    config.validate()?;
    let data = setup::load_data(&config)?;
    let spec = setup::model_spec(&config, &data.shape, data.num_classes())?;
    let counts = spec.counts()?;
    let memory = memory::estimate(&spec, config.batch_size, &data, config.threads)?;
    let threads = match config.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let summary = Summary {
        data: data.name.clone(),
        classes: data.num_classes(),
        config,
        counts,
        memory,
        threads,
    };
    if args.json {
        say!("{}", summary.json());
    } else {
        summary.print();
    }
    Ok(())
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A per-sample shape with the batch in front, as torchinfo prints it.
fn batched(batch: usize, shape: &Shape) -> String {
    let dims: Vec<String> = std::iter::once(batch)
        .chain(shape.dims().iter().copied())
        .map(|d| d.to_string())
        .collect();
    format!("[{}]", dims.join(", "))
}

/// Bytes for a batch, or "overflow" where the count does not fit.
fn size(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "overflow".to_string(), human)
}

impl Summary {
    fn batch(&self) -> usize {
        self.config.batch_size
    }

    fn print(&self) {
        let c = &self.counts;
        let batch = self.batch();
        say!(
            "model {} on {} (input {}, {} classes), batch {batch}",
            self.config.model,
            self.data,
            c.input,
            self.classes
        );
        let name_width = c
            .layers
            .iter()
            .map(|l| l.name.len() + l.kind.len() + 3)
            .max()
            .unwrap_or(0)
            .max("layer (type)".len());
        let shape_width = c
            .layers
            .iter()
            .map(|l| batched(batch, &l.output).len())
            .max()
            .unwrap_or(0)
            .max("output shape".len());
        let header = format!(
            "{:<name_width$}  {:<shape_width$}  {:>11}  {:>8}  {:>14}  {:>11}",
            "layer (type)", "output shape", "parameters", "buffers", "MACs", "activations"
        );
        let rule = "-".repeat(header.len());
        say!("{rule}");
        say!("{header}");
        say!("{rule}");
        for l in &c.layers {
            say!(
                "{:<name_width$}  {:<shape_width$}  {:>11}  {:>8}  {:>14}  {:>11}",
                format!("{} ({})", l.name, l.kind),
                batched(batch, &l.output),
                grouped(l.params as u64),
                grouped(l.buffers as u64),
                grouped(l.macs),
                size(l.activation_bytes(batch)),
            );
        }
        say!("{rule}");
        say!(
            "parameters: {} (trainable {}, non-trainable 0), {} as f32",
            grouped(c.params as u64),
            grouped(c.params as u64),
            human((c.params as u64).saturating_mul(4))
        );
        say!(
            "buffers: {} (batch norm's running mean and variance: state, not parameters, as in torchinfo)",
            grouped(c.buffers as u64)
        );
        say!(
            "forward MACs per image: {} (convolutions and linear layers, as torch.utils.flop_counter; {} FLOPs)",
            grouped(c.macs),
            grouped(c.forward_flops())
        );
        say!(
            "training FLOPs per image: {} (forward x3, less the first layer's input gradient)",
            grouped(c.training_flops)
        );
        say!(
            "activations at batch {batch}: input {}, outputs {} (backward keeps as much again for their gradients)",
            size(
                (c.input.numel() as u64)
                    .checked_mul(batch as u64)
                    .and_then(|n| n.checked_mul(4))
            ),
            size(c.activation_bytes(batch))
        );
        let m = &self.memory;
        say!(
            "memory estimate of `cnn train` at batch {batch} on {} thread{}: {} (parameters and optimizer state {}, activations {}, convolution workspace {}, data {})",
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            human(m.total()),
            human(m.params),
            human(m.activations),
            human(m.conv_workspace),
            human(m.data)
        );
    }

    fn json(&self) -> serde_json::Value {
        let c = &self.counts;
        let batch = self.batch();
        let layers: Vec<serde_json::Value> = c
            .layers
            .iter()
            .map(|l| {
                json!({
                    "name": l.name,
                    "type": l.kind,
                    "input_shape": l.input.dims(),
                    "output_shape": l.output.dims(),
                    "params": l.params,
                    "trainable_params": l.params,
                    "non_trainable_params": 0,
                    "buffers": l.buffers,
                    "macs": l.macs,
                    "input_grad": l.input_grad,
                    "activation_bytes": l.activation_bytes(batch),
                })
            })
            .collect();
        let m = &self.memory;
        json!({
            "model": self.config.model,
            "data": self.data,
            "input_shape": c.input.dims(),
            "classes": self.classes,
            "batch_size": batch,
            "layers": layers,
            "totals": {
                "params": c.params,
                "trainable_params": c.params,
                "non_trainable_params": 0,
                "buffers": c.buffers,
                "macs": c.macs,
                "forward_flops": c.forward_flops(),
                "training_flops": c.training_flops,
                "activation_elements_per_image": c.activation_elements,
                "activation_bytes": c.activation_bytes(batch),
            },
            "memory_estimate": {
                "threads": self.threads,
                "params": m.params,
                "activations": m.activations,
                "conv_workspace": m.conv_workspace,
                "data": m.data,
                "total": m.total(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(40_813_184), "40,813,184");
        assert_eq!(grouped(272_474), "272,474");
    }

    #[test]
    fn shapes_take_the_batch_in_front() {
        assert_eq!(batched(64, &Shape::from([16, 32, 32])), "[64, 16, 32, 32]");
        assert_eq!(batched(1, &Shape::from([10])), "[1, 10]");
    }
}
