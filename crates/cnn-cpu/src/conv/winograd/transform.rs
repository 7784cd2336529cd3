//! The Winograd transforms F(m x m, 3 x 3) (Lavin & Gray 2015) on eight
//! lanes at once: the input tile `B^T d B`, the kernel `G g G^T`, the
//! output `A^T M A`, and the two transposes the weight gradient needs
//! (`A dY A^T` for the output gradient, `G^T dU G` back to the kernel).
//!
//! Each transform is written once, as a product with the constant
//! matrices of a [`Tile`]; the loops have fixed trip counts, so after
//! inlining the compiler unrolls them, folds the `0` and `±1` entries
//! away and keeps eight-lane vector arithmetic (no FMA contraction: the
//! same bits with and without AVX2). Sums start from `-0.0`, the additive
//! identity that folds away exactly.
//!
//! Interpolation points (the usual ones, NNPACK's and oneDNN's):
//! F(2x2,3x3) on `0, 1, -1, ∞`; F(4x4,3x3) on `0, 1, -1, 2, -2, ∞`.

// Index loops that read as the matrix products they compute.
#![allow(clippy::needless_range_loop)]

/// Lanes processed together: eight channels of one tile (one AVX2 vector).
pub(crate) const L: usize = 8;
/// Eight lanes.
pub(crate) type Lanes = [f32; L];
/// The largest input tile (F(4x4,3x3): 6 x 6).
pub(crate) const MAX_A: usize = 6;
/// A tile of lanes, `MAX_A x MAX_A` (F(2x2,3x3) uses the top-left 4 x 4).
pub(crate) type TileLanes = [[Lanes; MAX_A]; MAX_A];

/// One Winograd algorithm F(M x M, 3 x 3): output tiles of `M x M` from
/// input tiles of `A x A = (M + 2) x (M + 2)`.
pub(crate) trait Tile: Send + Sync + 'static {
    /// Output tile side.
    const M: usize;
    /// Input tile side, `M + 2`.
    const A: usize;
    /// `B^T`, `A x A` (rows beyond `A` unused).
    const BT: [[f32; MAX_A]; MAX_A];
    /// `G`, `A x 3`.
    const G: [[f32; 3]; MAX_A];
    /// `A^T`, `M x A`.
    const AT: [[f32; MAX_A]; 4];
}

/// F(2x2, 3x3) on the points `0, 1, -1, ∞`.
pub(crate) struct F2;

impl Tile for F2 {
    const M: usize = 2;
    const A: usize = 4;
    const BT: [[f32; MAX_A]; MAX_A] = [
        [1.0, 0.0, -1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, -1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, -1.0, 0.0, 0.0],
        [0.0; MAX_A],
        [0.0; MAX_A],
    ];
    const G: [[f32; 3]; MAX_A] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
        [0.0; 3],
        [0.0; 3],
    ];
    const AT: [[f32; MAX_A]; 4] = [
        [1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, -1.0, -1.0, 0.0, 0.0],
        [0.0; MAX_A],
        [0.0; MAX_A],
    ];
}

/// F(4x4, 3x3) on the points `0, 1, -1, 2, -2, ∞`.
pub(crate) struct F4;

impl Tile for F4 {
    const M: usize = 4;
    const A: usize = 6;
    const BT: [[f32; MAX_A]; MAX_A] = [
        [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ];
    const G: [[f32; 3]; MAX_A] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    const AT: [[f32; MAX_A]; 4] = [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ];
}

/// `acc += c x`, skipped for `c == 0` (folded away once `c` is a constant).
#[inline(always)]
fn axpy(acc: &mut Lanes, c: f32, x: &Lanes) {
    if c != 0.0 {
        for l in 0..L {
            acc[l] += c * x[l];
        }
    }
}

/// The sum's start: `-0.0 + v == v` for every `v`, so it folds away.
const ZERO: Lanes = [-0.0; L];

/// `out = B^T d B` (`A x A`).
#[inline(always)]
pub(crate) fn input_tile<T: Tile>(d: &TileLanes, out: &mut TileLanes) {
    let mut tmp = [[ZERO; MAX_A]; MAX_A];
    for i in 0..T::A {
        for j in 0..T::A {
            for k in 0..T::A {
                axpy(&mut tmp[i][j], T::BT[i][k], &d[k][j]);
            }
        }
    }
    for i in 0..T::A {
        for j in 0..T::A {
            let mut acc = ZERO;
            for k in 0..T::A {
                axpy(&mut acc, T::BT[j][k], &tmp[i][k]);
            }
            out[i][j] = acc;
        }
    }
}

/// `y = A^T m A` (`M x M` of the `A x A` tile `m`).
#[inline(always)]
pub(crate) fn output_tile<T: Tile>(m: &TileLanes, y: &mut [[Lanes; 4]; 4]) {
    let mut tmp = [[ZERO; MAX_A]; 4];
    for i in 0..T::M {
        for j in 0..T::A {
            for k in 0..T::A {
                axpy(&mut tmp[i][j], T::AT[i][k], &m[k][j]);
            }
        }
    }
    for i in 0..T::M {
        for j in 0..T::M {
            let mut acc = ZERO;
            for k in 0..T::A {
                axpy(&mut acc, T::AT[j][k], &tmp[i][k]);
            }
            y[i][j] = acc;
        }
    }
}

/// `dm = A dy A^T` (`A x A` from the `M x M` output gradient), the
/// adjoint of [`output_tile`].
#[inline(always)]
pub(crate) fn output_grad_tile<T: Tile>(dy: &[[Lanes; 4]; 4], dm: &mut TileLanes) {
    let mut tmp = [[ZERO; 4]; MAX_A];
    for a in 0..T::A {
        for j in 0..T::M {
            for i in 0..T::M {
                axpy(&mut tmp[a][j], T::AT[i][a], &dy[i][j]);
            }
        }
    }
    for a in 0..T::A {
        for b in 0..T::A {
            let mut acc = ZERO;
            for j in 0..T::M {
                axpy(&mut acc, T::AT[j][b], &tmp[a][j]);
            }
            dm[a][b] = acc;
        }
    }
}

/// What `f32`'s `Sum` starts from (the scalar kernel transforms' sums),
/// so that the lane versions repeat their every operation.
fn sum_start() -> f32 {
    std::iter::empty::<f32>().sum()
}

/// [`kernel_tile`] on eight kernels at once (`g[r][s]` holds tap `(r, s)`
/// of each lane's kernel): the same operations in the same order, so each
/// lane has [`kernel_tile`]'s bits.
#[inline(always)]
pub(crate) fn kernel_lanes<T: Tile>(g: &[[Lanes; 3]; 3], u: &mut TileLanes) {
    let start = [sum_start(); L];
    let mut tmp = [[start; 3]; MAX_A];
    for a in 0..T::A {
        for s in 0..3 {
            for r in 0..3 {
                for l in 0..L {
                    tmp[a][s][l] += T::G[a][r] * g[r][s][l];
                }
            }
        }
    }
    for a in 0..T::A {
        for b in 0..T::A {
            let mut acc = start;
            for s in 0..3 {
                for l in 0..L {
                    acc[l] += tmp[a][s][l] * T::G[b][s];
                }
            }
            u[a][b] = acc;
        }
    }
}

/// [`kernel_grad_tile`] on eight lanes at once, with its bits.
#[inline(always)]
pub(crate) fn kernel_grad_lanes<T: Tile>(du: &TileLanes, dg: &mut [[Lanes; 3]; 3]) {
    let start = [sum_start(); L];
    let mut tmp = [[start; MAX_A]; 3];
    for r in 0..3 {
        for b in 0..T::A {
            for a in 0..T::A {
                for l in 0..L {
                    tmp[r][b][l] += T::G[a][r] * du[a][b][l];
                }
            }
        }
    }
    for r in 0..3 {
        for s in 0..3 {
            let mut acc = start;
            for b in 0..T::A {
                for l in 0..L {
                    acc[l] += tmp[r][b][l] * T::G[b][s];
                }
            }
            dg[r][s] = acc;
        }
    }
}

/// `u = G g G^T` for one 3x3 kernel `g` (row-major), `A x A` row-major
/// into `u`.
#[cfg(test)]
pub(crate) fn kernel_tile<T: Tile>(g: &[f32], u: &mut [f32]) {
    let mut tmp = [[0.0f32; 3]; MAX_A];
    for a in 0..T::A {
        for s in 0..3 {
            tmp[a][s] = (0..3).map(|r| T::G[a][r] * g[r * 3 + s]).sum();
        }
    }
    for a in 0..T::A {
        for b in 0..T::A {
            u[a * T::A + b] = (0..3).map(|s| tmp[a][s] * T::G[b][s]).sum();
        }
    }
}

/// `dg = G^T du G` (3x3 row-major from the `A x A` row-major `du`), the
/// adjoint of [`kernel_tile`].
#[cfg(test)]
pub(crate) fn kernel_grad_tile<T: Tile>(du: &[f32], dg: &mut [f32]) {
    let mut tmp = [[0.0f32; MAX_A]; 3];
    for r in 0..3 {
        for b in 0..T::A {
            tmp[r][b] = (0..T::A).map(|a| T::G[a][r] * du[a * T::A + b]).sum();
        }
    }
    for r in 0..3 {
        for s in 0..3 {
            dg[r * 3 + s] = (0..T::A).map(|b| tmp[r][b] * T::G[b][s]).sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2-D correlation of an `A x A` tile with a 3x3 kernel, in f64.
    fn correlate(d: &[f64], a: usize, g: &[f64], m: usize) -> Vec<f64> {
        let mut y = vec![0.0; m * m];
        for i in 0..m {
            for j in 0..m {
                for r in 0..3 {
                    for s in 0..3 {
                        y[i * m + j] += d[(i + r) * a + j + s] * g[r * 3 + s];
                    }
                }
            }
        }
        y
    }

    fn value(i: usize, seed: usize) -> f32 {
        (((i * 7919 + seed * 104_729) % 1013) as f32 / 506.5) - 1.0
    }

    /// The transforms compute the correlation: `A^T [(G g G^T) ⊙ (B^T d B)] A`
    /// equals the direct correlation of each lane's tile.
    fn check_tile<T: Tile>() {
        let (a, m) = (T::A, T::M);
        let mut d: TileLanes = [[[0.0; L]; MAX_A]; MAX_A];
        for (i, row) in d.iter_mut().enumerate().take(a) {
            for (j, lanes) in row.iter_mut().enumerate().take(a) {
                for (l, v) in lanes.iter_mut().enumerate() {
                    *v = value((i * a + j) * L + l, 1);
                }
            }
        }
        let g: Vec<Vec<f32>> = (0..L)
            .map(|l| (0..9).map(|k| value(k * L + l, 2)).collect())
            .collect();
        let mut v = [[[0.0; L]; MAX_A]; MAX_A];
        input_tile::<T>(&d, &mut v);
        let mut prod = [[[0.0; L]; MAX_A]; MAX_A];
        for (l, gl) in g.iter().enumerate() {
            let mut u = [0.0f32; MAX_A * MAX_A];
            kernel_tile::<T>(gl, &mut u);
            for i in 0..a {
                for j in 0..a {
                    prod[i][j][l] = u[i * a + j] * v[i][j][l];
                }
            }
        }
        let mut y = [[[0.0; L]; 4]; 4];
        output_tile::<T>(&prod, &mut y);
        for (l, gl) in g.iter().enumerate() {
            let dl: Vec<f64> = (0..a * a).map(|k| f64::from(d[k / a][k % a][l])).collect();
            let gl: Vec<f64> = gl.iter().map(|&v| f64::from(v)).collect();
            let want = correlate(&dl, a, &gl, m);
            for i in 0..m {
                for j in 0..m {
                    let got = f64::from(y[i][j][l]);
                    assert!(
                        (got - want[i * m + j]).abs() <= 1e-5 * (1.0 + want[i * m + j].abs()),
                        "F({m},3) lane {l} ({i},{j}): {got} vs {}",
                        want[i * m + j]
                    );
                }
            }
        }
    }

    #[test]
    fn f2_computes_the_correlation() {
        check_tile::<F2>();
    }

    #[test]
    fn f4_computes_the_correlation() {
        check_tile::<F4>();
    }

    /// `<A^T m A, dy> == <m, A dy A^T>` and `<G g G^T, du> == <g, G^T du G>`:
    /// the gradient transforms are the adjoints.
    fn check_adjoints<T: Tile>() {
        let (a, m) = (T::A, T::M);
        let mut mt: TileLanes = [[[0.0; L]; MAX_A]; MAX_A];
        let mut dy = [[[0.0; L]; 4]; 4];
        for i in 0..a {
            for j in 0..a {
                mt[i][j] = std::array::from_fn(|l| value((i * a + j) * L + l, 3));
            }
        }
        for i in 0..m {
            for j in 0..m {
                dy[i][j] = std::array::from_fn(|l| value((i * m + j) * L + l, 4));
            }
        }
        let mut y = [[[0.0; L]; 4]; 4];
        output_tile::<T>(&mt, &mut y);
        let mut dm = [[[0.0; L]; MAX_A]; MAX_A];
        output_grad_tile::<T>(&dy, &mut dm);
        for l in 0..L {
            let lhs: f64 = (0..m * m)
                .map(|k| f64::from(y[k / m][k % m][l]) * f64::from(dy[k / m][k % m][l]))
                .sum();
            let rhs: f64 = (0..a * a)
                .map(|k| f64::from(mt[k / a][k % a][l]) * f64::from(dm[k / a][k % a][l]))
                .sum();
            assert!(
                (lhs - rhs).abs() <= 1e-4 * (1.0 + lhs.abs()),
                "{lhs} vs {rhs}"
            );
        }
        let g: Vec<f32> = (0..9).map(|k| value(k, 5)).collect();
        let du: Vec<f32> = (0..a * a).map(|k| value(k, 6)).collect();
        let mut u = [0.0f32; MAX_A * MAX_A];
        kernel_tile::<T>(&g, &mut u);
        let mut dg = [0.0f32; 9];
        kernel_grad_tile::<T>(&du, &mut dg);
        let lhs: f64 = (0..a * a).map(|k| f64::from(u[k]) * f64::from(du[k])).sum();
        let rhs: f64 = (0..9).map(|k| f64::from(g[k]) * f64::from(dg[k])).sum();
        assert!(
            (lhs - rhs).abs() <= 1e-5 * (1.0 + lhs.abs()),
            "{lhs} vs {rhs}"
        );
    }

    /// The lane versions of the kernel transforms have the scalar ones'
    /// bits in every lane (signed zeros and a zero kernel included).
    fn check_kernel_lanes<T: Tile>() {
        let a = T::A;
        let mut g = [[[0.0f32; L]; 3]; 3];
        let mut du: TileLanes = [[[0.0; L]; MAX_A]; MAX_A];
        for l in 0..L {
            for k in 0..9 {
                g[k / 3][k % 3][l] = match l {
                    0 => 0.0,
                    1 => -0.0,
                    _ => value(k * L + l, 7),
                };
            }
            for k in 0..a * a {
                du[k / a][k % a][l] = if l == 1 { -0.0 } else { value(k * L + l, 8) };
            }
        }
        let mut u = [[[0.0; L]; MAX_A]; MAX_A];
        kernel_lanes::<T>(&g, &mut u);
        let mut dg = [[[0.0; L]; 3]; 3];
        kernel_grad_lanes::<T>(&du, &mut dg);
        for l in 0..L {
            let gl: Vec<f32> = (0..9).map(|k| g[k / 3][k % 3][l]).collect();
            let mut want = [0.0f32; MAX_A * MAX_A];
            kernel_tile::<T>(&gl, &mut want);
            for k in 0..a * a {
                assert_eq!(
                    u[k / a][k % a][l].to_bits(),
                    want[k].to_bits(),
                    "u lane {l} {k}"
                );
            }
            let dul: Vec<f32> = (0..a * a).map(|k| du[k / a][k % a][l]).collect();
            let mut want = [0.0f32; 9];
            kernel_grad_tile::<T>(&dul, &mut want);
            for k in 0..9 {
                assert_eq!(
                    dg[k / 3][k % 3][l].to_bits(),
                    want[k].to_bits(),
                    "dg lane {l} {k}"
                );
            }
        }
    }

    #[test]
    fn kernel_lanes_have_the_scalar_bits() {
        check_kernel_lanes::<F2>();
        check_kernel_lanes::<F4>();
    }

    #[test]
    fn gradient_transforms_are_adjoints() {
        check_adjoints::<F2>();
        check_adjoints::<F4>();
    }
}
