//! Tensor shapes: a short list of dimensions, outermost first (NCHW).

use std::fmt;

/// The dimensions of a tensor, outermost first. Images are `[N, C, H, W]`;
/// per-sample shapes inside a graph omit the batch dimension (`[C, H, W]`,
/// `[F]`).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Shape(Vec<usize>);

impl Shape {
    /// A shape from its dimensions.
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a rank-0 shape). Unchecked: for shapes
    /// already validated (see [`Shape::checked_numel`]).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// Number of elements, or `None` when the product overflows `usize`.
    pub fn checked_numel(&self) -> Option<usize> {
        self.0.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// This shape with a batch dimension `n` in front.
    pub fn with_batch(&self, n: usize) -> Shape {
        let mut dims = Vec::with_capacity(self.0.len() + 1);
        dims.push(n);
        dims.extend_from_slice(&self.0);
        Shape(dims)
    }

    /// The shape without its first (batch) dimension.
    pub fn without_batch(&self) -> Shape {
        Shape(self.0.get(1..).unwrap_or(&[]).to_vec())
    }

    /// Dimension `i`, if present.
    pub fn dim(&self, i: usize) -> Option<usize> {
        self.0.get(i).copied()
    }

    /// Set the first (batch) dimension in place, without allocating; a
    /// rank-0 shape is left as it is.
    pub(crate) fn set_batch(&mut self, n: usize) {
        if let Some(d) = self.0.first_mut() {
            *d = n;
        }
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape(v)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(v.to_vec())
    }
}

impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(v.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numel_and_batch() {
        let s = Shape::from([3, 32, 32]);
        assert_eq!(s.numel(), 3072);
        assert_eq!(s.with_batch(8).dims(), &[8, 3, 32, 32]);
        assert_eq!(s.with_batch(8).without_batch(), s);
        assert_eq!(format!("{s}"), "[3, 32, 32]");
        assert_eq!(s.checked_numel(), Some(3072));
        let huge = Shape::from([3, (1 << 63) + 1, 2]);
        // 3 x (2^64 + 2) wraps to 6: the checked count refuses it.
        assert_eq!(huge.checked_numel(), None);
    }
}
