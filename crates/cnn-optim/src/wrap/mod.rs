//! Wrappers around any update rule, held by the [`Optimizer`](crate::Optimizer):
//! `lookahead` (slow weights pulled toward the fast ones every `k` steps)
//! and `sam` (sharpness-aware minimization: the gradient taken at a
//! perturbed point). Both are composed from existing backend ops
//! (`copy`, `scale`, `axpy`, `sum_squares`): their per-element work is a
//! linear combination, so no fused kernel of their own.

mod lookahead;
mod sam;

pub use lookahead::{Lookahead, LookaheadConfig, LookaheadState};
pub use sam::{Sam, SamConfig};
