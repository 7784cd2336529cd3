//! How numbers read in cnn's messages and tables: a loss of 9e30 as
//! `9.000e30`, not as a 31-digit number, and a non-finite one as NaN or inf.

use std::fmt;

/// The most worker threads a run may ask for. Far above any machine's
/// cores; a larger value is a typo (or `2^64-1`), refused before the
/// memory estimate turns it into petabytes of convolution workspace.
pub const MAX_THREADS: usize = 1024;

/// A loss (or any score) for a message: four decimals while that reads
/// well (|x| < 1e5), otherwise scientific notation with four significant
/// digits; `NaN`, `inf` and `-inf` as such.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loss(pub f64);

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        if !x.is_finite() || x.abs() < 1e5 {
            write!(f, "{x:.4}")
        } else {
            write!(f, "{x:.3e}")
        }
    }
}

/// A ratio for a message ("12.5 times as high"): one decimal while that
/// reads well (< 1e5), otherwise scientific notation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Times(pub f64);

impl fmt::Display for Times {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        if !x.is_finite() || x.abs() < 1e5 {
            write!(f, "{x:.1}")
        } else {
            write!(f, "{x:.1e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Loss, Times};

    #[test]
    fn ratios_keep_one_decimal_until_they_are_huge() {
        assert_eq!(Times(12.46).to_string(), "12.5");
        assert_eq!(Times(3.9e30).to_string(), "3.9e30");
    }

    #[test]
    fn small_losses_keep_four_decimals_and_large_ones_turn_scientific() {
        assert_eq!(Loss(1.234_567).to_string(), "1.2346");
        assert_eq!(Loss(-0.5).to_string(), "-0.5000");
        assert_eq!(Loss(99_999.0).to_string(), "99999.0000");
        assert_eq!(Loss(1e5).to_string(), "1.000e5");
        assert_eq!(Loss(9.0e30).to_string(), "9.000e30");
        assert_eq!(Loss(-5.24e23).to_string(), "-5.240e23");
        assert_eq!(Loss(f64::NAN).to_string(), "NaN");
        assert_eq!(Loss(f64::INFINITY).to_string(), "inf");
        assert_eq!(Loss(f64::NEG_INFINITY).to_string(), "-inf");
    }
}
