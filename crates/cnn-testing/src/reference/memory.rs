//! Reference memory ops (only `fill` computes anything).

/// A buffer of `len` copies of `value`.
pub fn fill(len: usize, value: f32) -> Vec<f32> {
    vec![value; len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_repeats_the_value() {
        assert_eq!(fill(3, -1.5), vec![-1.5, -1.5, -1.5]);
        assert!(fill(0, 2.0).is_empty());
        assert!(fill(2, f32::NAN).iter().all(|v| v.is_nan()));
    }
}
