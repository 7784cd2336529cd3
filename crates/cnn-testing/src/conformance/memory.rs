//! Conformance of the memory ops.

use proptest::prelude::*;

use crate::conformance::runner::{CASES, run_cases};
use crate::host::{ctx, down, down_indices, up, up_indices};
use crate::reference as r;
use crate::strategies::values;
use cnn_core::backend::Backend;
use cnn_core::rng::CounterRng;

/// Round trips must be bit-exact: upload/download, upload_into,
/// download_into, copy, fill, alloc_zeros, and the index-buffer twins.
pub fn check_memory<B: Backend>(backend: &B) {
    run_cases(
        "memory",
        backend.name(),
        CASES,
        (1usize..=500, any::<u64>()),
        |(len, seed)| memory_one(backend, len, seed),
    );
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

fn same(what: &str, got: &[f32], want: &[f32]) -> Result<(), String> {
    if bits(got) == bits(want) {
        Ok(())
    } else {
        Err(format!("{what}: the values changed in transit"))
    }
}

fn memory_one<B: Backend>(be: &B, len: usize, seed: u64) -> Result<(), String> {
    let mut a = values(seed, 0, len, -1e3, 1e3);
    if len > 2 {
        a[0] = -0.0;
        a[1] = f32::NAN;
        a[2] = f32::MIN_POSITIVE / 2.0; // subnormal
    }
    let b = values(seed, 1, len, -1.0, 1.0);
    let mut buf = up(be, &a)?;
    if be.buffer_len(&buf) != len {
        return Err(format!(
            "buffer_len: got {}, expected {len}",
            be.buffer_len(&buf)
        ));
    }
    same("upload/download", &down(be, &buf)?, &a)?;
    ctx(be.upload_into(&b, &mut buf), "upload_into")?;
    same("upload_into", &down(be, &buf)?, &b)?;
    let mut host = vec![f32::NAN; len];
    ctx(be.download_into(&buf, &mut host), "download_into")?;
    same("download_into", &host, &b)?;
    let mut dst = ctx(be.alloc_zeros(len), "alloc_zeros")?;
    same("alloc_zeros", &down(be, &dst)?, &vec![0.0; len])?;
    ctx(be.copy(&up(be, &a)?, &mut dst), "copy")?;
    same("copy", &down(be, &dst)?, &a)?;
    ctx(be.fill(&mut dst, 2.5), "fill")?;
    same("fill", &down(be, &dst)?, &r::fill(len, 2.5))?;
    // Queued work has finished, and is visible, once synchronize returns.
    ctx(be.fill(&mut dst, -1.5), "fill")?;
    ctx(be.synchronize(), "synchronize")?;
    let mut after = vec![f32::NAN; len];
    ctx(be.download_into(&dst, &mut after), "download_into")?;
    same("synchronize", &after, &r::fill(len, -1.5))?;

    let mut rng = CounterRng::new(seed, 2);
    let idx: Vec<u32> = (0..len).map(|_| rng.next_u32()).collect();
    let ib = up_indices(be, &idx)?;
    if be.index_buffer_len(&ib) != len || down_indices(be, &ib)? != idx {
        return Err("upload_indices/download_indices: the indices changed in transit".into());
    }
    let mut ib = ctx(be.alloc_indices(len), "alloc_indices")?;
    if down_indices(be, &ib)? != vec![0; len] {
        return Err("alloc_indices: not all zeros".into());
    }
    ctx(be.upload_indices_into(&idx, &mut ib), "upload_indices_into")?;
    if down_indices(be, &ib)? != idx {
        return Err("upload_indices_into: the indices changed in transit".into());
    }
    Ok(())
}
