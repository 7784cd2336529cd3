//! Closeness checks with an absolute and a relative tolerance.
//!
//! An element passes when `|actual - expected| <= abs + rel * |expected|`
//! (NaN passes only against NaN, an infinity only against the same
//! infinity). On failure the message gives the number of mismatches, the
//! largest difference and the worst few elements, so a failing test says
//! where and by how much.

/// How many of the worst elements a failure message lists.
const SHOWN_MISMATCHES: usize = 8;

/// Check `actual` against `expected` element by element; `Err` carries a
/// readable report. Used by the golden and conformance runners, which
/// collect failures instead of panicking.
///
/// `actual` is usually a backend's f32 output; `expected` may be f32 or f64
/// (reference kernels return f64). Both are compared in f64.
pub fn check_close<A: Copy + Into<f64>, E: Copy + Into<f64>>(
    actual: &[A],
    expected: &[E],
    abs: f64,
    rel: f64,
    what: &str,
) -> Result<(), String> {
    if actual.len() != expected.len() {
        return Err(format!(
            "{what}: length mismatch: actual has {} elements, expected {}",
            actual.len(),
            expected.len()
        ));
    }
    // (index, actual, expected, |difference|, how far over its tolerance)
    let mut bad: Vec<(usize, f64, f64, f64, f64)> = Vec::new();
    let mut max_diff = 0.0f64;
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let a64: f64 = a.into();
        let e64: f64 = e.into();
        let diff = (a64 - e64).abs();
        let tol = abs + rel * e64.abs();
        let ok = if e64.is_nan() {
            a64.is_nan()
        } else if e64.is_infinite() {
            a64 == e64
        } else {
            diff <= tol
        };
        if diff.is_finite() && diff > max_diff {
            max_diff = diff;
        }
        if !ok {
            let excess = if diff.is_nan() {
                f64::INFINITY
            } else {
                diff / tol.max(f64::MIN_POSITIVE)
            };
            bad.push((i, a64, e64, diff, excess));
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    let count = bad.len();
    bad.sort_by(|x, y| y.4.total_cmp(&x.4));
    let mut msg = format!(
        "{what}: {count} of {} elements differ beyond abs {abs:e} + rel {rel:e} (max |difference| {max_diff:e}); worst:",
        actual.len()
    );
    for &(i, a, e, diff, _) in bad.iter().take(SHOWN_MISMATCHES) {
        msg.push_str(&format!(
            "\n  [{i}] actual {a:e}, expected {e:e}, |difference| {diff:e}"
        ));
    }
    Err(msg)
}

/// Like [`check_close`], but panics with the report (for use in tests).
#[track_caller]
pub fn assert_close<A: Copy + Into<f64>, E: Copy + Into<f64>>(
    actual: &[A],
    expected: &[E],
    abs: f64,
    rel: f64,
    what: &str,
) {
    if let Err(msg) = check_close(actual, expected, abs, rel, what) {
        panic!("{msg}");
    }
}

/// [`check_close`] for one scalar.
pub fn check_close_scalar(
    actual: f64,
    expected: f64,
    abs: f64,
    rel: f64,
    what: &str,
) -> Result<(), String> {
    let diff = (actual - expected).abs();
    if diff <= abs + rel * expected.abs() || (actual.is_nan() && expected.is_nan()) {
        Ok(())
    } else {
        Err(format!(
            "{what}: actual {actual:e}, expected {expected:e}, |difference| {diff:e} beyond abs {abs:e} + rel {rel:e}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_within_tolerance() {
        assert_close(
            &[1.0f32, 2.0, -3.0],
            &[1.0f64, 2.0001, -3.0],
            0.0,
            1e-4,
            "x",
        );
        assert_close(
            &[f32::NAN, f32::INFINITY],
            &[f64::NAN, f64::INFINITY],
            0.0,
            0.0,
            "special",
        );
        assert_close(&[0.5f64], &[0.5f32], 0.0, 0.0, "f64 actual");
        assert!(check_close(&[0.0f32], &[1e-6f32], 1e-6, 0.0, "abs").is_ok());
    }

    #[test]
    fn reports_count_max_and_worst() {
        let actual = [1.0f32, 2.0, 3.5, 4.0, f32::NAN];
        let expected = [1.0f64, 2.5, 3.0, 4.0, 5.0];
        let msg = check_close(&actual, &expected, 1e-3, 0.0, "y").unwrap_err();
        assert!(msg.contains("3 of 5"), "{msg}");
        assert!(msg.contains("max |difference| 5e-1"), "{msg}");
        assert!(msg.contains("[4] actual NaN"), "{msg}");
        assert!(msg.contains("[1] actual 2e0"), "{msg}");
    }

    #[test]
    fn length_mismatch_is_an_error() {
        assert!(
            check_close(&[1.0f32], &[1.0f32, 2.0], 1.0, 1.0, "len")
                .unwrap_err()
                .contains("length")
        );
    }

    #[test]
    #[should_panic(expected = "1 of 1 elements differ")]
    fn assert_close_panics() {
        assert_close(&[1.0f32], &[2.0f64], 1e-6, 1e-6, "z");
    }
}
