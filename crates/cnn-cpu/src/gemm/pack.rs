//! Packing of A and B into the microkernels' panel layouts, and the
//! per-thread buffers that hold them.
//!
//! - A block (`mc x kc`, rows `i0..`, columns `p0..`) becomes `mc / MR`
//!   panels (the last zero-padded to `MR` rows); panel `ip` stores element
//!   `(ip MR + r, p)` at `ip kc MR + p MR + r`, so a microkernel reads one
//!   column of `MR` values per step.
//! - B block (`kc x nc`, rows `p0..`, columns `j0..`) becomes `nc / NR`
//!   panels (the last zero-padded to `NR` columns); panel `jp` stores
//!   `(p, jp NR + c)` at `jp kc NR + p NR + c`: one row of `NR` values per
//!   step, loaded as whole vectors.
//!
//! The zero padding lets every microkernel step run the full tile width;
//! only the write-back to C is clipped to the real edge.
//!
//! Buffers come from two process-wide pools (`par::BufPool`, one for A,
//! one for B) that only grow: once a GEMM of some shape has run, later GEMMs
//! of that shape or smaller allocate nothing, on whichever threads they run
//! (the steady-state training step must not allocate).

use super::driver::Microkernel;
use super::{BOperand, MatRef};
use crate::par::BufPool;

/// Packed panels are 64-byte aligned, so vector loads never split a line.
const ALIGN_FLOATS: usize = 16;

static A_POOL: BufPool = BufPool::new();
static B_POOL: BufPool = BufPool::new();

/// Run `f` with a 64-byte aligned window of `len` floats (contents
/// unspecified) of a buffer from `pool`.
fn with_pooled<R>(pool: &BufPool, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = pool.take(len + ALIGN_FLOATS);
    // align_offset counts elements (below 16 for f32 towards 64 bytes); the
    // `min` only guards its documented "cannot align" answer.
    let off = buf.as_ptr().align_offset(64).min(ALIGN_FLOATS);
    let out = f(&mut buf[off..off + len]);
    pool.give(buf);
    out
}

/// [`with_pooled`] for a packed A block.
pub(super) fn with_a_buf<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_pooled(&A_POOL, len, f)
}

/// [`with_pooled`] for a packed B block (a pool of its own: a parallel GEMM
/// holds one packed B while its row blocks take A buffers).
pub(super) fn with_b_buf<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_pooled(&B_POOL, len, f)
}

/// Most lanes a panel has (`NR` of the widest kernel).
pub(super) const MAX_LANES: usize = 32;

/// One block to pack, seen lane by lane: element `(lane l, step p)` is
/// `data[l * ls + p * ps]`, for `l < lanes`, `p < steps`. For A the lanes
/// are rows and the steps columns; for B the lanes are columns and the
/// steps rows.
#[derive(Debug, Clone, Copy)]
struct Strided<'a> {
    data: &'a [f32],
    ls: usize,
    ps: usize,
    lanes: usize,
    steps: usize,
}

/// Pack rows `i0..i0 + mc`, columns `p0..p0 + kc` of A into `K::MR`-row
/// panels at the start of `dst` (`mc.next_multiple_of(K::MR) * kc` floats).
///
/// # Safety
/// The CPU has `K`'s instruction set; rows and columns lie inside A.
pub(super) unsafe fn pack_a<K: Microkernel>(
    a: MatRef<'_>,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    let src = Strided {
        data: &a.data[i0 * a.rs + p0 * a.cs..],
        ls: a.rs,
        ps: a.cs,
        lanes: mc,
        steps: kc,
    };
    // SAFETY: K::transpose_a needs K's instruction set (the caller's promise).
    unsafe { pack_panels(K::MR, src, dst, K::transpose_a) }
}

/// Pack rows `p0..p0 + kc`, columns `j0..j0 + nc` of B into `K::NR`-column
/// panels at the start of `dst` (`kc * nc.next_multiple_of(K::NR)` floats).
///
/// # Safety
/// As [`pack_a`].
pub(super) unsafe fn pack_b<K: Microkernel>(
    b: MatRef<'_>,
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    dst: &mut [f32],
) {
    let src = Strided {
        data: &b.data[p0 * b.rs + j0 * b.cs..],
        ls: b.cs,
        ps: b.rs,
        lanes: nc,
        steps: kc,
    };
    // SAFETY: as in pack_a.
    unsafe { pack_panels(K::NR, src, dst, K::transpose_b) }
}

/// [`pack_b`] for either kind of B operand: a strided matrix, or a packer
/// that writes its own panels (given the kernel's transpose).
///
/// # Safety
/// As [`pack_a`].
pub(super) unsafe fn pack_b_operand<K: Microkernel>(
    b: BOperand<'_>,
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    dst: &mut [f32],
) {
    match b {
        // SAFETY: the caller's promise.
        BOperand::Mat(m) => unsafe { pack_b::<K>(m, p0, kc, j0, nc, dst) },
        BOperand::Packer(packer) => {
            let transpose = |runs: &[&[f32]], panel: &mut [f32]| {
                let steps = panel.len() / K::NR;
                assert!(
                    runs.len() <= K::NR
                        && panel.len().is_multiple_of(K::NR)
                        && runs.iter().all(|r| r.len() >= steps),
                    "packer transpose: {} runs into a {}-float panel",
                    runs.len(),
                    panel.len()
                );
                // SAFETY: K's instruction set is present (the caller's
                // promise); the lane count and run lengths were checked.
                unsafe { K::transpose_b(runs, panel) }
            };
            packer.pack(p0, kc, j0, nc, K::NR, &transpose, dst);
        }
    }
}

/// Pack `src` into `w`-lane panels: panel `q` holds lanes `q w..q w + w`
/// with lane `l`, step `p` at `q steps w + p w + l`, zero past the last lane.
///
/// Lanes adjacent in memory (`ls == 1`) copy one step at a time; steps
/// adjacent in memory (`ps == 1`) are a transpose, done by `transpose`
/// (vector shuffles); anything else goes element by element.
///
/// # Safety
/// `transpose` may be called (its CPU features are present).
#[inline(always)]
unsafe fn pack_panels(
    w: usize,
    src: Strided<'_>,
    dst: &mut [f32],
    transpose: unsafe fn(&[&[f32]], &mut [f32]),
) {
    let Strided {
        data,
        ls,
        ps,
        lanes,
        steps,
    } = src;
    assert!(w <= MAX_LANES, "panel width {w} above {MAX_LANES}");
    let panels = lanes.div_ceil(w);
    if ls == 1 && panels > 1 {
        // Copy step by step across all panels: each step is one contiguous
        // run of the source, which the hardware prefetcher streams (panel by
        // panel would read w floats from a different page per step).
        let full = lanes / w;
        let valid = lanes - full * w;
        for p in 0..steps {
            let run = &data[p * ps..][..lanes];
            for (q, src) in run.chunks_exact(w).enumerate() {
                dst[q * steps * w + p * w..][..w].copy_from_slice(src);
            }
            if valid > 0 {
                let out = &mut dst[full * steps * w + p * w..][..w];
                out[..valid].copy_from_slice(&run[full * w..]);
                out[valid..].fill(0.0);
            }
        }
        return;
    }
    for (q, panel) in dst[..panels * steps * w]
        .chunks_exact_mut(steps * w)
        .enumerate()
    {
        let l0 = q * w;
        let valid = w.min(lanes - l0);
        if ls == 1 && valid == w {
            // A fixed-size copy (w is a constant after inlining), not a
            // memmove call per step.
            for (p, out) in panel.chunks_exact_mut(w).enumerate() {
                out.copy_from_slice(&data[l0 + p * ps..][..w]);
            }
        } else if ls == 1 {
            for (p, out) in panel.chunks_exact_mut(w).enumerate() {
                out[..valid].copy_from_slice(&data[l0 + p * ps..][..valid]);
                out[valid..].fill(0.0);
            }
        } else if ps == 1 {
            let mut runs: [&[f32]; MAX_LANES] = [&[]; MAX_LANES];
            for (l, run) in runs[..valid].iter_mut().enumerate() {
                *run = &data[(l0 + l) * ls..][..steps];
            }
            // SAFETY: the caller's promise.
            unsafe { transpose(&runs[..valid], panel) };
        } else {
            for (p, out) in panel.chunks_exact_mut(w).enumerate() {
                for (l, o) in out.iter_mut().enumerate() {
                    *o = if l < valid {
                        data[(l0 + l) * ls + p * ps]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}
