//! Axes: finite, non-empty ranges, tick labels, and the room a y axis's
//! labels need.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::plot::text::FONT;

/// A finite, non-empty axis range covering the finite `values` with a
/// margin of `pad` of the span; `fallback` when there are none.
pub(super) fn axis(
    values: impl IntoIterator<Item = f64>,
    pad: f64,
    fallback: Range<f64>,
) -> Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return fallback;
    }
    let span = hi - lo;
    let (lo, hi) = if span > 0.0 && span.is_finite() {
        (lo - pad * span, hi + pad * span)
    } else {
        let d = if lo != 0.0 { lo.abs() * 0.1 } else { 1.0 };
        (lo - d, hi + d)
    };
    if lo.is_finite() && hi.is_finite() && lo < hi {
        lo..hi
    } else {
        fallback
    }
}

/// Clamp an accuracy axis to [0, 1] (with room for markers at 1).
pub(super) fn clamp_unit(r: Range<f64>) -> Range<f64> {
    let lo = r.start.max(0.0);
    let hi = r.end.min(1.02);
    if lo < hi { lo..hi } else { 0.0..1.02 }
}

/// Tick labels: integers below 1e5 as integers, small or large numbers in
/// scientific notation with up to 4 significant digits ("1.08e6", so that
/// neighbouring ticks stay distinct and the label stays narrow), the rest
/// with up to 4 decimals.
pub(super) fn fmt_tick(v: &f64) -> String {
    let v = *v;
    let a = v.abs();
    // Ticks near zero come out as rounding noise like -2.2e-16.
    if a < 1e-12 {
        return "0".into();
    }
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.3e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if mantissa.contains('.') => {
                let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
                format!("{mantissa}e{exp}")
            }
            _ => s,
        }
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Width of the y label area: room for the widest tick label of `y` (as
/// [`chart`](crate::plot::chart::chart)'s mesh places them), the tick marks and the rotated axis
/// title, at least 65 pixels.
pub(super) fn y_label_area<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    y: &Range<f64>,
) -> u32 {
    use plotters::coord::ranged1d::BoldPoints;
    use plotters::coord::types::RangedCoordf64;
    let style = TextStyle::from((FONT, 13).into_font());
    let widest = RangedCoordf64::from(y.clone())
        .key_points(BoldPoints(11))
        .iter()
        .filter_map(|v| area.estimate_text_size(&fmt_tick(v), &style).ok())
        .map(|(w, _)| w)
        .max()
        .unwrap_or(0);
    (widest + 30).max(65)
}

/// Epoch axis from 0 to the last epoch (at least 1), with room for markers.
pub(super) fn epoch_axis(epochs: impl Iterator<Item = f64>) -> Range<f64> {
    let last = epochs.filter(|v| v.is_finite()).fold(1.0f64, f64::max);
    0.0..last * 1.03
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_is_finite_and_non_empty() {
        assert_eq!(axis([], 0.1, 0.0..1.0), 0.0..1.0);
        assert_eq!(axis([f64::NAN, f64::INFINITY], 0.1, 0.0..1.0), 0.0..1.0);
        let r = axis([2.0, 2.0], 0.1, 0.0..1.0);
        assert!(r.start < 2.0 && r.end > 2.0);
        let r = axis([0.0], 0.1, 0.0..1.0);
        assert!(r.start < 0.0 && r.end > 0.0);
        assert_eq!(axis([-f64::MAX, f64::MAX], 0.1, 0.0..1.0), 0.0..1.0);
    }

    #[test]
    fn ticks() {
        assert_eq!(fmt_tick(&3.0), "3");
        assert_eq!(fmt_tick(&0.25), "0.25");
        assert_eq!(fmt_tick(&0.0001), "1e-4");
        assert_eq!(fmt_tick(&0.000125), "1.25e-4");
        assert_eq!(fmt_tick(&-2.2e-16), "0");
        assert_eq!(fmt_tick(&20000.0), "20000");
        // A diverged run's learning rate of 1e6 (ticks 20000 apart).
        assert_eq!(fmt_tick(&1_000_000.0), "1e6");
        assert_eq!(fmt_tick(&1_080_000.0), "1.08e6");
        assert_eq!(fmt_tick(&1_100_000.0), "1.1e6");
        assert_eq!(fmt_tick(&-6e20), "-6e20");
    }
}
