//! Losses fused with their gradients, and row argmax (`loss.cu`). The
//! per-row (cross-entropy) or per-block (MSE) f64 sums are downloaded and
//! added on the host in order, so the mean matches the CPU's.

use cnn_core::error::check_len;
use cnn_core::{CnnError, CrossEntropyParams, LossOps, Result};
use cudarc::driver::{CudaSlice, LaunchConfig};

use crate::kernels::KernelSource;
use crate::launch::{BLOCK, grid};
use crate::{CudaBackend, driver_err};

/// Most partial sums the MSE downloads.
const MSE_BLOCKS: usize = 1024;

impl LossOps for CudaBackend {
    /// logits and dlogits are (N, classes), dlogits overwritten; targets are (N).
    fn softmax_cross_entropy(
        &self,
        p: &CrossEntropyParams,
        logits: &CudaSlice<f32>,
        targets: &CudaSlice<u32>,
        dlogits: &mut CudaSlice<f32>,
    ) -> Result<f32> {
        p.check(logits.len(), targets.len(), dlogits.len())?;
        let n = p.n;
        let mut row_loss = self.scratch::<f64>(n)?;
        let mut bad_row = self.stream().clone_htod(&[n as u64]).map_err(driver_err)?;
        launch!(
            self,
            self.function(KernelSource::Loss, "softmax_cross_entropy_f32")?,
            grid(n),
            [
                logits,
                targets,
                dlogits,
                &mut row_loss,
                &(n as u64),
                &(p.classes as u64),
                &p.label_smoothing,
                &mut bad_row
            ]
        )?;
        let bad = self.fetch(&bad_row)?[0] as usize;
        if bad < n {
            let target = self.fetch(targets)?[bad];
            return Err(CnnError::TargetOutOfRange {
                op: "softmax_cross_entropy",
                row: bad,
                target,
                classes: p.classes,
            });
        }
        let total: f64 = self.fetch(&row_loss)?.iter().sum();
        Ok((total * (1.0 / n as f64)) as f32)
    }

    /// logits and dlogits are (N, classes), dlogits overwritten; targets
    /// and partners are (N).
    fn softmax_cross_entropy_mixed(
        &self,
        p: &CrossEntropyParams,
        lam: f64,
        logits: &CudaSlice<f32>,
        targets: &CudaSlice<u32>,
        partners: &CudaSlice<u32>,
        dlogits: &mut CudaSlice<f32>,
    ) -> Result<f32> {
        p.check_mixed(
            lam,
            logits.len(),
            targets.len(),
            partners.len(),
            dlogits.len(),
        )?;
        let n = p.n;
        let mut row_loss = self.scratch::<f64>(n)?;
        let mut bad_row = self.stream().clone_htod(&[n as u64]).map_err(driver_err)?;
        launch!(
            self,
            self.function(KernelSource::Loss, "softmax_cross_entropy_mixed_f32")?,
            grid(n),
            [
                logits,
                targets,
                partners,
                dlogits,
                &mut row_loss,
                &(n as u64),
                &(p.classes as u64),
                &p.label_smoothing,
                &lam,
                &mut bad_row
            ]
        )?;
        let bad = self.fetch(&bad_row)?[0] as usize;
        if bad < n {
            let (a, b) = (self.fetch(targets)?[bad], self.fetch(partners)?[bad]);
            return Err(CnnError::TargetOutOfRange {
                op: "softmax_cross_entropy_mixed",
                row: bad,
                target: if a as usize >= p.classes { a } else { b },
                classes: p.classes,
            });
        }
        let total: f64 = self.fetch(&row_loss)?.iter().sum();
        Ok((total * (1.0 / n as f64)) as f32)
    }

    /// x, target, dx are (n); dx overwritten with 2 (x - target) / n.
    fn mse_loss(
        &self,
        x: &CudaSlice<f32>,
        target: &CudaSlice<f32>,
        dx: &mut CudaSlice<f32>,
    ) -> Result<f32> {
        check_len("mse_loss", "target", target.len(), x.len())?;
        check_len("mse_loss", "dx", dx.len(), x.len())?;
        let n = x.len();
        if n == 0 {
            return Err(CnnError::geometry("mse_loss needs at least one element"));
        }
        let nblocks = n.div_ceil(BLOCK as usize).clamp(1, MSE_BLOCKS);
        let mut partials = self.scratch::<f64>(nblocks)?;
        let cfg = LaunchConfig {
            grid_dim: (nblocks as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        launch!(
            self,
            self.function(KernelSource::Loss, "mse_loss_f32")?,
            cfg,
            [x, target, dx, &(n as u64), &mut partials]
        )?;
        let total: f64 = self.fetch(&partials)?.iter().sum();
        Ok((total / n as f64) as f32)
    }

    /// x is (N, classes); out is (N).
    fn argmax_rows(
        &self,
        n: usize,
        classes: usize,
        x: &CudaSlice<f32>,
        out: &mut CudaSlice<u32>,
    ) -> Result<()> {
        if classes == 0 {
            return Err(CnnError::geometry("argmax_rows needs at least one class"));
        }
        check_len("argmax_rows", "x", x.len(), n * classes)?;
        check_len("argmax_rows", "out", out.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.function(KernelSource::Loss, "argmax_rows_f32")?,
            grid(n),
            [x, out, &(n as u64), &(classes as u64)]
        )
    }
}
