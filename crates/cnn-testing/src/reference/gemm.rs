//! Reference general matrix multiply.

use cnn_core::backend::GemmParams;

use super::Real;

/// `alpha * op(A) op(B) + beta * C` (C is m x n, row-major; see
/// [`GemmParams`] for the storage of A and B). With `beta == 0` the old C
/// is ignored entirely, so NaN in it does not propagate.
pub fn gemm<T: Real>(p: &GemmParams, a: &[T], b: &[T], c: &[T]) -> Vec<f64> {
    // op(A)[i, l] and op(B)[l, j], reading the stored (possibly transposed) matrix.
    let a_at = |i: usize, l: usize| {
        if p.trans_a {
            a[l * p.m + i]
        } else {
            a[i * p.k + l]
        }
        .as_f64()
    };
    let b_at = |l: usize, j: usize| {
        if p.trans_b {
            b[j * p.k + l]
        } else {
            b[l * p.n + j]
        }
        .as_f64()
    };
    let mut out = vec![0.0f64; p.m * p.n];
    for i in 0..p.m {
        for j in 0..p.n {
            let mut acc = 0.0f64;
            for l in 0..p.k {
                acc += a_at(i, l) * b_at(l, j);
            }
            let old = if p.beta == 0.0 {
                0.0
            } else {
                f64::from(p.beta) * c[i * p.n + j].as_f64()
            };
            out[i * p.n + j] = f64::from(p.alpha) * acc + old;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_alpha_beta() {
        // A = [[1 2 3] [4 5 6]] (2x3), B = [[1 0] [0 1] [1 1]] (3x2).
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let ab = vec![4.0, 5.0, 10.0, 11.0];
        assert_eq!(gemm(&GemmParams::new(2, 2, 3), &a, &b, &[f32::NAN; 4]), ab);
        // The same product from A^T stored (3x2) and B^T stored (2x3).
        let at = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        let bt = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
        let p = GemmParams {
            trans_a: true,
            trans_b: true,
            ..GemmParams::new(2, 2, 3)
        };
        assert_eq!(gemm(&p, &at, &bt, &[0.0; 4]), ab);
        let p = GemmParams {
            alpha: 2.0,
            beta: -1.0,
            ..GemmParams::new(2, 2, 3)
        };
        assert_eq!(
            gemm(&p, &a, &b, &[1.0, 1.0, 1.0, 1.0]),
            vec![7.0, 9.0, 19.0, 21.0]
        );
    }
}
