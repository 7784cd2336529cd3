//! General matrix multiply: the crate's only GEMM entry point ([`sgemm`]).
//!
//! # Stride conventions
//!
//! [`sgemm`] computes `C <- alpha * A * B + beta * C` where A is `m x k`,
//! B is `k x n` and C is `m x n`. Every matrix is a slice plus a row stride
//! and a column stride in elements: element `(i, j)` of A lives at
//! `a[i * rsa + j * csa]`. A row-major contiguous `m x k` matrix has
//! `rsa = k, csa = 1`; its transpose (stored `k x m`) read as `m x k` has
//! `rsa = 1, csa = m`. The slices start at element `(0, 0)`; [`sgemm`]
//! checks that the last element `(rows - 1, cols - 1)` lies inside each slice,
//! so no stride combination can read or write out of bounds.
//!
//! With `beta == 0` C is only written, never read, so NaN in an
//! uninitialised C does not propagate. With `k == 0` the product is empty
//! and `C <- beta * C`.
//!
//! # Implementations
//!
//! On x86-64 with AVX-512F or AVX2 + FMA (detected at run time; the crate
//! is built for baseline x86-64) [`sgemm`] runs the crate's own packed GEMM:
//! `driver` (BLIS-style cache blocking), `pack` (panels in per-thread
//! buffers that only grow, so a warmed-up training step allocates nothing)
//! and one microkernel per instruction set (`avx512`: 14 x 32 tiles,
//! `avx2`: 6 x 16). Elsewhere it calls `matrixmultiply::sgemm`, which
//! allocates its packing buffer on every call. `CNN_CPU_GEMM` (read once)
//! forces a path, for measurements and tests: `matrixmultiply`, `own` (the
//! best kernel this CPU has; also the default) or `avx2` (the AVX2 kernel
//! even where AVX-512 exists); a kernel the CPU lacks falls back to the
//! default.
//!
//! Summation order differs between the paths (results agree to rounding);
//! for one path it depends only on the shape, not on the thread count.
//!
//! # Threads
//!
//! [`sgemm`] is single-threaded (matrixmultiply is built without its
//! `threading` feature). [`gemm_rows_par`] spreads one GEMM over the
//! backend's rayon pool, so a rayon task never nests a threaded GEMM: the
//! own GEMM packs each B block once (in parallel) and shares it while row
//! blocks of C run in parallel; with matrixmultiply each row block is an
//! independent call.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod driver;
#[cfg(target_arch = "x86_64")]
mod pack;
#[cfg(test)]
mod tests;

use std::sync::OnceLock;

use cnn_core::{GemmOps, GemmParams, Result};
use rayon::prelude::*;

use crate::CpuBackend;

/// A read-only strided matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major contiguous matrix with `cols` columns (`trans == false`),
    /// or the transpose of a row-major matrix with `rows` columns stored
    /// `cols x rows` (`trans == true`).
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize, trans: bool) -> Self {
        if trans {
            MatRef {
                data,
                rs: 1,
                cs: rows,
            }
        } else {
            MatRef {
                data,
                rs: cols,
                cs: 1,
            }
        }
    }

    /// The view starting at row `r0` (the same strides).
    fn skip_rows(self, r0: usize) -> Self {
        MatRef {
            data: &self.data[(r0 * self.rs).min(self.data.len())..],
            ..self
        }
    }
}

/// The kernel's panel transpose as handed to a [`PackB`]: `transpose(runs,
/// panel)` writes `panel[p w + l] = runs[l][p]` for every step `p <
/// panel.len() / w`, and zeros for the lanes `l >= runs.len()`. It panics
/// unless `runs.len() <= w` and every run holds all the steps.
pub(crate) type PanelTranspose<'a> = &'a dyn Fn(&[&[f32]], &mut [f32]);

/// A B operand that writes its own packed panels: a matrix cheaper to
/// generate than to store and read back, such as a convolution's im2col
/// matrix.
pub(crate) trait PackB: Sync {
    /// Write rows `p0..p0 + kc`, columns `j0..j0 + nc` of B as `w`-column
    /// panels at the start of `dst`: element `(p0 + p, j0 + q w + l)` at
    /// `q kc w + p w + l`, zeros for the lanes past `nc` in the last panel.
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
    );

    /// The whole of B (`k x n`) written into `dst` (at least `k n` floats),
    /// as a view: for the GEMM path that cannot take packed panels.
    fn materialize<'a>(&self, dst: &'a mut [f32]) -> MatRef<'a>;
}

/// B as the driver sees it: a strided matrix it packs, or a packer.
#[derive(Clone, Copy)]
pub(crate) enum BOperand<'a> {
    Mat(MatRef<'a>),
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Packer(&'a dyn PackB),
}

fn last_index(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    (rows - 1) * rs + (cols - 1) * cs
}

/// `C <- alpha * A * B + beta * C`, single-threaded (see the module docs for
/// strides). C has row stride `rsc` and column stride `csc`.
///
/// Panics if a view is too short for its dimensions: callers in this crate
/// derive every view from validated lengths, so that is a bug, not bad input.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
    csc: usize,
) {
    sgemm_checked(
        path(),
        m,
        k,
        n,
        alpha,
        a,
        BOperand::Mat(b),
        beta,
        c,
        rsc,
        csc,
    );
}

/// [`sgemm`] on an explicit path (the tests run every available one), for
/// either kind of B; a packer's B only on the own kernels
/// ([`gemm_rows_par_on`] writes it whole for matrixmultiply first).
#[allow(clippy::too_many_arguments)]
fn sgemm_checked(
    path: Path,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: MatRef<'_>,
    b: BOperand<'_>,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
    csc: usize,
) {
    assert!(path.available(), "sgemm: this CPU cannot run {path:?}");
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        last_index(m, n, rsc, csc) < c.len(),
        "sgemm: C view out of bounds"
    );
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                let cij = &mut c[i * rsc + j * csc];
                *cij = if beta == 0.0 { 0.0 } else { beta * *cij };
            }
        }
        return;
    }
    assert!(
        path != Path::Matrixmultiply || matches!(b, BOperand::Mat(_)),
        "sgemm: matrixmultiply takes a strided B only"
    );
    check_views(m, k, n, a, b, c, rsc, csc);
    // SAFETY: check_views put every element of A, B (unless a packer
    // writes it) and C inside its slice, m, n, k >= 1, matrixmultiply gets
    // a strided B (asserted above), and the path is available (asserted
    // above).
    unsafe { sgemm_on(path, m, k, n, alpha, a, b, beta, c, rsc, csc) };
}

/// Run `f` on a packer's B written out whole (`k x n`), for the path that
/// cannot take packed panels.
fn with_materialized<R>(
    packer: &dyn PackB,
    k: usize,
    n: usize,
    f: impl FnOnce(MatRef<'_>) -> R,
) -> R {
    let mut buf = MATERIALIZED.take(k * n);
    let out = f(packer.materialize(&mut buf[..k * n]));
    MATERIALIZED.give(buf);
    out
}

/// Panics unless every element of A (`m x k`), a strided B (`k x n`) and C (`m x n`,
/// strides `rsc`, `csc`) lies inside its slice; `m, n, k >= 1`.
#[allow(clippy::too_many_arguments)]
fn check_views(
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<'_>,
    b: BOperand<'_>,
    c: &[f32],
    rsc: usize,
    csc: usize,
) {
    assert!(
        last_index(m, n, rsc, csc) < c.len(),
        "sgemm: C view out of bounds"
    );
    assert!(
        last_index(m, k, a.rs, a.cs) < a.data.len(),
        "sgemm: A view out of bounds"
    );
    if let BOperand::Mat(b) = b {
        assert!(
            last_index(k, n, b.rs, b.cs) < b.data.len(),
            "sgemm: B view out of bounds"
        );
    }
}

/// One implementation of [`sgemm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// The own packed GEMM with the 14 x 32 AVX-512F microkernel.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// The own packed GEMM with the 6 x 16 AVX2 + FMA microkernel.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// `matrixmultiply::sgemm`.
    Matrixmultiply,
}

impl Path {
    /// Whether this CPU can run the path.
    pub(crate) fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => crate::cpu_features::avx512f(),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => crate::cpu_features::avx2_fma(),
            Path::Matrixmultiply => true,
        }
    }
}

/// The path [`sgemm`] takes: `CNN_CPU_GEMM` if set and available, else the
/// best own kernel the CPU has, else matrixmultiply.
pub(crate) fn path() -> Path {
    static PATH: OnceLock<Path> = OnceLock::new();
    *PATH.get_or_init(|| {
        let wanted = std::env::var("CNN_CPU_GEMM");
        choose_path(wanted.as_deref().ok())
    })
}

fn choose_path(wanted: Option<&str>) -> Path {
    let own = || {
        #[cfg(target_arch = "x86_64")]
        for p in [Path::Avx512, Path::Avx2] {
            if p.available() {
                return p;
            }
        }
        Path::Matrixmultiply
    };
    match wanted {
        Some("matrixmultiply") => Path::Matrixmultiply,
        #[cfg(target_arch = "x86_64")]
        Some("avx2") if Path::Avx2.available() => Path::Avx2,
        _ => own(),
    }
}

/// [`sgemm`] on an explicit path, after its checks.
///
/// # Safety
/// `m, n, k >= 1`; every element of A (`m x k`), a strided B (`k x n`;
/// matrixmultiply takes no other) and C (`m x n`, strides `rsc`, `csc`)
/// lies inside its slice; `path.available()`.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_on(
    path: Path,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: MatRef<'_>,
    b: BOperand<'_>,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
    csc: usize,
) {
    match path {
        // SAFETY (both own kernels): the caller's bounds and CPU promises
        // are exactly `driver::gemm`'s contract.
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => unsafe {
            driver::gemm::<avx512::Avx512>(m, k, n, alpha, a, b, beta, c, rsc, csc)
        },
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe {
            driver::gemm::<avx2::Avx2>(m, k, n, alpha, a, b, beta, c, rsc, csc)
        },
        // SAFETY: every element (i, j) addressed through the given strides
        // lies inside the corresponding slice (the caller's promise); C is
        // borrowed mutably and does not alias A or B (distinct Rust borrows).
        Path::Matrixmultiply => unsafe {
            let BOperand::Mat(b) = b else {
                unreachable!("a packer's B is materialised before matrixmultiply")
            };
            matrixmultiply::sgemm(
                m,
                k,
                n,
                alpha,
                a.data.as_ptr(),
                a.rs as isize,
                a.cs as isize,
                b.data.as_ptr(),
                b.rs as isize,
                b.cs as isize,
                beta,
                c.as_mut_ptr(),
                rsc as isize,
                csc as isize,
            );
        },
    }
}

/// Below this many multiply-adds a GEMM runs on the calling thread.
const PAR_GEMM_MIN_WORK: usize = 1 << 18;

/// `C <- alpha * A * B + beta * C` with C row-major contiguous (`m x n`),
/// split into row blocks run in parallel on the current rayon pool when
/// large enough. Call it inside `CpuBackend::install`, never from a rayon
/// task that already runs per-image work.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_rows_par(
    threads: usize,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: &mut [f32],
) {
    gemm_rows_par_on(
        path(),
        threads,
        m,
        k,
        n,
        alpha,
        a,
        BOperand::Mat(b),
        beta,
        c,
    );
}

/// [`gemm_rows_par`] on an explicit, available path, for either kind of B.
#[allow(clippy::too_many_arguments)]
fn gemm_rows_par_on(
    path: Path,
    threads: usize,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: MatRef<'_>,
    b: BOperand<'_>,
    beta: f32,
    c: &mut [f32],
) {
    if let (BOperand::Packer(packer), Path::Matrixmultiply) = (b, path) {
        // The one place a packer's B is written whole.
        with_materialized(packer, k, n, |bm| {
            gemm_rows_par_on(path, threads, m, k, n, alpha, a, BOperand::Mat(bm), beta, c)
        });
        return;
    }
    let work = m * n * k;
    if threads <= 1 || work < PAR_GEMM_MIN_WORK || m < 16 || n == 0 {
        sgemm_checked(path, m, k, n, alpha, a, b, beta, c, n, 1);
        return;
    }
    assert!(path.available(), "sgemm: this CPU cannot run {path:?}");
    if path == Path::Matrixmultiply {
        let BOperand::Mat(b) = b else {
            unreachable!("materialised above")
        };
        // matrixmultiply packs per call, so each row block is an
        // independent sgemm: blocks that are multiples of 8 (its kernel
        // height), about two per thread for load balance.
        let blocks = (threads * 2).min(m / 8).max(1);
        let rows = m.div_ceil(blocks).next_multiple_of(8);
        c[..m * n]
            .par_chunks_mut(rows * n)
            .enumerate()
            .for_each(|(bi, c_blk)| {
                let r0 = bi * rows;
                let mb = c_blk.len() / n;
                let b = BOperand::Mat(b);
                sgemm_checked(path, mb, k, n, alpha, a.skip_rows(r0), b, beta, c_blk, n, 1);
            });
        return;
    }
    // m, n, k >= 1 here (work > 0).
    check_views(m, k, n, a, b, c, n, 1);
    match path {
        // SAFETY (both kernels): check_views put every element of A, B
        // (unless a packer writes it) and C (row-major, row stride n)
        // inside its slice, m, n, k >= 1, and the path is available
        // (asserted above).
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => unsafe {
            driver::gemm_par::<avx512::Avx512>(threads, m, k, n, alpha, a, b, beta, c)
        },
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe {
            driver::gemm_par::<avx2::Avx2>(threads, m, k, n, alpha, a, b, beta, c)
        },
        Path::Matrixmultiply => unreachable!("handled above"),
    }
}

/// Buffers for B written out whole, where the GEMM path cannot take a
/// packer's panels (only grows, like the packing pools).
static MATERIALIZED: crate::par::BufPool = crate::par::BufPool::new();

/// [`gemm_rows_par`] with B given by a packer. On the own kernels B is
/// packed block by block straight from its source and never stored whole;
/// on matrixmultiply it is materialised first. Either way each element of
/// C is summed in the same order as [`gemm_rows_par`] on the materialised
/// B, so the results are the same bit for bit.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_rows_par_packed(
    threads: usize,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: MatRef<'_>,
    b: &dyn PackB,
    beta: f32,
    c: &mut [f32],
) {
    gemm_rows_par_on(
        path(),
        threads,
        m,
        k,
        n,
        alpha,
        a,
        BOperand::Packer(b),
        beta,
        c,
    );
}

impl GemmOps for CpuBackend {
    fn gemm(&self, p: &GemmParams, a: &Vec<f32>, b: &Vec<f32>, c: &mut Vec<f32>) -> Result<()> {
        p.check(a.len(), b.len(), c.len())?;
        let av = MatRef::row_major(a, p.m, p.k, p.trans_a);
        let bv = MatRef::row_major(b, p.k, p.n, p.trans_b);
        let threads = self.threads;
        if threads > 1 && p.m * p.n * p.k >= PAR_GEMM_MIN_WORK {
            self.install(|| gemm_rows_par(threads, p.m, p.k, p.n, p.alpha, av, bv, p.beta, c));
        } else {
            sgemm(p.m, p.k, p.n, p.alpha, av, bv, p.beta, c, p.n, 1);
        }
        Ok(())
    }
}
