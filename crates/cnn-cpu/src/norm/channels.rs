//! The per-channel machinery batch norm's passes share: a per-thread
//! buffer of per-channel values, a parallel loop over channels and one
//! over the `(n, c)` planes of a tensor.

use std::cell::Cell;

use cnn_core::BatchNormParams;
use rayon::prelude::*;

use crate::CpuBackend;
use crate::par::PAR_MIN_ELEMS;

thread_local! {
    /// Per-channel values of the batch-norm op running on this thread.
    static CHANNEL_SCRATCH: Cell<Vec<[f64; 4]>> = const { Cell::new(Vec::new()) };
}

/// Run `body` with `c` per-channel slots. The buffer stays with the calling
/// thread (the one that calls the op, never a pool worker) between calls,
/// so a warmed-up training step allocates nothing here.
pub(super) fn with_channels<R>(c: usize, body: impl FnOnce(&mut [[f64; 4]]) -> R) -> R {
    CHANNEL_SCRATCH.with(|cell| {
        let mut buf = cell.take();
        if buf.len() < c {
            buf.resize(c, [0.0; 4]);
        }
        let r = body(&mut buf[..c]);
        cell.set(buf);
        r
    })
}

/// `out[channel] = f(channel)` for every channel, in parallel when the
/// tensor is large.
pub(super) fn per_channel(
    be: &CpuBackend,
    p: &BatchNormParams,
    out: &mut [[f64; 4]],
    f: impl Fn(usize) -> [f64; 4] + Sync + Send,
) {
    let g = |(ch, o): (usize, &mut [f64; 4])| *o = f(ch);
    if be.threads > 1 && p.n * p.c * p.hw >= PAR_MIN_ELEMS && p.c > 1 {
        be.install(|| out.par_iter_mut().enumerate().for_each(g));
    } else {
        out.iter_mut().enumerate().for_each(g);
    }
}

/// `f(channel, plane)` over the `(n, c)` planes of `hw` elements of `out`.
pub(super) fn per_plane(
    be: &CpuBackend,
    p: &BatchNormParams,
    out: &mut [f32],
    f: impl Fn(usize, usize, &mut [f32]) + Sync + Send,
) {
    let (c, hw) = (p.c, p.hw);
    if hw == 0 {
        return;
    }
    let g = |(i, plane): (usize, &mut [f32])| f(i % c, i, plane);
    if be.threads > 1 && out.len() >= PAR_MIN_ELEMS {
        be.install(|| out.par_chunks_mut(hw).enumerate().for_each(g));
    } else {
        out.chunks_mut(hw).enumerate().for_each(g);
    }
}

/// The `n` planes of channel `ch` in x `(n, c, hw)`.
pub(super) fn channel_planes<'a>(
    x: &'a [f32],
    p: &BatchNormParams,
    ch: usize,
) -> impl Iterator<Item = &'a [f32]> + 'a {
    let (c, hw) = (p.c, p.hw);
    (0..p.n).map(move |i| &x[(i * c + ch) * hw..(i * c + ch + 1) * hw])
}

/// `f(channel, plane index, a's plane, b's plane)` over the `(n, c)` planes
/// of `hw` elements of two tensors of the same length, in parallel when
/// they are large (as [`per_plane`]).
pub(super) fn per_plane_pair(
    be: &CpuBackend,
    p: &BatchNormParams,
    a: &mut [f32],
    b: &mut [f32],
    f: impl Fn(usize, usize, &mut [f32], &mut [f32]) + Sync + Send,
) {
    let (c, hw) = (p.c, p.hw);
    if hw == 0 {
        return;
    }
    let g = |(i, (pa, pb)): (usize, (&mut [f32], &mut [f32]))| f(i % c, i, pa, pb);
    if be.threads > 1 && a.len() >= PAR_MIN_ELEMS {
        be.install(|| {
            a.par_chunks_mut(hw)
                .zip(b.par_chunks_mut(hw))
                .enumerate()
                .for_each(g)
        });
    } else {
        a.chunks_mut(hw)
            .zip(b.chunks_mut(hw))
            .enumerate()
            .for_each(g);
    }
}
