//! Conv2d: forward (convolution + bias) and backward (input, weight, bias).

use super::{ForwardCtx, Layer, LayerParams, LayerSpec, MAX_LAYER_PARAMS, MAX_PARTS, PartIo, nchw};
use crate::backend::{Backend, Conv2dGeometry, Conv2dParams};
use crate::error::{CnnError, Result};
use crate::init;
use crate::param::{Param, ParamKind};
use crate::rng::CounterRng;
use crate::shape::Shape;
use crate::tensor::Tensor;

pub(crate) struct Conv2d<B: Backend> {
    name: String,
    spec: LayerSpec,
    geometry: Conv2dGeometry,
    weight: Param<B>,
    bias: Option<Param<B>>,
}

impl<B: Backend> Conv2d<B> {
    pub(crate) fn new(
        backend: &B,
        name: &str,
        spec: &LayerSpec,
        input: &Shape,
        _output: &Shape,
        rng: &mut dyn FnMut(usize) -> CounterRng,
    ) -> Result<Self> {
        let LayerSpec::Conv2d { geometry, bias } = spec else {
            return Err(crate::CnnError::Graph(format!(
                "layer `{name}` is not a conv2d"
            )));
        };
        let c_in = input.dims()[0];
        let w_shape = Shape::from([
            geometry.out_channels,
            c_in / geometry.groups,
            geometry.kernel[0],
            geometry.kernel[1],
        ]);
        let fan_in = w_shape.numel() / geometry.out_channels;
        let bound = init::default_bound(fan_in);
        let w = init::uniform(&mut rng(0), w_shape.numel(), bound);
        let weight = Param::new(
            backend,
            format!("{name}.weight"),
            ParamKind::Weight,
            Tensor::from_slice(backend, w_shape, &w)?,
        )?;
        let bias = if *bias {
            let b = init::uniform(&mut rng(1), geometry.out_channels, bound);
            Some(Param::new(
                backend,
                format!("{name}.bias"),
                ParamKind::Bias,
                Tensor::from_slice(backend, [geometry.out_channels], &b)?,
            )?)
        } else {
            None
        };
        Ok(Conv2d {
            name: name.to_string(),
            spec: spec.clone(),
            geometry: *geometry,
            weight,
            bias,
        })
    }

    /// `dW += ...` and, when `dx` is given, `dx = ...` (not the bias).
    fn weight_and_input_grads(
        &mut self,
        backend: &B,
        p: &Conv2dParams,
        x: &Tensor<B>,
        dy: &Tensor<B>,
        dx: Option<&mut Tensor<B>>,
    ) -> Result<()> {
        backend.conv2d_backward_weight(
            p,
            x.buffer(),
            dy.buffer(),
            self.weight.grad.buffer_mut(),
        )?;
        if let Some(dx) = dx {
            backend.conv2d_backward_input(
                p,
                dy.buffer(),
                self.weight.value.buffer(),
                dx.buffer_mut(),
            )?;
        }
        Ok(())
    }

    fn params_for(&self, x: &Tensor<B>) -> Result<Conv2dParams> {
        let (n, c, h, w) = nchw(x.shape())?;
        Conv2dParams::new(n, c, h, w, &self.geometry).map_err(|e| e.in_layer(&self.name))
    }
}

impl<B: Backend> Layer<B> for Conv2d<B> {
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
        let p = self.params_for(x)?;
        let bias = self.bias.as_ref().map(|b| b.value.buffer());
        backend.conv2d_forward(
            &p,
            x.buffer(),
            self.weight.value.buffer(),
            bias,
            y.buffer_mut(),
        )
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
        let p = self.params_for(x)?;
        if let Some(bias) = self.bias.as_mut() {
            backend.conv2d_backward_bias(&p, dy.buffer(), bias.grad.buffer_mut())?;
        }
        self.weight_and_input_grads(backend, &p, x, dy, dx)
    }

    /// The weight gradient (summed part by part: the CPU backend sums it
    /// per contiguous part of the batch in any case) and the input
    /// gradient; the bias waits for `backward_params_from_parts`.
    fn backward_part(
        &mut self,
        backend: &B,
        _ctx: &ForwardCtx,
        x: &Tensor<B>,
        _y: &Tensor<B>,
        dy: &Tensor<B>,
        dx: Option<&mut Tensor<B>>,
    ) -> Result<()> {
        let p = self.params_for(x)?;
        self.weight_and_input_grads(backend, &p, x, dy, dx)
    }

    fn part_summed(&self) -> [bool; MAX_LAYER_PARAMS] {
        [true, false]
    }

    fn backward_params_from_parts(&mut self, backend: &B, parts: &[PartIo<'_, B>]) -> Result<()> {
        let Some(first) = parts.first().filter(|_| self.bias.is_some()) else {
            return Ok(());
        };
        if parts.len() > MAX_PARTS {
            return Err(CnnError::Graph(format!(
                "{} parts of a batch: at most {MAX_PARTS}",
                parts.len()
            )));
        }
        let mut p = self.params_for(first.x)?;
        p.n = 0;
        // The parts' buffers as one slice, without allocating.
        let mut dys = [first.dy.buffer(); MAX_PARTS];
        for (slot, part) in dys.iter_mut().zip(parts) {
            p.n += nchw(part.x.shape())?.0;
            *slot = part.dy.buffer();
        }
        let dys = &dys[..parts.len()];
        match self.bias.as_mut() {
            Some(bias) => backend.conv2d_backward_bias_parts(&p, dys, bias.grad.buffer_mut()),
            None => Ok(()),
        }
    }

    fn params(&self) -> LayerParams<&Param<B>> {
        LayerParams::new([Some(&self.weight), self.bias.as_ref()])
    }
    fn params_mut(&mut self) -> LayerParams<&mut Param<B>> {
        LayerParams::new([Some(&mut self.weight), self.bias.as_mut()])
    }
}
