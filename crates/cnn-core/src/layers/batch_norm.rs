//! BatchNorm2d: batch statistics and running averages in training, running
//! statistics in evaluation; backward through the batch statistics after a
//! training forward, and through the running statistics (a per-channel
//! affine map) after an evaluation forward.

use super::{ForwardCtx, Layer, LayerParams, LayerSpec, Mode, StateBuffer, nchw};
use crate::backend::{Backend, BatchNormParams};
use crate::error::{CnnError, Result};
use crate::param::{Param, ParamKind};
use crate::shape::Shape;
use crate::tensor::Tensor;

pub(crate) struct BatchNorm2d<B: Backend> {
    name: String,
    spec: LayerSpec,
    eps: f32,
    momentum: f32,
    gamma: Param<B>,
    beta: Param<B>,
    running_mean: StateBuffer<B>,
    running_var: StateBuffer<B>,
    num_batches_tracked: i64,
    /// Batch mean and 1/sqrt(var + eps) of the last training forward.
    save_mean: B::Buffer,
    save_invstd: B::Buffer,
    /// Where backward writes the input gradient when the graph needs none
    /// (batch norm as the first node; the backend op always produces it),
    /// sized for the last batch and kept so that a step allocates nothing.
    dx_scratch: Option<B::Buffer>,
}

impl<B: Backend> BatchNorm2d<B> {
    pub(crate) fn new(backend: &B, name: &str, spec: &LayerSpec, input: &Shape) -> Result<Self> {
        let LayerSpec::BatchNorm2d { eps, momentum } = spec else {
            return Err(CnnError::Graph(format!("layer `{name}` is not batch norm")));
        };
        let c = input.dims()[0];
        let ones = vec![1.0; c];
        Ok(BatchNorm2d {
            name: name.to_string(),
            spec: spec.clone(),
            eps: *eps,
            momentum: *momentum,
            gamma: Param::new(
                backend,
                format!("{name}.weight"),
                ParamKind::NormScale,
                Tensor::from_slice(backend, [c], &ones)?,
            )?,
            beta: Param::new(
                backend,
                format!("{name}.bias"),
                ParamKind::NormShift,
                Tensor::zeros(backend, [c])?,
            )?,
            running_mean: StateBuffer {
                name: format!("{name}.running_mean"),
                value: Tensor::zeros(backend, [c])?,
            },
            running_var: StateBuffer {
                name: format!("{name}.running_var"),
                value: Tensor::from_slice(backend, [c], &ones)?,
            },
            num_batches_tracked: 0,
            save_mean: backend.alloc_zeros(c)?,
            save_invstd: backend.alloc_zeros(c)?,
            dx_scratch: None,
        })
    }

    fn params_for(&self, x: &Tensor<B>) -> Result<BatchNormParams> {
        let (n, c, h, w) = nchw(x.shape())?;
        Ok(BatchNormParams {
            n,
            c,
            hw: h * w,
            eps: self.eps,
            momentum: self.momentum,
        })
    }
}

impl<B: Backend> BatchNorm2d<B> {
    /// The forward; with `relu`, followed by the add of its residual (if
    /// any) and a ReLU in the same op (training and evaluation forwards).
    fn run_forward(
        &mut self,
        backend: &B,
        ctx: &ForwardCtx,
        x: &Tensor<B>,
        relu: Option<Option<&Tensor<B>>>,
        y: &mut Tensor<B>,
    ) -> Result<()> {
        let p = self.params_for(x)?;
        let gamma = self.gamma.value.buffer();
        let beta = self.beta.value.buffer();
        match ctx.mode {
            Mode::Train => {
                if p.n * p.hw < 2 {
                    return Err(CnnError::InvalidGeometry {
                        layer: Some(self.name.clone()),
                        message: format!(
                            "batch norm in training needs more than one value per channel, got input {}",
                            x.shape()
                        ),
                    });
                }
                self.num_batches_tracked += 1;
                let (rm, rv) = (
                    self.running_mean.value.buffer_mut(),
                    self.running_var.value.buffer_mut(),
                );
                let (sm, si) = (&mut self.save_mean, &mut self.save_invstd);
                match relu {
                    None => backend.batch_norm2d_forward_train(
                        &p,
                        x.buffer(),
                        gamma,
                        beta,
                        rm,
                        rv,
                        y.buffer_mut(),
                        sm,
                        si,
                    ),
                    Some(residual) => backend.batch_norm2d_relu_forward_train(
                        &p,
                        x.buffer(),
                        residual.map(Tensor::buffer),
                        gamma,
                        beta,
                        rm,
                        rv,
                        y.buffer_mut(),
                        sm,
                        si,
                    ),
                }
            }
            Mode::Eval => match relu {
                None => backend.batch_norm2d_forward_eval(
                    &p,
                    x.buffer(),
                    gamma,
                    beta,
                    self.running_mean.value.buffer(),
                    self.running_var.value.buffer(),
                    y.buffer_mut(),
                ),
                Some(residual) => backend.batch_norm2d_relu_forward_eval(
                    &p,
                    x.buffer(),
                    residual.map(Tensor::buffer),
                    gamma,
                    beta,
                    self.running_mean.value.buffer(),
                    self.running_var.value.buffer(),
                    y.buffer_mut(),
                ),
            },
        }
    }
}

impl<B: Backend> Layer<B> for BatchNorm2d<B> {
    fn name(&self) -> &str {
        &self.name
    }
    fn spec(&self) -> &LayerSpec {
        &self.spec
    }

    fn forward(
        &mut self,
        backend: &B,
        ctx: &ForwardCtx,
        x: &Tensor<B>,
        y: &mut Tensor<B>,
    ) -> Result<()> {
        self.run_forward(backend, ctx, x, None, y)
    }

    fn forward_relu(
        &mut self,
        backend: &B,
        ctx: &ForwardCtx,
        x: &Tensor<B>,
        residual: Option<&Tensor<B>>,
        y: &mut Tensor<B>,
    ) -> Result<()> {
        self.run_forward(backend, ctx, x, Some(residual), y)
    }

    fn forward_relu_in_place(
        &mut self,
        backend: &B,
        ctx: &ForwardCtx,
        residual: Option<&Tensor<B>>,
        y: &mut Tensor<B>,
    ) -> Result<()> {
        if ctx.mode != Mode::Eval {
            return Err(CnnError::Graph(format!(
                "layer `{}`: batch norm runs in place only in evaluations",
                self.name
            )));
        }
        let p = self.params_for(y)?;
        backend.batch_norm2d_relu_forward_eval_in_place(
            &p,
            residual.map(Tensor::buffer),
            self.gamma.value.buffer(),
            self.beta.value.buffer(),
            self.running_mean.value.buffer(),
            self.running_var.value.buffer(),
            y.buffer_mut(),
        )
    }

    fn backward_relu(
        &mut self,
        backend: &B,
        ctx: &ForwardCtx,
        x: &Tensor<B>,
        y: &Tensor<B>,
        dy: &mut Tensor<B>,
        residual: bool,
        dx: Option<&mut Tensor<B>>,
    ) -> Result<()> {
        if ctx.mode != Mode::Train {
            return Err(CnnError::Graph(format!(
                "layer `{}`: batch norm runs fused with a ReLU only in training backwards",
                self.name
            )));
        }
        let p = self.params_for(x)?;
        let dx_buf = dx_target(backend, &mut self.dx_scratch, dx, x.numel())?;
        backend.batch_norm2d_relu_backward(
            &p,
            x.buffer(),
            y.buffer(),
            self.gamma.value.buffer(),
            &self.save_mean,
            &self.save_invstd,
            dy.buffer_mut(),
            residual,
            dx_buf,
            self.gamma.grad.buffer_mut(),
            self.beta.grad.buffer_mut(),
        )
    }

    fn backward(
        &mut self,
        backend: &B,
        ctx: &ForwardCtx,
        x: &Tensor<B>,
        _y: &Tensor<B>,
        dy: &Tensor<B>,
        dx: Option<&mut Tensor<B>>,
    ) -> Result<()> {
        let p = self.params_for(x)?;
        // The backend op always produces dx; without a caller buffer, use the scratch.
        let dx_buf = dx_target(backend, &mut self.dx_scratch, dx, x.numel())?;
        if ctx.mode == Mode::Eval {
            // The parameter gradients, sum(dy (x - mean) invstd) and
            // sum(dy), are the training backward's with the running
            // statistics in place of the batch's (overwritten by the next
            // training forward).
            let var = backend.download(self.running_var.value.buffer())?;
            let invstd: Vec<f32> = var
                .iter()
                .map(|&v| (1.0 / (f64::from(v) + f64::from(self.eps)).sqrt()) as f32)
                .collect();
            backend.upload_into(&invstd, &mut self.save_invstd)?;
            backend.copy(self.running_mean.value.buffer(), &mut self.save_mean)?;
        }
        backend.batch_norm2d_backward(
            &p,
            x.buffer(),
            self.gamma.value.buffer(),
            &self.save_mean,
            &self.save_invstd,
            dy.buffer(),
            dx_buf,
            self.gamma.grad.buffer_mut(),
            self.beta.grad.buffer_mut(),
        )?;
        if ctx.mode == Mode::Eval {
            // dx = dy gamma / sqrt(running_var + eps): the evaluation
            // forward of dy with a zero mean and a zero shift.
            let zeros = backend.alloc_zeros(p.c)?;
            backend.batch_norm2d_forward_eval(
                &p,
                dy.buffer(),
                self.gamma.value.buffer(),
                &zeros,
                &zeros,
                self.running_var.value.buffer(),
                dx_buf,
            )?;
        }
        Ok(())
    }

    fn params(&self) -> LayerParams<&Param<B>> {
        LayerParams::new([Some(&self.gamma), Some(&self.beta)])
    }
    fn params_mut(&mut self) -> LayerParams<&mut Param<B>> {
        LayerParams::new([Some(&mut self.gamma), Some(&mut self.beta)])
    }
    fn buffers(&self) -> Vec<&StateBuffer<B>> {
        vec![&self.running_mean, &self.running_var]
    }
    fn buffers_mut(&mut self) -> Vec<&mut StateBuffer<B>> {
        vec![&mut self.running_mean, &mut self.running_var]
    }
    fn counters(&self) -> Vec<(String, i64)> {
        vec![(
            format!("{}.num_batches_tracked", self.name),
            self.num_batches_tracked,
        )]
    }
    fn set_counter(&mut self, name: &str, value: i64) -> bool {
        if name == format!("{}.num_batches_tracked", self.name) {
            self.num_batches_tracked = value;
            true
        } else {
            false
        }
    }
}

/// Where a backward writes `dx`: the caller's tensor, or (batch norm as the
/// first node, whose input gradient nobody reads) the layer's scratch buffer
/// of `numel` floats, allocated once per batch size.
fn dx_target<'a, B: Backend>(
    backend: &B,
    scratch: &'a mut Option<B::Buffer>,
    dx: Option<&'a mut Tensor<B>>,
    numel: usize,
) -> Result<&'a mut B::Buffer> {
    if let Some(dx) = dx {
        return Ok(dx.buffer_mut());
    }
    let buf = match scratch.take() {
        Some(s) if backend.buffer_len(&s) == numel => s,
        _ => backend.alloc_zeros(numel)?,
    };
    Ok(scratch.insert(buf))
}
