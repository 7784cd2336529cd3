//! Muon's Newton-Schulz iteration on the host: the quintic iteration of
//! `torch.optim._muon._zeropower_via_newtonschulz`, in float32 (torch
//! runs it in bfloat16; see `muon`).
//!
//! Plain loops with f64 accumulation: a LeNet-5 layer (120 x 400) takes
//! 5 x ~12 M multiply-adds, a ResNet-20 convolution (64 x 576) 5 x ~5 M.

/// `X = G / max(|G|, eps)` (transposed first when G has more rows than
/// columns), then `steps` times `A = X X^T`, `B = b A + c A A`,
/// `X = a X + B X`; returned in G's orientation. `g` is `rows x cols`,
/// row-major.
pub(crate) fn orthogonalize(
    g: &[f32],
    rows: usize,
    cols: usize,
    (a, b, c): (f32, f32, f32),
    steps: usize,
    eps: f32,
) -> Vec<f32> {
    let transpose = rows > cols;
    let (m, n) = if transpose {
        (cols, rows)
    } else {
        (rows, cols)
    };
    // x is m x n with m <= n.
    let mut x: Vec<f32> = if transpose {
        let mut t = vec![0.0; m * n];
        for i in 0..rows {
            for j in 0..cols {
                t[j * rows + i] = g[i * cols + j];
            }
        }
        t
    } else {
        g.to_vec()
    };
    let norm = super::host::norm(&x).max(eps);
    x.iter_mut().for_each(|v| *v /= norm);
    let mut gram = vec![0.0f32; m * m];
    let mut poly = vec![0.0f32; m * m];
    let mut next = vec![0.0f32; m * n];
    // One row of a product in f64 (n >= m).
    let mut acc = vec![0.0f64; n];
    for _ in 0..steps {
        // gram = X X^T (m x m, symmetric: the upper half mirrored)
        for i in 0..m {
            let xi = &x[i * n..(i + 1) * n];
            for j in i..m {
                let xj = &x[j * n..(j + 1) * n];
                let dot: f64 = xi
                    .iter()
                    .zip(xj)
                    .map(|(&p, &q)| f64::from(p) * f64::from(q))
                    .sum();
                gram[i * m + j] = dot as f32;
                gram[j * m + i] = dot as f32;
            }
        }
        // poly = b gram + c gram gram, row by row (i, k, j order: rows
        // read contiguously)
        for i in 0..m {
            acc[..m].fill(0.0);
            for k in 0..m {
                let gik = f64::from(gram[i * m + k]);
                for (sum, &gkj) in acc[..m].iter_mut().zip(&gram[k * m..(k + 1) * m]) {
                    *sum += gik * f64::from(gkj);
                }
            }
            for j in 0..m {
                poly[i * m + j] = b * gram[i * m + j] + c * acc[j] as f32;
            }
        }
        // next = a X + poly X, row by row
        for i in 0..m {
            acc.fill(0.0);
            for k in 0..m {
                let pik = f64::from(poly[i * m + k]);
                for (sum, &xkj) in acc.iter_mut().zip(&x[k * n..(k + 1) * n]) {
                    *sum += pik * f64::from(xkj);
                }
            }
            for j in 0..n {
                next[i * n + j] = a * x[i * n + j] + acc[j] as f32;
            }
        }
        std::mem::swap(&mut x, &mut next);
    }
    if !transpose {
        return x;
    }
    let mut out = vec![0.0; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            out[i * cols + j] = x[j * rows + i];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_iteration_pushes_singular_values_towards_one() {
        // diag(3, 0.5) scaled by its norm has singular values 0.99 and
        // 0.16; five quintic steps bring both into torch's documented
        // band of about [0.5, 1.5], keeping the matrix diagonal.
        for (rows, cols) in [(2, 3), (3, 2)] {
            let mut g = vec![0.0f32; rows * cols];
            g[0] = 3.0;
            g[cols + 1] = 0.5;
            let x = orthogonalize(&g, rows, cols, (3.4445, -4.7750, 2.0315), 5, 1e-7);
            for (i, &v) in x.iter().enumerate() {
                let (r, c) = (i / cols, i % cols);
                if r == c {
                    assert!((0.5..1.5).contains(&v), "{rows}x{cols} {x:?}");
                } else {
                    assert_eq!(v, 0.0, "{rows}x{cols} {x:?}");
                }
            }
        }
    }
}
