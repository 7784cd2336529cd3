//! The GEMM step of the Winograd paths: one product per transformed
//! position on operands that fit the caches (a block's `V_ξ` of about 128
//! tiles and a kernel matrix `U_ξ` of `c x k`), computed by a
//! register-blocked AVX2 + FMA kernel that reads both operands where they
//! lie. The crate's [`sgemm`] packs both operands into panels on every
//! call, which at these sizes costs nearly as much as the products (at
//! 64->64 on 8x8 maps the packing of `V_ξ` alone took 0.65 of the
//! microkernel's time; docs/performance.md, entry 41).
//!
//! Same summation order as [`sgemm`]'s own kernels (one FMA chain per
//! element from zero, depth blocks of 256, each block's sum added to C
//! once), so the same bits; where [`sgemm`] does not run its own kernels
//! (no AVX2 + FMA, or `CNN_CPU_GEMM=matrixmultiply`) the products go
//! through [`sgemm`] itself.

use crate::gemm::{MatRef, sgemm};
#[cfg(target_arch = "x86_64")]
use crate::gemm::{Path, path};

/// Depth of one block of the sum: [`sgemm`]'s own kernels' (`KC`).
const KC: usize = 256;

/// `C (m x n) = A (m x k) B (k x n)`, or `C += A B` when `accumulate`:
/// element `(i, p)` of A at `a[i rsa + p csa]`, `(p, j)` of B at
/// `b[p rsb + j]`, `(i, j)` of C at `c[i rsc + j]`. The caller keeps
/// every element inside its slice (checked) and `m, n, k >= 1`.
#[allow(clippy::too_many_arguments)]
pub(super) fn product(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    rsb: usize,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    assert!(m > 0 && k > 0 && n > 0, "product: empty operand");
    assert!(
        (m - 1) * rsa + (k - 1) * csa < a.len(),
        "product: A out of bounds"
    );
    assert!((k - 1) * rsb + n - 1 < b.len(), "product: B out of bounds");
    assert!((m - 1) * rsc + n - 1 < c.len(), "product: C out of bounds");
    #[cfg(target_arch = "x86_64")]
    if matches!(path(), Path::Avx2 | Path::Avx512) && crate::cpu_features::avx2_fma() {
        // SAFETY: AVX2 and FMA were detected; every element addressed lies
        // inside its slice (asserted above), and C aliases neither operand
        // (a `&mut` slice).
        unsafe { product_avx2((m, k, n), a, (rsa, csa), b, rsb, c, rsc, accumulate) };
        return;
    }
    sgemm(
        m,
        k,
        n,
        1.0,
        MatRef {
            data: a,
            rs: rsa,
            cs: csa,
        },
        MatRef {
            data: b,
            rs: rsb,
            cs: 1,
        },
        if accumulate { 1.0 } else { 0.0 },
        c,
        rsc,
        1,
    );
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Rows of one register tile (values broadcast from A per step).
const MR: usize = 6;
/// Columns of one register tile: two vectors of eight.
const NR: usize = 16;

/// One register tile's operands.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Tile {
    /// Element `(0, p0)` of the tile's A rows.
    a: *const f32,
    rsa: usize,
    csa: usize,
    /// Element `(p0, j0)` of B.
    b: *const f32,
    rsb: usize,
    /// Element `(i0, j0)` of C.
    c: *mut f32,
    rsc: usize,
    /// Depth of the block.
    kc: usize,
    /// Columns that exist (`1..=NR`).
    nr: usize,
    /// Whether C's value is added to the block's sum.
    add: bool,
}

/// # Safety
/// The CPU has AVX2 and FMA; the arguments satisfy [`product`]'s bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn product_avx2(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    rsb: usize,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    let (a, b, c) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    for p0 in (0..k).step_by(KC) {
        let kc = KC.min(k - p0);
        for j0 in (0..n).step_by(NR) {
            for i0 in (0..m).step_by(MR) {
                // SAFETY: (i0, p0), (p0, j0) and (i0, j0) are elements of
                // A, B and C (the caller's bounds), and so is every element
                // the tile reaches.
                let t = unsafe {
                    Tile {
                        a: a.add(i0 * rsa + p0 * csa),
                        rsa,
                        csa,
                        b: b.add(p0 * rsb + j0),
                        rsb,
                        c: c.add(i0 * rsc + j0),
                        rsc,
                        kc,
                        nr: NR.min(n - j0),
                        add: accumulate || p0 > 0,
                    }
                };
                // SAFETY: as above; the CPU features as promised.
                unsafe {
                    match (MR.min(m - i0), t.nr == NR) {
                        (6, true) => tile::<6, true>(&t),
                        (6, false) => tile::<6, false>(&t),
                        (5, _) => tile::<5, false>(&t),
                        (4, _) => tile::<4, false>(&t),
                        (3, _) => tile::<3, false>(&t),
                        (2, _) => tile::<2, false>(&t),
                        _ => tile::<1, false>(&t),
                    }
                }
            }
        }
    }
}

/// Lanes `0..len` of a vector (all for `len >= 8`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn lane_mask(len: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(len.min(8) as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// One `M x nr` tile over `kc` steps: `M` rows broadcast from A, two
/// vectors of B per step (masked to `nr` columns unless `FULL`).
///
/// # Safety
/// The CPU has AVX2 and FMA; rows `0..M`, steps `0..kc` and columns
/// `0..nr` of the tile's A, B and C exist.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile<const M: usize, const FULL: bool>(t: &Tile) {
    let masks = [lane_mask(t.nr), lane_mask(t.nr.saturating_sub(8))];
    let mut acc = [[_mm256_setzero_ps(); 2]; M];
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.kc {
        // SAFETY: step p of the tile's rows and columns exists (the
        // caller's promise); masked lanes are not read.
        unsafe {
            let bv: [__m256; 2] = if FULL {
                [_mm256_loadu_ps(b), _mm256_loadu_ps(b.add(8))]
            } else {
                [
                    _mm256_maskload_ps(b, masks[0]),
                    _mm256_maskload_ps(b.wrapping_add(8), masks[1]),
                ]
            };
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*a.add(i * t.rsa));
                row[0] = _mm256_fmadd_ps(ai, bv[0], row[0]);
                row[1] = _mm256_fmadd_ps(ai, bv[1], row[1]);
            }
            a = a.add(t.csa);
            b = b.add(t.rsb);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (v, &sum) in row.iter().enumerate() {
            // SAFETY: row i, columns 8v.. (masked to nr) of C exist.
            unsafe {
                let cp = t.c.wrapping_add(i * t.rsc + 8 * v);
                if FULL {
                    let out = if t.add {
                        _mm256_add_ps(_mm256_loadu_ps(cp), sum)
                    } else {
                        sum
                    };
                    _mm256_storeu_ps(cp, out);
                } else {
                    let out = if t.add {
                        _mm256_add_ps(_mm256_maskload_ps(cp, masks[v]), sum)
                    } else {
                        sum
                    };
                    _mm256_maskstore_ps(cp, masks[v], out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5) - 1.0)
            .collect()
    }

    /// [`product`] gives [`sgemm`]'s bits for both of the Winograd paths'
    /// operand layouts (A row-major as in the forward, A transposed as in
    /// the weight gradient), with row and column remainders of the
    /// register tile, columns fewer than one vector, depths past one block
    /// of 256, padded row strides, and with C accumulated.
    #[test]
    fn product_has_the_bits_of_sgemm() {
        let shapes = [
            (128, 64, 64),
            (13, 7, 5),
            (6, 16, 16),
            (7, 300, 21),
            (64, 128, 64),
            (1, 1, 1),
            (20, 513, 40),
        ];
        for (case, &(m, k, n)) in shapes.iter().enumerate() {
            for transposed in [false, true] {
                for accumulate in [false, true] {
                    // A with its inner dimension padded by 3 (as c8 pads c).
                    let (rsa, csa, a_len) = if transposed {
                        (1, m + 3, k * (m + 3))
                    } else {
                        (k + 3, 1, m * (k + 3))
                    };
                    let a = values(a_len, case);
                    let (rsb, rsc) = (n + 2, n + 5);
                    let b = values(k * rsb, case + 10);
                    let c0 = values(m * rsc, case + 20);
                    let mut got = c0.clone();
                    product(
                        (m, k, n),
                        &a,
                        (rsa, csa),
                        &b,
                        rsb,
                        &mut got,
                        rsc,
                        accumulate,
                    );
                    let mut want = c0.clone();
                    sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        MatRef {
                            data: &a,
                            rs: rsa,
                            cs: csa,
                        },
                        MatRef {
                            data: &b,
                            rs: rsb,
                            cs: 1,
                        },
                        if accumulate { 1.0 } else { 0.0 },
                        &mut want,
                        rsc,
                        1,
                    );
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(
                            g.to_bits(),
                            w.to_bits(),
                            "{m}x{k}x{n} transposed {transposed} accumulate {accumulate}: \
                             element {i}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}
