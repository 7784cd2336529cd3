//! Linear: `y = x W^T + b` through the backend GEMM, and its backward.

use super::{ForwardCtx, Layer, LayerParams, LayerSpec, MAX_LAYER_PARAMS, PartIo};
use crate::backend::{Backend, BiasParams, GemmParams};
use crate::error::{CnnError, Result};
use crate::init;
use crate::param::{Param, ParamKind};
use crate::per_size::PerSize;
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
    /// A data-parallel step's parts, gathered, per batch size (the full
    /// and the last partial batch; kept for reuse, see
    /// `backward_params_from_parts`).
    gathered: PerSize<Gathered<B>, 2>,
}

/// `dW += dy^T x`, `db += sum of dy's rows` over `n` samples, for a layer
/// of `(in_features, out_features)` (a function of the parameters alone, so it
/// can read the layer's gathered parts while it writes the gradients).
#[allow(clippy::too_many_arguments)]
fn param_grads<B: Backend>(
    backend: &B,
    (in_features, out_features): (usize, usize),
    weight: &mut Param<B>,
    bias: Option<&mut Param<B>>,
    n: usize,
    x: &Tensor<B>,
    dy: &Tensor<B>,
) -> Result<()> {
    // dW (out, in) += dy^T (out, N) * x (N, in); dy stored (N, out).
    let pw = GemmParams {
        trans_a: true,
        beta: 1.0,
        ..GemmParams::new(out_features, in_features, n)
    };
    backend.gemm(&pw, dy.buffer(), x.buffer(), weight.grad.buffer_mut())?;
    if let Some(b) = bias {
        let bp = BiasParams {
            outer: n,
            channels: out_features,
            inner: 1,
        };
        backend.bias_backward(&bp, dy.buffer(), b.grad.buffer_mut())?;
    }
    Ok(())
}

/// A whole batch's input and output gradient, gathered from the parts of
/// a data-parallel step, and the host buffer they pass through.
struct Gathered<B: Backend> {
    x: Tensor<B>,
    dy: Tensor<B>,
    host: Vec<f32>,
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
            gathered: PerSize::new(),
        })
    }

    /// `dx = dy W` over `n` samples.
    fn input_grad(&self, backend: &B, n: usize, dy: &Tensor<B>, dx: &mut Tensor<B>) -> Result<()> {
        let px = GemmParams::new(n, self.in_features, self.out_features);
        backend.gemm(
            &px,
            dy.buffer(),
            self.weight.value.buffer(),
            dx.buffer_mut(),
        )
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
        let features = (self.in_features, self.out_features);
        param_grads(
            backend,
            features,
            &mut self.weight,
            self.bias.as_mut(),
            n,
            x,
            dy,
        )?;
        if let Some(dx) = dx {
            self.input_grad(backend, n, dy, dx)?;
        }
        Ok(())
    }

    fn backward_part(
        &mut self,
        backend: &B,
        _ctx: &ForwardCtx,
        x: &Tensor<B>,
        _y: &Tensor<B>,
        dy: &Tensor<B>,
        dx: Option<&mut Tensor<B>>,
    ) -> Result<()> {
        match dx {
            Some(dx) => self.input_grad(backend, self.batch(x)?, dy, dx),
            None => Ok(()),
        }
    }

    /// The weight gradient is one GEMM over the whole batch: summed part by
    /// part, its rounding would differ from the unsplit step's.
    fn part_summed(&self) -> [bool; MAX_LAYER_PARAMS] {
        [false; MAX_LAYER_PARAMS]
    }

    fn backward_params_from_parts(&mut self, backend: &B, parts: &[PartIo<'_, B>]) -> Result<()> {
        let mut n = 0;
        for part in parts {
            n += self.batch(part.x)?;
        }
        let (in_features, out_features) = (self.in_features, self.out_features);
        // One of `n` rows; else the smallest made for more, shortened in
        // place where the backend can (a last partial batch); else a new
        // one (keyed by the rows it was made with).
        let gathered = &mut self.gathered;
        let fits = gathered.position(|_, g| g.x.shape().dim(0) == Some(n));
        let longer = gathered
            .entries()
            .enumerate()
            .filter(|(_, (made, _))| *made >= n)
            .min_by_key(|(_, (made, _))| *made)
            .map(|(i, _)| i);
        let i = if let Some(i) = fits {
            gathered.touch(i)
        } else if let Some(i) = longer.filter(|&i| {
            let g = &mut gathered[i];
            g.x.resize_batch(backend, n) && g.dy.resize_batch(backend, n)
        }) {
            gathered.touch(i)
        } else {
            gathered.use_or_insert(n, || {
                Ok(Gathered {
                    x: Tensor::zeros(backend, [n, in_features])?,
                    dy: Tensor::zeros(backend, [n, out_features])?,
                    host: Vec::new(),
                })
            })?
        };
        let g = &mut self.gathered[i];
        g.x.concat_from(backend, parts.iter().map(|p| p.x), &mut g.host)?;
        g.dy.concat_from(backend, parts.iter().map(|p| p.dy), &mut g.host)?;
        let g = &self.gathered[i];
        let features = (self.in_features, self.out_features);
        param_grads(
            backend,
            features,
            &mut self.weight,
            self.bias.as_mut(),
            n,
            &g.x,
            &g.dy,
        )
    }

    fn params(&self) -> LayerParams<&Param<B>> {
        LayerParams::new([Some(&self.weight), self.bias.as_ref()])
    }
    fn params_mut(&mut self) -> LayerParams<&mut Param<B>> {
        LayerParams::new([Some(&mut self.weight), self.bias.as_mut()])
    }
}
