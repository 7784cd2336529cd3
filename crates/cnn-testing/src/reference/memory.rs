//! Reference memory ops (only `fill` computes anything).

/// A buffer of `len` copies of `value`.
pub fn fill(len: usize, value: f32) -> Vec<f32> {
    vec![value; len]
}
