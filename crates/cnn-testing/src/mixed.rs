//! CPU emulation of the mixed-precision modes ([`Precision`]): the oracle
//! the CUDA backend's `tf32`, `bf16` and `f16` GEMMs and convolutions are
//! checked against, with the per-element bound of each op.
//!
//! # What is emulated
//!
//! `torch.autocast` semantics: the two operands of a product (the GEMM's A
//! and B; a convolution's input and weight, output gradient and weight,
//! input and output gradient) are rounded to the mode's format, the
//! products are summed in a wider type, and everything else (the bias,
//! `alpha`, `beta`, the old C or weight gradient) stays f32.
//! - [`round_bf16`], [`round_f16`]: f32 -> bfloat16 / IEEE half -> f32,
//!   round to nearest, ties to even (PyTorch's casts), through the `half`
//!   crate. f16 overflows to infinity above 65504 (from 65520 on, the
//!   rounding midpoint); below 2^-14 it keeps subnormals down to 2^-24,
//!   and magnitudes up to 2^-25 become zero.
//! - [`round_tf32`]: the f32 mantissa rounded to 10 bits, ties to even
//!   (hand-written: `half` has no TF32; it is three bit operations). NaN
//!   and infinities pass through.
//! - [`gemm`], [`conv2d_forward`], [`conv2d_backward_input`],
//!   [`conv2d_backward_weight`]: round the operands with [`round_slice`],
//!   then run the f64 reference kernels of [`crate::reference`] on them.
//!
//! # Why the sums are f64
//!
//! A product of two bf16 (8-bit significands) or f16 (11-bit) values is
//! exact in f32, and one of two TF32 values (11 bits each) is too, so the
//! only error a device adds to the rounded operands is its f32
//! accumulation, in an order cuBLAS does not document (tensor-core tiles,
//! split-K). Summing in f64 makes the emulation (nearly) the exact sum of
//! the rounded products, independent of any order, and the bound below
//! covers every f32 order at once; an f32 emulation would have to guess
//! cuBLAS's order and would still differ from it.
//!
//! # The bounds
//!
//! For an output that is a sum of `K` products (`S` = the sum of the
//! products' absolute values, computed by the same emulation on `|a|` and
//! `|b|`), and `M` = `S` plus the absolute values of what is added in f32
//! after the product (bias, `beta C`, the old gradient):
//! `|device - emulation| <= (operand + (K + 3) 2^-23) M + 2^-126`, where
//! - `(K + 3) 2^-23`: each of the `K - 1` f32 additions, plus scaling by
//!   `alpha`, adding `beta C` or the bias, and the last f32 rounding, off
//!   by at most one f32 ulp (2^-23 relative): one ulp rather than the half
//!   ulp of round-to-nearest, because tensor cores have been measured to
//!   truncate in their accumulation (Fasi et al., "Numerical behavior of
//!   NVIDIA tensor cores", 2021); any summation order is covered.
//! - `operand`: 0 for bf16 and f16, whose conversion the backend does
//!   itself (round to nearest even, as here); `2^-9 + 2^-18` for TF32,
//!   whose rounding of f32 operands cuBLAS does not specify (truncation or
//!   round to nearest): two TF32 neighbours of `a` differ by at most one
//!   TF32 ulp, `2^-10 |a|`, so a product by at most `(1 + 2^-10 (1 +
//!   2^-11))^2 - 1 < 2^-9 + 2^-18` of `|a b|`. So the TF32 bound cannot
//!   tell TF32 from f32 products; the bf16 and f16 ones can (the test
//!   `skipping_the_rounding_breaks_the_bf16_and_f16_bounds`).
//! - `2^-126`: products in the subnormal range of f32 (tensor cores may
//!   flush them).
//!
//! The convolutions' `K`: the forward sums `c_in/groups kh kw` products per
//! output; the input gradient's GEMM sums `c_out/groups` per column entry
//! and col2im then adds up to `kh kw` entries (`K = c_out/groups + kh
//! kw`); the weight gradient's GEMM sums `h_out w_out` per image and the
//! images are then added in f32 (`K = h_out w_out + n`).

use cnn_core::backend::{Conv2dParams, GemmParams, Precision};

use crate::reference;

/// `x` rounded to bfloat16 (round to nearest, ties to even; NaN stays NaN).
pub fn round_bf16(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}

/// `x` rounded to IEEE half (round to nearest, ties to even; overflow to
/// infinity; subnormal halves kept).
pub fn round_f16(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// `x` with its mantissa rounded to TF32's 10 bits (round to nearest, ties
/// to even; NaN and infinities unchanged; the largest values round to
/// infinity as f32 rounding would).
pub fn round_tf32(x: f32) -> f32 {
    if !x.is_finite() {
        return x;
    }
    let u = x.to_bits();
    // 13 bits are dropped: add just under half of their weight, plus one
    // when the kept last bit is odd (ties go to the even neighbour).
    let rounded = u.wrapping_add(0x0fff + ((u >> 13) & 1)) & !0x1fff;
    f32::from_bits(rounded)
}

/// `x` rounded to the operand format of `precision` (f32: unchanged).
pub fn round(precision: Precision, x: f32) -> f32 {
    match precision {
        Precision::F32 => x,
        Precision::Tf32 => round_tf32(x),
        Precision::Bf16 => round_bf16(x),
        Precision::F16 => round_f16(x),
    }
}

/// Every element of `xs` rounded with [`round`].
pub fn round_slice(precision: Precision, xs: &[f32]) -> Vec<f32> {
    xs.iter().map(|&x| round(precision, x)).collect()
}

fn abs_rounded(precision: Precision, xs: &[f32]) -> Vec<f32> {
    xs.iter().map(|&x| round(precision, x).abs()).collect()
}

fn abs_all(xs: &[f32]) -> Vec<f32> {
    xs.iter().map(|x| x.abs()).collect()
}

/// The relative part of an output's bound: see the module docs.
pub fn relative_bound(precision: Precision, terms: usize) -> f64 {
    let operand = if precision == Precision::Tf32 {
        2f64.powi(-9) + 2f64.powi(-18)
    } else {
        0.0
    };
    operand + (terms as f64 + 3.0) * 2f64.powi(-23)
}

/// The absolute floor of every bound (the f32 subnormal range).
pub const ABSOLUTE_BOUND: f64 = 1.1754943508222875e-38; // 2^-126

fn bounds(precision: Precision, terms: usize, magnitude: Vec<f64>) -> Vec<f64> {
    let rel = relative_bound(precision, terms);
    magnitude
        .into_iter()
        .map(|m| rel * m + ABSOLUTE_BOUND)
        .collect()
}

/// `alpha op(A) op(B) + beta C` with A and B rounded to `precision`'s
/// format, summed in f64 (C, alpha, beta as given).
pub fn gemm(precision: Precision, p: &GemmParams, a: &[f32], b: &[f32], c: &[f32]) -> Vec<f64> {
    reference::gemm(p, &round_slice(precision, a), &round_slice(precision, b), c)
}

/// The per-element bound of a device GEMM against [`gemm`].
pub fn gemm_bound(
    precision: Precision,
    p: &GemmParams,
    a: &[f32],
    b: &[f32],
    c: &[f32],
) -> Vec<f64> {
    let abs_p = GemmParams {
        alpha: p.alpha.abs(),
        beta: p.beta.abs(),
        ..*p
    };
    let magnitude = reference::gemm(
        &abs_p,
        &abs_rounded(precision, a),
        &abs_rounded(precision, b),
        &abs_all(c),
    );
    bounds(precision, p.k, magnitude)
}

/// The forward convolution with `x` and `w` rounded (the bias is added in
/// f32, unrounded, as autocast's convolution adds it to the f32 output).
pub fn conv2d_forward(
    precision: Precision,
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
) -> Vec<f64> {
    reference::conv2d_forward(p, &round_slice(precision, x), &round_slice(precision, w), b)
}

/// The per-element bound of a device forward convolution.
pub fn conv2d_forward_bound(
    precision: Precision,
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
) -> Vec<f64> {
    let b_abs = b.map(abs_all);
    let magnitude = reference::conv2d_forward(
        p,
        &abs_rounded(precision, x),
        &abs_rounded(precision, w),
        b_abs.as_deref(),
    );
    bounds(precision, p.c_in / p.groups * p.kh * p.kw, magnitude)
}

/// The input gradient with `dy` and `w` rounded.
pub fn conv2d_backward_input(
    precision: Precision,
    p: &Conv2dParams,
    dy: &[f32],
    w: &[f32],
) -> Vec<f64> {
    reference::conv2d_backward_input(p, &round_slice(precision, dy), &round_slice(precision, w))
}

/// The per-element bound of a device input gradient.
pub fn conv2d_backward_input_bound(
    precision: Precision,
    p: &Conv2dParams,
    dy: &[f32],
    w: &[f32],
) -> Vec<f64> {
    let magnitude = reference::conv2d_backward_input(
        p,
        &abs_rounded(precision, dy),
        &abs_rounded(precision, w),
    );
    bounds(precision, p.c_out / p.groups + p.kh * p.kw, magnitude)
}

/// The weight gradient of one backward pass with `x` and `dy` rounded (a
/// backend adds it to its f32 `dw`).
pub fn conv2d_backward_weight(
    precision: Precision,
    p: &Conv2dParams,
    x: &[f32],
    dy: &[f32],
) -> Vec<f64> {
    reference::conv2d_backward_weight(p, &round_slice(precision, x), &round_slice(precision, dy))
}

/// The per-element bound of a device weight gradient added to `dw_old`.
pub fn conv2d_backward_weight_bound(
    precision: Precision,
    p: &Conv2dParams,
    x: &[f32],
    dy: &[f32],
    dw_old: &[f32],
) -> Vec<f64> {
    let mut magnitude = reference::conv2d_backward_weight(
        p,
        &abs_rounded(precision, x),
        &abs_rounded(precision, dy),
    );
    for (m, old) in magnitude.iter_mut().zip(dw_old) {
        *m += f64::from(old.abs());
    }
    bounds(precision, p.h_out * p.w_out + p.n, magnitude)
}

/// `Ok` when every `|actual[i] - expected[i]| <= bound[i]` (NaN only where
/// NaN is expected, infinities equal); otherwise the first few offenders.
pub fn check_within(
    actual: &[f32],
    expected: &[f64],
    bound: &[f64],
    what: &str,
) -> Result<(), String> {
    if actual.len() != expected.len() || expected.len() != bound.len() {
        return Err(format!(
            "{what}: lengths differ: actual {}, expected {}, bound {}",
            actual.len(),
            expected.len(),
            bound.len()
        ));
    }
    let mut bad = Vec::new();
    let mut worst = 0.0f64;
    for (i, ((&a, &e), &t)) in actual.iter().zip(expected).zip(bound).enumerate() {
        let a = f64::from(a);
        let diff = (a - e).abs();
        let ok = if e.is_nan() {
            a.is_nan()
        } else if e.is_infinite() {
            a == e
        } else {
            diff <= t
        };
        if diff.is_finite() && t > 0.0 {
            worst = worst.max(diff / t);
        }
        if !ok {
            bad.push((i, a, e, diff, t));
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    let mut msg = format!(
        "{what}: {} of {} elements beyond their bound (worst |difference| / bound {worst:.3}):",
        bad.len(),
        actual.len()
    );
    for (i, a, e, d, t) in bad.iter().take(8) {
        msg.push_str(&format!(
            "\n  [{i}] actual {a:e}, expected {e:e}, |difference| {d:e} > bound {t:e}"
        ));
    }
    Err(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::{gemm_case, values};
    use cnn_core::backend::Conv2dGeometry;
    use proptest::prelude::*;

    fn p2(e: i32) -> f32 {
        2f32.powi(e)
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to even (1).
        assert_eq!(round_bf16(1.0 + p2(-8)), 1.0);
        // 1 + 3 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
        assert_eq!(round_bf16(1.0 + 3.0 * p2(-8)), 1.0 + p2(-6));
        // Just above the midpoint rounds up; just below, down.
        assert_eq!(round_bf16(1.0 + p2(-8) + p2(-20)), 1.0 + p2(-7));
        assert_eq!(round_bf16(1.0 + p2(-8) - p2(-20)), 1.0);
        assert_eq!(round_bf16(-(1.0 + 3.0 * p2(-8))), -(1.0 + p2(-6)));
        // Representable values are kept.
        assert_eq!(round_bf16(1.0 + p2(-7)), 1.0 + p2(-7));
        assert_eq!(round_bf16(-0.0).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn bf16_keeps_the_f32_range_subnormals_inf_and_nan() {
        // bf16 subnormals reach down to 2^-133; the smallest f32 subnormals
        // round to zero, the smallest normal is kept.
        assert_eq!(round_bf16(p2(-133)), p2(-133));
        assert_eq!(round_bf16(f32::from_bits(1)), 0.0);
        assert_eq!(round_bf16(f32::MIN_POSITIVE), f32::MIN_POSITIVE);
        // The largest bf16 is kept; f32::MAX rounds past it to infinity.
        let max_bf16 = (2.0 - p2(-7)) * p2(127);
        assert_eq!(round_bf16(max_bf16), max_bf16);
        assert_eq!(round_bf16(f32::MAX), f32::INFINITY);
        assert_eq!(round_bf16(f32::NEG_INFINITY), f32::NEG_INFINITY);
        assert!(round_bf16(f32::NAN).is_nan());
    }

    #[test]
    fn f16_rounds_to_nearest_even_and_overflows_to_inf() {
        assert_eq!(round_f16(1.0 + p2(-11)), 1.0);
        assert_eq!(round_f16(1.0 + 3.0 * p2(-11)), 1.0 + p2(-9));
        assert_eq!(round_f16(1.0 + p2(-11) + p2(-20)), 1.0 + p2(-10));
        // 65504 is the largest half; 65519.99 rounds down to it, the
        // midpoint 65520 (tie to the even "65536", out of range) and above
        // overflow.
        assert_eq!(round_f16(65504.0), 65504.0);
        assert_eq!(round_f16(65519.0), 65504.0);
        assert_eq!(round_f16(65520.0), f32::INFINITY);
        assert_eq!(round_f16(1e5), f32::INFINITY);
        assert_eq!(round_f16(-1e5), f32::NEG_INFINITY);
        assert_eq!(round_f16(f32::INFINITY), f32::INFINITY);
        assert!(round_f16(f32::NAN).is_nan());
    }

    #[test]
    fn f16_subnormals_and_underflow() {
        // Half subnormals are multiples of 2^-24.
        assert_eq!(round_f16(p2(-24)), p2(-24));
        assert_eq!(round_f16(3.0 * p2(-24)), 3.0 * p2(-24));
        // 2^-25 is halfway between 0 (even) and 2^-24: zero.
        assert_eq!(round_f16(p2(-25)), 0.0);
        assert_eq!(round_f16(1.5 * p2(-25)), p2(-24));
        // 1.5 2^-24 is halfway between 2^-24 (odd) and 2^-23 (even).
        assert_eq!(round_f16(1.5 * p2(-24)), p2(-23));
        assert_eq!(round_f16(-1e-40), 0.0);
        assert!(round_f16(-1e-40).is_sign_negative());
        // The smallest normal half.
        assert_eq!(round_f16(p2(-14)), p2(-14));
    }

    #[test]
    fn tf32_rounds_the_mantissa_to_ten_bits() {
        assert_eq!(round_tf32(1.0 + p2(-11)), 1.0);
        assert_eq!(round_tf32(1.0 + 3.0 * p2(-11)), 1.0 + p2(-9));
        assert_eq!(round_tf32(1.0 + p2(-11) + p2(-20)), 1.0 + p2(-10));
        assert_eq!(round_tf32(-(1.0 + 3.0 * p2(-11))), -(1.0 + p2(-9)));
        assert_eq!(round_tf32(1.0 + p2(-10)), 1.0 + p2(-10));
        // A carry out of the mantissa moves to the next binade.
        assert_eq!(round_tf32(2.0 - p2(-12)), 2.0);
        // Subnormals round on the same bits (ties to even at zero).
        assert_eq!(round_tf32(f32::from_bits(0x1000)), 0.0);
        assert_eq!(round_tf32(f32::from_bits(0x1001)), f32::from_bits(0x2000));
        // f32::MAX rounds past the largest TF32 value to infinity.
        assert_eq!(round_tf32(f32::MAX), f32::INFINITY);
        assert_eq!(round_tf32(f32::NEG_INFINITY), f32::NEG_INFINITY);
        assert!(round_tf32(f32::NAN).is_nan());
        // f32 mode changes nothing.
        assert_eq!(round(Precision::F32, 1.0 + p2(-20)), 1.0 + p2(-20));
    }

    #[test]
    fn emulated_products_use_the_rounded_operands() {
        let p = GemmParams::new(1, 1, 2);
        let a = [1.0 + p2(-8), 1.0 + p2(-11)];
        let b = [1.0, 1.0];
        assert_eq!(gemm(Precision::Bf16, &p, &a, &b, &[0.0]), vec![2.0]);
        assert_eq!(
            gemm(Precision::F16, &p, &a, &b, &[0.0]),
            vec![2.0 + 2f64.powi(-8)]
        );
        assert_eq!(
            gemm(Precision::Tf32, &p, &a, &b, &[0.0]),
            vec![2.0 + 2f64.powi(-8)]
        );
        let exact = 2.0 + 2f64.powi(-8) + 2f64.powi(-11);
        assert_eq!(gemm(Precision::F32, &p, &a, &b, &[0.0]), vec![exact]);
        // The convolution's operands are rounded too, the bias is not: a
        // 1x1 convolution of one pixel is the same product plus the bias.
        let cp = Conv2dParams::new(1, 2, 1, 1, &Conv2dGeometry::new(1, 1)).unwrap();
        let y = conv2d_forward(Precision::Bf16, &cp, &a, &b, Some(&[p2(-20)]));
        assert_eq!(y, vec![2.0 + 2f64.powi(-20)]);
        let dx = conv2d_backward_input(Precision::Bf16, &cp, &[1.0 + p2(-8)], &b);
        assert_eq!(dx, vec![1.0, 1.0]);
        let dw = conv2d_backward_weight(Precision::Bf16, &cp, &a, &[1.0]);
        assert_eq!(dw, vec![1.0, 1.0]);
    }

    /// The product as a device computes it: rounded operands, f32 sums in
    /// `order` (0: forward, 1: backward, 2: forward truncating every sum
    /// toward zero, as tensor cores have been seen to), alpha and beta in f32.
    fn device_like_gemm(
        precision: Precision,
        p: &GemmParams,
        a: &[f32],
        b: &[f32],
        c: &[f32],
        order: u8,
    ) -> Vec<f32> {
        let (a, b) = (round_slice(precision, a), round_slice(precision, b));
        let at = |i: usize, l: usize| {
            if p.trans_a {
                a[l * p.m + i]
            } else {
                a[i * p.k + l]
            }
        };
        let bt = |l: usize, j: usize| {
            if p.trans_b {
                b[j * p.k + l]
            } else {
                b[l * p.n + j]
            }
        };
        let truncate = |x: f64| {
            let r = x as f32;
            if r != 0.0 && f64::from(r).abs() > x.abs() {
                f32::from_bits(r.to_bits() - 1)
            } else {
                r
            }
        };
        let mut out = vec![0.0f32; p.m * p.n];
        for i in 0..p.m {
            for j in 0..p.n {
                let mut acc = 0.0f32;
                for t in 0..p.k {
                    let l = if order == 1 { p.k - 1 - t } else { t };
                    let prod = at(i, l) * bt(l, j);
                    acc = if order == 2 {
                        truncate(f64::from(acc) + f64::from(prod))
                    } else {
                        acc + prod
                    };
                }
                let old = if p.beta == 0.0 {
                    0.0
                } else {
                    p.beta * c[i * p.n + j]
                };
                out[i * p.n + j] = p.alpha * acc + old;
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

        /// The bound holds for f32 sums in any of three orders, truncating
        /// or not, in every mode.
        #[test]
        fn device_like_sums_lie_within_the_bound(case in gemm_case(), which in 0usize..4, order in 0u8..3) {
            let precision = Precision::ALL[which];
            let p = GemmParams {
                m: case.m, n: case.n, k: case.k, trans_a: case.trans_a, trans_b: case.trans_b,
                alpha: case.alpha, beta: case.beta,
            };
            let a = values(case.seed, 0, p.m * p.k, -1.0, 1.0);
            let b = values(case.seed, 1, p.k * p.n, -1.0, 1.0);
            let c = values(case.seed, 2, p.m * p.n, -1.0, 1.0);
            let got = device_like_gemm(precision, &p, &a, &b, &c, order);
            let want = gemm(precision, &p, &a, &b, &c);
            let bound = gemm_bound(precision, &p, &a, &b, &c);
            prop_assert!(check_within(&got, &want, &bound, "gemm").is_ok(),
                "{}", check_within(&got, &want, &bound, "gemm").unwrap_err());
        }
    }

    #[test]
    fn skipping_the_rounding_breaks_the_bf16_and_f16_bounds() {
        // A device that forgot to convert its operands computes the f32
        // product: the low-precision bounds must reject it.
        let p = GemmParams::new(16, 16, 16);
        let a = values(7, 0, 256, -1.0, 1.0);
        let b = values(7, 1, 256, -1.0, 1.0);
        let c = vec![0.0; 256];
        let unrounded = device_like_gemm(Precision::F32, &p, &a, &b, &c, 0);
        for precision in [Precision::Bf16, Precision::F16] {
            let want = gemm(precision, &p, &a, &b, &c);
            let bound = gemm_bound(precision, &p, &a, &b, &c);
            let err = check_within(&unrounded, &want, &bound, "unrounded").unwrap_err();
            assert!(err.contains("beyond their bound"), "{err}");
            // ... while the rounded product passes.
            let rounded = device_like_gemm(precision, &p, &a, &b, &c, 0);
            check_within(&rounded, &want, &bound, "rounded").unwrap();
        }
        // The bound grows with K and is wider for TF32 (see the module docs).
        assert_eq!(relative_bound(Precision::Bf16, 5), 8.0 * 2f64.powi(-23));
        assert!(relative_bound(Precision::Tf32, 5) > 2f64.powi(-9));
    }

    #[test]
    fn convolution_bounds_count_their_terms() {
        // x = w = all ones: every magnitude is a count of products, so the
        // bound is rel(K) times that count (plus the floor).
        let cp = Conv2dParams::new(2, 3, 4, 4, &Conv2dGeometry::new(5, 3)).unwrap();
        let x = vec![1.0; cp.x_len()];
        let w = vec![1.0; cp.w_len()];
        let dy = vec![1.0; cp.y_len()];
        let fwd = conv2d_forward_bound(Precision::Bf16, &cp, &x, &w, None);
        let y = conv2d_forward(Precision::Bf16, &cp, &x, &w, None);
        let rel = relative_bound(Precision::Bf16, 3 * 9);
        for (t, v) in fwd.iter().zip(&y) {
            assert_eq!(*t, rel * v + ABSOLUTE_BOUND);
        }
        let bi = conv2d_backward_input_bound(Precision::F16, &cp, &dy, &w);
        let dx = conv2d_backward_input(Precision::F16, &cp, &dy, &w);
        let rel = relative_bound(Precision::F16, 5 + 9);
        for (t, v) in bi.iter().zip(&dx) {
            assert_eq!(*t, rel * v + ABSOLUTE_BOUND);
        }
        let old = vec![-2.0; cp.w_len()];
        let bw = conv2d_backward_weight_bound(Precision::Bf16, &cp, &x, &dy, &old);
        let dw = conv2d_backward_weight(Precision::Bf16, &cp, &x, &dy);
        let rel = relative_bound(Precision::Bf16, cp.h_out * cp.w_out + 2);
        for (t, v) in bw.iter().zip(&dw) {
            assert_eq!(*t, rel * (v + 2.0) + ABSOLUTE_BOUND);
        }
    }

    #[test]
    fn check_within_reports_offenders_and_special_values() {
        assert!(check_within(&[1.0, f32::NAN], &[1.0, f64::NAN], &[0.0, 0.0], "x").is_ok());
        let err = check_within(&[1.5], &[1.0], &[0.25], "y").unwrap_err();
        assert!(err.contains("[0] actual 1.5e0"), "{err}");
        assert!(check_within(&[f32::INFINITY], &[f64::INFINITY], &[0.0], "z").is_ok());
        assert!(check_within(&[1.0], &[f64::NAN], &[1.0], "w").is_err());
        assert!(check_within(&[1.0], &[1.0, 2.0], &[1.0], "len").is_err());
    }
}
