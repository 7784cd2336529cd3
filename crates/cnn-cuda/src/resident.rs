//! Resident training sets on the GPU (`cnn_core::ResidentOps`): the free
//! device memory the trainer's fit rule reads (`cuMemGetInfo`), and the
//! launch of `memory.cu`'s `gather_batch`, which writes one training batch
//! (the epoch's order, crop/flip/cutout draws, normalisation) from a set
//! uploaded once, as `cnn_core::gather_reference` defines it.

use cnn_core::{GatherParams, PixelKind, ResidentOps, ResidentSet, Result};
use cudarc::driver::CudaSlice;

use crate::kernels::KernelSource;
use crate::launch::blocks;
use crate::{CudaBackend, driver_err};

impl ResidentOps for CudaBackend {
    fn resident_free_memory(&self) -> Result<Option<u64>> {
        let (free, _total) = self.inner.ctx.mem_get_info().map_err(driver_err)?;
        Ok(Some(free as u64))
    }

    fn gather_batch(
        &self,
        p: &GatherParams,
        set: &ResidentSet<Self>,
        images: &mut CudaSlice<f32>,
        labels: &mut CudaSlice<u32>,
    ) -> Result<()> {
        p.check(self, set, images, labels)?;
        let [c, h, w] = p.dims;
        let kind: i32 = match p.kind {
            PixelKind::U8 => 0,
            PixelKind::F32 => 1,
        };
        launch!(
            self,
            self.function(KernelSource::Memory, "gather_batch")?,
            blocks(p.n),
            [
                &set.pixels,
                &set.labels,
                &set.order,
                &set.channels,
                images,
                labels,
                &(p.first as u64),
                &(p.n as u64),
                &(c as u64),
                &(h as u64),
                &(w as u64),
                &(p.pad as u64),
                &i32::from(p.flip),
                &(p.cutout as u64),
                &p.seed,
                &p.epoch,
                &kind
            ]
        )
    }
}
