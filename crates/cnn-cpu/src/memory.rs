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

    /// Within the vector's capacity (what it was allocated with: buffers
    /// are made at their exact length), without reallocating.
    fn resize_within(&self, buf: &mut Vec<f32>, len: usize) -> bool {
        if len > buf.capacity() {
            return false;
        }
        buf.resize(len, 0.0);
        true
    }

    fn resize_indices_within(&self, buf: &mut Vec<u32>, len: usize) -> bool {
        if len > buf.capacity() {
            return false;
        }
        buf.resize(len, 0);
        true
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}

/// No resident training sets: the CPU's training set already lies in the
/// memory it computes from, and the host loader builds its batches there
/// (`cnn_core::ResidentOps`' defaults: no device memory to report,
/// `gather_batch` unsupported).
impl cnn_core::ResidentOps for CpuBackend {}

#[cfg(test)]
mod tests {
    use cnn_core::{MemoryOps, Tensor};

    use crate::CpuBackend;

    #[test]
    fn a_tensor_resizes_within_what_it_was_made_with() {
        let be = CpuBackend::with_threads(1).unwrap();
        let data: Vec<f32> = (0..12).map(|i| i as f32 + 1.0).collect();
        let mut t = Tensor::from_slice(&be, [4, 3], &data).unwrap();
        let at = t.buffer().as_ptr();
        // Fewer samples: the first ones keep their values, in place.
        assert!(t.resize_batch(&be, 2));
        assert_eq!(t.shape().dims(), [2, 3]);
        assert_eq!(t.to_vec(&be).unwrap(), data[..6]);
        // Back to four: the samples beyond the shortened length read as
        // zeros, in the same memory.
        assert!(t.resize_batch(&be, 4));
        assert_eq!(t.to_vec(&be).unwrap()[6..], [0.0; 6]);
        assert_eq!(t.buffer().as_ptr(), at);
        // More than it was made with: refused, unchanged.
        assert!(!t.resize_batch(&be, 5));
        assert_eq!(t.shape().dims(), [4, 3]);
        assert_eq!(be.buffer_len(t.buffer()), 12);
        let mut idx = be.alloc_indices(6).unwrap();
        assert!(be.resize_indices_within(&mut idx, 2));
        assert_eq!(be.index_buffer_len(&idx), 2);
        assert!(!be.resize_indices_within(&mut idx, 7));
        assert_eq!(be.index_buffer_len(&idx), 2);
    }
}
