//! Host memory: buffers are `Vec<f32>` and `Vec<u32>`.

use cnn_core::error::check_len;
use cnn_core::{MemoryOps, Result};

use crate::CpuBackend;

impl MemoryOps for CpuBackend {
    type Buffer = Vec<f32>;
    type IndexBuffer = Vec<u32>;

    fn alloc_zeros(&self, len: usize) -> Result<Vec<f32>> {
        Ok(vec![0.0; len])
    }

    fn upload(&self, data: &[f32]) -> Result<Vec<f32>> {
        Ok(data.to_vec())
    }

    fn upload_into(&self, data: &[f32], dst: &mut Vec<f32>) -> Result<()> {
        check_len("upload_into", "dst", dst.len(), data.len())?;
        dst.copy_from_slice(data);
        Ok(())
    }

    fn download(&self, buf: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(buf.clone())
    }

    fn download_into(&self, buf: &Vec<f32>, dst: &mut [f32]) -> Result<()> {
        check_len("download_into", "dst", dst.len(), buf.len())?;
        dst.copy_from_slice(buf);
        Ok(())
    }

    fn buffer_len(&self, buf: &Vec<f32>) -> usize {
        buf.len()
    }

    fn copy(&self, src: &Vec<f32>, dst: &mut Vec<f32>) -> Result<()> {
        check_len("copy", "dst", dst.len(), src.len())?;
        dst.copy_from_slice(src);
        Ok(())
    }

    fn fill(&self, buf: &mut Vec<f32>, value: f32) -> Result<()> {
        buf.fill(value);
        Ok(())
    }

    fn alloc_indices(&self, len: usize) -> Result<Vec<u32>> {
        Ok(vec![0; len])
    }

    fn upload_indices(&self, data: &[u32]) -> Result<Vec<u32>> {
        Ok(data.to_vec())
    }

    fn upload_indices_into(&self, data: &[u32], dst: &mut Vec<u32>) -> Result<()> {
        check_len("upload_indices_into", "dst", dst.len(), data.len())?;
        dst.copy_from_slice(data);
        Ok(())
    }

    fn download_indices(&self, buf: &Vec<u32>) -> Result<Vec<u32>> {
        Ok(buf.clone())
    }

    fn download_indices_into(&self, buf: &Vec<u32>, dst: &mut [u32]) -> Result<()> {
        check_len("download_indices_into", "dst", dst.len(), buf.len())?;
        dst.copy_from_slice(buf);
        Ok(())
    }

    fn index_buffer_len(&self, buf: &Vec<u32>) -> usize {
        buf.len()
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}
