//! `Tensor<B>`: a shape plus a buffer in a backend's memory.

use crate::backend::MemoryOps;
use crate::error::{CnnError, Result};
use crate::shape::Shape;

/// A contiguous f32 tensor (NCHW for images) living in backend `B`'s memory.
pub struct Tensor<B: MemoryOps> {
    shape: Shape,
    buffer: B::Buffer,
}

impl<B: MemoryOps> std::fmt::Debug for Tensor<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor")
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl<B: MemoryOps> Tensor<B> {
    /// A tensor of zeros.
    pub fn zeros(backend: &B, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        let buffer = backend.alloc_zeros(shape.numel())?;
        Ok(Tensor { shape, buffer })
    }

    /// A tensor holding `data`, which must have `shape.numel()` elements.
    pub fn from_slice(backend: &B, shape: impl Into<Shape>, data: &[f32]) -> Result<Self> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(CnnError::value(
                "tensor data",
                format!(
                    "{} values given for shape {shape} ({} elements)",
                    data.len(),
                    shape.numel()
                ),
            ));
        }
        let buffer = backend.upload(data)?;
        Ok(Tensor { shape, buffer })
    }

    /// Wrap an existing buffer; its length must match the shape.
    pub fn from_buffer(backend: &B, shape: impl Into<Shape>, buffer: B::Buffer) -> Result<Self> {
        let shape = shape.into();
        let len = backend.buffer_len(&buffer);
        if len != shape.numel() {
            return Err(CnnError::value(
                "tensor buffer",
                format!("buffer of {len} elements for shape {shape}"),
            ));
        }
        Ok(Tensor { shape, buffer })
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// The buffer.
    pub fn buffer(&self) -> &B::Buffer {
        &self.buffer
    }

    /// The buffer, mutably.
    pub fn buffer_mut(&mut self) -> &mut B::Buffer {
        &mut self.buffer
    }

    /// Take the buffer out.
    pub fn into_buffer(self) -> B::Buffer {
        self.buffer
    }

    /// Change the shape without touching the data (same element count).
    pub fn reshape(&mut self, shape: impl Into<Shape>) -> Result<()> {
        let shape = shape.into();
        if shape.numel() != self.shape.numel() {
            return Err(CnnError::value(
                "reshape",
                format!("cannot view {} as {shape}", self.shape),
            ));
        }
        self.shape = shape;
        Ok(())
    }

    /// Give the tensor `n` samples (its first dimension) in the memory its
    /// buffer already holds, where the backend can
    /// ([`MemoryOps::resize_within`]: no more samples than it was made
    /// with); samples kept keep their values, new ones read as zeros.
    /// False, and the tensor unchanged, where it cannot. Allocates nothing.
    pub fn resize_batch(&mut self, backend: &B, n: usize) -> bool {
        let Some(old) = self.shape.dim(0) else {
            return false;
        };
        if n == old {
            return true;
        }
        // Elements per sample, from the other dimensions (no allocation).
        let sample: usize = self.shape.dims()[1..].iter().product();
        let Some(len) = sample.checked_mul(n) else {
            return false;
        };
        if !backend.resize_within(&mut self.buffer, len) {
            return false;
        }
        self.shape.set_batch(n);
        true
    }

    /// A host copy of the values.
    pub fn to_vec(&self, backend: &B) -> Result<Vec<f32>> {
        backend.download(&self.buffer)
    }

    /// Overwrite the values from the host (same element count).
    pub fn copy_from_slice(&mut self, backend: &B, data: &[f32]) -> Result<()> {
        if data.len() != self.numel() {
            return Err(CnnError::value(
                "tensor data",
                format!("{} values given for shape {}", data.len(), self.shape),
            ));
        }
        backend.upload_into(data, &mut self.buffer)
    }

    /// Overwrite the values with those of `parts` laid end to end (their
    /// element counts must add up to this tensor's), passing through
    /// `host`, which is grown as needed and kept for reuse. Each part may
    /// live on its own handle of the same device; `backend` reads them all.
    pub fn concat_from<'a>(
        &mut self,
        backend: &B,
        parts: impl Iterator<Item = &'a Tensor<B>>,
        host: &mut Vec<f32>,
    ) -> Result<()>
    where
        B: 'a,
    {
        let total = self.numel();
        host.resize(total, 0.0);
        let mut at = 0;
        for part in parts {
            let end = at + part.numel();
            if end > total {
                return Err(parts_mismatch(total, &self.shape));
            }
            backend.download_into(&part.buffer, &mut host[at..end])?;
            at = end;
        }
        if at != total {
            return Err(parts_mismatch(total, &self.shape));
        }
        backend.upload_into(&host[..total], &mut self.buffer)
    }

    /// Overwrite each of `parts` with its share of this tensor's values,
    /// laid end to end (the inverse of [`Tensor::concat_from`]).
    pub fn split_into<'a>(
        &self,
        backend: &B,
        parts: impl Iterator<Item = &'a mut Tensor<B>>,
        host: &mut Vec<f32>,
    ) -> Result<()>
    where
        B: 'a,
    {
        let total = self.numel();
        host.resize(total, 0.0);
        backend.download_into(&self.buffer, &mut host[..total])?;
        let mut at = 0;
        for part in parts {
            let end = at + part.numel();
            if end > total {
                return Err(parts_mismatch(total, &self.shape));
            }
            backend.upload_into(&host[at..end], &mut part.buffer)?;
            at = end;
        }
        if at != total {
            return Err(parts_mismatch(total, &self.shape));
        }
        Ok(())
    }

    /// A deep copy.
    pub fn try_clone(&self, backend: &B) -> Result<Self> {
        let mut buffer = backend.alloc_zeros(self.numel())?;
        backend.copy(&self.buffer, &mut buffer)?;
        Ok(Tensor {
            shape: self.shape.clone(),
            buffer,
        })
    }
}

fn parts_mismatch(total: usize, shape: &Shape) -> CnnError {
    CnnError::value(
        "tensor parts",
        format!("the parts do not add up to the {total} values of {shape}"),
    )
}
