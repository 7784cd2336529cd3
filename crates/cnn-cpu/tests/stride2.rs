//! Stride-2 convolutions (`conv::stride2`, the polyphase kernels) against
//! the f64 reference kernels: ResNet-20's two stride-2 3x3 layers and its
//! two 1x1 shortcuts, and a grid of small shapes (odd and even maps 1-9,
//! channels 1-7, kernels 1-3 with every padding below the kernel, batch
//! 1-3), each by the default choice and forced (`ConvAlgorithm::Direct`
//! sends every supported stride-2 layer to the polyphase kernels, the 1x1
//! ones included); forward and input gradient bit-identical on 1 and 2
//! threads, the weight gradient accumulated onto `dw`, and
//! `ConvAlgorithm::Gemm` (`CNN_CPU_CONV=gemm`) and `NoWinograd` still on
//! im2col + GEMM.
//!
//! # Tolerance
//!
//! Each output is compared against `1e-6 + gamma_n T` (abs + rel): `T` is
//! the sum of the absolute values of the output's products (the reference
//! kernels on `|x|` and `|w|`), `gamma_n = n u / (1 - n u)` with
//! `u = 2^-24` and `n` the output's products plus two (the rounding of the
//! products, of any summation order of them, and of the add onto `dw`):
//! the standard worst-case bound of a floating-point dot product
//! (Higham, "Accuracy and Stability of Numerical Algorithms", 3.1), which
//! holds for every summation order, so for each kernel version. A wrong
//! tap or a lost product is off by the size of a product (about 0.25
//! here), far above it.

use cnn_core::{Conv2dGeometry, Conv2dParams, ConvOps};
use cnn_cpu::{ConvAlgorithm, CpuBackend};
use cnn_testing::reference as r;
use cnn_testing::strategies::values;

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// Every element within `1e-6 + gamma_n t` of `want` (module docs).
fn check(what: &str, got: &[f32], want: &[f64], t: &[f64], n: usize) -> Result<(), String> {
    assert_eq!(got.len(), want.len(), "{what}");
    let nu = (n + 2) as f64 * f64::from(f32::EPSILON) / 2.0;
    let gamma = nu / (1.0 - nu);
    for (i, ((&g, &w), &t)) in got.iter().zip(want).zip(t).enumerate() {
        let (err, bound) = ((f64::from(g) - w).abs(), 1e-6 + gamma * t);
        if err.is_nan() || err > bound {
            return Err(format!(
                "{what}: element {i}: {g} vs {w} (err {err:.3e}, bound {bound:.3e})"
            ));
        }
    }
    Ok(())
}

/// Forward (with bias), input gradient and accumulated weight gradient of
/// `p` on `be` against the reference kernels.
fn check_layer(be: &CpuBackend, p: &Conv2dParams, seed: u64) -> Result<(), String> {
    let x = values(seed, 1, p.x_len(), -1.0, 1.0);
    let w = values(seed, 2, p.w_len(), -1.0, 1.0);
    let b = values(seed, 3, p.c_out, -1.0, 1.0);
    let dy = values(seed, 4, p.y_len(), -1.0, 1.0);
    let (xa, wa, dya) = (abs(&x), abs(&w), abs(&dy));
    let taps = p.kh * p.kw;

    let mut y = vec![f32::NAN; p.y_len()];
    be.conv2d_forward(p, &x, &w, Some(&b), &mut y)
        .map_err(|e| e.to_string())?;
    let t: Vec<f64> = r::conv2d_forward(p, &xa, &wa, Some(&abs(&b)));
    let want = r::conv2d_forward(p, &x, &w, Some(&b));
    check(&format!("forward {p:?}"), &y, &want, &t, p.c_in * taps + 1)?;

    let mut dx = vec![f32::NAN; p.x_len()];
    be.conv2d_backward_input(p, &dy, &w, &mut dx)
        .map_err(|e| e.to_string())?;
    let t = r::conv2d_backward_input(p, &dya, &wa);
    let want = r::conv2d_backward_input(p, &dy, &w);
    check(
        &format!("input gradient {p:?}"),
        &dx,
        &want,
        &t,
        p.c_out * taps,
    )?;

    let dw0 = values(seed, 5, p.w_len(), -1.0, 1.0);
    let mut dw = dw0.clone();
    be.conv2d_backward_weight(p, &x, &dy, &mut dw)
        .map_err(|e| e.to_string())?;
    let t: Vec<f64> = r::conv2d_backward_weight(p, &xa, &dya)
        .iter()
        .zip(&dw0)
        .map(|(t, &d)| t + f64::from(d.abs()))
        .collect();
    let want: Vec<f64> = r::conv2d_backward_weight(p, &x, &dy)
        .iter()
        .zip(&dw0)
        .map(|(g, &d)| g + f64::from(d))
        .collect();
    let n = p.n * p.h_out * p.w_out;
    check(&format!("weight gradient {p:?}"), &dw, &want, &t, n)
}

/// ResNet-20's stride-2 layers: (c_in, c_out, side, kernel), padding k / 2.
const WORKLOAD: [(usize, usize, usize, usize); 4] = [
    (16, 32, 32, 3),
    (32, 64, 16, 3),
    (16, 32, 32, 1),
    (32, 64, 16, 1),
];

fn workload(n: usize, (ci, co, side, k): (usize, usize, usize, usize)) -> Conv2dParams {
    let geo = Conv2dGeometry::new(co, k).stride(2).padding(k / 2);
    Conv2dParams::new(n, ci, side, side, &geo).unwrap()
}

/// The workload layers at batch 16 (the reference kernels are slow; 16
/// images still split over both threads), by default and forced.
#[test]
fn workload_layers_match_reference() {
    for alg in [None, Some(ConvAlgorithm::Direct)] {
        for threads in [1, 2] {
            let mut be = CpuBackend::with_threads(threads).unwrap();
            if let Some(a) = alg {
                be = be.with_conv_algorithm(a);
            }
            for (i, &l) in WORKLOAD.iter().enumerate() {
                check_layer(&be, &workload(16, l), i as u64).unwrap();
            }
        }
    }
}

/// The grid of small shapes, by default and forced, on two threads.
#[test]
fn small_shapes_match_reference() {
    let mut shapes = Vec::new();
    let mut i = 0usize;
    for k in 1..=3 {
        for pad in 0..k {
            for h in 1..=9 {
                for w in [h, 10 - h] {
                    let (ci, co, n) = (1 + i % 7, 1 + (3 * i + 2) % 7, 1 + i % 3);
                    i += 1;
                    let geo = Conv2dGeometry::new(co, k).stride(2).padding(pad);
                    if let Ok(p) = Conv2dParams::new(n, ci, h, w, &geo) {
                        shapes.push(p);
                    }
                }
            }
        }
    }
    assert!(shapes.len() >= 90, "{} shapes", shapes.len());
    for alg in [None, Some(ConvAlgorithm::Direct)] {
        let mut be = CpuBackend::with_threads(2).unwrap();
        if let Some(a) = alg {
            be = be.with_conv_algorithm(a);
        }
        let failures: Vec<String> = shapes
            .iter()
            .enumerate()
            .filter_map(|(i, p)| check_layer(&be, p, 100 + i as u64).err())
            .collect();
        assert!(
            failures.is_empty(),
            "{alg:?}: {} of {} shapes fail; the first:\n{}",
            failures.len(),
            shapes.len(),
            failures[..failures.len().min(4)].join("\n")
        );
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

/// (y, dx, dw) of `p` on `be` from fixed inputs (dw from zero).
fn outputs(be: &CpuBackend, p: &Conv2dParams) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = values(7, 1, p.x_len(), -1.0, 1.0);
    let w = values(7, 2, p.w_len(), -1.0, 1.0);
    let dy = values(7, 4, p.y_len(), -1.0, 1.0);
    let mut y = vec![0.0; p.y_len()];
    let mut dx = vec![0.0; p.x_len()];
    let mut dw = vec![0.0; p.w_len()];
    be.conv2d_forward(p, &x, &w, None, &mut y).unwrap();
    be.conv2d_backward_input(p, &dy, &w, &mut dx).unwrap();
    be.conv2d_backward_weight(p, &x, &dy, &mut dw).unwrap();
    (y, dx, dw)
}

/// At batch 128: forward and input gradient bit-identical on 1 and 2
/// threads (each image is computed alone); the weight gradient, summed in
/// one part per thread like every path of the crate, bit-identical from
/// run to run on 2 threads.
#[test]
fn threads_do_not_change_the_bits() {
    let one = CpuBackend::with_threads(1).unwrap();
    let two = CpuBackend::with_threads(2).unwrap();
    for l in WORKLOAD {
        let p = workload(128, l);
        let (y1, dx1, _) = outputs(&one, &p);
        let (y2, dx2, dw2) = outputs(&two, &p);
        assert_eq!(bits(&y1), bits(&y2), "forward {l:?}");
        assert_eq!(bits(&dx1), bits(&dx2), "input gradient {l:?}");
        let (_, _, dw2b) = outputs(&two, &p);
        assert_eq!(bits(&dw2), bits(&dw2b), "weight gradient {l:?}");
    }
}

/// `ConvAlgorithm::Gemm` (`CNN_CPU_CONV=gemm`) and `NoWinograd` keep
/// im2col + GEMM for the stride-2 layers (the same bits as each other),
/// the default takes the polyphase kernels (`Direct`'s bits) for all four
/// layers, the 1x1 shortcuts' three ops included (entry 42). The weight gradients
/// tell the paths apart (GEMM sums over blocks of positions, the
/// polyphase kernels in lanes); a forward may coincide bit for bit (both
/// add the taps in one order from zero).
#[test]
fn gemm_and_nowinograd_keep_the_old_path() {
    let be = || CpuBackend::with_threads(2).unwrap();
    for l in WORKLOAD {
        let p = workload(8, l);
        let gemm = outputs(&be().with_conv_algorithm(ConvAlgorithm::Gemm), &p);
        let nowino = outputs(&be().with_conv_algorithm(ConvAlgorithm::NoWinograd), &p);
        let default = outputs(&be(), &p);
        let forced = outputs(&be().with_conv_algorithm(ConvAlgorithm::Direct), &p);
        let all = |o: &(Vec<f32>, Vec<f32>, Vec<f32>)| (bits(&o.0), bits(&o.1), bits(&o.2));
        assert!(all(&gemm) == all(&nowino), "{l:?}");
        assert_ne!(bits(&gemm.2), bits(&forced.2), "{l:?}");
        assert!(all(&default) == all(&forced), "{l:?}");
    }
}
