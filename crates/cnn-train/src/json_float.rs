//! Floats in cnn's JSON files (`history.jsonl`, `summary.json`,
//! `curve.json`) that may be NaN or infinite: a diverged run's losses are.
//!
//! JSON has no such numbers and serde_json writes them as `null`, which
//! does not read back as a float. With `#[serde(with = "json_float")]` a
//! finite value is written as a JSON number and a non-finite one as the
//! string `"NaN"`, `"Infinity"` or `"-Infinity"` (the spellings of
//! JavaScript and of Python's `float()`, which parses all three). Reading
//! accepts a number, one of those strings (also `inf`, `-inf`, `+inf`,
//! `nan`, in any case) and `null` as NaN (files written before), so every
//! value reads back as the value written. [`option`] does the same for an
//! `Option<f64>`, where `null` stays `None`.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// The text of a non-finite value; `None` for a finite one.
pub fn non_finite_text(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("Infinity")
    } else if v == f64::NEG_INFINITY {
        Some("-Infinity")
    } else {
        None
    }
}

/// A non-finite value's text back to the value (case-insensitive).
pub fn parse_non_finite(s: &str) -> Option<f64> {
    match s.trim().to_ascii_lowercase().as_str() {
        "nan" | "+nan" | "-nan" => Some(f64::NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Write `v`: a number, or its text when it is not finite.
pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    match non_finite_text(*v) {
        Some(text) => s.serialize_str(text),
        None => s.serialize_f64(*v),
    }
}

/// Read a number, a non-finite value's text, or `null` (NaN).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(FloatVisitor)
}

struct FloatVisitor;

impl<'de> Visitor<'de> for FloatVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        parse_non_finite(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }

    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }

    fn visit_none<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }
}

/// [`serialize`] and [`deserialize`](fn@deserialize) for an `Option<f64>`:
/// `null` is `None`.
pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};

    /// `None` as `null`, a value as [`super::serialize`] writes it.
    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    /// `null` as `None`, anything else as [`super::deserialize`] reads it.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super")] f64);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct Row {
        #[serde(with = "super")]
        x: f64,
        #[serde(default, with = "super::option")]
        y: Option<f64>,
    }

    fn round_trip(x: f64, y: Option<f64>) -> (String, Row) {
        let json = serde_json::to_string(&Row { x, y }).unwrap();
        let back: Row = serde_json::from_str(&json).unwrap();
        (json, back)
    }

    #[test]
    fn every_float_reads_back_as_written() {
        for x in [
            0.0,
            -0.0,
            1.5,
            9.419279292367351e30,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let (json, back) = round_trip(x, Some(x));
            assert_eq!(back.x.to_bits(), x.to_bits(), "{json}");
            assert_eq!(back.y.map(f64::to_bits), Some(x.to_bits()), "{json}");
        }
        let (json, back) = round_trip(f64::NAN, None);
        assert_eq!(json, r#"{"x":"NaN","y":null}"#);
        assert!(back.x.is_nan() && back.y.is_none());
        let (json, _) = round_trip(f64::INFINITY, Some(f64::NEG_INFINITY));
        assert_eq!(json, r#"{"x":"Infinity","y":"-Infinity"}"#);
    }

    #[test]
    fn older_nulls_and_other_spellings_read_as_non_finite() {
        let r: Row = serde_json::from_str(r#"{"x":null}"#).unwrap();
        assert!(r.x.is_nan() && r.y.is_none());
        let r: Row = serde_json::from_str(r#"{"x":"-inf","y":"INF"}"#).unwrap();
        assert_eq!((r.x, r.y), (f64::NEG_INFINITY, Some(f64::INFINITY)));
        let r: Row = serde_json::from_str(r#"{"x":3}"#).unwrap();
        assert_eq!(r.x, 3.0);
        let err = serde_json::from_str::<Row>(r#"{"x":"lots"}"#).unwrap_err();
        assert!(err.to_string().contains("\"NaN\""), "{err}");
    }
}
