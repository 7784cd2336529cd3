//! Proptest strategies for op shapes, and a seeded value generator.
//!
//! Strategies produce small *descriptions* of a case (sizes, geometry,
//! flags and a seed); the values themselves come from [`values`], keyed by
//! the seed, so a failing case prints compactly and shrinks by shape.
//! Sizes are small and odd on purpose (1x1 kernels, batch 1, sizes that do
//! not divide the stride) to reach the edge cases of every kernel.

use proptest::prelude::*;

use cnn_core::backend::{Conv2dGeometry, Conv2dParams, Pool2dGeometry, Pool2dParams};
use cnn_core::rng::CounterRng;

/// `len` values uniform in `[lo, hi)`, a pure function of `(seed, stream)`.
pub fn values(seed: u64, stream: u64, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = CounterRng::new(seed, stream);
    (0..len)
        .map(|_| rng.uniform(f64::from(lo), f64::from(hi)) as f32)
        .collect()
}

/// `len` values from the small set `{-2, -1.5, ..., 2}`, so that ties are
/// common (for max pooling and argmax, whose tie rule is part of the contract).
pub fn tied_values(seed: u64, stream: u64, len: usize) -> Vec<f32> {
    let mut rng = CounterRng::new(seed, stream);
    (0..len)
        .map(|_| (rng.next_u32() % 9) as f32 * 0.5 - 2.0)
        .collect()
}

/// The smallest input size along one axis that a window of `span` (after
/// dilation) fits with padding `pad`.
fn min_input(span: usize, pad: usize) -> usize {
    span.saturating_sub(2 * pad).max(1)
}

/// One convolution: input `(n, c_in, h, w)`, geometry, bias on or off.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvCase {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub geom: Conv2dGeometry,
    pub bias: bool,
    pub seed: u64,
}

impl ConvCase {
    /// The op params (the strategy only builds valid geometry).
    pub fn params(&self) -> Conv2dParams {
        Conv2dParams::new(self.n, self.c_in, self.h, self.w, &self.geom)
            .expect("conv_case builds valid geometry")
    }
}

/// Convolutions, half of them of the shapes CPU backends run on their
/// direct kernels ([`direct_conv_case`]), half of any geometry
/// ([`any_conv_case`]), where the direct shapes come up about 0.5% of
/// the time.
pub fn conv_case() -> impl Strategy<Value = ConvCase> {
    prop_oneof![any_conv_case(), direct_conv_case()]
}

/// The shapes of the CPU backend's direct convolution (`cnn-cpu`'s
/// `conv/direct`, which takes one group, stride 1, no dilation, padding
/// below the kernel, at most 512 taps `c_in kh kw` and 64 output
/// channels): 1-8 input and 1-16 output channels, kernels 1-5
/// (rectangular), padding below the kernel, batch 1-3, inputs from the
/// kernel's size to 9 larger (several output rows and SIMD widths).
pub fn direct_conv_case() -> impl Strategy<Value = ConvCase> {
    (
        (1usize..=8, 1usize..=16),
        [1usize..=5, 1usize..=5],
        1usize..=3,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_flat_map(|((c_in, c_out), kernel, n, bias, seed)| {
            (0..kernel[0], 0..kernel[1]).prop_flat_map(move |(ph, pw)| {
                let h0 = min_input(kernel[0], ph);
                let w0 = min_input(kernel[1], pw);
                (h0..=h0 + 9, w0..=w0 + 9).prop_map(move |(h, w)| ConvCase {
                    n,
                    c_in,
                    h,
                    w,
                    geom: Conv2dGeometry {
                        out_channels: c_out,
                        kernel,
                        stride: [1, 1],
                        padding: [ph, pw],
                        dilation: [1, 1],
                        groups: 1,
                    },
                    bias,
                    seed,
                })
            })
        })
}

/// Convolutions with 1-3 groups of 1-3 channels, kernels 1-4 (rectangular),
/// stride 1-3, padding 0-2, dilation 1-2, batch 1-3 and inputs from the
/// smallest that fits to 7 larger.
pub fn any_conv_case() -> impl Strategy<Value = ConvCase> {
    let channels = (1usize..=3, 1usize..=3, 1usize..=3); // groups, c_in per group, c_out per group
    let kernel = (
        [1usize..=4, 1usize..=4],
        [1usize..=3, 1usize..=3],
        [0usize..=2, 0usize..=2],
        [1usize..=2, 1usize..=2],
    );
    (channels, kernel, 1usize..=3, any::<bool>(), any::<u64>()).prop_flat_map(
        |((groups, cin_g, cout_g), (kernel, stride, padding, dilation), n, bias, seed)| {
            let span = |a: usize| dilation[a] * (kernel[a] - 1) + 1;
            let h0 = min_input(span(0), padding[0]);
            let w0 = min_input(span(1), padding[1]);
            (h0..=h0 + 7, w0..=w0 + 7).prop_map(move |(h, w)| ConvCase {
                n,
                c_in: groups * cin_g,
                h,
                w,
                geom: Conv2dGeometry {
                    out_channels: groups * cout_g,
                    kernel,
                    stride,
                    padding,
                    dilation,
                    groups,
                },
                bias,
                seed,
            })
        },
    )
}

/// One pooling op over `(n, c, h, w)`; `tied` asks for values with ties.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolCase {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub geom: Pool2dGeometry,
    pub tied: bool,
    pub seed: u64,
}

impl PoolCase {
    /// The op params (the strategy only builds valid geometry).
    pub fn params(&self) -> Pool2dParams {
        Pool2dParams::new(self.n, self.c, self.h, self.w, &self.geom)
            .expect("pool_case builds valid geometry")
    }
}

/// Pooling cases, half of them the 2x2 stride-2 unpadded windows that CPU
/// backends run on their SIMD max-pooling kernels ([`pool_2x2_case`]),
/// half of any geometry ([`any_pool_case`]), which draws them about once
/// in 576 cases.
pub fn pool_case() -> impl Strategy<Value = PoolCase> {
    prop_oneof![any_pool_case(), pool_2x2_case()]
}

/// 2x2 windows at stride 2 without padding (`cnn-cpu`'s `pool/max2x2`),
/// ceil mode on or off, over planes 2-17 high and 2-40 wide (output rows
/// of 1-20, past the 8- and 16-lane SIMD widths), batch 1-2, 1-3
/// channels.
pub fn pool_2x2_case() -> impl Strategy<Value = PoolCase> {
    (
        any::<bool>(),
        any::<bool>(),
        1usize..=2,
        1usize..=3,
        2usize..=17,
        2usize..=40,
        prop::bool::weighted(0.3),
        any::<u64>(),
    )
        .prop_map(
            |(ceil_mode, count_include_pad, n, c, h, w, tied, seed)| PoolCase {
                n,
                c,
                h,
                w,
                geom: Pool2dGeometry {
                    kernel: [2, 2],
                    stride: [2, 2],
                    padding: [0, 0],
                    ceil_mode,
                    count_include_pad,
                },
                tied,
                seed,
            },
        )
}

/// Pooling windows 1-4 (rectangular), stride 1-3, padding up to half the
/// window, ceil mode and count_include_pad on or off.
pub fn any_pool_case() -> impl Strategy<Value = PoolCase> {
    let window = ([1usize..=4, 1usize..=4], [1usize..=3, 1usize..=3]);
    (
        window,
        any::<bool>(),
        any::<bool>(),
        1usize..=2,
        1usize..=3,
        prop::bool::weighted(0.3),
        any::<u64>(),
    )
        .prop_flat_map(
            |((kernel, stride), ceil_mode, count_include_pad, n, c, tied, seed)| {
                (0..=kernel[0] / 2, 0..=kernel[1] / 2).prop_flat_map(move |(ph, pw)| {
                    let h0 = min_input(kernel[0], ph);
                    let w0 = min_input(kernel[1], pw);
                    (h0..=h0 + 7, w0..=w0 + 7).prop_map(move |(h, w)| PoolCase {
                        n,
                        c,
                        h,
                        w,
                        geom: Pool2dGeometry {
                            kernel,
                            stride,
                            padding: [ph, pw],
                            ceil_mode,
                            count_include_pad,
                        },
                        tied,
                        seed,
                    })
                })
            },
        )
}

/// A GEMM case: sizes, transposes, alpha and beta.
#[derive(Debug, Clone, PartialEq)]
pub struct GemmCase {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
    pub seed: u64,
}

/// GEMMs, three in four of 1-40 rows, columns and depth, one in four
/// across the CPU GEMM's block boundaries ([`gemm_block_case`]).
pub fn gemm_case() -> impl Strategy<Value = GemmCase> {
    prop_oneof![
        3 => gemm_sized(1..=40, 1..=40, 1..=40),
        1 => gemm_block_case(),
    ]
}

/// GEMMs whose sizes straddle the blocks of `cnn-cpu`'s `gemm/` (AVX2:
/// micro-tiles of 6 x 16, panels of 240 rows and depth 256; AVX-512:
/// 14 x 32, 336 rows, depth 256): up to 340 rows, 70 columns and 300
/// depth, so a case crosses at least one boundary more often than not.
pub fn gemm_block_case() -> impl Strategy<Value = GemmCase> {
    gemm_sized(1..=340, 1..=70, 1..=300)
}

/// GEMMs of the given sizes, every transpose combination, alpha 1 or
/// random, beta 0, 1 or random.
fn gemm_sized(
    m: std::ops::RangeInclusive<usize>,
    n: std::ops::RangeInclusive<usize>,
    k: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = GemmCase> {
    let alpha = prop_oneof![Just(1.0f32), -2.0f32..2.0];
    let beta = prop_oneof![Just(0.0f32), Just(1.0f32), -2.0f32..2.0];
    (
        m,
        n,
        k,
        any::<bool>(),
        any::<bool>(),
        alpha,
        beta,
        any::<u64>(),
    )
        .prop_map(|(m, n, k, trans_a, trans_b, alpha, beta, seed)| GemmCase {
            m,
            n,
            k,
            trans_a,
            trans_b,
            alpha,
            beta,
            seed,
        })
}

/// A length and a seed, for elementwise ops, losses and optimizers.
pub fn len_and_seed(max_len: usize) -> impl Strategy<Value = (usize, u64)> {
    (1usize..=max_len, any::<u64>())
}
