//! The state_dict: every parameter, running statistic and counter by its
//! PyTorch name, for checkpoints that load in PyTorch and back.

use std::collections::HashMap;

use super::{Graph, Node};
use crate::backend::Backend;
use crate::error::{CnnError, Result};
use crate::tensor::Tensor;

/// Values of one state_dict entry.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    F32(Vec<f32>),
    /// Integer counters (`num_batches_tracked` is int64 in PyTorch).
    I64(Vec<i64>),
}

/// What a float tensor of the state_dict is (see [`Graph::zip_state_mut`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// A trainable parameter's value.
    Param,
    /// A running statistic (batch norm's `running_mean`, `running_var`).
    Buffer,
}

/// One state_dict entry: name, shape (row-major) and values.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedArray {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: ArrayData,
}

impl<B: Backend> Graph<B> {
    /// Every parameter, buffer and counter, in PyTorch's order per module
    /// (weight, bias, running_mean, running_var, num_batches_tracked).
    pub fn state_dict(&self) -> Result<Vec<NamedArray>> {
        let mut out = Vec::new();
        for node in &self.nodes {
            let Node::Layer(layer) = node else { continue };
            for p in layer.params() {
                out.push(NamedArray {
                    name: p.name.clone(),
                    shape: p.value.shape().dims().to_vec(),
                    data: ArrayData::F32(p.value.to_vec(&self.backend)?),
                });
            }
            for b in layer.buffers() {
                out.push(NamedArray {
                    name: b.name.clone(),
                    shape: b.value.shape().dims().to_vec(),
                    data: ArrayData::F32(b.value.to_vec(&self.backend)?),
                });
            }
            for (name, value) in layer.counters() {
                out.push(NamedArray {
                    name,
                    shape: Vec::new(),
                    data: ArrayData::I64(vec![value]),
                });
            }
        }
        Ok(out)
    }

    /// Visit the float tensors of this graph's state_dict beside those of
    /// `source`, a graph of the same layers: `f(kind, mine, theirs)` for
    /// each parameter value, then each running statistic, layer by layer
    /// (what weight averaging reads and writes). An error when the two
    /// graphs' tensors differ in number or shape.
    pub fn zip_state_mut(
        &mut self,
        source: &Graph<B>,
        mut f: impl FnMut(StateKind, &mut Tensor<B>, &Tensor<B>) -> Result<()>,
    ) -> Result<()> {
        let mismatch = || CnnError::StateDict("the two graphs' state_dicts differ".into());
        let mine = self.nodes.iter().filter(|n| matches!(n, Node::Layer(_)));
        let theirs = source.nodes.iter().filter(|n| matches!(n, Node::Layer(_)));
        if mine.count() != theirs.count() {
            return Err(mismatch());
        }
        let pairs = self.nodes.iter_mut().filter_map(|n| match n {
            Node::Layer(l) => Some(l),
            Node::Add => None,
        });
        let others = source.nodes.iter().filter_map(|n| match n {
            Node::Layer(l) => Some(l),
            Node::Add => None,
        });
        for (layer, other) in pairs.zip(others) {
            let theirs: Vec<&Tensor<B>> = other.params().map(|p| &p.value).collect();
            let mine: Vec<&mut crate::param::Param<B>> = layer.params_mut().collect();
            if mine.len() != theirs.len() {
                return Err(mismatch());
            }
            for (p, t) in mine.into_iter().zip(theirs) {
                if p.value.shape() != t.shape() {
                    return Err(mismatch());
                }
                f(StateKind::Param, &mut p.value, t)?;
            }
            let theirs: Vec<&Tensor<B>> = other.buffers().into_iter().map(|b| &b.value).collect();
            let mine = layer.buffers_mut();
            if mine.len() != theirs.len() {
                return Err(mismatch());
            }
            for (b, t) in mine.into_iter().zip(theirs) {
                if b.value.shape() != t.shape() {
                    return Err(mismatch());
                }
                f(StateKind::Buffer, &mut b.value, t)?;
            }
        }
        Ok(())
    }

    /// The running statistics alone (batch norm's `running_mean` and
    /// `running_var`), in state_dict order, mutably.
    pub fn buffer_tensors_mut(&mut self) -> Vec<&mut Tensor<B>> {
        let mut out = Vec::new();
        for node in &mut self.nodes {
            let Node::Layer(layer) = node else { continue };
            out.extend(layer.buffers_mut().into_iter().map(|b| &mut b.value));
        }
        out
    }

    /// The integer counters of the state_dict (`num_batches_tracked`), by name.
    pub fn counters(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for node in &self.nodes {
            let Node::Layer(layer) = node else { continue };
            out.extend(layer.counters());
        }
        out
    }

    /// Set each counter named in `counters`; names the graph lacks are
    /// passed over.
    pub fn set_counters(&mut self, counters: &[(String, i64)]) {
        for node in &mut self.nodes {
            let Node::Layer(layer) = node else { continue };
            for (name, value) in counters {
                layer.set_counter(name, *value);
            }
        }
    }

    /// Load values by name. Every parameter and buffer must be present with
    /// its exact shape; unknown names are an error; counters are optional
    /// (older PyTorch checkpoints lack them). Nothing is changed on error.
    pub fn load_state_dict(&mut self, entries: &[NamedArray]) -> Result<()> {
        let mut by_name: HashMap<&str, &NamedArray> = HashMap::with_capacity(entries.len());
        for e in entries {
            if by_name.insert(e.name.as_str(), e).is_some() {
                return Err(CnnError::StateDict(format!(
                    "entry `{}` appears twice",
                    e.name
                )));
            }
        }
        // Validate everything before writing anything.
        let mut expected: Vec<(String, Vec<usize>)> = Vec::new();
        let mut counters: Vec<String> = Vec::new();
        for node in &self.nodes {
            let Node::Layer(layer) = node else { continue };
            for p in layer.params() {
                expected.push((p.name.clone(), p.value.shape().dims().to_vec()));
            }
            for b in layer.buffers() {
                expected.push((b.name.clone(), b.value.shape().dims().to_vec()));
            }
            counters.extend(layer.counters().into_iter().map(|(n, _)| n));
        }
        for (name, shape) in &expected {
            let e = by_name.get(name.as_str()).ok_or_else(|| {
                CnnError::StateDict(format!("missing entry `{name}` (shape {shape:?})"))
            })?;
            if &e.shape != shape {
                return Err(CnnError::StateDict(format!(
                    "entry `{name}` has shape {:?}, the model expects {shape:?}",
                    e.shape
                )));
            }
            match &e.data {
                ArrayData::F32(v) if v.len() == shape.iter().product::<usize>() => {}
                ArrayData::F32(v) => {
                    return Err(CnnError::StateDict(format!(
                        "entry `{name}` holds {} values for shape {shape:?}",
                        v.len()
                    )));
                }
                ArrayData::I64(_) => {
                    return Err(CnnError::StateDict(format!(
                        "entry `{name}` is integer, expected float32"
                    )));
                }
            }
        }
        for e in entries {
            let known = expected.iter().any(|(n, _)| n == &e.name) || counters.contains(&e.name);
            if !known {
                return Err(CnnError::StateDict(format!(
                    "unexpected entry `{}` (the model has no such parameter)",
                    e.name
                )));
            }
            if counters.contains(&e.name) && !matches!(&e.data, ArrayData::I64(v) if v.len() == 1) {
                return Err(CnnError::StateDict(format!(
                    "entry `{}` must be one integer",
                    e.name
                )));
            }
        }
        let backend = self.backend.clone();
        for node in &mut self.nodes {
            let Node::Layer(layer) = node else { continue };
            for p in layer.params_mut() {
                if let ArrayData::F32(v) = &by_name[p.name.as_str()].data {
                    p.value.copy_from_slice(&backend, v)?;
                }
            }
            for b in layer.buffers_mut() {
                if let ArrayData::F32(v) = &by_name[b.name.as_str()].data {
                    b.value.copy_from_slice(&backend, v)?;
                }
            }
            for (name, _) in layer.counters() {
                if let Some(NamedArray {
                    data: ArrayData::I64(v),
                    ..
                }) = by_name.get(name.as_str())
                {
                    layer.set_counter(&name, v[0]);
                }
            }
        }
        Ok(())
    }

    /// Device copies of every buffer (batch norm's running statistics)
    /// into `saved` (reused from call to call, so a steady state allocates
    /// nothing), and the counters: what [`restore_buffers`](Self::restore_buffers)
    /// puts back, e.g. around a forward whose statistics must not count.
    pub fn save_buffers(&self, saved: &mut Vec<B::Buffer>) -> Result<Vec<i64>> {
        let mut i = 0;
        let mut counters = Vec::new();
        for node in &self.nodes {
            let Node::Layer(layer) = node else { continue };
            for b in layer.buffers() {
                let n = b.value.numel();
                if saved.len() <= i {
                    saved.push(self.backend.alloc_zeros(n)?);
                } else if self.backend.buffer_len(&saved[i]) != n {
                    saved[i] = self.backend.alloc_zeros(n)?;
                }
                self.backend.copy(b.value.buffer(), &mut saved[i])?;
                i += 1;
            }
            counters.extend(layer.counters().into_iter().map(|(_, v)| v));
        }
        saved.truncate(i);
        Ok(counters)
    }

    /// Put back what [`save_buffers`](Self::save_buffers) saved.
    pub fn restore_buffers(&mut self, saved: &[B::Buffer], counters: &[i64]) -> Result<()> {
        let backend = self.backend.clone();
        let (mut i, mut j) = (0, 0);
        for node in &mut self.nodes {
            let Node::Layer(layer) = node else { continue };
            for b in layer.buffers_mut() {
                let src = saved.get(i).ok_or_else(|| {
                    CnnError::StateDict("fewer saved buffers than the graph has".into())
                })?;
                backend.copy(src, b.value.buffer_mut())?;
                i += 1;
            }
            for (name, _) in layer.counters() {
                let v = *counters.get(j).ok_or_else(|| {
                    CnnError::StateDict("fewer saved counters than the graph has".into())
                })?;
                layer.set_counter(&name, v);
                j += 1;
            }
        }
        Ok(())
    }
}
