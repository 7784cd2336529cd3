//! The host side of the rules that are not per-element (Adafactor, Muon,
//! LAMB, LARS): a step downloads the weight, the gradient and the state,
//! updates them in f32 in the reference's order of operations, and
//! uploads the weight and the state.
//!
//! Why the host: these rules need per-tensor norms (LAMB's and LARS's
//! trust ratios, Adafactor's RMS clipping), row and column means of a
//! reshaped tensor (Adafactor's factored second moment) or a chain of
//! small matrix products (Muon's Newton-Schulz iteration) between
//! per-element passes; written once here they follow the reference line
//! by line on every backend. The cost is two copies of each parameter per
//! step (a memory copy on the CPU backend, a round trip over the bus on
//! CUDA) and the host's arithmetic (see `newton_schulz`).

use cnn_core::Backend;

use super::StepCtx;
use crate::error::Result;

/// A parameter's weight, gradient and state buffers on the host.
pub(crate) struct HostStep {
    pub w: Vec<f32>,
    pub g: Vec<f32>,
    pub bufs: Vec<Vec<f32>>,
}

impl HostStep {
    /// Download everything `ctx` names.
    pub(crate) fn download<B: Backend>(backend: &B, ctx: &StepCtx<'_, B>) -> Result<Self> {
        let mut bufs = Vec::with_capacity(ctx.bufs.len());
        for b in ctx.bufs.iter() {
            bufs.push(backend.download(b)?);
        }
        Ok(HostStep {
            w: backend.download(ctx.w)?,
            g: backend.download(ctx.g)?,
            bufs,
        })
    }

    /// Upload the weight and the state back into `ctx`'s buffers.
    pub(crate) fn upload<B: Backend>(&self, backend: &B, ctx: StepCtx<'_, B>) -> Result<()> {
        backend.upload_into(&self.w, ctx.w)?;
        for (host, dev) in self.bufs.iter().zip(ctx.bufs.iter_mut()) {
            backend.upload_into(host, dev)?;
        }
        Ok(())
    }
}

/// The 2-norm, accumulated in f64 and rounded to f32 (torch's
/// `linalg.norm` of a float32 tensor is a float32).
pub(crate) fn norm(x: &[f32]) -> f32 {
    x.iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt() as f32
}

/// `torch.lerp(start, end, weight)` as torch computes it for float32:
/// `start + weight * (end - start)` for `|weight| < 0.5`, else
/// `end - (end - start) * (1 - weight)`.
pub(crate) fn lerp(start: f32, end: f32, weight: f32) -> f32 {
    if weight.abs() < 0.5 {
        start + weight * (end - start)
    } else {
        end - (end - start) * (1.0 - weight)
    }
}

#[cfg(test)]
mod tests {
    use super::lerp;

    /// torch.lerp switches formula at |weight| = 0.5 and takes the second
    /// one there; the two round differently (torch 2.15's float32 values).
    #[test]
    fn lerp_takes_torchs_formula_at_a_half() {
        let (start, end) = (f32::from_bits(1_040_236_396), f32::from_bits(3_200_969_151));
        assert_eq!(lerp(start, end, 0.5).to_bits(), 3_188_361_738);
        assert_ne!((start + 0.5 * (end - start)).to_bits(), 3_188_361_738);
        assert_eq!(lerp(start, end, 0.25).to_bits(), 3_147_606_464);
    }
}
