//! The CPU backend's fast paths against the reference kernels over an
//! exhaustive grid of small shapes each: the direct convolution (one
//! group, stride 1, no dilation, padding below the kernel), the 2x2
//! stride-2 SIMD max pool, and GEMM sizes on both sides of every block
//! boundary of `gemm/` (AVX2 tiles 6 x 16 and panels of 240 rows; AVX-512
//! tiles 14 x 32 and 336 rows; depth 256 for both). The random draws of
//! the conformance suite (`conformance.rs`) give these shapes a fair share
//! too; this file leaves no small shape out. Two threads, so the parallel
//! splits run.

use cnn_core::backend::{Conv2dGeometry, Pool2dGeometry};
use cnn_cpu::CpuBackend;
use cnn_testing::conformance::{check_conv2d_case, check_gemm_case, check_max_pool_case};
use cnn_testing::strategies::{ConvCase, GemmCase, PoolCase};

fn backend() -> CpuBackend {
    CpuBackend::with_threads(2).expect("a two-thread pool")
}

/// Fail with every failing case of `cases` (at most the first 8 reports).
fn all_pass<C: std::fmt::Debug>(
    what: &str,
    cases: Vec<C>,
    check: impl Fn(&C) -> Result<(), String>,
) {
    let total = cases.len();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check(c).err().map(|e| format!("{c:?}:\n{e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "{what}: {} of {total} cases fail; the first:\n{}",
        failures.len(),
        failures[..failures.len().min(8)].join("\n")
    );
    eprintln!("{what}: {total} cases");
}

/// Every direct-convolution shape with 1-3 input and output channels,
/// kernels 1-3 in each direction, every padding below the kernel, inputs
/// from the smallest that fits to 2 larger in each direction, batch 1 and
/// 3, with and without bias.
#[test]
fn direct_convolution_on_every_small_shape() {
    let be = backend();
    let mut cases = Vec::new();
    let mut seed = 0;
    for c_in in 1..=3 {
        for c_out in 1..=3 {
            for kh in 1..=3 {
                for kw in 1..=3 {
                    for ph in 0..kh {
                        for pw in 0..kw {
                            let h0 = usize::saturating_sub(kh, 2 * ph).max(1);
                            let w0 = usize::saturating_sub(kw, 2 * pw).max(1);
                            for h in h0..=h0 + 2 {
                                for w in w0..=w0 + 2 {
                                    for n in [1, 3] {
                                        seed += 1;
                                        cases.push(ConvCase {
                                            n,
                                            c_in,
                                            h,
                                            w,
                                            geom: Conv2dGeometry {
                                                out_channels: c_out,
                                                kernel: [kh, kw],
                                                stride: [1, 1],
                                                padding: [ph, pw],
                                                dilation: [1, 1],
                                                groups: 1,
                                            },
                                            bias: seed % 2 == 0,
                                            seed,
                                        });
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    all_pass("direct conv2d", cases, |c| check_conv2d_case(&be, c));
}

/// Every 2x2 stride-2 max pool over planes 2-9 high and 2-40 wide (output
/// rows of 1-20: below, at and past the 8 and 16 SIMD lanes), 2 channels,
/// ceil mode on and off, with distinct and with tied values.
#[test]
fn max_pool_2x2_on_every_small_shape() {
    let be = backend();
    let mut cases = Vec::new();
    let mut seed = 0;
    for h in 2..=9 {
        for w in 2..=40 {
            for ceil_mode in [false, true] {
                for tied in [false, true] {
                    seed += 1;
                    cases.push(PoolCase {
                        n: 1,
                        c: 2,
                        h,
                        w,
                        geom: Pool2dGeometry {
                            kernel: [2, 2],
                            stride: [2, 2],
                            padding: [0, 0],
                            ceil_mode,
                            count_include_pad: false,
                        },
                        tied,
                        seed,
                    });
                }
            }
        }
    }
    all_pass("2x2 max pool", cases, |c| check_max_pool_case(&be, c));
}

/// GEMM at every combination of rows, columns and depth on both sides of
/// the blocks' edges (one below, at and one above each), every transpose,
/// alpha 1 and beta 0 or alpha and beta random.
#[test]
fn gemm_across_every_block_boundary() {
    let be = backend();
    let ms = [1, 5, 6, 7, 13, 14, 15, 239, 240, 241, 335, 336, 337];
    let ns = [1, 15, 16, 17, 31, 32, 33];
    let ks = [1, 255, 256, 257];
    let mut cases = Vec::new();
    let mut seed = 0;
    for &m in &ms {
        for &n in &ns {
            for &k in &ks {
                for trans in 0..4 {
                    seed += 1;
                    let (alpha, beta) = if seed % 2 == 0 {
                        (1.0, 0.0)
                    } else {
                        (-0.75, 1.5)
                    };
                    cases.push(GemmCase {
                        m,
                        n,
                        k,
                        trans_a: trans & 1 == 1,
                        trans_b: trans & 2 == 2,
                        alpha,
                        beta,
                        seed,
                    });
                }
            }
        }
    }
    all_pass("gemm", cases, |c| check_gemm_case(&be, c));
}
