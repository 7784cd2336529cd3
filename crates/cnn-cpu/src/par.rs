//! Parallel helpers shared by the op modules: chunked elementwise loops over
//! several buffers at once, and reusable scratch buffers shared by all
//! threads.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::CpuBackend;

/// Elementwise loops shorter than this run on the calling thread: below it,
/// waking the pool costs more than the loop.
pub(crate) const PAR_MIN_ELEMS: usize = 1 << 15;

/// Elements per parallel task of an elementwise loop (a multiple of 4, so
/// Philox blocks never straddle two tasks).
pub(crate) const PAR_CHUNK: usize = 1 << 14;

/// Run `f` over `len` elements of `M` mutable and `R` read-only buffers, in
/// parallel chunks when long enough. `f` receives the chunk's offset and the
/// matching sub-slices. An empty buffer stands for "absent" (an optional
/// state buffer): it is passed to every chunk as an empty slice. Every other
/// buffer must have length `len` (the caller checked).
pub(crate) fn zip_chunks<const M: usize, const R: usize, F>(
    be: &CpuBackend,
    len: usize,
    muts: [&mut [f32]; M],
    reads: [&[f32]; R],
    f: F,
) where
    F: Fn(usize, [&mut [f32]; M], [&[f32]; R]) + Sync + Send,
{
    if be.threads <= 1 || len < PAR_MIN_ELEMS {
        f(0, muts, reads);
        return;
    }
    be.install(|| split_run(0, len, muts, reads, &f));
}

/// The parallel half of [`zip_chunks`]: split in two at a multiple of
/// [`PAR_CHUNK`] and recurse with `rayon::join` down to chunks of at most
/// `PAR_CHUNK` elements. The leaves are exactly the chunks `[i PAR_CHUNK,
/// (i + 1) PAR_CHUNK)`, and nothing is allocated (a task list would be one
/// heap allocation per call).
fn split_run<const M: usize, const R: usize, F>(
    offset: usize,
    len: usize,
    muts: [&mut [f32]; M],
    reads: [&[f32]; R],
    f: &F,
) where
    F: Fn(usize, [&mut [f32]; M], [&[f32]; R]) + Sync + Send,
{
    if len <= PAR_CHUNK {
        f(offset, muts, reads);
        return;
    }
    // A multiple of PAR_CHUNK strictly inside (0, len).
    let half = (len / 2).div_ceil(PAR_CHUNK).max(1) * PAR_CHUNK;
    let mut muts = muts;
    let lo_m: [&mut [f32]; M] = std::array::from_fn(|i| {
        let s = std::mem::take(&mut muts[i]);
        if s.is_empty() {
            s
        } else {
            let (head, tail) = s.split_at_mut(half);
            muts[i] = tail;
            head
        }
    });
    let mut reads = reads;
    let lo_r: [&[f32]; R] = std::array::from_fn(|i| {
        let s = reads[i];
        if s.is_empty() {
            s
        } else {
            let (head, tail) = s.split_at(half);
            reads[i] = tail;
            head
        }
    });
    rayon::join(
        || split_run(offset, half, lo_m, lo_r, f),
        || split_run(offset + half, len - half, muts, reads, f),
    );
}

/// Sum `f(chunk)` over chunks of `x` in f64, in parallel when long.
///
/// A long `x` is cut as [`split_run`] cuts it, into the chunks
/// `[i PAR_CHUNK, (i + 1) PAR_CHUNK)`, and each split adds its halves'
/// sums: a tree fixed by the length, so the bits do not depend on the
/// thread count or on which thread ran what (rayon's own `sum` groups the
/// partials as the work happened to be split and stolen).
pub(crate) fn reduce_f64(
    be: &CpuBackend,
    x: &[f32],
    f: impl Fn(&[f32]) -> f64 + Sync + Send,
) -> f64 {
    if x.len() < PAR_MIN_ELEMS {
        return f(x);
    }
    let parallel = be.threads > 1;
    if parallel {
        be.install(|| reduce_tree(x, &f, parallel))
    } else {
        reduce_tree(x, &f, parallel)
    }
}

/// The tree of [`reduce_f64`], its halves forked when `parallel`.
fn reduce_tree<F>(x: &[f32], f: &F, parallel: bool) -> f64
where
    F: Fn(&[f32]) -> f64 + Sync + Send,
{
    if x.len() <= PAR_CHUNK {
        return f(x);
    }
    // A multiple of PAR_CHUNK strictly inside (0, len), as in `split_run`.
    let half = (x.len() / 2).div_ceil(PAR_CHUNK).max(1) * PAR_CHUNK;
    let (lo, hi) = x.split_at(half);
    let (a, b) = if parallel {
        rayon::join(
            || reduce_tree(lo, f, parallel),
            || reduce_tree(hi, f, parallel),
        )
    } else {
        (reduce_tree(lo, f, parallel), reduce_tree(hi, f, parallel))
    };
    a + b
}

/// Buffers shared by every thread of the process, handed out one per user
/// and kept for reuse: the workspaces behind [`with_scratch`] and the GEMM's
/// packing buffers.
///
/// A warmed-up training step must allocate nothing, and thread-local
/// buffers cannot promise that: which rayon worker runs which task changes
/// from call to call, so a worker that sat out the warm-up call would grow
/// its own buffer later. The pool instead grows as a whole: a request above
/// its length grows every free buffer (and the rest when they come back),
/// and it keeps at least one buffer per thread of the calling rayon pool,
/// so any later schedule of the same calls finds enough buffers.
#[derive(Debug)]
pub(crate) struct BufPool(Mutex<PoolState>);

#[derive(Debug)]
struct PoolState {
    /// Buffers not in use.
    free: Vec<Vec<f32>>,
    /// Buffers in existence (free or in use).
    total: usize,
    /// Length of every buffer once it is back in `free`.
    len: usize,
}

impl BufPool {
    pub(crate) const fn new() -> Self {
        BufPool(Mutex::new(PoolState {
            free: Vec::new(),
            total: 0,
            len: 0,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic under the lock leaves whole buffers behind, never a
        // half-updated one, so the state is still usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A buffer of at least `len` elements (contents unspecified), owned by
    /// the caller until [`BufPool::give`].
    pub(crate) fn take(&self, len: usize) -> Vec<f32> {
        // Concurrent users to provide for: one per worker of the current
        // rayon pool, or the calling thread alone outside a pool.
        let users = rayon::current_thread_index().map_or(1, |_| rayon::current_num_threads());
        let mut st = self.lock();
        if len > st.len || st.total < users {
            st.len = st.len.max(len);
            let want = st.len;
            for buf in &mut st.free {
                buf.resize(want, 0.0);
            }
            while st.total < users {
                st.free.push(vec![0.0; want]);
                st.total += 1;
            }
        }
        match st.free.pop() {
            Some(buf) => buf,
            None => {
                // More users at once than threads (a nested call, several
                // pools or user threads): one more buffer, kept afterwards.
                st.total += 1;
                vec![0.0; st.len]
            }
        }
    }

    /// Return a buffer from [`BufPool::take`], grown to the pool's length if
    /// the pool grew while it was out.
    pub(crate) fn give(&self, mut buf: Vec<f32>) {
        let mut st = self.lock();
        if buf.len() < st.len {
            buf.resize(st.len, 0.0);
        }
        st.free.push(buf);
    }

    /// Run `f` with `len` elements of a buffer from the pool.
    pub(crate) fn with<R>(&self, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
        let mut buf = self.take(len);
        let out = f(&mut buf[..len]);
        self.give(buf);
        out
    }
}

static SCRATCH: BufPool = BufPool::new();
static REDUCE_SCRATCH: BufPool = BufPool::new();

/// Run `f` with a scratch slice of `len` elements (contents unspecified)
/// from a shared pool (see [`BufPool`]), so per-image workspaces (im2col
/// columns) are allocated once, not once per call.
///
/// Re-entrant: the buffer is owned by this call while in use, so a nested
/// call (for example a rayon task stolen while waiting) gets another one.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(len, f)
}

/// [`with_scratch`] from a second pool, for the calling thread's per-thread
/// partial results (weight-gradient partials), which are live while the
/// pool's tasks use [`with_scratch`].
pub(crate) fn with_reduce_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    REDUCE_SCRATCH.with(len, f)
}

/// Independent f64 accumulators in [`sum_f64`]: four AVX-512 vectors,
/// enough to hide the add latency (bias gradients sum whole feature maps).
const SUM_LANES: usize = 32;

/// Sum of `x` in f64: accumulator `i < 32` adds `x[32 k + i]` in order of
/// `k`, the accumulators are added pairwise (`i += i + 16`, then
/// `i += i + 8`, ... down to one), then the last `len % 32` elements one
/// by one. The same order, so the same bits, on every CPU.
#[inline]
pub(crate) fn sum_f64(x: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu_features::avx512f() {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { sum_f64_avx512(x) };
    }
    sum_f64_portable(x)
}

/// [`sum_f64`] without explicit vectors.
fn sum_f64_portable(x: &[f32]) -> f64 {
    let mut acc = [0.0f64; SUM_LANES];
    let chunks = x.chunks_exact(SUM_LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f64::from(v);
        }
    }
    let mut width = SUM_LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    rest.iter().fold(acc[0], |s, &v| s + f64::from(v))
}

/// [`sum_f64`] with AVX-512F vectors (accumulators `8 j..8 j + 8` in
/// vector `j`).
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sum_f64_avx512(x: &[f32]) -> f64 {
    use std::arch::x86_64::*;
    let chunks = x.chunks_exact(SUM_LANES);
    let rest = chunks.remainder();
    let mut acc = [_mm512_setzero_pd(); SUM_LANES / 8];
    for c in chunks {
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: c has SUM_LANES = 32 floats, so 8 j + 8 <= 32.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * j)) };
            *a = _mm512_add_pd(*a, _mm512_cvtps_pd(v));
        }
    }
    // Pairwise, as the portable loop: i += i + 16, then i += i + 8 ...
    let a = _mm512_add_pd(_mm512_add_pd(acc[0], acc[2]), _mm512_add_pd(acc[1], acc[3]));
    let a4 = _mm256_add_pd(_mm512_castpd512_pd256(a), _mm512_extractf64x4_pd::<1>(a));
    let a2 = _mm_add_pd(_mm256_castpd256_pd128(a4), _mm256_extractf128_pd::<1>(a4));
    let s = _mm_cvtsd_f64(a2) + _mm_cvtsd_f64(_mm_unpackhi_pd(a2, a2));
    rest.iter().fold(s, |s, &v| s + f64::from(v))
}

/// Sum of `f(v)` over `x` in f64 (eight accumulators, see [`sum_f64`]).
#[inline(always)]
pub(crate) fn sum_map_f64(x: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(f64::from(v));
        }
    }
    let mut tail = 0.0f64;
    for &v in rest {
        tail += f(f64::from(v));
    }
    acc.iter().sum::<f64>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values spanning ten orders of magnitude, so the summation order
    /// shows in the last bits.
    fn spread_values(len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let t = (i as f32 * 0.618_034).fract();
                (t - 0.4) * 10f32.powi((i % 11) as i32 - 5)
            })
            .collect()
    }

    #[test]
    fn sum_f64_is_the_same_on_every_path_and_close_to_exact() {
        for len in [0, 1, 31, 32, 33, 100, 784, 4097] {
            let x = spread_values(len);
            let exact: f64 = x.iter().map(|&v| f64::from(v)).sum();
            let got = sum_f64(&x);
            assert_eq!(got.to_bits(), sum_f64_portable(&x).to_bits(), "len {len}");
            assert!(
                (got - exact).abs() <= 1e-12 * (1.0 + exact.abs()),
                "len {len}: {got} vs {exact}"
            );
        }
    }
}
