//! Winograd convolution F(m x m, 3 x 3) for stride-1, undilated, ungrouped
//! 3x3 layers (padding 0-2), as NNPACK and oneDNN offer it: fewer
//! multiplications than the direct or im2col paths (F(4x4,3x3): 36 per 16
//! outputs instead of 144, F(2x2,3x3): 16 per 4 instead of 36), paid for
//! with the transforms and a larger rounding error (docs/performance.md,
//! entries 32 and 33, and docs/validation.md).
//!
//! Per block of `nb` images (`tb` tiles of `m x m` outputs; `c` input and
//! `k` output channels, `c8`/`k8` rounded up to the 8 lanes; `A = m + 2`):
//! - forward: each image is packed channel-interleaved and zero-padded
//!   (`xp (c8 / 8, hp, wp, 8)`), every tile's `A x A` input patch is
//!   transformed (`V = B^T d B`, stored `v (A A, tb, c8)`), then one GEMM
//!   per transformed position `ξ`: `M_ξ (tb, k) = V_ξ (tb, c) U_ξ (c, k)`
//!   with the kernels transformed once per call (`U = G g G^T`, `u (A A,
//!   c, k)`), and `y = A^T M A` (plus the bias) scattered back to NCHW;
//! - backward input: the forward of the transposed convolution (`dy` as
//!   input, kernels flipped and transposed, padding `2 - pad`), as the
//!   im2col path does it;
//! - backward weight: in the transformed domain, `dU_ξ (c, k) = sum over
//!   tiles V_ξ^T dM_ξ` with `dM = A dY A^T`, then `dw = G^T dU G`; summed
//!   per contiguous part of the batch like the other paths
//!   (`direct::sum_weight_parts`).
//!
//! Blocks of about [`TARGET_TILES`] tiles run in parallel over the
//! backend's threads, each with its own scratch buffer from the shared
//! pool (so a warmed-up step allocates nothing); the GEMMs are
//! [`product`]'s unpacked register-blocked kernel (the bits of the crate's
//! `sgemm`).

mod kernels;
mod product;
pub(crate) mod transform;

use cnn_core::Conv2dParams;
use rayon::prelude::*;

use self::product::product;
use self::transform::{F2, F4, L, Tile};
use crate::CpuBackend;
use crate::par::{BufPool, with_scratch};

/// Tiles a block aims for: enough rows for the GEMMs (two 32x32 images,
/// eight 16x16, 32 8x8 ones). At 64->64 on 8x8 maps (one thread) 8, 16,
/// 32, 256 and 512 tiles were 1.04-1.3x slower than 128 for the forward
/// and the input gradient (entry 41); the weight gradient's bits depend
/// on it (its sums run per block).
const TARGET_TILES: usize = 128;

/// Floats between the end of one transformed position's plane of `v` or
/// `m` and the next one's start: one cache line, so that the 36 planes a
/// tile's transforms read or write (`tb c8` floats apart, a multiple of
/// 4 KiB at 64 channels and 16, 32, 64 or 128 tiles) do not all fall in
/// the same L1 set (at 64->64 on 8x8 maps `perf annotate` put the output
/// transform's time, 0.28 of the forward's, on those loads; 0.25 with
/// the padding; entry 41).
const PLANE_PAD: usize = 16;

/// Below this many forward FLOPs a convolution runs on the calling thread.
const PAR_MIN_FLOPS: f64 = 4.0e5;

/// Which Winograd algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    /// F(2x2, 3x3).
    F2,
    /// F(4x4, 3x3).
    F4,
}

/// Whether the Winograd path can take `p`: a 3x3 kernel, stride 1, no
/// dilation, one group, padding at most 2 (so the input gradient, padded
/// by `2 - pad`, is one too).
pub(crate) fn eligible(p: &Conv2dParams) -> bool {
    p.kh == 3
        && p.kw == 3
        && p.stride_h == 1
        && p.stride_w == 1
        && p.dil_h == 1
        && p.dil_w == 1
        && p.groups == 1
        && p.pad_h <= 2
        && p.pad_w <= 2
        && p.h_out > 0
        && p.w_out > 0
}

/// Smallest `min(c_in, c_out)` at which F(4x4,3x3) is the default for the
/// forward and the input gradient, and for the weight gradient over the
/// output-channel-lane kernel (`direct::cout_lanes`). Entry 32 measured
/// 0.41x of the default path's time at 64 channels on 8x8 maps and 1.4x
/// at 32 channels; after entry 41's kernels (one thread, batch 128,
/// loaded machine, medians of alternating rounds) the three ops together
/// took about 0.8x of the default paths' time at 32->32 on 16x16 and
/// 32x32 maps and at 32->64 on 16x16, and 1.2x at 16->16 on 32x32. Few
/// channels leave the transforms, which grow with `c` (input) or `k`
/// (output) alone, too little GEMM to amortise over.
const MIN_CHANNELS: usize = 32;
/// The same for the weight gradient, where the transforms of x and dy
/// are shared by a GEMM over every tile: 0.64x at 16 channels on 32x32,
/// 0.71x at 32 on 16x16, 0.37x at 64 on 8x8.
const MIN_CHANNELS_WEIGHT: usize = 16;

/// Whether F(4x4,3x3) is the default for the [`eligible`] layer `p`: its
/// forward and input gradient (`weight == false`) or its weight gradient
/// (where the output-channel-lane kernel does not take it first, see
/// [`beats_cout_lanes`]).
pub(crate) fn pays(p: &Conv2dParams, weight: bool) -> bool {
    let min = if weight {
        MIN_CHANNELS_WEIGHT
    } else {
        MIN_CHANNELS
    };
    p.c_in.min(p.c_out) >= min
}

/// Whether F(4x4,3x3)'s weight gradient is the default for the
/// [`eligible`] layer `p` even where the output-channel-lane kernel
/// applies and pays (16-32 channels): from [`MIN_CHANNELS`] on.
pub(crate) fn beats_cout_lanes(p: &Conv2dParams) -> bool {
    eligible(p) && p.c_in.min(p.c_out) >= MIN_CHANNELS
}

/// Derived sizes of one Winograd convolution (one tile kind).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geo {
    c: usize,
    k: usize,
    c8: usize,
    k8: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    ph: usize,
    pw: usize,
    /// Tiles down and across one output map.
    th: usize,
    tw: usize,
    /// The padded plane `xp` covers: every tile's input patch.
    hp: usize,
    wp: usize,
    /// `A x A`, transformed positions per tile.
    aa: usize,
}

impl Geo {
    fn new<T: Tile>(p: &Conv2dParams) -> Self {
        let (th, tw) = (p.h_out.div_ceil(T::M), p.w_out.div_ceil(T::M));
        Geo {
            c: p.c_in,
            k: p.c_out,
            c8: p.c_in.next_multiple_of(L),
            k8: p.c_out.next_multiple_of(L),
            h: p.h,
            w: p.w,
            ho: p.h_out,
            wo: p.w_out,
            ph: p.pad_h,
            pw: p.pad_w,
            th,
            tw,
            hp: th * T::M + 2,
            wp: tw * T::M + 2,
            aa: T::A * T::A,
        }
    }
    fn tiles(&self) -> usize {
        self.th * self.tw
    }
    fn xp_len(&self) -> usize {
        self.c8 * self.hp * self.wp
    }
    fn x_image(&self) -> usize {
        self.c * self.h * self.w
    }
    fn y_image(&self) -> usize {
        self.k * self.ho * self.wo
    }
    /// The transformed kernels `u (A A, c, k)`.
    fn u_len(&self) -> usize {
        self.aa * self.c * self.k
    }
    /// One transformed position's plane of `v`: `tb` rows of `c8`, padded
    /// by [`PLANE_PAD`].
    fn v_plane(&self, tb: usize) -> usize {
        tb * self.c8 + PLANE_PAD
    }
    /// The same for `m` (or `dm`): `tb` rows of `k8`.
    fn m_plane(&self, tb: usize) -> usize {
        tb * self.k8 + PLANE_PAD
    }
    /// `v` and `m` (or `dm`) of a block of `tb` tiles.
    fn v_len(&self, tb: usize) -> usize {
        self.aa * self.v_plane(tb)
    }
    fn m_len(&self, tb: usize) -> usize {
        self.aa * self.m_plane(tb)
    }
}

fn parallel(be: &CpuBackend, p: &Conv2dParams) -> bool {
    be.threads > 1 && p.forward_flops() >= PAR_MIN_FLOPS
}

/// Images per block: about [`TARGET_TILES`] tiles, at least two blocks per
/// thread when parallel.
fn block_images(g: &Geo, n: usize, threads: usize) -> usize {
    let mut nb = TARGET_TILES.div_ceil(g.tiles().max(1)).clamp(1, n.max(1));
    if threads > 1 {
        nb = nb.min(n.div_ceil(2 * threads)).max(1);
    }
    nb
}

/// The transformed kernels of a call (reused, only grows).
static KERNELS: BufPool = BufPool::new();

/// `y = conv(x, w) + b` with F(m x m, 3 x 3) (the caller checked
/// [`eligible`] and the lengths): x is (N, C_in, H, W), w (C_out, C_in, 3,
/// 3), y (N, C_out, H_out, W_out).
pub(crate) fn forward(
    be: &CpuBackend,
    v: Variant,
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    match v {
        Variant::F2 => forward_t::<F2>(be, p, x, w, b, y),
        Variant::F4 => forward_t::<F4>(be, p, x, w, b, y),
    }
}

fn forward_t<T: Tile>(
    be: &CpuBackend,
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    let g = Geo::new::<T>(p);
    let mut ubuf = KERNELS.take(g.u_len());
    let u = &mut ubuf[..g.u_len()];
    kernels::kernel_transform::<T>(&g, w, u);
    let u = &*u;
    let par = parallel(be, p) && p.n > 1;
    let nb = block_images(&g, p.n, if par { be.threads } else { 1 });
    let scratch = g.xp_len() + g.v_len(nb * g.tiles()) + g.m_len(nb * g.tiles());
    let (xi, yi) = (g.x_image(), g.y_image());
    let block = |y_blk: &mut [f32], x_blk: &[f32]| {
        with_scratch(scratch, |s| forward_block::<T>(&g, x_blk, u, b, y_blk, s));
    };
    if par {
        be.install(|| {
            y.par_chunks_mut(nb * yi)
                .zip(x.par_chunks(nb * xi))
                .for_each(|(y_blk, x_blk)| block(y_blk, x_blk));
        });
    } else {
        for (y_blk, x_blk) in y.chunks_mut(nb * yi).zip(x.chunks(nb * xi)) {
            block(y_blk, x_blk);
        }
    }
    KERNELS.give(ubuf);
}

/// The forward of one block of images.
fn forward_block<T: Tile>(
    g: &Geo,
    x_blk: &[f32],
    u: &[f32],
    b: Option<&[f32]>,
    y_blk: &mut [f32],
    s: &mut [f32],
) {
    let nb = y_blk.len() / g.y_image();
    let tb = nb * g.tiles();
    let (xp, rest) = s.split_at_mut(g.xp_len());
    let (v, m) = rest.split_at_mut(g.v_len(tb));
    for (j, x_img) in x_blk.chunks_exact(g.x_image()).enumerate() {
        kernels::pack(g, x_img, xp);
        kernels::input::<T>(g, xp, v, tb, j * g.tiles());
    }
    for xi in 0..g.aa {
        // M_ξ (tb, k), row stride k8 = V_ξ (tb, c), row stride c8, times U_ξ (c, k).
        product(
            (tb, g.c, g.k),
            &v[xi * g.v_plane(tb)..],
            (g.c8, 1),
            &u[xi * g.c * g.k..],
            g.k,
            &mut m[xi * g.m_plane(tb)..],
            g.k8,
            false,
        );
    }
    for (j, y_img) in y_blk.chunks_exact_mut(g.y_image()).enumerate() {
        kernels::output::<T>(g, m, tb, j * g.tiles(), b, y_img);
    }
}

/// `dw += the weight gradient of the batch` with F(m x m, 3 x 3) in the
/// transformed domain (the caller checked [`eligible`] and the lengths):
/// x is (N, C_in, H, W), dy (N, C_out, H_out, W_out), dw (C_out, C_in, 3, 3).
pub(crate) fn backward_weight(
    be: &CpuBackend,
    v: Variant,
    p: &Conv2dParams,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) {
    match v {
        Variant::F2 => backward_weight_t::<F2>(be, p, x, dy, dw),
        Variant::F4 => backward_weight_t::<F4>(be, p, x, dy, dw),
    }
}

fn backward_weight_t<T: Tile>(
    be: &CpuBackend,
    p: &Conv2dParams,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) {
    let g = Geo::new::<T>(p);
    let per = p.n.div_ceil(super::direct::weight_parts(be, p));
    let nb = block_images(&g, per, 1);
    let tb_max = nb * g.tiles();
    let scratch = g.xp_len() + g.v_len(tb_max) + g.m_len(tb_max) + g.u_len();
    let (xi, yi) = (g.x_image(), g.y_image());
    super::direct::sum_weight_parts(be, p, parallel(be, p), dw, |first, last, out| {
        with_scratch(scratch, |s| {
            let (xp, rest) = s.split_at_mut(g.xp_len());
            let (v, rest) = rest.split_at_mut(g.v_len(tb_max));
            let (dm, du) = rest.split_at_mut(g.m_len(tb_max));
            let xs = x[first * xi..last * xi].chunks(nb * xi);
            let dys = dy[first * yi..last * yi].chunks(nb * yi);
            for (i, (x_blk, dy_blk)) in xs.zip(dys).enumerate() {
                let tb = x_blk.len() / xi * g.tiles();
                for (j, (x_img, dy_img)) in x_blk
                    .chunks_exact(xi)
                    .zip(dy_blk.chunks_exact(yi))
                    .enumerate()
                {
                    kernels::pack(&g, x_img, xp);
                    kernels::input::<T>(&g, xp, v, tb, j * g.tiles());
                    kernels::output_grad::<T>(&g, dy_img, dm, tb, j * g.tiles());
                }
                for xi in 0..g.aa {
                    // dU_ξ (c, k) (+)= V_ξ^T (c, tb) dM_ξ (tb, k).
                    product(
                        (g.c, tb, g.k),
                        &v[xi * g.v_plane(tb)..],
                        (1, g.c8),
                        &dm[xi * g.m_plane(tb)..],
                        g.k8,
                        &mut du[xi * g.c * g.k..],
                        g.k,
                        i > 0,
                    );
                }
            }
            kernels::kernel_grad_transform::<T>(&g, du, out);
        });
    });
}
