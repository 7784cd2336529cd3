//! Device memory: buffers are `CudaSlice<f32>` and `CudaSlice<u32>` on the
//! backend's stream. Downloads synchronise the stream before returning.

use cnn_core::error::check_len;
use cnn_core::{MemoryOps, Result};
use cudarc::driver::{CudaSlice, DeviceRepr, ValidAsZeroBits};

use crate::kernels::KernelSource;
use crate::launch::grid;
use crate::{CudaBackend, driver_err};

impl CudaBackend {
    fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<CudaSlice<T>> {
        if len == 0 {
            return self.stream().null().map_err(driver_err);
        }
        self.stream().alloc_zeros(len).map_err(driver_err)
    }

    fn up<T: DeviceRepr>(&self, data: &[T]) -> Result<CudaSlice<T>> {
        self.count_upload(data);
        if data.is_empty() {
            return self.stream().null().map_err(driver_err);
        }
        self.stream().clone_htod(data).map_err(driver_err)
    }

    fn up_into<T: DeviceRepr>(&self, data: &[T], dst: &mut CudaSlice<T>) -> Result<()> {
        self.count_upload(data);
        if data.is_empty() {
            return Ok(());
        }
        self.stream().memcpy_htod(data, dst).map_err(driver_err)
    }

    fn count_upload<T>(&self, data: &[T]) {
        self.inner.uploaded.fetch_add(
            std::mem::size_of_val(data) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn down_into<T: DeviceRepr>(&self, buf: &CudaSlice<T>, dst: &mut [T]) -> Result<()> {
        if !dst.is_empty() {
            self.stream().memcpy_dtoh(buf, dst).map_err(driver_err)?;
        }
        self.stream().synchronize().map_err(driver_err)
    }

    /// A host copy of any device buffer (for small results: partial sums,
    /// flags), synchronising the stream.
    pub(crate) fn fetch<T: DeviceRepr + Default + Clone>(
        &self,
        buf: &CudaSlice<T>,
    ) -> Result<Vec<T>> {
        let mut host = vec![T::default(); buf.len()];
        self.down_into(buf, &mut host)?;
        Ok(host)
    }

    /// A device buffer of any type, zeroed (scratch space).
    pub(crate) fn scratch<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        len: usize,
    ) -> Result<CudaSlice<T>> {
        self.zeros(len)
    }
}

impl MemoryOps for CudaBackend {
    type Buffer = CudaSlice<f32>;
    type IndexBuffer = CudaSlice<u32>;

    fn alloc_zeros(&self, len: usize) -> Result<CudaSlice<f32>> {
        self.zeros(len)
    }

    fn upload(&self, data: &[f32]) -> Result<CudaSlice<f32>> {
        self.up(data)
    }

    fn upload_into(&self, data: &[f32], dst: &mut CudaSlice<f32>) -> Result<()> {
        check_len("upload_into", "dst", dst.len(), data.len())?;
        self.up_into(data, dst)
    }

    fn download(&self, buf: &CudaSlice<f32>) -> Result<Vec<f32>> {
        self.fetch(buf)
    }

    fn download_into(&self, buf: &CudaSlice<f32>, dst: &mut [f32]) -> Result<()> {
        check_len("download_into", "dst", dst.len(), buf.len())?;
        self.down_into(buf, dst)
    }

    fn buffer_len(&self, buf: &CudaSlice<f32>) -> usize {
        buf.len()
    }

    fn copy(&self, src: &CudaSlice<f32>, dst: &mut CudaSlice<f32>) -> Result<()> {
        check_len("copy", "dst", dst.len(), src.len())?;
        if src.is_empty() {
            return Ok(());
        }
        self.stream().memcpy_dtod(src, dst).map_err(driver_err)
    }

    fn fill(&self, buf: &mut CudaSlice<f32>, value: f32) -> Result<()> {
        let n = buf.len();
        if n == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.function(KernelSource::Memory, "fill_f32")?,
            grid(n),
            [buf, &(n as u64), &value]
        )
    }

    fn alloc_indices(&self, len: usize) -> Result<CudaSlice<u32>> {
        self.zeros(len)
    }

    fn upload_indices(&self, data: &[u32]) -> Result<CudaSlice<u32>> {
        self.up(data)
    }

    fn upload_indices_into(&self, data: &[u32], dst: &mut CudaSlice<u32>) -> Result<()> {
        check_len("upload_indices_into", "dst", dst.len(), data.len())?;
        self.up_into(data, dst)
    }

    fn download_indices(&self, buf: &CudaSlice<u32>) -> Result<Vec<u32>> {
        self.fetch(buf)
    }

    fn index_buffer_len(&self, buf: &CudaSlice<u32>) -> usize {
        buf.len()
    }

    fn synchronize(&self) -> Result<()> {
        self.stream().synchronize().map_err(driver_err)
    }
}
