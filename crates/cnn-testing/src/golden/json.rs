//! Reading a golden case's JSON strictly: arrays, shapes and config values,
//! each a typed error naming the key when it is missing or malformed, and a
//! config key outside an op's known list is an error, never ignored.

use cnn_core::CnnError;
use serde_json::{Map, Value};

/// The array `key` of the case as f64 values.
pub(crate) fn f64_array(obj: &Map<String, Value>, key: &str) -> Result<Vec<f64>, String> {
    let arr = obj
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("missing array `{key}`"))?;
    arr.iter()
        .map(|v| {
            v.as_f64()
                .ok_or_else(|| format!("`{key}` holds a non-number {v}"))
        })
        .collect()
}

/// An input array. The golden inputs are f32 values printed with 16
/// significant digits, so each must lie within 1e-15 (relative) of an f32;
/// anything else is an error (it would make the comparison unfair).
pub(crate) fn f32_array(obj: &Map<String, Value>, key: &str) -> Result<Vec<f32>, String> {
    f64_array(obj, key)?
        .into_iter()
        .map(|v| {
            let f = v as f32;
            if (f64::from(f) - v).abs() <= 1e-15 * v.abs() {
                Ok(f)
            } else {
                Err(format!("input `{key}` value {v} is not exactly an f32"))
            }
        })
        .collect()
}

/// The class indices of `targets`.
pub(crate) fn targets(obj: &Map<String, Value>) -> Result<Vec<u32>, String> {
    let arr = obj
        .get("targets")
        .and_then(Value::as_array)
        .ok_or("missing array `targets`")?;
    arr.iter()
        .map(|v| {
            v.as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| format!("target {v} is not a class index"))
        })
        .collect()
}

/// The shape `key`, which must have `rank` dimensions.
pub(crate) fn shape(
    obj: &Map<String, Value>,
    key: &str,
    rank: usize,
) -> Result<Vec<usize>, String> {
    let arr = obj
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("missing `{key}`"))?;
    let dims: Vec<usize> = arr
        .iter()
        .map(|v| {
            v.as_u64()
                .map(|d| d as usize)
                .ok_or_else(|| format!("`{key}` holds {v}"))
        })
        .collect::<Result<_, _>>()?;
    if dims.len() != rank {
        return Err(format!("`{key}` is {dims:?}, expected rank {rank}"));
    }
    Ok(dims)
}

/// The config object, refusing keys outside `allowed`.
pub(crate) fn config<'a>(
    obj: &'a Map<String, Value>,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, String> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    let cfg = match obj.get("config") {
        None => EMPTY.get_or_init(Map::new),
        Some(Value::Object(cfg)) => cfg,
        Some(other) => return Err(format!("config is not an object: {other}")),
    };
    for key in cfg.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(format!(
                "unsupported config key `{key}` (this harness knows {allowed:?})"
            ));
        }
    }
    Ok(cfg)
}

/// `[a, b]` or a single number `a` (meaning `[a, a]`).
pub(crate) fn pair(
    cfg: &Map<String, Value>,
    key: &str,
    default: Option<[usize; 2]>,
) -> Result<[usize; 2], String> {
    match cfg.get(key) {
        None => default.ok_or_else(|| format!("config `{key}` is missing")),
        Some(Value::Number(n)) => {
            let v = n.as_u64().ok_or_else(|| format!("config `{key}` = {n}"))? as usize;
            Ok([v, v])
        }
        Some(Value::Array(a)) if a.len() == 2 => {
            let get = |v: &Value| {
                v.as_u64()
                    .map(|x| x as usize)
                    .ok_or_else(|| format!("config `{key}` holds {v}"))
            };
            Ok([get(&a[0])?, get(&a[1])?])
        }
        Some(other) => Err(format!("config `{key}` = {other} is not a size or a pair")),
    }
}

/// The boolean config value `key`, or `default` when absent.
pub(crate) fn boolean(cfg: &Map<String, Value>, key: &str, default: bool) -> Result<bool, String> {
    match cfg.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| format!("config `{key}` = {v} is not a boolean")),
    }
}

/// The numeric config value `key`, or `default` when absent.
pub(crate) fn number(cfg: &Map<String, Value>, key: &str, default: f64) -> Result<f64, String> {
    match cfg.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| format!("config `{key}` = {v} is not a number")),
    }
}

/// Refuse any loss reduction but `mean` (the default).
pub(crate) fn mean_reduction(cfg: &Map<String, Value>) -> Result<(), String> {
    match cfg.get("reduction").map(|v| v.as_str()) {
        None | Some(Some("mean")) => Ok(()),
        Some(other) => Err(format!("unsupported reduction {other:?} (only mean)")),
    }
}

/// A case whose geometry the op's params refuse.
pub(crate) fn geometry_error(e: CnnError) -> String {
    format!("the case's geometry is rejected: {e}")
}
