//! Pooling layers: max (with argmax cached for backward), average and
//! global average.

use super::{ForwardCtx, Layer, LayerSpec, nchw};
use crate::backend::{Backend, Pool2dGeometry, Pool2dParams};
use crate::error::Result;
use crate::per_size::PerSize;
use crate::shape::Shape;
use crate::tensor::Tensor;

pub(crate) struct Pool<B: Backend> {
    name: String,
    spec: LayerSpec,
    /// Max pooling's argmax buffers, keyed by the length they were made
    /// with, one per recent batch size (the training and the evaluation
    /// batch, so that neither reallocates in steady state; a smaller
    /// batch shortens a longer buffer where the backend can); the last
    /// forward wrote the latest.
    argmax: PerSize<B::IndexBuffer, ARGMAX_SIZES>,
}

/// How many batch sizes keep an argmax buffer.
const ARGMAX_SIZES: usize = 2;

impl<B: Backend> Pool<B> {
    pub(crate) fn new(_backend: &B, name: &str, spec: &LayerSpec, _input: &Shape) -> Result<Self> {
        Ok(Pool {
            name: name.to_string(),
            spec: spec.clone(),
            argmax: PerSize::new(),
        })
    }

    fn params_for(&self, x: &Tensor<B>, g: &Pool2dGeometry) -> Result<Pool2dParams> {
        let (n, c, h, w) = nchw(x.shape())?;
        Pool2dParams::new(n, c, h, w, g).map_err(|e| e.in_layer(&self.name))
    }
}

/// The position in `argmax` of a buffer of `need` indices: one of that
/// length; else the shortest made at least as long, shortened in place where the
/// backend can (a last partial batch); else a new one. It becomes the
/// latest.
fn argmax_index<B: Backend>(
    argmax: &mut PerSize<B::IndexBuffer, ARGMAX_SIZES>,
    backend: &B,
    need: usize,
) -> Result<usize> {
    if let Some(i) = argmax.position(|_, buf| backend.index_buffer_len(buf) == need) {
        return Ok(argmax.touch(i));
    }
    let longer = argmax
        .entries()
        .enumerate()
        .filter(|(_, (made, _))| *made >= need)
        .min_by_key(|(_, (made, _))| *made)
        .map(|(i, _)| i);
    if let Some(i) = longer
        && backend.resize_indices_within(&mut argmax[i], need)
    {
        return Ok(argmax.touch(i));
    }
    argmax.use_or_insert(need, || backend.alloc_indices(need))
}

impl<B: Backend> Layer<B> for Pool<B> {
    fn name(&self) -> &str {
        &self.name
    }
    fn spec(&self) -> &LayerSpec {
        &self.spec
    }

    fn forward(
        &mut self,
        backend: &B,
        _ctx: &ForwardCtx,
        x: &Tensor<B>,
        y: &mut Tensor<B>,
    ) -> Result<()> {
        match &self.spec {
            LayerSpec::MaxPool2d(g) => {
                let p = self.params_for(x, g)?;
                let i = argmax_index(&mut self.argmax, backend, p.y_len())?;
                backend.max_pool2d_forward(&p, x.buffer(), y.buffer_mut(), &mut self.argmax[i])
            }
            LayerSpec::AvgPool2d(g) => {
                let p = self.params_for(x, g)?;
                backend.avg_pool2d_forward(&p, x.buffer(), y.buffer_mut())
            }
            _ => {
                let (n, c, h, w) = nchw(x.shape())?;
                backend.global_avg_pool_forward(n, c, h * w, x.buffer(), y.buffer_mut())
            }
        }
    }

    fn backward(
        &mut self,
        backend: &B,
        _ctx: &ForwardCtx,
        x: &Tensor<B>,
        _y: &Tensor<B>,
        dy: &Tensor<B>,
        dx: Option<&mut Tensor<B>>,
    ) -> Result<()> {
        let Some(dx) = dx else { return Ok(()) };
        match &self.spec {
            LayerSpec::MaxPool2d(g) => {
                let p = self.params_for(x, g)?;
                let argmax = self.argmax.latest().ok_or_else(|| {
                    crate::CnnError::Graph(format!(
                        "layer `{}`: backward before forward",
                        self.name
                    ))
                })?;
                backend.max_pool2d_backward(&p, dy.buffer(), argmax, dx.buffer_mut())
            }
            LayerSpec::AvgPool2d(g) => {
                let p = self.params_for(x, g)?;
                backend.avg_pool2d_backward(&p, dy.buffer(), dx.buffer_mut())
            }
            _ => {
                let (n, c, h, w) = nchw(x.shape())?;
                backend.global_avg_pool_backward(n, c, h * w, dy.buffer(), dx.buffer_mut())
            }
        }
    }
}
