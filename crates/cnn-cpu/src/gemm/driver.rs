//! The blocked loop nest around a microkernel (BLIS order).
//!
//! ```text
//! for jc in 0..n step NC          B block: kc x nc, packed once per (jc, pc)
//!   for pc in 0..k step KC        (beta applies on the first pc only)
//!     pack B[pc.., jc..]
//!     for ic in 0..m step MC      A block: mc x kc, packed once per ic
//!       pack A[ic.., pc..]
//!       for jr in 0..nc step NR   one B panel (kc x NR), reused from L1
//!         for ir in 0..mc step MR     over every A panel of the block
//!           microkernel: C[ic+ir.., jc+jr..] (MR x NR tile)
//! ```
//!
//! Edge tiles (fewer than `MR` rows or `NR` columns left) run on the
//! zero-padded panels; the kernel clips its write-back to the real tile.

use rayon::prelude::*;

use super::pack::{pack_a, pack_b_operand, with_a_buf, with_b_buf};
use super::{BOperand, MatRef};

/// One microkernel call: the `mr x nr` tile of C at `c` gets
/// `alpha * (A panel) (B panel) + beta * C` over `kc` steps.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tile {
    pub kc: usize,
    /// Packed A panel: `kc * MR` floats.
    pub a: *const f32,
    /// Packed B panel: `kc * NR` floats.
    pub b: *const f32,
    /// Element `(0, 0)` of the C tile; `(i, j)` is at `c + i rsc + j csc`.
    pub c: *mut f32,
    pub rsc: usize,
    pub csc: usize,
    /// Rows of the tile that exist in C (`1..=MR`).
    pub mr: usize,
    /// Columns of the tile that exist in C (`1..=NR`).
    pub nr: usize,
    pub alpha: f32,
    /// `0` means C is write-only (never read, so NaN there cannot leak).
    pub beta: f32,
}

/// A register-blocked microkernel and the cache blocking that suits it.
pub(super) trait Microkernel {
    /// Tile rows (values broadcast from packed A per step).
    const MR: usize;
    /// Tile columns (vector lanes loaded from packed B per step).
    const NR: usize;
    /// Depth of one packed block: a `KC x NR` B panel should stay in L1.
    const KC: usize;
    /// Rows of one packed A block (`MC x KC` should stay in L2); a multiple of `MR`.
    const MC: usize;
    /// Columns of one packed B block; a multiple of `NR`.
    const NC: usize;

    /// Transpose runs into one packed A panel: `dst[p MR + l] = runs[l][p]`
    /// for `l < runs.len() <= MR`, zero for the other lanes, `p < dst.len() / MR`.
    ///
    /// # Safety
    /// The CPU has the kernel's instruction set; every run has at least
    /// `dst.len() / MR` floats.
    unsafe fn transpose_a(runs: &[&[f32]], dst: &mut [f32]);

    /// [`Microkernel::transpose_a`] for a B panel (`NR` lanes).
    ///
    /// # Safety
    /// As [`Microkernel::transpose_a`] with `NR` for `MR`.
    unsafe fn transpose_b(runs: &[&[f32]], dst: &mut [f32]);

    /// Compute one tile.
    ///
    /// # Safety
    /// The CPU has the kernel's instruction set; `t.a` and `t.b` point to
    /// `t.kc * MR` and `t.kc * NR` readable floats; `1 <= t.mr <= MR`,
    /// `1 <= t.nr <= NR`, `t.kc >= 1`, and every element
    /// `t.c + i t.rsc + j t.csc` with `i < t.mr`, `j < t.nr` is writable
    /// (and readable when `t.beta != 0`) and aliases no panel.
    unsafe fn tile(t: &Tile);
}

/// `C <- alpha A B + beta C` through microkernel `K`, on the calling thread.
///
/// # Safety
/// The CPU has `K`'s instruction set. The caller has checked that every
/// element of A (`m x k`), B (`k x n`) and C (`m x n`, strides `rsc`, `csc`)
/// lies inside its slice (a packer B writes its own panels), and that
/// `m, n, k >= 1`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm<K: Microkernel>(
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
    let kc_step = depth_step(K::KC, k);
    let a_len = kc_step * K::MC.min(m).next_multiple_of(K::MR);
    let b_len = kc_step * K::NC.min(n).next_multiple_of(K::NR);
    let cv = CView {
        ptr: c.as_mut_ptr(),
        rsc,
        csc,
    };
    with_b_buf(b_len, |bpack| {
        with_a_buf(a_len, |apack| {
            for jc in (0..n).step_by(K::NC) {
                let nc = K::NC.min(n - jc);
                for pc in (0..k).step_by(kc_step) {
                    let kc = kc_step.min(k - pc);
                    let blk = Block {
                        jc,
                        nc,
                        kc,
                        alpha,
                        // Later depth blocks accumulate onto the first one's.
                        beta: if pc == 0 { beta } else { 1.0 },
                    };
                    // SAFETY: the caller promises K's instruction set; the
                    // block lies inside B.
                    unsafe { pack_b_operand::<K>(b, pc, kc, jc, nc, bpack) };
                    // SAFETY: the caller promises K's instruction set, and
                    // that A, B and C (rows 0..m, columns jc..jc + nc) hold
                    // every element addressed.
                    unsafe { row_range::<K>(a, pc, m, bpack, &blk, cv, apack) };
                }
            }
        })
    });
}

/// [`gemm`] with C row-major contiguous (`m x n`, row stride `n`), split
/// over the current rayon pool in rounds: B (every depth block of a column
/// block, within a budget) is packed once, in parallel, into one buffer
/// that all threads share; then row blocks of C run in parallel, each
/// packing its own A rows and going through the depth blocks in order (the
/// same summation order as [`gemm`], so results do not depend on threads).
///
/// # Safety
/// As [`gemm`] with `rsc = n`, `csc = 1`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_par<K: Microkernel>(
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
    // Row blocks: whole tiles, split in halves down to about LEAVES_PER_THREAD
    // per thread, so the blocks differ by at most one tile.
    let panels = m.div_ceil(K::MR);
    let leaf = panels.div_ceil(LEAVES_PER_THREAD * threads).max(1);
    let kc_step = depth_step(K::KC, k);
    let a_len = kc_step * K::MC.min(leaf * K::MR);
    // One depth block of packed B, at most.
    let blk_len = kc_step * K::NC.min(n).next_multiple_of(K::NR);
    // Depth blocks packed per parallel round: all of them when they fit the
    // budget, so each column block costs one pack round and one compute
    // round (every round ends in a barrier, and on a shared machine a
    // barrier waits for the slowest thread).
    let depth_blocks = k.div_ceil(kc_step);
    let span = if depth_blocks * blk_len <= PAR_B_BUDGET {
        depth_blocks
    } else {
        1
    };
    // Panels packed per task when a depth block is split: about two tasks
    // per thread.
    let panels_per_task = K::NC.min(n).div_ceil(K::NR).div_ceil(2 * threads).max(1);
    let c = &mut c[..m * n];
    with_b_buf(span * blk_len, |bpack| {
        for jc in (0..n).step_by(K::NC) {
            let nc = K::NC.min(n - jc);
            for pc0 in (0..k).step_by(span * kc_step) {
                let blocks = span.min((k - pc0).div_ceil(kc_step));
                let kc_of = |d: usize| kc_step.min(k - pc0 - d * kc_step);
                if blocks >= threads {
                    bpack[..blocks * blk_len]
                        .par_chunks_mut(blk_len)
                        .enumerate()
                        .for_each(|(d, dst)| {
                            // SAFETY: the caller promises K's instruction
                            // set; the block lies inside B.
                            unsafe {
                                pack_b_operand::<K>(b, pc0 + d * kc_step, kc_of(d), jc, nc, dst)
                            };
                        });
                } else {
                    // Fewer depth blocks than threads: split each block's
                    // panels instead.
                    for (d, blk_buf) in bpack.chunks_exact_mut(blk_len).take(blocks).enumerate() {
                        let kc = kc_of(d);
                        let chunk = panels_per_task * kc * K::NR;
                        blk_buf[..nc.div_ceil(K::NR) * kc * K::NR]
                            .par_chunks_mut(chunk)
                            .enumerate()
                            .for_each(|(t, dst)| {
                                let j0 = t * panels_per_task * K::NR;
                                let cols = (panels_per_task * K::NR).min(nc - j0);
                                // SAFETY: the caller promises K's
                                // instruction set; columns jc + j0..jc + j0 +
                                // cols of depth block d lie inside B.
                                unsafe {
                                    pack_b_operand::<K>(
                                        b,
                                        pc0 + d * kc_step,
                                        kc,
                                        jc + j0,
                                        cols,
                                        dst,
                                    )
                                };
                            });
                    }
                }
                let bpack = &bpack[..blocks * blk_len];
                let run = |i0: usize, c_rows: &mut [f32]| {
                    let mr = c_rows.len() / n;
                    let cv = CView {
                        ptr: c_rows.as_mut_ptr(),
                        rsc: n,
                        csc: 1,
                    };
                    with_a_buf(a_len, |apack| {
                        for d in 0..blocks {
                            let pc = pc0 + d * kc_step;
                            let blk = Block {
                                jc,
                                nc,
                                kc: kc_of(d),
                                alpha,
                                beta: if pc == 0 { beta } else { 1.0 },
                            };
                            // SAFETY: as for B; `c_rows` holds rows
                            // i0..i0 + mr of C, all n columns; depth block d
                            // was packed at d blk_len.
                            unsafe {
                                row_range::<K>(
                                    a.skip_rows(i0),
                                    pc,
                                    mr,
                                    &bpack[d * blk_len..],
                                    &blk,
                                    cv,
                                    apack,
                                )
                            };
                        }
                    });
                };
                split_rows(K::MR, n, 0, c, leaf, &run);
            }
        }
    });
}

/// Row blocks per thread in a parallel GEMM: two give rayon something to
/// rebalance when a worker is descheduled (the machine is shared) while
/// keeping blocks tall, so each packed B block is reused over many rows.
const LEAVES_PER_THREAD: usize = 2;

/// Run `f(first_row, rows)` over `c` (whole rows of `n`) split in halves at
/// multiples of `mr` rows, in parallel, down to at most `leaf` tiles each.
fn split_rows<F>(mr: usize, n: usize, i0: usize, c: &mut [f32], leaf: usize, f: &F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let panels = (c.len() / n).div_ceil(mr);
    if panels <= leaf {
        f(i0, c);
        return;
    }
    let half = panels / 2 * mr;
    let (lo, hi) = c.split_at_mut(half * n);
    rayon::join(
        || split_rows(mr, n, i0, lo, leaf, f),
        || split_rows(mr, n, i0 + half, hi, leaf, f),
    );
}

/// Most floats of packed B a parallel GEMM packs in one round (16 MiB).
const PAR_B_BUDGET: usize = 1 << 22;

/// Depth of the blocks that split `k`: `kc_max` each, the last one the
/// remainder. Equal blocks (k = 576 as 3 x 192, not 256 + 256 + 64) were
/// no measurable gain, and they change each sum's rounding: LeNet-5's loss
/// curve then leaves PyTorch's (`cnn-train/tests/lenet_golden.rs`) from
/// step ~30 instead of ~60, while with these blocks the curve is
/// matrixmultiply's to the last digit.
fn depth_step(kc_max: usize, k: usize) -> usize {
    kc_max.min(k)
}

/// Where a packed B block sits in C and how it updates it.
struct Block {
    /// First column of C the block covers.
    jc: usize,
    /// Columns of the block.
    nc: usize,
    /// Depth of the block.
    kc: usize,
    alpha: f32,
    beta: f32,
}

/// C as a pointer to element `(0, 0)` with its strides.
#[derive(Clone, Copy)]
struct CView {
    ptr: *mut f32,
    rsc: usize,
    csc: usize,
}

/// Rows `0..m` of C against one packed B block: pack A (columns `pc..`) in
/// blocks of `MC` rows, then every B panel against every A panel.
///
/// # Safety
/// The CPU has `K`'s instruction set; `bpack` holds the block's packed
/// panels; rows `0..m` and columns `blk.jc..blk.jc + blk.nc` of C (through
/// `cv`) and rows `0..m`, columns `pc..pc + blk.kc` of A exist; `apack`
/// holds an `MC x kc` block.
#[allow(clippy::too_many_arguments)]
unsafe fn row_range<K: Microkernel>(
    a: MatRef<'_>,
    pc: usize,
    m: usize,
    bpack: &[f32],
    blk: &Block,
    cv: CView,
    apack: &mut [f32],
) {
    let kc = blk.kc;
    let panel = kc * K::NR;
    for ic in (0..m).step_by(K::MC) {
        let mc = K::MC.min(m - ic);
        // SAFETY: the caller promises K's instruction set; the rows lie
        // inside A.
        unsafe { pack_a::<K>(a, ic, mc, pc, kc, apack) };
        for jr in (0..blk.nc).step_by(K::NR) {
            let nr = K::NR.min(blk.nc - jr);
            let off = (jr / K::NR) * panel;
            let bp = bpack[off..off + panel].as_ptr();
            for ir in (0..mc).step_by(K::MR) {
                let mr = K::MR.min(mc - ir);
                let ap = apack[(ir / K::MR) * kc * K::MR..].as_ptr();
                let t = Tile {
                    kc,
                    a: ap,
                    b: bp,
                    // SAFETY: (ic + ir, jc + jr) is an element of C (the
                    // caller's promise), so the offset stays inside it.
                    c: unsafe { cv.ptr.add((ic + ir) * cv.rsc + (blk.jc + jr) * cv.csc) },
                    rsc: cv.rsc,
                    csc: cv.csc,
                    mr,
                    nr,
                    alpha: blk.alpha,
                    beta: blk.beta,
                };
                // SAFETY: the panels were packed with kc steps of MR and NR
                // floats; the tile's rows and columns are elements of C,
                // which aliases neither packing buffer; CPU features as
                // promised.
                unsafe { K::tile(&t) };
            }
        }
    }
}
