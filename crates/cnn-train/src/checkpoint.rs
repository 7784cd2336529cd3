//! state_dicts as safetensors files, readable and writable by PyTorch
//! (`safetensors.torch.save_file` / `load_file`).
//!
//! This module is the one call site of the `safetensors` crate. Float
//! entries are stored as F32 and integer counters (`num_batches_tracked`)
//! as I64 with shape `[]`, as PyTorch stores them. On load, F64, F16 and
//! BF16 tensors become F32 and I32 tensors become I64; other dtypes are
//! refused.
//!
//! Reading never trusts the file: the header size, the JSON and every data
//! offset are checked against the real length before anything is sliced or
//! allocated, and every problem is a [`TrainError::BadFile`] naming the file.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::Path;

use cnn_core::{ArrayData, NamedArray};
use safetensors::tensor::{Dtype, SafeTensors, TensorView, View};

use crate::error::{Result, TrainError};
use crate::io::write_atomic;

/// String metadata stored in the safetensors header (`__metadata__`).
pub type Metadata = HashMap<String, String>;

/// Write `arrays` (and `metadata`, if not empty) to `path` atomically.
pub fn save_safetensors(path: &Path, arrays: &[NamedArray], metadata: &Metadata) -> Result<()> {
    let bytes = serialize_safetensors(arrays, metadata, path)?;
    write_atomic(path, &bytes)
}

/// The bytes of a safetensors file holding `arrays`. `origin` names the
/// destination in errors (duplicate names, a shape that does not match the
/// number of values).
pub fn serialize_safetensors(
    arrays: &[NamedArray],
    metadata: &Metadata,
    origin: &Path,
) -> Result<Vec<u8>> {
    let mut seen = HashSet::with_capacity(arrays.len());
    let mut tensors = Vec::with_capacity(arrays.len());
    for a in arrays {
        if !seen.insert(a.name.as_str()) {
            return Err(TrainError::bad_file(
                origin,
                format!("tensor `{}` appears twice", a.name),
            ));
        }
        let (dtype, len, bytes) = match &a.data {
            ArrayData::F32(v) => (
                Dtype::F32,
                v.len(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
            ),
            ArrayData::I64(v) => (
                Dtype::I64,
                v.len(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        };
        let expected = a.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if expected != Some(len) {
            return Err(TrainError::bad_file(
                origin,
                format!(
                    "tensor `{}` has {len} values for shape {:?}",
                    a.name, a.shape
                ),
            ));
        }
        tensors.push((
            a.name.clone(),
            OwnedTensor {
                dtype,
                shape: a.shape.clone(),
                bytes,
            },
        ));
    }
    let info = if metadata.is_empty() {
        None
    } else {
        Some(metadata.clone())
    };
    safetensors::serialize(tensors, &info)
        .map_err(|e| TrainError::bad_file(origin, format!("cannot serialize safetensors: {e}")))
}

/// Read a safetensors file: its tensors in file order, and its metadata
/// (empty when the header has none).
pub fn load_safetensors(path: &Path) -> Result<(Vec<NamedArray>, Metadata)> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    parse_safetensors(&bytes, path)
}

/// What is wrong with a safetensors file, in words (the crate's `Display`
/// is its variant names: `InvalidOffset("conv1.bias")`).
fn describe(e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::InvalidHeader => "its header is not UTF-8 text".into(),
        E::InvalidHeaderStart => "its header does not start with `{`".into(),
        E::InvalidHeaderDeserialization | E::JsonError(_) => "its header is not valid JSON".into(),
        E::HeaderTooLarge => "its header is larger than 100 MB".into(),
        E::HeaderTooSmall | E::InvalidHeaderLength => {
            "its header length does not fit the file (truncated?)".into()
        }
        E::TensorNotFound(name) => format!("tensor `{name}` is missing"),
        E::TensorInvalidInfo => "a tensor's shape, dtype and offsets disagree".into(),
        E::InvalidOffset(name) => format!("tensor `{name}` has invalid data offsets"),
        E::IoError(io) => io.to_string(),
        E::InvalidTensorView(dtype, shape, bytes) => {
            format!("a {dtype:?} tensor of shape {shape:?} cannot hold {bytes} bytes")
        }
        E::MetadataIncompleteBuffer => {
            "its tensors do not cover the data that follows the header (truncated or padded?)"
                .into()
        }
        E::ValidationOverflow => "a tensor's size overflows".into(),
    }
}

/// Parse the bytes of a safetensors file; `origin` names it in errors.
/// Never panics, whatever the bytes.
pub fn parse_safetensors(bytes: &[u8], origin: &Path) -> Result<(Vec<NamedArray>, Metadata)> {
    let bad = |m: String| TrainError::bad_file(origin, m);
    precheck(bytes).map_err(bad)?;
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| bad(format!("not a valid safetensors file: {}", describe(&e))))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a valid safetensors file: {}", describe(&e))))?;
    let metadata = header.metadata().clone().unwrap_or_default();

    let mut views: Vec<(String, TensorView<'_>)> = st.tensors();
    // File order: by the start of each tensor's data (then by name for
    // empty tensors, which share a start).
    views.sort_by(|(na, a), (nb, b)| {
        (a.data().as_ptr() as usize, na.as_str()).cmp(&(b.data().as_ptr() as usize, nb.as_str()))
    });
    let mut out = Vec::with_capacity(views.len());
    for (name, view) in views {
        let data = convert(view.dtype(), view.data()).ok_or_else(|| {
            bad(format!(
                "tensor `{name}` has dtype {:?}; only F32, F64, F16, BF16, I64 and I32 can be read",
                view.dtype()
            ))
        })?;
        out.push(NamedArray {
            name,
            shape: view.shape().to_vec(),
            data,
        });
    }
    Ok((out, metadata))
}

/// Checks the crate relies on its callers for (its own size arithmetic can
/// overflow on offsets near `usize::MAX`): the declared header fits in the
/// file, the header is a JSON object, and every tensor's data offsets lie
/// within the data section.
fn precheck(bytes: &[u8]) -> std::result::Result<(), String> {
    let Some(size) = bytes.get(..8) else {
        return Err(format!(
            "{} bytes is too short for a safetensors file",
            bytes.len()
        ));
    };
    let declared = u64::from_le_bytes(size.try_into().expect("8 bytes"));
    let available = (bytes.len() - 8) as u64;
    if declared > available {
        return Err(format!(
            "the header declares {declared} bytes but only {available} follow (truncated or not a safetensors file)"
        ));
    }
    let header_end = 8 + declared as usize;
    let header = std::str::from_utf8(&bytes[8..header_end])
        .map_err(|_| "the header is not UTF-8 text".to_string())?;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(header)
        .map_err(|e| format!("the header is not a JSON object: {e}"))?;
    let data_len = (bytes.len() - header_end) as u64;
    for (name, info) in &map {
        if name == "__metadata__" {
            continue;
        }
        let offsets = info
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .filter(|o| o.len() == 2)
            .and_then(|o| Some((o[0].as_u64()?, o[1].as_u64()?)));
        let Some((start, end)) = offsets else {
            return Err(format!("tensor `{name}` has no valid data_offsets"));
        };
        if start > end || end > data_len {
            return Err(format!(
                "tensor `{name}` has data offsets [{start}, {end}] outside the {data_len} bytes of data"
            ));
        }
    }
    Ok(())
}

/// Little-endian bytes of `dtype` to our values; `None` for dtypes we do not
/// read. The length is a multiple of the element size (checked by the crate).
fn convert(dtype: Dtype, bytes: &[u8]) -> Option<ArrayData> {
    fn each<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        bytes
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunk of N bytes")))
            .collect()
    }
    Some(match dtype {
        Dtype::F32 => ArrayData::F32(each(bytes, f32::from_le_bytes)),
        Dtype::F64 => ArrayData::F32(each(bytes, |b| f64::from_le_bytes(b) as f32)),
        Dtype::F16 => ArrayData::F32(each(bytes, |b| f16_to_f32(u16::from_le_bytes(b)))),
        Dtype::BF16 => ArrayData::F32(each(bytes, |b| bf16_to_f32(u16::from_le_bytes(b)))),
        Dtype::I64 => ArrayData::I64(each(bytes, i64::from_le_bytes)),
        Dtype::I32 => ArrayData::I64(each(bytes, |b| i64::from(i32::from_le_bytes(b)))),
        _ => return None,
    })
}

/// IEEE 754 half precision to single (exact).
fn f16_to_f32(h: u16) -> f32 {
    let negative = h & 0x8000 != 0;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let magnitude = match exp {
        // Zero and subnormals: man * 2^-24.
        0 => man as f32 * f32::from_bits(0x3380_0000),
        // Infinity and NaN (payload kept).
        0x1f => f32::from_bits(0x7f80_0000 | (man << 13)),
        _ => f32::from_bits(((exp + 127 - 15) << 23) | (man << 13)),
    };
    if negative { -magnitude } else { magnitude }
}

/// bfloat16 is the top half of an f32.
fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// A tensor ready to serialize.
struct OwnedTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for OwnedTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_is_exact() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc040), -3.0);
    }
}
