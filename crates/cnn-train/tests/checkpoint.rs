//! safetensors state_dicts: round trip, PyTorch's file, other dtypes, and
//! hostile bytes (errors, never panics).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cnn_core::{ArrayData, NamedArray};
use cnn_train::TrainError;
use cnn_train::checkpoint::{
    load_safetensors, parse_safetensors, save_safetensors, serialize_safetensors,
};
use safetensors::tensor::{Dtype, TensorView};

fn golden_dir() -> PathBuf {
    match std::env::var_os("CNN_GOLDEN_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden"),
    }
}

fn sample() -> Vec<NamedArray> {
    vec![
        NamedArray {
            name: "conv.weight".into(),
            shape: vec![2, 1, 2, 2],
            data: ArrayData::F32(vec![
                0.5,
                -1.25,
                3.0e-8,
                f32::MAX,
                -0.0,
                1.0,
                2.0,
                f32::MIN_POSITIVE,
            ]),
        },
        NamedArray {
            name: "bn.running_var".into(),
            shape: vec![2],
            data: ArrayData::F32(vec![1.0, 0.1]),
        },
        NamedArray {
            name: "bn.num_batches_tracked".into(),
            shape: vec![],
            data: ArrayData::I64(vec![1234567890123]),
        },
        NamedArray {
            name: "empty".into(),
            shape: vec![0, 3],
            data: ArrayData::F32(vec![]),
        },
    ]
}

fn by_name(v: &[NamedArray]) -> HashMap<&str, &NamedArray> {
    v.iter().map(|a| (a.name.as_str(), a)).collect()
}

#[test]
fn round_trip_with_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let arrays = sample();
    let meta: HashMap<String, String> = [
        ("format".to_string(), "pt".to_string()),
        ("epoch".into(), "3".into()),
    ]
    .into();
    save_safetensors(&path, &arrays, &meta).unwrap();
    let (back, meta_back) = load_safetensors(&path).unwrap();
    assert_eq!(meta_back, meta);
    assert_eq!(back.len(), arrays.len());
    let back = by_name(&back);
    for a in &arrays {
        assert_eq!(back[a.name.as_str()], a, "{}", a.name);
    }
    // Only the file itself is left in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // Without metadata, no __metadata__ entry.
    save_safetensors(&path, &arrays, &HashMap::new()).unwrap();
    let (_, meta_back) = load_safetensors(&path).unwrap();
    assert!(meta_back.is_empty());
}

#[test]
fn counters_are_int64_scalars_in_the_file() {
    let bytes = serialize_safetensors(&sample(), &HashMap::new(), Path::new("x")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("bn.num_batches_tracked").unwrap();
    assert_eq!(t.dtype(), Dtype::I64);
    assert!(t.shape().is_empty());
    assert_eq!(st.tensor("conv.weight").unwrap().dtype(), Dtype::F32);
}

#[test]
fn save_rejects_bad_input() {
    let mut arrays = sample();
    arrays[1].shape = vec![3];
    let err =
        serialize_safetensors(&arrays, &HashMap::new(), Path::new("out.safetensors")).unwrap_err();
    assert!(err.to_string().contains("bn.running_var"), "{err}");
    let mut arrays = sample();
    arrays.push(arrays[0].clone());
    let err =
        serialize_safetensors(&arrays, &HashMap::new(), Path::new("out.safetensors")).unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
}

#[test]
fn loads_pytorch_lenet5() {
    let path = golden_dir().join("lenet5_init_seed0.safetensors");
    let (arrays, _) = load_safetensors(&path).unwrap();
    // name, shape, the first two and the last value, the fan-in, and the
    // f64 sum in file order: read from the file by a separate parser
    // (Python's `struct` over the raw header and bytes), not by this crate.
    type Known = (&'static str, &'static [usize], [f64; 2], f64, usize, f64);
    let expect: &[Known] = &[
        (
            "conv1.weight",
            &[6, 1, 5, 5],
            [-0.0014973640209063888, 0.10728871822357178],
            -0.15326236188411713,
            25,
            -1.0234652417711914,
        ),
        (
            "conv1.bias",
            &[6],
            [-0.18717041611671448, -0.16880165040493011],
            -0.1928863823413849,
            25,
            -0.3716163821518421,
        ),
        (
            "conv2.weight",
            &[16, 6, 5, 5],
            [0.05093159154057503, -0.06389163434505463],
            0.05829120799899101,
            150,
            -0.665209477994722,
        ),
        (
            "conv2.bias",
            &[16],
            [-0.08092434704303741, -0.012291500344872475],
            -0.0027888326440006495,
            150,
            -0.20439345121849328,
        ),
        (
            "fc1.weight",
            &[120, 400],
            [0.027491796761751175, 0.033224012702703476],
            0.014743208885192871,
            400,
            3.1086633526520018,
        ),
        (
            "fc1.bias",
            &[120],
            [-0.00904074963182211, 0.04001273587346077],
            0.04902001842856407,
            400,
            0.5233354499912366,
        ),
        (
            "fc2.weight",
            &[84, 120],
            [-0.046610042452812195, 0.08877936750650406],
            -0.016878660768270493,
            120,
            -0.24734655730458144,
        ),
        (
            "fc2.bias",
            &[84],
            [-0.07099000364542007, -0.013476275838911533],
            -0.05935356020927429,
            120,
            -0.3635252226376906,
        ),
        (
            "fc3.weight",
            &[10, 84],
            [-0.0521833598613739, 0.016319982707500458],
            0.07441220432519913,
            84,
            2.0803059409518028,
        ),
        (
            "fc3.bias",
            &[10],
            [-0.03608913719654083, -0.06657472252845764],
            0.09377246350049973,
            84,
            0.12141969786898699,
        ),
    ];
    assert_eq!(
        arrays.len(),
        expect.len(),
        "{:?}",
        arrays.iter().map(|a| &a.name).collect::<Vec<_>>()
    );
    let got = by_name(&arrays);
    for &(name, shape, first, last, fan_in, sum) in expect {
        let a = got.get(name).unwrap_or_else(|| panic!("missing {name}"));
        assert_eq!(&a.shape[..], shape, "{name}");
        let ArrayData::F32(v) = &a.data else {
            panic!("{name} is not float")
        };
        assert_eq!(v.len(), shape.iter().product::<usize>());
        assert_eq!([f64::from(v[0]), f64::from(v[1])], first, "{name}");
        assert_eq!(f64::from(v[v.len() - 1]), last, "{name}");
        // Exact: the same values summed in the same order.
        assert_eq!(v.iter().map(|&x| f64::from(x)).sum::<f64>(), sum, "{name}");
        // PyTorch's default init draws weights and biases from
        // U(-1/sqrt(fan_in), 1/sqrt(fan_in)); every value lies inside, and
        // a tensor of 25 or more values reaches past 80% of the bound.
        let bound = 1.0 / (fan_in as f64).sqrt();
        let max = v.iter().map(|&x| f64::from(x).abs()).fold(0.0, f64::max);
        assert!(max <= bound, "{name}: {max} > {bound}");
        if v.len() >= 25 {
            assert!(max > 0.8 * bound, "{name}: {max} vs bound {bound}");
        }
    }
    // Re-saving and re-loading gives the same arrays.
    let bytes = serialize_safetensors(&arrays, &HashMap::new(), &path).unwrap();
    let (again, _) = parse_safetensors(&bytes, &path).unwrap();
    assert_eq!(by_name(&again), got);
}

fn file_of(tensors: Vec<(&str, TensorView<'_>)>) -> Vec<u8> {
    safetensors::serialize(tensors, &None).unwrap()
}

#[test]
fn converts_other_dtypes() {
    let f64s: Vec<u8> = [1.5f64, -2.25]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let f16s: Vec<u8> = [0x3c00u16, 0xc100, 0x3555]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let bf16s: Vec<u8> = [0x3f80u16, 0x4049]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let i32s: Vec<u8> = [-7i32, 1 << 30]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let bytes = file_of(vec![
        ("a", TensorView::new(Dtype::F64, vec![2], &f64s).unwrap()),
        ("b", TensorView::new(Dtype::F16, vec![3], &f16s).unwrap()),
        (
            "c",
            TensorView::new(Dtype::BF16, vec![1, 2], &bf16s).unwrap(),
        ),
        ("d", TensorView::new(Dtype::I32, vec![2], &i32s).unwrap()),
    ]);
    let (arrays, _) = parse_safetensors(&bytes, Path::new("t.safetensors")).unwrap();
    let got = by_name(&arrays);
    assert_eq!(got["a"].data, ArrayData::F32(vec![1.5, -2.25]));
    assert_eq!(got["b"].data, ArrayData::F32(vec![1.0, -2.5, 0.333_251_95]));
    assert_eq!(got["c"].data, ArrayData::F32(vec![1.0, 3.140_625]));
    assert_eq!(got["c"].shape, vec![1, 2]);
    assert_eq!(got["d"].data, ArrayData::I64(vec![-7, 1 << 30]));
}

#[test]
fn rejects_unsupported_dtype_naming_tensor_and_dtype() {
    let u8s = [1u8, 2, 3];
    let bytes = file_of(vec![(
        "mask",
        TensorView::new(Dtype::U8, vec![3], &u8s).unwrap(),
    )]);
    let err = parse_safetensors(&bytes, Path::new("m.safetensors")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TrainError::BadFile { .. }));
    assert!(
        msg.contains("m.safetensors") && msg.contains("mask") && msg.contains("U8"),
        "{msg}"
    );
}

fn assert_bad(bytes: &[u8], what: &str) -> String {
    let origin = Path::new("hostile.safetensors");
    match parse_safetensors(bytes, origin) {
        Err(e @ TrainError::BadFile { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("hostile.safetensors"), "{what}: {msg}");
            msg
        }
        other => panic!("{what}: expected BadFile, got {other:?}"),
    }
}

fn with_header(header: &str, data_len: usize) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.resize(b.len() + data_len, 0);
    b
}

#[test]
fn hostile_bytes_are_errors() {
    assert_bad(b"", "empty");
    assert_bad(b"\x05\x00\x00", "shorter than the size");
    assert_bad(b"garbage garbage garbage garbage", "garbage");
    assert_bad(&with_header("not json", 0), "not JSON");
    assert_bad(&with_header("[1,2]", 0), "JSON but not an object");
    assert_bad(
        &with_header(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            4,
        ),
        "data too short",
    );
    assert_bad(
        &with_header(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            12,
        ),
        "data too long",
    );
    assert_bad(
        &with_header(
            r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
            8,
        ),
        "shape/offsets mismatch",
    );
    assert_bad(
        &with_header(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
            8,
        ),
        "reversed offsets",
    );
    assert_bad(
        &with_header(
            r#"{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#,
            8,
        ),
        "unknown dtype",
    );
    assert_bad(
        &with_header(r#"{"a":{"dtype":"F32","shape":[2]}}"#, 8),
        "no offsets",
    );
    // Offsets and shape near usize::MAX: the crate's own size arithmetic
    // would overflow.
    let max = u64::MAX;
    assert_bad(
        &with_header(
            &format!(r#"{{"a":{{"dtype":"U8","shape":[{max}],"data_offsets":[0,{max}]}}}}"#),
            8,
        ),
        "offsets near usize::MAX",
    );
    assert_bad(
        &with_header(
            &format!(r#"{{"a":{{"dtype":"F32","shape":[{max},{max}],"data_offsets":[0,8]}}}}"#),
            8,
        ),
        "shape product overflows",
    );
    let bad_utf8 = {
        let mut b = 4u64.to_le_bytes().to_vec();
        b.extend_from_slice(&[0xff, 0xfe, b'{', b'}']);
        b
    };
    assert_bad(&bad_utf8, "header not UTF-8");
}

#[test]
fn huge_declared_header_is_refused_without_allocating() {
    // If these sizes were allocated the test would abort; they must be
    // compared with the file length first.
    for declared in [u64::MAX, 1 << 62, 1 << 40, 50_000_000, 9] {
        let mut b = declared.to_le_bytes().to_vec();
        b.extend_from_slice(b"{}");
        let msg = assert_bad(&b, &format!("declared {declared}"));
        assert!(msg.contains(&declared.to_string()), "{msg}");
    }
}

#[test]
fn every_truncation_and_byte_flip_is_an_error_or_valid() {
    let bytes = serialize_safetensors(
        &sample(),
        &[("k".to_string(), "v".to_string())].into(),
        Path::new("x"),
    )
    .unwrap();
    for len in 0..bytes.len() {
        assert_bad(&bytes[..len], &format!("truncated to {len}"));
    }
    // Flipping any byte must not panic (it may still parse: data bytes).
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= flip;
            let _ = parse_safetensors(&b, Path::new("flipped"));
        }
    }
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = load_safetensors(Path::new("/nonexistent/dir/w.safetensors")).unwrap_err();
    assert!(matches!(err, TrainError::Io { .. }));
    assert!(err.to_string().contains("w.safetensors"));
}

#[test]
fn broken_files_are_described_in_words() {
    let bytes =
        serialize_safetensors(&sample(), &HashMap::new(), Path::new("w.safetensors")).unwrap();
    let origin = Path::new("w.safetensors");
    // Bytes after the last tensor: the crate reports MetadataIncompleteBuffer.
    let mut padded = bytes.clone();
    padded.extend([0; 3]);
    let err = parse_safetensors(&padded, origin).unwrap_err().to_string();
    assert!(
        err.starts_with("w.safetensors: not a valid safetensors file: "),
        "{err}"
    );
    // Words, not the safetensors crate's variant names.
    for debug_name in ["Invalid", "Metadata", "Tensor", "Header", "Overflow"] {
        assert!(!err.contains(debug_name), "{err}");
    }
}
