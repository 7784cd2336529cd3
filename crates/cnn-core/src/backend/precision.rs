//! The arithmetic precision a backend computes convolutions and linear
//! layers in, with the semantics of PyTorch's `torch.autocast`.

use std::fmt;
use std::str::FromStr;

use crate::CnnError;

/// How a backend computes the GEMMs of convolutions and linear layers.
///
/// Only those products change: batch norm, softmax and the loss,
/// reductions and the optimizer update stay f32, and the parameters
/// (the master weights) and checkpoints are f32 in every mode, so a
/// checkpoint trained in one mode loads in any other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Precision {
    /// Full f32 products and sums: every backend's default.
    #[default]
    F32,
    /// f32 operands rounded to TF32 (10-bit mantissa) on tensor cores,
    /// f32 accumulation (PyTorch's `allow_tf32 = True`).
    Tf32,
    /// bfloat16 operands, f32 accumulation; no loss scaling needed.
    Bf16,
    /// IEEE half operands, f32 accumulation, with dynamic loss scaling.
    F16,
}

impl Precision {
    /// Every mode, in the order `--precision` lists them.
    pub const ALL: [Precision; 4] = [
        Precision::F32,
        Precision::Tf32,
        Precision::Bf16,
        Precision::F16,
    ];

    /// The name `--precision` and the config key `precision` take.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }

    /// Whether a training step in this mode needs dynamic loss scaling
    /// (f16's five exponent bits underflow small gradients; bf16 has f32's
    /// exponent range).
    pub fn needs_loss_scaling(self) -> bool {
        self == Precision::F16
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = CnnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| CnnError::InvalidValue {
                name: "precision".into(),
                message: format!("`{s}` is not one of f32, tf32, bf16, f16"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
            assert_eq!(p.to_string(), p.name());
        }
        let err = "fp16".parse::<Precision>().unwrap_err();
        assert!(err.to_string().contains("`fp16` is not one of"), "{err}");
        assert_eq!(Precision::default(), Precision::F32);
        assert!(Precision::F16.needs_loss_scaling());
        assert!(!Precision::Bf16.needs_loss_scaling());
    }
}
