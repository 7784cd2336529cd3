//! Moving test data to and from a backend, with errors as strings that
//! name the op (the runners collect them rather than panic).

use cnn_core::backend::Backend;

/// Attach the op name to a backend error.
pub(crate) fn ctx<T>(r: cnn_core::Result<T>, op: &str) -> Result<T, String> {
    r.map_err(|e| format!("{op} returned an error: {e}"))
}

/// Upload f32 values.
pub(crate) fn up<B: Backend>(b: &B, data: &[f32]) -> Result<B::Buffer, String> {
    ctx(b.upload(data), "upload")
}

/// Upload u32 values.
pub(crate) fn up_indices<B: Backend>(b: &B, data: &[u32]) -> Result<B::IndexBuffer, String> {
    ctx(b.upload_indices(data), "upload_indices")
}

/// A buffer of `len` copies of `value` (NaN marks outputs that must be overwritten).
pub(crate) fn filled<B: Backend>(b: &B, len: usize, value: f32) -> Result<B::Buffer, String> {
    up(b, &vec![value; len])
}

/// Download f32 values (after synchronising).
pub(crate) fn down<B: Backend>(b: &B, buf: &B::Buffer) -> Result<Vec<f32>, String> {
    ctx(b.synchronize(), "synchronize")?;
    ctx(b.download(buf), "download")
}

/// Download u32 values (after synchronising).
pub(crate) fn down_indices<B: Backend>(b: &B, buf: &B::IndexBuffer) -> Result<Vec<u32>, String> {
    ctx(b.synchronize(), "synchronize")?;
    ctx(b.download_indices(buf), "download_indices")
}

/// Widen f32 values to f64.
pub(crate) fn widen(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(v)).collect()
}
