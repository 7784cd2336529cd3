//! Device memory: allocate, upload, download, copy, synchronise.

use crate::error::Result;

/// Memory management. `Buffer` holds f32 values; `IndexBuffer` holds u32
/// values (max-pool argmax positions, class targets, predictions).
pub trait MemoryOps {
    /// A contiguous array of f32 in device memory.
    type Buffer: Send + Sync + std::fmt::Debug;
    /// A contiguous array of u32 in device memory.
    type IndexBuffer: Send + Sync + std::fmt::Debug;

    /// A buffer of `len` zeros.
    fn alloc_zeros(&self, len: usize) -> Result<Self::Buffer>;
    /// A new buffer holding a copy of `data`.
    fn upload(&self, data: &[f32]) -> Result<Self::Buffer>;
    /// Overwrite `dst` with `data` (same length) without reallocating.
    fn upload_into(&self, data: &[f32], dst: &mut Self::Buffer) -> Result<()>;
    /// A host copy of the buffer.
    fn download(&self, buf: &Self::Buffer) -> Result<Vec<f32>>;
    /// Copy the buffer into `dst` (same length).
    fn download_into(&self, buf: &Self::Buffer, dst: &mut [f32]) -> Result<()>;
    /// Number of f32 elements in the buffer.
    fn buffer_len(&self, buf: &Self::Buffer) -> usize;
    /// `dst = src` (same length).
    fn copy(&self, src: &Self::Buffer, dst: &mut Self::Buffer) -> Result<()>;
    /// Set every element to `value`.
    fn fill(&self, buf: &mut Self::Buffer, value: f32) -> Result<()>;

    /// An index buffer of `len` zeros.
    fn alloc_indices(&self, len: usize) -> Result<Self::IndexBuffer>;
    /// A new index buffer holding a copy of `data`.
    fn upload_indices(&self, data: &[u32]) -> Result<Self::IndexBuffer>;
    /// Overwrite `dst` with `data` (same length).
    fn upload_indices_into(&self, data: &[u32], dst: &mut Self::IndexBuffer) -> Result<()>;
    /// A host copy of the index buffer.
    fn download_indices(&self, buf: &Self::IndexBuffer) -> Result<Vec<u32>>;
    /// Copy the index buffer into `dst` (same length). The default goes
    /// through [`MemoryOps::download_indices`]; backends override it to
    /// copy without allocating.
    fn download_indices_into(&self, buf: &Self::IndexBuffer, dst: &mut [u32]) -> Result<()> {
        let host = self.download_indices(buf)?;
        crate::error::check_len("download_indices_into", "dst", dst.len(), host.len())?;
        dst.copy_from_slice(&host);
        Ok(())
    }
    /// Number of elements in the index buffer.
    fn index_buffer_len(&self, buf: &Self::IndexBuffer) -> usize;

    /// Give `buf` `len` elements in the memory it already holds, where the
    /// backend can: at most as many as it was allocated with. Elements
    /// beyond the old length read as zeros; those kept keep their values.
    /// False, with `buf` unchanged, where it cannot (then the caller
    /// allocates a new buffer; the default, for backends whose buffers
    /// have a fixed length). Lets a graph run a last partial batch in the
    /// full batch's workspace instead of one of its own.
    fn resize_within(&self, buf: &mut Self::Buffer, len: usize) -> bool {
        let _ = (buf, len);
        false
    }

    /// [`MemoryOps::resize_within`] for an index buffer.
    fn resize_indices_within(&self, buf: &mut Self::IndexBuffer, len: usize) -> bool {
        let _ = (buf, len);
        false
    }

    /// Wait until all queued work has finished (a no-op on synchronous backends).
    fn synchronize(&self) -> Result<()>;
}
