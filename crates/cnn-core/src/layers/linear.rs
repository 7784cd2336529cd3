//! Linear: `y = x W^T + b` through the backend GEMM, and its backward.

use super::{ForwardCtx, Layer, LayerParams, LayerSpec};
use crate::backend::{Backend, BiasParams, GemmParams};
use crate::error::{CnnError, Result};
use crate::init;
use crate::param::{Param, ParamKind};
use crate::rng::CounterRng;
use crate::shape::Shape;
use crate::tensor::Tensor;

pub(crate) struct Linear<B: Backend> {
    name: String,
    spec: LayerSpec,
    in_features: usize,
    out_features: usize,
    weight: Param<B>,
    bias: Option<Param<B>>,
}

impl<B: Backend> Linear<B> {
    pub(crate) fn new(
        backend: &B,
        name: &str,
        spec: &LayerSpec,
        input: &Shape,
        rng: &mut dyn FnMut(usize) -> CounterRng,
    ) -> Result<Self> {
        let LayerSpec::Linear {
            out_features, bias, ..
        } = spec
        else {
            return Err(CnnError::Graph(format!("layer `{name}` is not linear")));
        };
        let in_features = input.numel();
        let bound = init::default_bound(in_features);
        let w = init::uniform(&mut rng(0), out_features * in_features, bound);
        let weight = Param::new(
            backend,
            format!("{name}.weight"),
            ParamKind::Weight,
            Tensor::from_slice(backend, [*out_features, in_features], &w)?,
        )?;
        let bias = if *bias {
            let b = init::uniform(&mut rng(1), *out_features, bound);
            Some(Param::new(
                backend,
                format!("{name}.bias"),
                ParamKind::Bias,
                Tensor::from_slice(backend, [*out_features], &b)?,
            )?)
        } else {
            None
        };
        Ok(Linear {
            name: name.to_string(),
            spec: spec.clone(),
            in_features,
            out_features: *out_features,
            weight,
            bias,
        })
    }

    fn batch(&self, x: &Tensor<B>) -> Result<usize> {
        match *x.shape().dims() {
            [n, f] if f == self.in_features => Ok(n),
            _ => Err(CnnError::ShapeMismatch {
                layer: self.name.clone(),
                expected: Shape::from([x.shape().dim(0).unwrap_or(0), self.in_features]),
                actual: x.shape().clone(),
            }),
        }
    }
}

impl<B: Backend> Layer<B> for Linear<B> {
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
        let n = self.batch(x)?;
        // y (N, out) = x (N, in) * W^T, W stored (out, in).
        let p = GemmParams {
            trans_b: true,
            ..GemmParams::new(n, self.out_features, self.in_features)
        };
        backend.gemm(&p, x.buffer(), self.weight.value.buffer(), y.buffer_mut())?;
        if let Some(b) = &self.bias {
            let bp = BiasParams {
                outer: n,
                channels: self.out_features,
                inner: 1,
            };
            backend.bias_add(&bp, b.value.buffer(), y.buffer_mut())?;
        }
        Ok(())
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
        let n = self.batch(x)?;
        // dW (out, in) += dy^T (out, N) * x (N, in); dy stored (N, out).
        let pw = GemmParams {
            trans_a: true,
            beta: 1.0,
            ..GemmParams::new(self.out_features, self.in_features, n)
        };
        backend.gemm(&pw, dy.buffer(), x.buffer(), self.weight.grad.buffer_mut())?;
        if let Some(b) = self.bias.as_mut() {
            let bp = BiasParams {
                outer: n,
                channels: self.out_features,
                inner: 1,
            };
            backend.bias_backward(&bp, dy.buffer(), b.grad.buffer_mut())?;
        }
        if let Some(dx) = dx {
            // dx (N, in) = dy (N, out) * W (out, in).
            let px = GemmParams::new(n, self.in_features, self.out_features);
            backend.gemm(
                &px,
                dy.buffer(),
                self.weight.value.buffer(),
                dx.buffer_mut(),
            )?;
        }
        Ok(())
    }

    fn params(&self) -> LayerParams<&Param<B>> {
        LayerParams::new([Some(&self.weight), self.bias.as_ref()])
    }
    fn params_mut(&mut self) -> LayerParams<&mut Param<B>> {
        LayerParams::new([Some(&mut self.weight), self.bias.as_mut()])
    }
}
