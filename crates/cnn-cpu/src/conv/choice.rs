//! Which path a convolution takes: Winograd, the direct kernels, the
//! polyphase stride-2 kernels or im2col + GEMM, by layer shape, unless
//! `CNN_CPU_CONV` or the backend's [`ConvAlgorithm`] forces one.

use cnn_core::Conv2dParams;

use super::{direct, stride2, winograd};
use crate::CpuBackend;

/// A convolution algorithm of the CPU backend, to force one where it
/// applies (for measurements and tests): `CNN_CPU_CONV` names one for the
/// whole process, [`CpuBackend::with_conv_algorithm`] for one backend.
/// A layer the algorithm cannot take keeps the default choice (Winograd
/// takes stride-1, undilated, ungrouped 3x3 layers with padding at most
/// 2; the direct kernels stride-1 ungrouped layers of up to 4,608 taps;
/// the polyphase kernels stride-2 undilated ungrouped layers with padding
/// below the kernel and up to 1,024 taps; for the weight gradient of a
/// stride-1 layer, `Direct` means the output-channel-lane kernel of
/// `direct::cout_lanes` wherever it applies: up to 1,024 taps and 256
/// output channels).
///
/// For stride-2 layers: `direct` forces the polyphase kernels (the
/// stride-2 member of the direct family), `gemm` and `nowinograd` force
/// im2col + GEMM (the path before them), `winograd` and `winograd2x2`
/// leave the default rule (polyphase within the direct kernels' limits of
/// 576 taps and 64 output channels, 1x1 kernels included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// The direct kernels (`CNN_CPU_CONV=direct`); for a stride-1 weight
    /// gradient the output-channel-lane kernel where it applies; for
    /// stride-2 layers the polyphase kernels.
    Direct,
    /// im2col + GEMM (`CNN_CPU_CONV=gemm`).
    Gemm,
    /// Winograd F(4x4, 3x3) (`CNN_CPU_CONV=winograd`).
    Winograd,
    /// Winograd F(2x2, 3x3) (`CNN_CPU_CONV=winograd2x2`): 1.8 times
    /// F(4x4, 3x3)'s multiplications per output (4 against 2.25) for a
    /// twentieth of its rounding error, slower at every workload layer
    /// (docs/performance.md, entry 32).
    Winograd2x2,
    /// The default rule without Winograd (`CNN_CPU_CONV=nowinograd`):
    /// direct or im2col + GEMM by shape, stride-2 layers through im2col +
    /// GEMM, the bits of the releases before Winograd.
    NoWinograd,
}

impl ConvAlgorithm {
    /// The algorithm `CNN_CPU_CONV` calls `name` (`direct`, `gemm`,
    /// `winograd`, `winograd2x2`, `nowinograd`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "direct" => Some(Self::Direct),
            "gemm" => Some(Self::Gemm),
            "winograd" => Some(Self::Winograd),
            "winograd2x2" => Some(Self::Winograd2x2),
            "nowinograd" => Some(Self::NoWinograd),
            _ => None,
        }
    }
}

/// `CNN_CPU_CONV`, read once; unset or an unknown name: the default rule.
fn env_algorithm() -> Option<ConvAlgorithm> {
    static FORCED: std::sync::OnceLock<Option<ConvAlgorithm>> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| {
        std::env::var("CNN_CPU_CONV")
            .ok()
            .and_then(|v| ConvAlgorithm::from_name(&v))
    })
}

/// The path a convolution takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Path {
    Direct,
    Gemm,
    Winograd(winograd::Variant),
    /// The polyphase stride-2 kernels of [`stride2`].
    Stride2,
}

/// Which op of a convolution is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Forward,
    /// The input gradient (Winograd's is the transposed forward).
    BackwardInput,
    BackwardWeight,
}

/// Whether the weight gradient of `p` runs in the output-channel-lane
/// kernel (`direct::cout_lanes`): where it applies, when `direct` is
/// forced, or by default where [`direct::cout_lanes::pays`] unless
/// Winograd does better ([`winograd::beats_cout_lanes`]); any other
/// forced algorithm (`nowinograd` included: the bits before it) keeps
/// [`choose`]'s path.
pub(super) fn weight_by_cout_lanes(be: &CpuBackend, p: &Conv2dParams) -> bool {
    let forced = be.conv_algorithm().or_else(env_algorithm);
    direct::cout_lanes::takes(p)
        && match forced {
            Some(ConvAlgorithm::Direct) => true,
            None => direct::cout_lanes::pays(p) && !winograd::beats_cout_lanes(p),
            Some(_) => false,
        }
}

/// The backend's forced algorithm, else `CNN_CPU_CONV`'s, where it
/// applies to `p`; else Winograd F(4x4,3x3) where [`winograd::pays`] for
/// `op`, the polyphase kernels where [`stride2::use_stride2`]'s cost rule
/// says so, the direct kernels where [`direct::use_direct`]'s does,
/// im2col + GEMM for the rest.
pub(super) fn choose(be: &CpuBackend, p: &Conv2dParams, op: Op) -> Path {
    let forced = be.conv_algorithm().or_else(env_algorithm);
    if winograd::eligible(p) {
        match forced {
            Some(ConvAlgorithm::Winograd) => return Path::Winograd(winograd::Variant::F4),
            Some(ConvAlgorithm::Winograd2x2) => return Path::Winograd(winograd::Variant::F2),
            None if winograd::pays(p, op == Op::BackwardWeight) => {
                return Path::Winograd(winograd::Variant::F4);
            }
            _ => {}
        }
    }
    let direct_forced = match forced {
        Some(ConvAlgorithm::Direct) => Some(true),
        Some(ConvAlgorithm::Gemm) => Some(false),
        _ => None,
    };
    if p.stride_h == 2 && p.stride_w == 2 {
        // `nowinograd` keeps the releases' bits: stride 2 through im2col + GEMM.
        let forced = direct_forced.or((forced == Some(ConvAlgorithm::NoWinograd)).then_some(false));
        if stride2::use_stride2(p, forced) {
            return Path::Stride2;
        }
    }
    if direct::use_direct(p, direct_forced) {
        Path::Direct
    } else {
        Path::Gemm
    }
}
