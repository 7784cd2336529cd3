//! Tests of [`sgemm`] on every path this CPU has, against an f64 reference.
//!
//! Tolerance everywhere: `1e-4` absolute plus `1e-4` relative (f32
//! accumulation over up to ~800 terms of magnitude below 1).

use super::*;

fn naive(p: &GemmParams, a: &[f32], b: &[f32], c: &mut [f32]) {
    for i in 0..p.m {
        for j in 0..p.n {
            let mut s = 0.0f64;
            for q in 0..p.k {
                let av = if p.trans_a {
                    a[q * p.m + i]
                } else {
                    a[i * p.k + q]
                };
                let bv = if p.trans_b {
                    b[j * p.k + q]
                } else {
                    b[q * p.n + j]
                };
                s += f64::from(av) * f64::from(bv);
            }
            let old = if p.beta == 0.0 {
                0.0
            } else {
                f64::from(p.beta) * f64::from(c[i * p.n + j])
            };
            c[i * p.n + j] = (f64::from(p.alpha) * s + old) as f32;
        }
    }
}

fn data(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
        })
        .collect()
}

#[test]
fn gemm_matches_naive_all_transposes() {
    let be = CpuBackend::with_threads(2).unwrap();
    for &(m, n, k) in &[(3, 5, 4), (1, 1, 1), (70, 90, 50), (33, 7, 0)] {
        for ta in [false, true] {
            for tb in [false, true] {
                let p = GemmParams {
                    m,
                    n,
                    k,
                    trans_a: ta,
                    trans_b: tb,
                    alpha: 0.5,
                    beta: 2.0,
                };
                let a = data(m * k, 1);
                let b = data(k * n, 2);
                let c0 = data(m * n, 3);
                let mut c = c0.clone();
                let mut want = c0.clone();
                be.gemm(&p, &a, &b, &mut c).unwrap();
                naive(&p, &a, &b, &mut want);
                for (x, y) in c.iter().zip(&want) {
                    assert!(
                        (x - y).abs() <= 1e-4 + 1e-4 * y.abs(),
                        "{x} vs {y} ({m},{n},{k},{ta},{tb})"
                    );
                }
            }
        }
    }
}

#[test]
fn gemm_parallel_path_and_beta_zero_ignores_nan() {
    let be = CpuBackend::with_threads(2).unwrap();
    let (m, n, k) = (130, 70, 40);
    let p = GemmParams::new(m, n, k);
    let a = data(m * k, 4);
    let b = data(k * n, 5);
    let mut c = vec![f32::NAN; m * n];
    let mut want = vec![0.0; m * n];
    be.gemm(&p, &a, &b, &mut c).unwrap();
    naive(&p, &a, &b, &mut want);
    for (x, y) in c.iter().zip(&want) {
        assert!((x - y).abs() <= 1e-4 + 1e-4 * y.abs(), "{x} vs {y}");
    }
}

#[test]
fn gemm_bad_lengths_are_errors() {
    let be = CpuBackend::with_threads(1).unwrap();
    let p = GemmParams::new(2, 3, 4);
    assert!(
        be.gemm(&p, &vec![0.0; 7], &vec![0.0; 12], &mut vec![0.0; 6])
            .is_err()
    );
    assert!(
        be.gemm(&p, &vec![0.0; 8], &vec![0.0; 12], &mut vec![0.0; 5])
            .is_err()
    );
    let bad = GemmParams {
        alpha: f32::NAN,
        ..p
    };
    assert!(
        be.gemm(&bad, &vec![0.0; 8], &vec![0.0; 12], &mut vec![0.0; 6])
            .is_err()
    );
}

/// Small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
    fn value(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// How a strided test matrix is laid out in its slice.
#[derive(Debug, Clone, Copy)]
enum Layout {
    RowMajor,
    ColMajor,
    /// Neither stride is 1: rows padded, columns spaced by 2.
    Gapped,
    /// Row stride 0: every row is the same memory (read-only operands only).
    RepeatRows,
}

impl Layout {
    fn strides(self, rows: usize, cols: usize) -> (usize, usize) {
        match self {
            Layout::RowMajor => (cols, 1),
            Layout::ColMajor => (1, rows),
            Layout::Gapped => (2 * cols + 3, 2),
            Layout::RepeatRows => (0, 1),
        }
    }
}

/// The `CNN_REQUIRE_*` variable that makes a path's skip a failure (on a
/// machine known to have its instructions).
fn require_variable(p: Path) -> &'static str {
    match p {
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => "CNN_REQUIRE_AVX512",
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => "CNN_REQUIRE_AVX2",
        Path::Matrixmultiply => "CNN_REQUIRE_MATRIXMULTIPLY",
    }
}

/// Every path this CPU runs; records the ones it skips.
fn paths() -> Vec<Path> {
    #[cfg(target_arch = "x86_64")]
    let all = vec![Path::Avx512, Path::Avx2, Path::Matrixmultiply];
    #[cfg(not(target_arch = "x86_64"))]
    let all = vec![Path::Matrixmultiply];
    all.into_iter()
        .filter(|p| {
            let ok = p.available();
            if !ok {
                cnn_testing::skip(
                    &format!("gemm tests of {p:?}"),
                    require_variable(*p),
                    "this CPU lacks the instructions",
                );
            }
            ok
        })
        .collect()
}

/// Tile and block sizes of a path, for edge-case shapes.
fn blocking(path: Path) -> (usize, usize, usize, usize, usize) {
    #[cfg(target_arch = "x86_64")]
    use driver::Microkernel;
    match path {
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => {
            type K = avx512::Avx512;
            (K::MR, K::NR, K::KC, K::MC, K::NC)
        }
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => {
            type K = avx2::Avx2;
            (K::MR, K::NR, K::KC, K::MC, K::NC)
        }
        // Not its real blocking (it picks per CPU): shapes around these
        // still cross tile and block edges.
        Path::Matrixmultiply => (8, 8, 256, 64, 1024),
    }
}

/// One case: run `path` on random strided operands and compare every
/// element of C with an f64 reference; elements of the C slice that are
/// not part of the matrix (gaps) must stay untouched.
#[allow(clippy::too_many_arguments)]
fn check_case(
    rng: &mut Rng,
    path: Path,
    (m, k, n): (usize, usize, usize),
    (alpha, beta): (f32, f32),
    (la, lb, lc): (Layout, Layout, Layout),
) {
    let what = format!("{path:?} m={m} k={k} n={n} alpha={alpha} beta={beta} {la:?} {lb:?} {lc:?}");
    let ((rsa, csa), (rsb, csb), (rsc, csc)) =
        (la.strides(m, k), lb.strides(k, n), lc.strides(m, n));
    let a: Vec<f32> = (0..last_index(m, k, rsa, csa) + 1)
        .map(|_| rng.value())
        .collect();
    let b: Vec<f32> = (0..last_index(k, n, rsb, csb) + 1)
        .map(|_| rng.value())
        .collect();
    let c_len = last_index(m, n, rsc, csc) + 1;
    let c0: Vec<f32> = (0..c_len)
        .map(|_| if beta == 0.0 { f32::NAN } else { rng.value() })
        .collect();
    let mut want: Vec<f64> = c0.iter().map(|&v| f64::from(v)).collect();
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k)
                .map(|q| f64::from(a[i * rsa + q * csa]) * f64::from(b[q * rsb + j * csb]))
                .sum();
            let old = if beta == 0.0 {
                0.0
            } else {
                f64::from(beta) * f64::from(c0[i * rsc + j * csc])
            };
            want[i * rsc + j * csc] = f64::from(alpha) * s + old;
        }
    }
    let mut c = c0.clone();
    let av = MatRef {
        data: &a,
        rs: rsa,
        cs: csa,
    };
    let bv = MatRef {
        data: &b,
        rs: rsb,
        cs: csb,
    };
    sgemm_checked(
        path,
        m,
        k,
        n,
        alpha,
        av,
        BOperand::Mat(bv),
        beta,
        &mut c,
        rsc,
        csc,
    );
    for (idx, (&x, &y)) in c.iter().zip(&want).enumerate() {
        if y.is_nan() {
            // A gap of C initialised to NaN: it must not be written.
            assert!(x.is_nan(), "{what}: gap {idx} written ({x})");
            continue;
        }
        let y = y as f32;
        assert!(
            (x - y).abs() <= 1e-4 + 1e-4 * y.abs(),
            "{what}: C[{idx}] = {x}, want {y}"
        );
    }
}

#[test]
fn every_path_matches_reference_on_edge_shapes() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for path in paths() {
        let (mr, nr, kc, _, _) = blocking(path);
        let ms = [1, 2, mr - 1, mr, mr + 1, 3 * mr + 2];
        let ns = [1, 3, nr - 1, nr, nr + 1, 2 * nr + 5];
        let ks = [1, 2, 5, kc - 1, kc, kc + 1, 2 * kc + 19];
        for &m in &ms {
            for &n in &ns {
                for &k in &ks {
                    let ab = rng.pick(&[(1.0, 0.0), (1.0, 1.0), (0.5, 2.0), (-1.5, 0.0)]);
                    check_case(
                        &mut rng,
                        path,
                        (m, k, n),
                        ab,
                        (Layout::RowMajor, Layout::RowMajor, Layout::RowMajor),
                    );
                }
            }
        }
    }
}

#[test]
fn every_path_matches_reference_on_random_strides_and_scalars() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let read_layouts = [
        Layout::RowMajor,
        Layout::ColMajor,
        Layout::Gapped,
        Layout::RepeatRows,
    ];
    let c_layouts = [Layout::RowMajor, Layout::ColMajor, Layout::Gapped];
    let scalars = [
        (1.0, 0.0),
        (1.0, 1.0),
        (-0.5, 0.0),
        (2.0, 0.25),
        (0.75, -1.0),
        (0.0, 1.5),
    ];
    for path in paths() {
        let (mr, nr, kc, _, _) = blocking(path);
        for _ in 0..150 {
            let (rm, rn, rk) = (
                1 + rng.below(5 * mr),
                1 + rng.below(5 * nr),
                1 + rng.below(3 * kc),
            );
            let m = rng.pick(&[1, 2, mr - 1, mr, mr + 1, rm]);
            let n = rng.pick(&[1, 2, nr - 1, nr, nr + 1, rn]);
            let k = rng.pick(&[1, 3, kc, kc + 1, rk]);
            let layouts = (
                rng.pick(&read_layouts),
                rng.pick(&read_layouts),
                rng.pick(&c_layouts),
            );
            let ab = rng.pick(&scalars);
            check_case(&mut rng, path, (m, k, n), ab, layouts);
        }
    }
}

#[test]
fn every_path_handles_blocks_beyond_mc_and_nc() {
    let mut rng = Rng(42);
    let rm = (Layout::RowMajor, Layout::RowMajor, Layout::RowMajor);
    for path in paths() {
        let (mr, nr, kc, mc, nc) = blocking(path);
        // More rows than one A block and more columns than one B block,
        // with a ragged last tile each, and two depth blocks.
        check_case(&mut rng, path, (mc + mr + 3, 7, 2 * nr + 1), (1.0, 0.5), rm);
        check_case(&mut rng, path, (3, kc + 9, nc + nr + 5), (1.0, 0.0), rm);
        let t = (Layout::ColMajor, Layout::ColMajor, Layout::Gapped);
        check_case(&mut rng, path, (mc + 1, kc + 2, 3 * nr - 1), (0.5, 2.0), t);
    }
}

#[test]
fn k_zero_scales_c_and_beta_zero_overwrites_nan() {
    let a = [0.0f32; 1];
    let b = [0.0f32; 1];
    let av = MatRef {
        data: &a,
        rs: 0,
        cs: 0,
    };
    let bv = MatRef {
        data: &b,
        rs: 0,
        cs: 0,
    };
    let mut c = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    sgemm(2, 0, 3, 1.0, av, bv, 2.0, &mut c, 3, 1);
    assert_eq!(c, [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
    let mut c = vec![f32::NAN; 6];
    sgemm(3, 0, 2, 1.0, av, bv, 0.0, &mut c, 1, 3);
    assert_eq!(c, [0.0; 6]);
}

#[test]
#[should_panic(expected = "sgemm: A view out of bounds")]
fn short_a_view_panics() {
    let (a, b) = (vec![0.0; 5], vec![0.0; 6]);
    let mut c = vec![0.0; 4];
    sgemm(
        2,
        3,
        2,
        1.0,
        MatRef::row_major(&a, 2, 3, false),
        MatRef::row_major(&b, 3, 2, false),
        0.0,
        &mut c,
        2,
        1,
    );
}

#[test]
#[should_panic(expected = "sgemm: C view out of bounds")]
fn short_c_view_panics() {
    let (a, b) = (vec![0.0; 6], vec![0.0; 6]);
    let mut c = vec![0.0; 4];
    sgemm(
        2,
        3,
        2,
        1.0,
        MatRef::row_major(&a, 2, 3, false),
        MatRef::row_major(&b, 3, 2, false),
        0.0,
        &mut c,
        3,
        1,
    );
}

#[test]
fn path_choice_follows_the_variable() {
    assert_eq!(choose_path(Some("matrixmultiply")), Path::Matrixmultiply);
    let best = choose_path(None);
    assert_eq!(choose_path(Some("own")), best);
    assert_eq!(choose_path(Some("something else")), best);
    assert!(best.available());
    #[cfg(target_arch = "x86_64")]
    {
        if Path::Avx512.available() {
            assert_eq!(best, Path::Avx512);
        } else if Path::Avx2.available() {
            assert_eq!(best, Path::Avx2);
        }
        if Path::Avx2.available() {
            assert_eq!(choose_path(Some("avx2")), Path::Avx2);
        }
    }
    eprintln!("gemm: this process uses {:?}", path());
}

#[test]
fn parallel_rows_match_single_threaded_on_every_path() {
    let be = CpuBackend::with_threads(3).unwrap();
    for path in paths() {
        let (mr, nr, kc, mc, _) = blocking(path);
        // Ragged in every direction, two depth blocks, and (first shape)
        // more rows per thread than one A block.
        for (m, k, n) in [
            (12 * mc + 5, kc + 3, 2 * nr + 7),
            (3 * mr + 1, 2 * kc + 5, 5 * nr - 3),
        ] {
            let a = data(m * k, 7);
            let b = data(k * n, 8);
            let c0 = data(m * n, 9);
            for (ta, tb) in [(false, false), (true, true)] {
                let (av, bv) = (
                    MatRef::row_major(&a, m, k, ta),
                    MatRef::row_major(&b, k, n, tb),
                );
                for beta in [0.0, -1.0] {
                    let mut one = if beta == 0.0 {
                        vec![f32::NAN; m * n]
                    } else {
                        c0.clone()
                    };
                    let mut par = one.clone();
                    sgemm_checked(
                        path,
                        m,
                        k,
                        n,
                        0.5,
                        av,
                        BOperand::Mat(bv),
                        beta,
                        &mut one,
                        n,
                        1,
                    );
                    be.install(|| {
                        gemm_rows_par_on(
                            path,
                            3,
                            m,
                            k,
                            n,
                            0.5,
                            av,
                            BOperand::Mat(bv),
                            beta,
                            &mut par,
                        )
                    });
                    if path == Path::Matrixmultiply {
                        for (x, y) in par.iter().zip(&one) {
                            assert!((x - y).abs() <= 1e-4 + 1e-4 * y.abs(), "{x} vs {y}");
                        }
                    } else {
                        // Own kernels: row blocks are whole tiles with the
                        // same depth blocks, so every element sees the same
                        // summation order.
                        assert_eq!(one, par, "{path:?} m={m} k={k} n={n} {ta} {tb} {beta}");
                    }
                }
            }
        }
    }
}

#[test]
fn parallel_gemm_packing_one_depth_block_per_round() {
    // Packed B for all of k above the parallel budget: each depth block is
    // packed and used in a round of its own.
    let be = CpuBackend::with_threads(2).unwrap();
    for path in paths() {
        let (_, _, _, _, nc) = blocking(path);
        let (m, k, n) = (30, (1 << 22) / nc + 300, nc + 7);
        let a = data(m * k, 10);
        let b = data(k * n, 11);
        let c0 = data(m * n, 12);
        let (av, bv) = (
            MatRef::row_major(&a, m, k, false),
            MatRef::row_major(&b, k, n, false),
        );
        let mut one = c0.clone();
        let mut par = c0.clone();
        sgemm_checked(
            path,
            m,
            k,
            n,
            1.0,
            av,
            BOperand::Mat(bv),
            0.5,
            &mut one,
            n,
            1,
        );
        be.install(|| {
            gemm_rows_par_on(path, 2, m, k, n, 1.0, av, BOperand::Mat(bv), 0.5, &mut par)
        });
        if path == Path::Matrixmultiply {
            for (x, y) in par.iter().zip(&one) {
                assert!((x - y).abs() <= 1e-4 + 1e-4 * y.abs(), "{x} vs {y}");
            }
        } else {
            assert_eq!(one, par, "{path:?}");
        }
    }
}

/// B through the [`PackB`] interface, from a strided matrix: the driver
/// must give what it gives for the matrix itself.
struct StridedPacker<'a> {
    b: MatRef<'a>,
    k: usize,
    n: usize,
}

impl PackB for StridedPacker<'_> {
    #[allow(clippy::too_many_arguments)]
    fn pack(
        &self,
        p0: usize,
        kc: usize,
        j0: usize,
        nc: usize,
        w: usize,
        transpose: PanelTranspose<'_>,
        dst: &mut [f32],
    ) {
        // Through the kernel's transpose when the columns are runs in
        // memory, element by element otherwise: both halves of the contract.
        for (q, panel) in dst[..nc.div_ceil(w) * kc * w]
            .chunks_exact_mut(kc * w)
            .enumerate()
        {
            let lanes = w.min(nc - q * w);
            if self.b.rs == 1 {
                let runs: Vec<&[f32]> = (0..lanes)
                    .map(|l| &self.b.data[(j0 + q * w + l) * self.b.cs + p0..][..kc])
                    .collect();
                transpose(&runs, panel);
            } else {
                for (p, out) in panel.chunks_exact_mut(w).enumerate() {
                    for (l, o) in out.iter_mut().enumerate() {
                        *o = if l < lanes {
                            self.b.data[(p0 + p) * self.b.rs + (j0 + q * w + l) * self.b.cs]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }

    fn materialize<'b>(&self, dst: &'b mut [f32]) -> MatRef<'b> {
        for i in 0..self.k {
            for j in 0..self.n {
                dst[i * self.n + j] = self.b.data[i * self.b.rs + j * self.b.cs];
            }
        }
        MatRef::row_major(dst, self.k, self.n, false)
    }
}

#[test]
fn packer_b_gives_the_strided_gemm_bit_for_bit_on_every_path() {
    let be = CpuBackend::with_threads(3).unwrap();
    for path in paths() {
        let (mr, nr, kc, _, nc) = blocking(path);
        // One tile; edge tiles and depth blocks; parallel row blocks
        // (packed B shared by the threads, split by panels and by depth).
        for (m, k, n) in [
            (1, 1, 1),
            (mr + 1, kc + 3, nr + 5),
            (4 * mr + 3, 2 * kc + 1, nc + 7),
            (64, 300, 200),
        ] {
            let a = data(m * k, 20);
            let b = data(k * n, 21);
            let c0 = data(m * n, 22);
            for tb in [false, true] {
                let av = MatRef::row_major(&a, m, k, false);
                let bv = MatRef::row_major(&b, k, n, tb);
                let packer = StridedPacker { b: bv, k, n };
                for threads in [1, 3] {
                    for beta in [0.0, 0.5] {
                        let mut want = c0.clone();
                        let mut got = c0.clone();
                        be.install(|| {
                            let (mat, packed) = (BOperand::Mat(bv), BOperand::Packer(&packer));
                            gemm_rows_par_on(path, threads, m, k, n, 1.5, av, mat, beta, &mut want);
                            gemm_rows_par_on(
                                path, threads, m, k, n, 1.5, av, packed, beta, &mut got,
                            );
                        });
                        assert_eq!(
                            got, want,
                            "{path:?} m={m} k={k} n={n} trans {tb} {threads} threads beta {beta}"
                        );
                    }
                }
            }
        }
    }
}
